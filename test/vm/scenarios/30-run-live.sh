#!/bin/bash
# `xenbackup run` against live guests (issue 4, 3a and engine=rsync): an ext4 and a 300 MiB xfs
# volume with a writer changing them throughout, and an engine=rsync volume. Run 1: full; run 2
# (after changes): incrementals and a second rsync tree whose unchanged files are hardlinks into the
# first. Each backup is restored and compared with what its volume held at snapshot time.
. "$XB_HOST/test/vm/lib.sh"
. "$XB_HOST/test/vm/xenbackup-lib.sh"

xb_setup 320M
make_origin g1-root 64M ext4 /srv/g1/root
make_origin g1-data 300M xfs /srv/g1/data
fill_tree /srv/g1/root
fill_tree /srv/g1/data

make_origin g5-www 32M ext4 /srv/g5/www
fill_tree /srv/g5/www
echo unchanged > /srv/g5/www/stays.txt
echo v1 > /srv/g5/www/changes.txt

xb_vol "g1|root|/dev/$VG/g1-root|ext4|ro"
xb_vol "g1|data|/dev/$VG/g1-data|xfs|ro|snapsize=32M"
xb_vol "g5|www|/dev/$VG/g5-www|ext4|ro|engine=rsync"

xb_start_writer /srv/g1/root "$XB/writer-root.log"
xb_start_writer /srv/g1/data "$XB/writer-data.log"
sleep 1
tree_sums /srv/g1/root > "$XB/sums-root-1"
tree_sums /srv/g1/data > "$XB/sums-data-1"
tree_sums /srv/g5/www > "$XB/sums-www-1"

xb_run 0
xb_subject_like "^\[xenbackup\] OK $XB_HOSTN\.test: 3/3 volumes ok"
xb_restore_queue g1/root "$XB/sums-root-1" --at "$XB_AT"
root1=$XB_RESTORED
root1_bounds=$(xb_writer_bounds "$XB/writer-root.log" g1-root-xbsnap)
xb_restore_queue g1/data "$XB/sums-data-1" --at "$XB_AT"
data1=$XB_RESTORED
data1_bounds=$(xb_writer_bounds "$XB/writer-data.log" g1-data-xbsnap)
xb_restore_queue g5/www "$XB/sums-www-1" --at "$XB_AT"
# Changes for the incrementals: a file changed, one deleted, one added, a directory renamed.
for d in /srv/g1/root /srv/g1/data; do
  echo changed >> "$d/etc/passwd"
  rm "$d/data/name with spaces"
  echo new > "$d/data/new-file"
  mv "$d/data/a/b" "$d/data/a/b-renamed"
done
echo v2 > /srv/g5/www/changes.txt
sleep 1
tree_sums /srv/g1/root > "$XB/sums-root-2"
tree_sums /srv/g1/data > "$XB/sums-data-2"
tree_sums /srv/g5/www > "$XB/sums-www-2"

xb_run 0
xb_subject_like "^\[xenbackup\] OK $XB_HOSTN\.test: 3/3 volumes ok"
xb_body_has incremental
xb_restore_queue g1/root "$XB/sums-root-2" --at "$XB_AT"
root2=$XB_RESTORED
root2_bounds=$(xb_writer_bounds "$XB/writer-root.log" g1-root-xbsnap)
xb_restore_queue g1/data "$XB/sums-data-2" --at "$XB_AT"
data2=$XB_RESTORED
data2_bounds=$(xb_writer_bounds "$XB/writer-data.log" g1-data-xbsnap)
xb_restore_queue g5/www "$XB/sums-www-2" --at "$XB_AT"

# engine=rsync: two dated trees, the unchanged file one inode in both, the changed one not.
xb_mount_medium
mapfile -t trees < <(find "$BCKMNTP/$XB_HOSTN/g5/www" -maxdepth 1 -name '*.tree' | sort)
assert_eq "${#trees[@]}" 2 "rsync trees of g5/www"
assert_eq "$(stat -c %i "${trees[0]}/stays.txt")" "$(stat -c %i "${trees[1]}/stays.txt")" "inode of the unchanged stays.txt in both trees"
[[ $(stat -c %i "${trees[0]}/changes.txt") != "$(stat -c %i "${trees[1]}/changes.txt")" ]] || fail "changes.txt is one file in both trees"
assert_eq "$(cat "${trees[0]}/changes.txt") $(cat "${trees[1]}/changes.txt")" "v1 v2" "changes.txt in the two trees"
xb_umount_medium
say "rsync trees: unchanged files hardlinked, changed ones not"

# Every backup restores (after both runs), and each writer's records are one instant inside lvcreate.
xb_restores_verify
xb_writer_check "$root1" $root1_bounds "g1/root run 1"
xb_writer_check "$data1" $data1_bounds "g1/data run 1"
xb_writer_check "$root2" $root2_bounds "g1/root run 2"
xb_writer_check "$data2" $data2_bounds "g1/data run 2"
