#!/bin/bash
# Boots ONE throwaway VM of the cached guest (test/vm/build-guest.sh), runs GUEST_SCRIPT in it as root,
# streams its output here and exits with its status. The one entry point to the VM for tests and people.
#
# Usage: test/vm/run-in-vm.sh [--shell] GUEST_SCRIPT [ARGS...]
#   --shell   after the script, give an interactive root shell on this terminal (exit it to power off)
#
# In the guest:
#   /xb     a copy of this project folder (without .git and the compiler), taken when the VM starts and
#           unpacked into the guest's memory: $XB_HOST and the script's cwd. Run /xb/bin/xenbackup,
#           node /xb/dist/... (compile on the host first: the guest is ~20x slower).
#   /host   this project folder itself, read-write over 9p (live; files the guest creates are root-owned).
#           Slow to read from: every file node opens over 9p costs tens of milliseconds of round trips
#           under emulation (`xenbackup --version` took 33-94 s from /host, against ~5 s from /xb).
#   /job    this run's folder (a temp dir here): script, args, env, out.log, status, artifacts/
#   scratch disk: a fresh sparse image (XENBACKUP_VM_DISK_GB, default 4), in $XB_SCRATCH (virtio serial xbscratch)
#   udevd and dmeventd run, as on a real host; environment: XB_* (see guest-boot.sh) and every
#   XENBACKUP_VM_* variable set here.
#
# Environment:
#   XENBACKUP_VM_CACHE     where the built guest lives (default ~/.cache/xenbackup-vm)
#   XENBACKUP_VM_TIMEOUT   seconds before the VM is killed (default 3000 = 50 min: a loaded CI machine must not turn slowness into a failure); then its console log is shown
#   XENBACKUP_VM_KEEP=1    keep this run's folder (scratch.img, console.log, out.log, artifacts) even on success
#   XENBACKUP_VM_ARTIFACTS=DIR   copy what the guest left in /job/artifacts into DIR after the run
#   XENBACKUP_VM_MEM_MB, XENBACKUP_VM_CPUS, XENBACKUP_VM_ACCEL (default tcg: KVM here is nested and hangs)
#
# Exit status: the guest script's; 124 when the VM timed out; 125 when the VM itself failed
# (qemu missing, no status written); the reason is printed on stderr in both cases.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../.." && pwd)
cache=${XENBACKUP_VM_CACHE:-${HOME:-/root}/.cache/xenbackup-vm}
limit=${XENBACKUP_VM_TIMEOUT:-3000}
shell=0
if [[ ${1:-} == --shell ]]; then shell=1; shift; fi
script=${1:?usage: run-in-vm.sh [--shell] GUEST_SCRIPT [ARGS...]}
shift

fail() { printf 'run-in-vm: %s\n' "$*" >&2; exit 125; }
[[ -r $script ]] || fail "guest script $script not found"
command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 not installed (run test/vm/build-guest.sh, which installs it)"
for f in vmlinuz initrd.gz rootfs.img; do
  [[ -r $cache/$f ]] || fail "no built guest in $cache ($f missing): run test/vm/build-guest.sh first"
done

job=$(mktemp -d "${TMPDIR:-/tmp}/xenbackup-vm.XXXXXX")
qemu_pid=
tail_pid=
keep=${XENBACKUP_VM_KEEP:-0}
finish() {
  local rc=$?
  [[ -n $qemu_pid ]] && kill "$qemu_pid" 2>/dev/null
  [[ -n $tail_pid ]] && kill "$tail_pid" 2>/dev/null
  if [[ -n ${XENBACKUP_VM_ARTIFACTS:-} ]]; then
    mkdir -p "$XENBACKUP_VM_ARTIFACTS" && cp -a "$job/artifacts/." "$XENBACKUP_VM_ARTIFACTS/"
  fi
  if [[ $keep == 1 || $rc != 0 ]]; then
    # The scratch disk is only worth keeping when asked: it is up to XENBACKUP_VM_DISK_GB.
    [[ $keep == 1 ]] || rm -f "$job/scratch.img"
    printf 'run-in-vm: kept %s (console.log, out.log, artifacts/)\n' "$job" >&2
  else
    rm -rf "$job"
  fi
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cp "$script" "$job/script"
chmod 0755 "$job/script"
cp "$here/guest-boot.sh" "$job/boot.sh"
: > "$job/args"
for a in "$@"; do printf '%s\0' "$a" >> "$job/args"; done
{
  printf 'export XB_SHELL=%q\n' "$shell"
  while IFS='=' read -r name _; do
    printf 'export %s=%q\n' "$name" "${!name}"
  done < <(env | grep -E '^XENBACKUP_VM_[A-Z0-9_]*=' || true)
} > "$job/env"
mkdir "$job/artifacts"
# The project as the guest will run it: one tar file that the guest reads in a few big 9p reads.
# Other people may be editing files meanwhile: a file that changed while read is no error here.
tar -C "$project" --exclude=./.git --exclude=./node_modules/typescript --exclude=./node_modules/@types \
  --exclude=./node_modules/.cache --warning=no-file-changed --warning=no-file-removed -cf "$job/project.tar" .
(($? <= 1)) || fail "cannot pack $project into $job/project.tar"
: > "$job/out.log"
truncate -s "${XENBACKUP_VM_DISK_GB:-4}G" "$job/scratch.img"

serial=(-serial "file:$job/console.log")
((shell)) && serial=(-serial mon:stdio)
qemu=(qemu-system-x86_64
  -accel "${XENBACKUP_VM_ACCEL:-tcg,thread=multi,tb-size=256}" -machine q35 -cpu max
  -smp "${XENBACKUP_VM_CPUS:-2}" -m "${XENBACKUP_VM_MEM_MB:-2048}"
  -nodefaults -no-user-config -display none -no-reboot
  -kernel "$cache/vmlinuz" -initrd "$cache/initrd.gz"
  -append "console=ttyS0 quiet loglevel=4 panic=-1 mitigations=off random.trust_cpu=on"
  "${serial[@]}"
  -drive "file=$cache/rootfs.img,if=none,id=root,format=raw,snapshot=on,cache=unsafe"
  -device virtio-blk-pci,drive=root,serial=xbroot
  -drive "file=$job/scratch.img,if=none,id=scratch,format=raw,cache=unsafe"
  -device virtio-blk-pci,drive=scratch,serial=xbscratch
  -virtfs "local,path=$project,mount_tag=host,security_model=passthrough,id=host"
  -virtfs "local,path=$job,mount_tag=job,security_model=passthrough,id=job")

start=$(date +%s)
if ((shell)); then
  "${qemu[@]}"
else
  # timeout -k: no background watchdog that could keep a CI pipe open after we are gone.
  timeout -k 10 "$limit" "${qemu[@]}" < /dev/null > "$job/qemu.log" 2>&1 &
  qemu_pid=$!
  tail -n +1 -F --pid="$qemu_pid" "$job/out.log" 2>/dev/null &
  tail_pid=$!
  wait "$qemu_pid"
  vm_rc=$?
  qemu_pid=
  wait "$tail_pid"
  tail_pid=
fi
elapsed=$(( $(date +%s) - start ))

show_console() {
  printf -- '--- qemu output ---\n' >&2
  cat "$job/qemu.log" >&2 2>/dev/null
  printf -- '--- last 60 lines of the console log (%s) ---\n' "$job/console.log" >&2
  tail -n 60 "$job/console.log" >&2 2>/dev/null
  printf -- '--- end of console log ---\n' >&2
}
if ((!shell)) && [[ $vm_rc == 124 || $vm_rc == 137 ]]; then
  show_console
  printf 'run-in-vm: the VM did not finish within %s s (XENBACKUP_VM_TIMEOUT) and was killed\n' "$limit" >&2
  exit 124
fi
if [[ ! -s $job/status ]]; then
  show_console
  fail "the VM stopped after ${elapsed} s without reporting the script's status (qemu exit ${vm_rc:-?})"
fi
rc=$(cat "$job/status")
[[ $rc =~ ^[0-9]+$ ]] || fail "bad status '$rc' in $job/status"
printf 'run-in-vm: guest script exited %s; VM ran %s s\n' "$rc" "$elapsed" >&2
exit "$rc"
