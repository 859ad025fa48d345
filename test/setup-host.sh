#!/usr/bin/env bash
# Installs the system packages xenbackup's tests use (Debian, as root): the
# real tools the tests drive instead of mocks.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(
  build-essential python3 libzstd-dev  # the native helper (node-gyp; compresses with libzstd)
  tar zstd gzip                  # archives read back by GNU tar
  acl attr libcap2-bin           # xattrs, ACLs, file capabilities in the torture tree
  e2fsprogs xfsprogs btrfs-progs util-linux  # loop-mounted filesystems
  ntfs-3g makefs                 # Windows (NTFS via FUSE) and BSD (UFS images) guest volumes
  rsync openssh-server openssh-client  # the rsync engine, also to a remote target over ssh (a real sshd on 127.0.0.1)
  lvm2                           # lvs/vgs/lvcreate (real LVM runs in the VM suite; here without device-mapper)
  msmtp msmtp-mta                # a real sendmail for the mail tests
  time                           # /usr/bin/time for the benchmark's peak RSS
  qemu-system-x86 debootstrap cpio busybox-static  # the VM suite with real LVM
)
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

# The VM suite's guest (debootstrap + kernel: 2-4 minutes, mostly downloads and dpkg) is built now,
# in the background, while npm ci and the host tests run; vm.test.ts's own call to
# test/vm/build-guest.sh waits for it on the cache's lock, finds it built (or builds it itself if
# this attempt failed). Nothing happens when the cached guest is current. XENBACKUP_VM_PREBUILD=0 skips it.
if [[ ${XENBACKUP_VM_PREBUILD:-1} == 1 ]] && command -v node >/dev/null; then
  log=/var/tmp/xenbackup-vm-build.log
  setsid nohup bash "$(dirname "$0")/vm/build-guest.sh" > "$log" 2>&1 < /dev/null &
  echo "setup-host: building the VM guest in the background (log: $log)"
fi
