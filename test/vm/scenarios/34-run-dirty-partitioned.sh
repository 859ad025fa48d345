#!/bin/bash
# `xenbackup run` of volumes that need more than a mount (issue 4, 3b, 3i): an ext4 and an xfs
# volume whose journal needs replaying (the snapshot of a crashed guest: the replay goes to the
# snapshot's copy-on-write space), and a whole-disk LV with a DOS partition table listed with
# partition=2 (attached from the snapshot by offset through a loop device). One run, all full; each
# restore equals what the volume held.
. "$XB_HOST/test/vm/lib.sh"
. "$XB_HOST/test/vm/xenbackup-lib.sh"

xb_setup 256M
# Dirty journals: data written and synced (its metadata committed to the journal, not necessarily
# written home), then the filesystem stopped without a clean unmount, as a crashed guest leaves it.
make_origin g3-ext4 32M ext4 /srv/g3/ext4
make_origin g3-xfs 300M xfs /srv/g3/xfs
for d in /srv/g3/ext4 /srv/g3/xfs; do
  fill_tree "$d"
  mkdir "$d/late"; echo late > "$d/late/file"
  sync -f "$d"
  tree_sums "$d" > "$XB/sums-${d##*/}"
  xb_dirty "$d"
done
dumpe2fs -h "/dev/$VG/g3-ext4" 2>/dev/null | grep -q needs_recovery || fail "g3-ext4 has no journal to replay"
xfs_repair -n "/dev/$VG/g3-xfs" >/dev/null 2>&1 && fail "g3-xfs has a clean log"
say "g3-ext4 needs recovery, g3-xfs has a dirty log"

# A partitioned whole-disk LV: partition 1 (4 MiB, empty), partition 2 (ext4) holds the data.
lvcreate -qq -y -L 48M -n g4-disk "$VG"
xb_write_mbr "/dev/$VG/g4-disk" 2048 8192 10240 88064
loop=$(losetup -f --show -o $((10240 * 512)) --sizelimit $((88064 * 512)) "/dev/$VG/g4-disk")
mkfs.ext4 -q -L g4-p2 "$loop"
mkdir -p /srv/g4
mount "$loop" /srv/g4
fill_tree /srv/g4
tree_sums /srv/g4 > "$XB/sums-g4"
umount /srv/g4
losetup -d "$loop"

xb_vol "g3|ext4|/dev/$VG/g3-ext4|ext4|ro"
xb_vol "g3|xfs|/dev/$VG/g3-xfs|xfs|ro|snapsize=32M"
xb_vol "g4|disk|/dev/$VG/g4-disk|ext4|ro|partition=2"
xb_run 0
xb_subject_like "^\[xenbackup\] OK $XB_HOSTN\.test: 3/3 volumes ok"
# The journal is replayed into the snapshot's copy-on-write space: everything committed is there.
xb_restore_queue g3/ext4 "$XB/sums-ext4" --at "$XB_AT"
xb_restore_queue g3/xfs "$XB/sums-xfs" --at "$XB_AT"
xb_restore_queue g4/disk "$XB/sums-g4" --at "$XB_AT"
# the origins were never written: the ext4 one still needs recovery
dumpe2fs -h "/dev/$VG/g3-ext4" 2>/dev/null | grep -q needs_recovery || fail "g3-ext4's journal was replayed on the origin"
xb_restores_verify
