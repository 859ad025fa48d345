#!/bin/bash
# Real LVM the way xenbackup uses it: snapshots of a mounted ext4 and a mounted xfs origin while a
# writer changes them, mounted read-only (ext4: ro; xfs: ro,nouuid), read, then released.
# Captures the lvs/vgs JSON and a mountinfo sample as fixtures for the unit tests outside the VM,
# plus the messages of two lvcreate failures (no room in the VG, no such origin).
. "$XB_HOST/test/vm/lib.sh"

make_vg
make_origin g1-root 64M ext4 /srv/g1/root
make_origin g1-data 300M xfs /srv/g1/data
fill_tree /srv/g1/root
fill_tree /srv/g1/data
tree_sums /srv/g1/root > /tmp/root.sums
tree_sums /srv/g1/data > /tmp/data.sums
lvs_json | capture vm-lvs-origins.json

# A backup medium mounted on BCKMNTP (a loop image), only so that the mountinfo sample looks like a real run's.
truncate -s 64M /tmp/medium.img
mkfs.ext4 -q -L medium /tmp/medium.img
mkdir -p "$BCKMNTP"
mount -o loop /tmp/medium.img "$BCKMNTP"
on_exit "umount '$BCKMNTP'"

start_writer /srv/g1/root >/dev/null
start_writer /srv/g1/data >/dev/null
sleep 2
make_snapshot g1-root g1-root-xbsnap 16M
make_snapshot g1-data g1-data-xbsnap 32M
assert_eq "$(lvs --noheadings -o seg_monitor "$VG/g1-root-xbsnap" "$VG/g1-data-xbsnap" | tr -s ' \n' ' ')" \
  " monitored monitored " "dmeventd monitoring of both snapshots"

# ext4: plain ro works beside the mounted origin (lvcreate froze the fs); xfs needs nouuid (same UUID as origin).
mount_ro "/dev/$VG/g1-root-xbsnap" "$MNTSOURCEDIR/g1/root" ro
mkdir -p "$MNTSOURCEDIR/g1/data-plain-ro"
if mount -o ro "/dev/$VG/g1-data-xbsnap" "$MNTSOURCEDIR/g1/data-plain-ro" 2>/tmp/xfs-ro.err; then
  umount "$MNTSOURCEDIR/g1/data-plain-ro"
  fail "xfs snapshot mounted with plain ro beside its origin: nouuid should be needed"
fi
rmdir "$MNTSOURCEDIR/g1/data-plain-ro"
say "xfs snapshot with plain ro fails as expected: $(head -n 1 /tmp/xfs-ro.err)"
mount_ro "/dev/$VG/g1-data-xbsnap" "$MNTSOURCEDIR/g1/data" ro,nouuid
# A mountpoint with a space: mountinfo escapes it (\040), which the parser must undo.
mkdir -p "$MNTSOURCEDIR/odd name"
mount -t tmpfs -o ro,size=1m tmpfs "$MNTSOURCEDIR/odd name"
on_exit "mountpoint -q '$MNTSOURCEDIR/odd name' && umount '$MNTSOURCEDIR/odd name'"
capture vm-mountinfo-snapshots.txt < /proc/self/mountinfo >/dev/null
umount "$MNTSOURCEDIR/odd name"
rmdir "$MNTSOURCEDIR/odd name"

# The snapshots hold the trees exactly, and the writers' files as whole lines, frozen while the origins move on.
for part in root data; do
  tree_sums "$MNTSOURCEDIR/g1/$part" > /tmp/snap.sums
  diff -u "/tmp/$part.sums" /tmp/snap.sums || fail "snapshot of g1-$part differs from its origin's tree"
  n1=$(seq_lines "$MNTSOURCEDIR/g1/$part/writer/seq")
  ((n1 > 0)) || fail "the writer had written nothing to g1-$part before the snapshot"
  sleep 1
  n2=$(seq_lines "$MNTSOURCEDIR/g1/$part/writer/seq")
  live=$(seq_lines "/srv/g1/$part/writer/seq")
  assert_eq "$n2" "$n1" "snapshot g1-$part writer/seq lines (must not move)"
  ((live > n1)) || fail "origin g1-$part stopped moving ($live lines, snapshot $n1)"
  bytes=$(tar -C "$MNTSOURCEDIR/g1/$part" --xattrs --acls -cf - . | wc -c)
  ((bytes > 1000000)) || fail "tar of the g1-$part snapshot gave only $bytes bytes"
  say "g1-$part: tree identical, writer frozen at $n1 lines (origin at $live), tar read $bytes bytes"
done

lvs_json | capture vm-lvs-snapshots.json
lvs_json --binary | capture vm-lvs-snapshots-binary.json >/dev/null
vgs_json "$VG" | capture vm-vgs.json
capture_product_reports snapshots
dmsetup ls | sort | capture vm-dmsetup-ls-snapshots.txt >/dev/null

# Failures xenbackup must report clearly: no room in the VG (a filler LV takes all free extents; a too
# big -L alone does not fail, lvcreate caps it at the origin's size) and a missing origin.
lvcreate -qq -y -l 100%FREE -n filler "$VG"
vgs_json "$VG" | capture vm-vgs-full.json >/dev/null
set +e
lvcreate -s -L 16M -n g1-root-nospace --addtag "$SNAP_TAG" "$VG/g1-root" > /tmp/err.out 2>&1
rc=$?
set -e
((rc != 0)) || { lvremove -qq -y "$VG/g1-root-nospace"; fail "lvcreate of a snapshot in a full VG succeeded"; }
{ echo "exit=$rc"; cat /tmp/err.out; } | capture vm-lvcreate-no-space.txt
lvremove -qq -y "$VG/filler"
set +e
lvcreate -s -L 16M -n nope-xbsnap --addtag "$SNAP_TAG" "$VG/nope" > /tmp/err.out 2>&1
rc=$?
set -e
((rc != 0)) || fail "lvcreate of a snapshot of a missing origin succeeded"
{ echo "exit=$rc"; cat /tmp/err.out; } | capture vm-lvcreate-no-origin.txt

# Release, as xenbackup does: unmount, then lvremove; then nothing of ours may remain.
umount "$MNTSOURCEDIR/g1/root" "$MNTSOURCEDIR/g1/data"
lvremove -qq -y "$VG/g1-root-xbsnap" "$VG/g1-data-xbsnap"
assert_released
{ echo "kernel=$(uname -r)"; lvm version | sed 's/^ *//; s/: */=/'; } | capture vm-versions.txt >/dev/null
