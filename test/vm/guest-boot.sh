#!/bin/bash
# Runs inside the test VM as PID 1 (exec'd by /sbin/xb-init, copied to /job/boot.sh by run-in-vm.sh
# at every boot, so changing it needs no guest rebuild). Brings the guest up the way a Xen/KVM host
# is (udevd, device-mapper, dmeventd monitoring snapshots), runs /job/script as root with the args
# in /job/args, and reports its exit status in /job/status before powering off.
#
# Its own progress goes to the console (console.log on the host); the script's stdout and stderr go
# to /job/out.log, which the host streams (9p writes are synchronous, so nothing is lost at power-off).
#
# The script sees: cwd /xb; XB_HOST=/xb (a copy of the project in memory, unpacked from
# /job/project.tar: reading node's hundreds of module files over 9p costs minutes under emulation),
# /host (the live project folder over 9p), XB_JOB=/job, XB_ARTIFACTS=/job/artifacts (copied back to
# the host), XB_SCRATCH (the scratch disk's device), LVM_SUPPRESS_FD_WARNINGS=1, the loopback
# interface up (127.0.0.1), plus the XENBACKUP_VM_* variables of the host (/job/env).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb
export LVM_SUPPRESS_FD_WARNINGS=1

log() { printf '[xb-boot %s] %s\n' "$(cut -d' ' -f1 /proc/uptime)" "$*"; }
power_off() {
  sync
  echo 1 > /proc/sys/kernel/sysrq
  echo o > /proc/sysrq-trigger
  sleep 60
}
report() {
  # Written last and renamed: the host treats a missing status as a crashed VM.
  echo "$1" > /job/status.tmp && mv /job/status.tmp /job/status
  sync
}

log "boot script started"
# What systemd would add to a bare devtmpfs; bash's <(...) needs /dev/fd.
[[ -e /dev/fd ]] || ln -s /proc/self/fd /dev/fd
for i in 0:stdin 1:stdout 2:stderr; do [[ -e /dev/${i#*:} ]] || ln -s "/proc/self/fd/${i%%:*}" "/dev/${i#*:}"; done
hostname xbvm
# What has no /dev node to trigger autoloading; filesystems (xfs, btrfs, overlay) load when first
# mounted. Loading btrfs eagerly costs ~10 s: its raid6/xor speed tests run under emulation.
modprobe -a dm-mod dm-snapshot loop || log "warning: some modules failed to load"
log "modules loaded"

# udevd: lvcreate waits for udev to create /dev/vgxen/* (else "not found: device not cleared").
# Coldplug only block devices: the rest is of no use here and costs ~20 s under emulation.
/lib/systemd/systemd-udevd --daemon --resolve-names=never
log "udevd started"
udevadm trigger --type=devices --subsystem-match=block --action=add
udevadm settle --timeout=60 || log "warning: udevadm settle timed out"
log "udev coldplug done"
# dmeventd: monitors snapshots and unmounts an overflowed one, as on a real host (lvm.conf monitoring=1).
dmeventd || log "warning: dmeventd did not start"

# The loopback interface: the guest boots with lo down (connect to 127.0.0.1: ENETUNREACH) and has
# no ip(8): SIOCSIFFLAGS(IFF_UP|IFF_LOOPBACK|IFF_RUNNING) through perl; the kernel then gives lo 127.0.0.1.
perl -MSocket -e 'socket(my $s, PF_INET, SOCK_DGRAM, 0) or die "socket: $!\n";
  my $ifr = pack("a16 s x22", "lo", 0x49); ioctl($s, 0x8914, $ifr) or die "SIOCSIFFLAGS lo: $!\n"' || log "warning: cannot bring lo up"
# The project, unpacked into memory (run-in-vm.sh packed it).
mkdir -p /xb
mount -t tmpfs -o mode=0755 tmpfs /xb
tar -C /xb -xf /job/project.tar || { log "cannot unpack /job/project.tar"; report 125; power_off; }
log "project unpacked into /xb"

# The scratch disk is the virtio disk with serial xbscratch (run-in-vm.sh).
scratch=
for s in /sys/block/vd*/serial; do
  [[ $(cat "$s") == xbscratch ]] && scratch=/dev/$(basename "$(dirname "$s")")
done
[[ -b $scratch ]] || { log "no virtio disk with serial xbscratch"; grep . /sys/block/vd*/serial; report 125; power_off; }
export XB_HOST=/xb XB_JOB=/job XB_ARTIFACTS=/job/artifacts XB_SCRATCH=$scratch
# shellcheck disable=SC1091
[[ -r /job/env ]] && . /job/env

args=()
while IFS= read -r -d '' a; do args+=("$a"); done < /job/args
log "up; running the guest script ${args[*]}"
cd /xb || { report 125; power_off; }
if [[ ${XB_SHELL:-0} == 1 ]]; then
  # Interactive run: the host shows the serial console, not out.log.
  /job/script "${args[@]}" < /dev/null 2>&1 | tee -a /job/out.log > /dev/ttyS0
  rc=${PIPESTATUS[0]}
else
  /job/script "${args[@]}" < /dev/null >> /job/out.log 2>&1
  rc=$?
fi
log "guest script exited $rc"

if [[ ${XB_SHELL:-0} == 1 ]]; then
  echo "guest script exited $rc (its output: /job/out.log). Root shell; exit to power off."
  setsid -c bash -l < /dev/ttyS0 > /dev/ttyS0 2>&1
fi
report "$rc"
power_off
