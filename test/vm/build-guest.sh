#!/bin/bash
# Builds, once, the small Debian guest that the VM suite boots under qemu (TCG): this
# machine's kernel has no device-mapper, so real LVM snapshots can only be exercised in a VM.
#
# Output, in the cache folder ${XENBACKUP_VM_CACHE:-$HOME/.cache/xenbackup-vm}:
#   vmlinuz     the Debian bookworm kernel (linux-image-amd64)
#   initrd.gz   busybox-static initramfs: loads virtio + ext4, mounts /dev/vda, switch_root to /sbin/xb-init
#   rootfs.img  ext4 image of a debootstrap minbase with lvm2, filesystems tools, udev and the host's node;
#               booted with qemu's snapshot=on, so no run ever changes it
#   key         hash of this script + the node version: a different key means rebuild
#   debootstrap-KEY.tar.zst  the debootstrap result, reused while the package list and mirror stay the same
#   info        what was built and how long it took
# The guest does only the minimum at boot (/sbin/xb-init mounts the 9p shares and hands over to
# /job/boot.sh, a copy of test/vm/guest-boot.sh), so changing boot logic never needs a rebuild.
#
# Usage: test/vm/build-guest.sh [--force]     prints the cache folder on its last line.
# It installs its own host packages (apt-get) and uses the Debian mirror of /etc/apt/sources.list*
# (override: XENBACKUP_VM_MIRROR).
set -euo pipefail

HOST_PACKAGES=(qemu-system-x86 debootstrap cpio busybox-static e2fsprogs zstd tar coreutils util-linux)
GUEST_PACKAGES=lvm2,dmeventd,e2fsprogs,xfsprogs,btrfs-progs,rsync,tar,zstd,xz-utils,udev,kmod,procps,psmisc,util-linux,acl,attr,makefs,ntfs-3g
# Kernel modules the guest needs (with their dependencies); the rest of the 4000 are dropped.
GUEST_MODULES=(virtio_pci virtio_blk virtio_console ext4 crc32c_generic crc32c-intel 9p 9pnet_virtio
  dm-mod dm-snapshot dm-bufio loop xfs btrfs overlay ufs fuse)
# Loaded by the initramfs, in this order after their dependencies: just enough to mount the root disk.
INITRD_MODULES=(virtio_pci virtio_blk crc32c_generic crc32c-intel ext4)

here=$(cd "$(dirname "$0")" && pwd)
cache=${XENBACKUP_VM_CACHE:-${HOME:-/root}/.cache/xenbackup-vm}
force=${1:-}

say() { printf '[build-guest] %s\n' "$*" >&2; }
die() { printf 'build-guest: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot, mknod)"

apt_install() {
  # The dpkg lock may be held by another job for a while: wait for it instead of failing.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "$@" >&2
}

ensure_host_packages() {
  local missing=() p
  for p in "${HOST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  say "installing host packages: ${missing[*]}"
  apt_install "${missing[@]}" || { apt-get update -q -o DPkg::Lock::Timeout=600 >&2 && apt_install "${missing[@]}"; } \
    || die "apt-get install ${missing[*]} failed"
}

# The mirror apt uses here (deb822 .sources or one-line sources.list); no other host is reachable.
debian_mirror() {
  if [[ -n ${XENBACKUP_VM_MIRROR:-} ]]; then echo "$XENBACKUP_VM_MIRROR"; return; fi
  local f uri
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $f ]] || continue
    uri=$(awk '
      /^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }
      /^deb / { for (i = 2; i <= NF; i++) if ($i ~ /^https?:.*\/debian\/?$/) { print $i; exit } }' "$f")
    [[ -n $uri ]] && { echo "$uri"; return; }
  done
  die "no Debian mirror (a URI ending in /debian) found in /etc/apt/sources.list*; set XENBACKUP_VM_MIRROR"
}

cache_key() {
  { sha256sum < "$0"; node --version 2>/dev/null || echo no-node; } | sha256sum | cut -c1-32
}

ensure_host_packages
command -v node >/dev/null || die "node is not installed on the host (it is copied into the guest)"
mkdir -p "$cache"
key=$(cache_key)
is_current() { [[ -f $cache/key && $(cat "$cache/key") == "$key" && -f $cache/rootfs.img && -f $cache/initrd.gz && -f $cache/vmlinuz ]]; }

if [[ $force != --force ]] && is_current; then echo "$cache"; exit 0; fi

# One builder at a time; whoever waited finds the guest built.
exec 9>"$cache/.build.lock"
flock 9
if [[ $force != --force ]] && is_current; then echo "$cache"; exit 0; fi

start=$(date +%s)
work=$(mktemp -d "$cache/build.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
root=$work/root
mirror=$(debian_mirror)

# --- the kernel: resolved from the linux-image-amd64 metapackage, unpacked on the host ---
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
if [[ -z $kpkg ]]; then
  apt-get update -q -o DPkg::Lock::Timeout=600 >&2
  kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
fi
[[ -n $kpkg ]] || die "cannot resolve linux-image-amd64 to a kernel package (apt-cache depends)"
say "kernel package $kpkg; mirror $mirror"
(cd "$work" && apt-get download -q "$kpkg" >&2 2>/dev/null) || die "apt-get download $kpkg failed"
mkdir "$work/kernel"
dpkg-deb -x "$work"/"$kpkg"_*.deb "$work/kernel"
kver=${kpkg#linux-image-}
[[ -f $work/kernel/boot/vmlinuz-$kver ]] || die "$kpkg has no /boot/vmlinuz-$kver"

# --- the root filesystem ---
# debootstrap is most of the build time; its result is kept as a tarball keyed by what goes into it,
# so a change to the rest of this script rebuilds in seconds.
base_key=$(printf '%s\n' bookworm minbase "$GUEST_PACKAGES" "$mirror" | sha256sum | cut -c1-16)
base_tar=$cache/debootstrap-$base_key.tar.zst
[[ $force == --force ]] && rm -f "$base_tar"
t0=$(date +%s)
mkdir "$root"
if [[ -f $base_tar ]]; then
  say "debootstrap result from $base_tar"
  zstd -dc "$base_tar" | tar -C "$root" --numeric-owner -xpf -
else
  say "debootstrap bookworm minbase (+ $GUEST_PACKAGES)"
  debootstrap --variant=minbase --include="$GUEST_PACKAGES" bookworm "$root" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed (mirror $mirror)"; }
  rm -f "$cache"/debootstrap-*.tar.zst "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" --numeric-owner -cf - . | zstd -q -T0 -3 > "$base_tar.tmp"
  mv "$base_tar.tmp" "$base_tar"
fi
debootstrap_s=$(( $(date +%s) - t0 ))

# Only the modules the guest needs, with their dependencies (depmod runs inside the rootfs:
# the host has no kmod, and the .deb ships no modules.dep).
mkdir -p "$root/lib/modules"
cp -a "$work/kernel/lib/modules/$kver" "$root/lib/modules/"
chroot "$root" depmod "$kver"
moddir=$root/lib/modules/$kver
# Prints module paths (relative to $moddir) in load order: dependencies first.
load_order() {
  awk -v want="$*" '
    BEGIN { n = split(want, w, " ") }
    { key = $1; sub(/:$/, "", key); deps[key] = ""; for (i = 2; i <= NF; i++) deps[key] = deps[key] " " $i
      base = key; sub(/.*\//, "", base); sub(/\.ko$/, "", base); gsub(/-/, "_", base); path[base] = key }
    function emit(p,   d, m, i) {
      if (p in done) return
      m = split(deps[p], d, " ")
      for (i = m; i >= 1; i--) emit(d[i])
      done[p] = 1; print p
    }
    END { for (i = 1; i <= n; i++) { b = w[i]; gsub(/-/, "_", b); if (b in path) emit(path[b]) } }
  ' "$moddir/modules.dep"
}
load_order "${GUEST_MODULES[@]}" > "$work/keep.list"
[[ -s $work/keep.list ]] || die "no guest modules found in $moddir/modules.dep"
mv "$moddir/kernel" "$work/allmods"
while read -r m; do
  mkdir -p "$moddir/$(dirname "$m")"
  cp "$work/allmods/${m#kernel/}" "$moddir/$m"
done < "$work/keep.list"
chroot "$root" depmod "$kver"
for m in dm_mod dm_snapshot xfs 9p; do
  grep -q "/${m//_/[-_]}\.ko:" "$moddir/modules.dep" || grep -qw "$m" "$moddir/modules.builtin" \
    || die "kernel module $m missing from the guest"
done

# The host's node: the VM runs the project compiled on the host, with the same runtime.
install -m 0755 "$(readlink -f "$(command -v node)")" "$root/usr/local/bin/node"

echo xbvm > "$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 xbvm\n' > "$root/etc/hosts"
: > "$root/etc/fstab"
mkdir -p "$root/host" "$root/job"
# PID 1 after switch_root: mounts the 9p shares and hands over to the run's own boot script.
cat > "$root/sbin/xb-init" <<'EOF'
#!/bin/bash
# PID 1 of the xenbackup test VM (baked by test/vm/build-guest.sh). Everything that may change
# lives in /job/boot.sh (test/vm/guest-boot.sh), read from the host at every boot.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
halt_now() { echo "xb-init: $*"; sync; echo 1 > /proc/sys/kernel/sysrq; echo o > /proc/sysrq-trigger; sleep 30; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /tmp
modprobe -a 9pnet_virtio 9p || halt_now "cannot load 9p modules"
opts=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$opts" job /job || halt_now "cannot mount the 9p share 'job'"
mount -t 9p -o "$opts" host /host || halt_now "cannot mount the 9p share 'host'"
[[ -r /job/boot.sh ]] || halt_now "/job/boot.sh missing"
exec /bin/bash /job/boot.sh
EOF
chmod 0755 "$root/sbin/xb-init"
# Trim what a test VM never reads.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/usr/share/info/*

# --- the initramfs: busybox only ---
ird=$work/initrd
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,lib/modules}
cp /bin/busybox "$ird/bin/busybox"
load_order "${INITRD_MODULES[@]}" > "$work/initrd.list"
while read -r m; do
  cp "$moddir/$m" "$ird/lib/modules/"
  basename "$m" >> "$ird/modules.order"
done < "$work/initrd.list"
cat > "$ird/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do insmod /lib/modules/$m || echo "initrd: insmod $m failed"; done
# The root disk is the virtio disk with serial xbroot (PCI order does not say which vdX it is).
# Its node can exist before its size is known (mount: EINVAL): retry for up to 10 s.
mount_root() {
  for s in /sys/block/vd*/serial; do
    [ "$(cat "$s" 2>/dev/null)" = xbroot ] || continue
    d=${s%/serial}
    mount -t ext4 "/dev/${d##*/}" /newroot 2>/dev/null && return 0
  done
  return 1
}
i=0
until mount_root; do
  i=$((i + 1))
  if [ $i -ge 100 ]; then
    echo "initrd: no mountable virtio disk with serial xbroot:"; grep . /sys/block/vd*/serial
    echo o > /proc/sysrq-trigger; sleep 30
  fi
  sleep 0.1
done
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/xb-init
EOF
chmod 0755 "$ird/init"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.gz"

# --- the disk image (mke2fs -d: no loop mount needed on the host) ---
used_mb=$(du -sm "$root" | cut -f1)
size_mb=$(( used_mb * 13 / 10 + 256 ))
mke2fs -q -t ext4 -L xbroot -d "$root" "$work/rootfs.img" "${size_mb}M" >&2

# rename(2) over the old files: a VM booted from them keeps its open copy, a new one gets the new.
mv -f "$work/kernel/boot/vmlinuz-$kver" "$cache/vmlinuz"
mv -f "$work/initrd.gz" "$cache/initrd.gz"
mv -f "$work/rootfs.img" "$cache/rootfs.img"
cat > "$cache/info" <<EOF
kernel=$kver
node=$(node --version)
mirror=$mirror
rootfs_used_mb=$used_mb
rootfs_image_mb=$size_mb
modules=$(wc -l < "$work/keep.list")
debootstrap_seconds=$debootstrap_s
build_seconds=$(( $(date +%s) - start ))
built_at=$(date -u +%FT%TZ)
EOF
echo "$key" > "$cache/key"
say "built in $(( $(date +%s) - start )) s: $(tr '\n' ' ' < "$cache/info")"
echo "$cache"
