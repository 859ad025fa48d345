#!/bin/bash
# `xenbackup run` when volumes go wrong beside good ones (issue 4, 3c, 3f, 3g):
#  c. a snapshot that overflows mid-archive (snapsize=4M, 24 MiB written to the origin while its
#     archive is being written; dmeventd running): the volume fails, nothing of it counts, its chain
#     on the medium is byte for byte what it was, and the next run's incremental restores exactly;
#  f. a volume line with the wrong fstype: a clear error, nothing of it on the medium;
#  g. a snapshot bigger than the VG's free space: a clear error and no lvcreate for it;
# while the good volume is backed up in every run.
. "$XB_HOST/test/vm/lib.sh"
. "$XB_HOST/test/vm/xenbackup-lib.sh"

xb_setup 256M
make_origin g1-root 32M ext4 /srv/g1/root
fill_tree /srv/g1/root
make_origin g2-root 96M ext4 /srv/g2/root
fill_tree /srv/g2/root
# Small files and a big one rewritten before run 2, so that archiving takes a while (the overflow
# must come while it runs); few enough that the archives and their restores stay quick under emulation.
mkdir /srv/g2/root/many
(cd /srv/g2/root/many && head -c 8M /dev/urandom | split -b 8k -a 4 - f)
head -c 16M /dev/urandom > /srv/g2/root/big
make_origin g6-root 32M ext4 /srv/g6/root
fill_tree /srv/g6/root
make_origin g7-root 32M ext4 /srv/g7/root
fill_tree /srv/g7/root

xb_vol "g2|root|/dev/$VG/g2-root|ext4|ro|snapsize=4M"
xb_vol "g1|root|/dev/$VG/g1-root|ext4|ro"
tree_sums /srv/g1/root > "$XB/sums-g1-1"
tree_sums /srv/g2/root > "$XB/sums-g2-1"
xb_run 0
xb_subject_like "^\[xenbackup\] OK $XB_HOSTN\.test: 2/2 volumes ok"
xb_restore_queue g2/root "$XB/sums-g2-1" --at "$XB_AT"
xb_restore_queue g1/root "$XB/sums-g1-1" --at "$XB_AT"

# Run 2: g2 overflows mid-archive; g6 is listed as xfs (it is ext4); g7 wants 100 GiB of snapshot.
xb_vol "g6|root|/dev/$VG/g6-root|xfs|ro"
xb_vol "g7|root|/dev/$VG/g7-root|ext4|ro|snapsize=100G"
echo changed >> /srv/g1/root/etc/passwd
echo changed >> /srv/g2/root/etc/passwd
head -c 16M /dev/urandom > /srv/g2/root/big
sync
tree_sums /srv/g1/root > "$XB/sums-g1-2"
g2_before=$(xb_volume_state g2/root)
invalidated_before=$(dmesg | grep -c 'Invalidating snapshot' || true)
xb_start
partial_dir=$BCKMNTP/$XB_HOSTN/g2/root
deadline=$(xb_deadline 400)
while ! compgen -G "$partial_dir/*.partial" >/dev/null && xb_before "$deadline"; do
  kill -0 "$XB_PID" 2>/dev/null || break
  sleep 0.05
done
compgen -G "$partial_dir/*.partial" >/dev/null || { sed 's/^/  | /' "$XB_OUT"; fail "never saw g2/root's archive being written"; }
say "g2/root is being archived: 24 MiB into its origin (COW 4 MiB)"
dd if=/dev/urandom of=/srv/g2/root/overflow bs=1M count=24 conv=fsync status=none
mid=$(compgen -G "$partial_dir/*.partial" || true)
[[ -n $mid ]] || fail "g2/root's archive was finished before the overflowing write was (the archive must still be running)"
wait "$XB_PID" && rc=0 || rc=$?
xb_mark_time
assert_eq "$rc" 1 "exit code of the run with failed volumes"
xb_wait_mail
xb_assert_clean
xb_subject_like "^\[xenbackup\] FAILED $XB_HOSTN\.test: 1/4 volumes ok"
(($(dmesg | grep -c 'Invalidating snapshot' || true) > invalidated_before)) || fail "the kernel never invalidated g2's snapshot"
xb_body_has "g2/root: "
xb_body_has "this backup was discarded"
xb_body_has "g6/root: "
xb_body_has "volume group $VG has"
xb_body_has "snapshot $VG/g7-root-xbsnap needs"
sed -n '/g6\/root/p' "$XB_LOG" | grep -iE 'mount|xfs' | head -3
grep -qE "exec: lvcreate .*g7-root" "$XB_LOG" && fail "lvcreate ran for g7 although the VG has no room"
assert_eq "$(xb_volume_state g2/root)" "$g2_before" "g2/root's files on the medium after the failed backup"
assert_eq "$(xb_volume_state g6/root)" "" "g6/root's files on the medium"
assert_eq "$(xb_volume_state g7/root)" "" "g7/root's files on the medium"
xb_restore_queue g1/root "$XB/sums-g1-2" --at "$XB_AT"
xb_restore_queue g2/root "$XB/sums-g2-1" --at "$XB_AT"

# Run 3: the next incremental of g2 holds both the earlier change and the overflow file.
sed -i '/^g6|\|^g7|/d' "$XB_VOLS"
rm -f /srv/g2/root/many/faa*
sync
tree_sums /srv/g2/root > "$XB/sums-g2-3"
tree_sums /srv/g1/root > "$XB/sums-g1-3"
xb_run 0
xb_subject_like "^\[xenbackup\] OK $XB_HOSTN\.test: 2/2 volumes ok"
xb_body_has incremental
xb_restore_queue g2/root "$XB/sums-g2-3" --at "$XB_AT"
xb_restore_queue g1/root "$XB/sums-g1-3" --at "$XB_AT"
xb_restores_verify
