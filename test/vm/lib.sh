#!/bin/bash
# Helpers for the VM scenarios (test/vm/scenarios/*.sh), sourced inside the guest:
#   . "$XB_HOST/test/vm/lib.sh"
# They make a VG on the scratch disk, origin LVs with filesystems, snapshots the way xenbackup
# makes them (tagged, read-only mounts), live writers, and capture real LVM output as fixtures
# for the unit tests outside the VM (artifacts/fixtures/lvm/, see test/fixtures/lvm/README.md).
# Everything a helper creates is undone by the EXIT trap, in reverse order, also on failure.
set -euo pipefail

VG=vgxen
# The old tool's defaults: snapshots mounted under MNTSOURCEDIR/domU/part, the medium on BCKMNTP.
MNTSOURCEDIR=/4backup
BCKMNTP=/backup/guests
SNAP_TAG=xenbackup-snapshot
# The exact reports xenbackup parses (issue 3); fixtures are captured with these options.
LVS_FIELDS=lv_name,vg_name,lv_attr,lv_size,origin,lv_tags,snap_percent,lv_snapshot_invalid
VGS_FIELDS=vg_name,vg_size,vg_free,vg_extent_size
FIXTURES=${XB_ARTIFACTS:-/tmp/artifacts}/fixtures/lvm
XB_SCENARIO=${XB_SCENARIO:-$(basename "$0" .sh)}
_xb_t0=$(date +%s.%N)
# XENBACKUP_VM_TRACE=1 runs scenarios under bash -x: stamp each command (bash ignores PS4 from the
# environment when run as root, so it is set here).
PS4='+ [$EPOCHREALTIME] '
_xb_cleanups=()

say() { printf '[%s +%ss] %s\n' "$XB_SCENARIO" "$(awk -v a="$(date +%s.%N)" -v b="$_xb_t0" 'BEGIN { printf "%.1f", a - b }')" "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; exit 1; }
assert_eq() { # ACTUAL EXPECTED WHAT
  [[ $1 == "$2" ]] || fail "$3: expected '$2', got '$1'"
}

# Registers a shell command to run at exit (last registered runs first).
on_exit() { _xb_cleanups+=("$*"); }
_xb_run_cleanups() {
  local rc=$? i
  set +e
  for ((i = ${#_xb_cleanups[@]} - 1; i >= 0; i--)); do eval "${_xb_cleanups[i]}"; done
  ((rc == 0)) && say "passed" || say "failed (exit $rc)"
  exit "$rc"
}
trap _xb_run_cleanups EXIT

make_vg() {
  pvcreate -qq -y "$XB_SCRATCH"
  vgcreate -qq "$VG" "$XB_SCRATCH"
  say "VG $VG on $XB_SCRATCH"
}

# make_origin NAME SIZE FSTYPE MOUNTPOINT: an LV with a filesystem, mounted like a running guest's.
make_origin() {
  local name=$1 size=$2 fs=$3 mnt=$4
  lvcreate -qq -y -L "$size" -n "$name" "$VG"
  case $fs in
    # Inode tables and journal zeroed now, not by ext4lazyinit after mounting: on a 64 MiB origin those
    # background writes are ~4 MiB, enough to overflow a small snapshot before the test fills it.
    ext4) mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 -L "$name" "/dev/$VG/$name" ;;
    xfs) mkfs.xfs -q -L "${name:0:12}" "/dev/$VG/$name" ;;
    *) fail "make_origin: unsupported fs $fs" ;;
  esac
  mkdir -p "$mnt"
  mount "/dev/$VG/$name" "$mnt"
  on_exit "umount '$mnt'"
  say "origin $VG/$name: $fs $size on $mnt"
}

# fill_tree DIR: a small, varied tree (text, binary, nested dirs, symlinks, a hardlink, odd names, ACL, xattr).
# Small on purpose: every process costs ~20x more under emulation.
fill_tree() {
  local d=$1
  mkdir -p "$d/etc" "$d/data/a/b/c" "$d/empty dir"
  cp -a /etc/passwd /etc/group /etc/lvm/lvm.conf "$d/etc/"
  seq 1 20000 > "$d/data/numbers"
  head -c 1048576 /dev/urandom > "$d/data/a/random.bin"
  printf 'hello\n' > "$d/data/a/b/c/deep.txt"
  printf 'spaces\n' > "$d/data/name with spaces"
  ln -s ../numbers "$d/data/a/rel-link"
  ln -s /nonexistent "$d/data/dangling"
  ln "$d/data/numbers" "$d/data/a/hardlink-to-numbers"
  setfacl -m u:1234:r "$d/data/numbers"
  setfattr -n user.xenbackup -v fidelity "$d/data/a/random.bin"
}

# tree_sums DIR: every entry's path, type, mode, owner, size, mtime, link target, content hash,
# ACL and user xattrs, in a few processes; the live writer's folder and lost+found are left out.
tree_sums() {
  (
    cd "$1"
    entries() { find . -mindepth 1 \( -path ./writer -o -path ./lost+found \) -prune -o "$@" -print0 | sort -z; }
    find . -mindepth 1 \( -path ./writer -o -path ./lost+found \) -prune -o -printf '%p %y %m %U:%G %s %T@ %l\n' | sort
    entries -type f | xargs -0 -r sha256sum
    # Both exit non-zero when some entry has nothing to show (or is a symlink): only their output counts.
    entries | xargs -0 -r getfacl -p -s 2>/dev/null || true
    entries | xargs -0 -r getfattr -h -d -m user. 2>/dev/null || true
  )
}

# start_writer DIR: a live writer appending numbered lines to DIR/writer/seq and rewriting blobs.
# The pause is a read with a timeout on a FIFO nobody writes (a builtin: under emulation every
# fork+exec of sleep costs tens of milliseconds of CPU); dd runs every fourth round only.
start_writer() {
  local d=$1 tick=/tmp/writer-tick.$$.${#_xb_cleanups[@]}
  mkdir -p "$d/writer"
  mkfifo "$tick"
  (
    exec 7<> "$tick"
    i=0
    while :; do
      i=$((i + 1))
      printf '%08d\n' "$i" >> "$d/writer/seq"
      ((i % 4)) || dd if=/dev/urandom of="$d/writer/blob$((i / 4 % 4))" bs=64k count=2 conv=notrunc status=none
      read -r -t 0.05 -u 7 _ || true
    done
  ) &
  local pid=$!
  on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f '$tick'"
  echo "$pid"
}

# seq_lines FILE: checks that FILE holds lines 00000001..N, each complete; prints N.
seq_lines() {
  awk '$0 != sprintf("%08d", NR) { printf "line %d is %s\n", NR, $0; bad = 1; exit }
       END { if (bad) exit 1; print NR }' "$1" || fail "$1 is not a complete sequence"
}

# make_snapshot ORIGIN SNAPNAME SIZE: as xenbackup does it.
make_snapshot() {
  local t=$(date +%s.%N)
  lvcreate -qq -s -L "$3" -n "$2" --addtag "$SNAP_TAG" "$VG/$1"
  on_exit "lvremove -qq -y '$VG/$2' 2>/dev/null"
  say "snapshot $VG/$2 of $1 ($3) in $(awk -v a="$(date +%s.%N)" -v b="$t" 'BEGIN { printf "%.1f", a - b }') s"
}

# mount_ro DEV MOUNTPOINT OPTIONS: mounts and confirms through mountinfo that it really is mounted.
mount_ro() {
  mkdir -p "$2"
  mount -o "$3" "$1" "$2"
  on_exit "mountpoint -q '$2' && umount '$2'"
  is_mounted "$2" || fail "$2 not in /proc/self/mountinfo after mount"
  findmnt -n -o OPTIONS "$2" | grep -qE '(^|,)ro(,|$)' || fail "$2 is not mounted read-only"
}

is_mounted() { awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; }

lvs_json() { lvs --reportformat json --units b --nosuffix -o "$LVS_FIELDS" "$@" "$VG"; }
vgs_json() { vgs --reportformat json --units b --nosuffix -o "$VGS_FIELDS" "$@"; }

# capture NAME: saves stdin as a fixture and echoes it. Names start with vm- (captured in this VM),
# beside the fixtures captured elsewhere in test/fixtures/lvm/.
capture() {
  [[ $1 == vm-* ]] || fail "capture: fixture name $1 must start with vm-"
  mkdir -p "$FIXTURES"
  tee "$FIXTURES/$1"
}

# capture_product_reports SUFFIX: lvs and vgs exactly as xenbackup runs them, as
# vm-{lvs,vgs}-xenbackup-SUFFIX.json. The argument lists come from the host (vm.test.ts sets
# XENBACKUP_VM_LVS_ARGS / XENBACKUP_VM_VGS_ARGS, tab-separated, from src/host/lvm-report.ts):
# importing that module in the guest takes node ~15 s under emulation. Skipped with a note without them.
capture_product_reports() {
  local lvs_args=() vgs_args=()
  IFS=$'\t' read -r -a lvs_args <<< "${XENBACKUP_VM_LVS_ARGS:-}"
  IFS=$'\t' read -r -a vgs_args <<< "${XENBACKUP_VM_VGS_ARGS:-}"
  if ((${#lvs_args[@]} == 0 || ${#vgs_args[@]} == 0)); then
    say "XENBACKUP_VM_LVS_ARGS/VGS_ARGS not set: xenbackup's own report format not captured"
    return 0
  fi
  lvs "${lvs_args[@]}" "$VG" | capture "vm-lvs-xenbackup-$1.json" >/dev/null
  vgs "${vgs_args[@]}" "$VG" | capture "vm-vgs-xenbackup-$1.json" >/dev/null
  say "captured lvs/vgs as xenbackup runs them: ${lvs_args[*]}"
}

# snapshot_field LV FIELD: one lvs field (with --binary), trimmed.
snapshot_field() { lvs --noheadings --binary -o "$2" "$VG/$1" | tr -d ' '; }

# assert_released: nothing of ours left: no snapshot LV, no -real/-cow mapping, no mount under MNTSOURCEDIR.
assert_released() {
  local left
  left=$(lvs --noheadings -o lv_name,lv_attr,lv_tags "$VG" | awk -v t="$SNAP_TAG" '$2 ~ /^[sS]/ || $3 ~ t')
  [[ -z $left ]] || fail "snapshot LVs remain: $left"
  left=$(dmsetup ls | awk '$1 ~ /-(real|cow)$/ || $1 ~ /xbsnap/')
  [[ -z $left ]] || fail "device-mapper devices remain: $left"
  left=$(awk -v d="$MNTSOURCEDIR/" 'index($5, d) == 1' /proc/self/mountinfo)
  [[ -z $left ]] || fail "mounts remain under $MNTSOURCEDIR: $left"
  say "released: no snapshot LV, no -real/-cow device, no mount under $MNTSOURCEDIR"
}
