#!/bin/bash
# Raw block mode in `xenbackup run` (issue 6, items 4 and 6): a 64 MiB LV listed with fstype raw holds
# an ext4 filesystem in its first 16 MiB, 16 MiB of random bytes at 24 MiB, and a writer's region at
# 48 MiB that a live writer keeps changing on the origin throughout the run. The run must not mount
# anything; its image is restored to a file with `xenbackup restore --to FILE` and checked exactly:
#   - outside the writer's region the image equals the origin's bytes (nothing else changes them);
#   - the writer's region is the origin at one instant inside lvcreate: record i (a 4 KiB block
#     "record i", written with O_DIRECT|O_DSYNC to slot i mod 8, one write at a time) is there for
#     every i <= N and none after, with N between what the writer had finished when lvcreate started
#     and what it had logged when lvcreate returned (+1 in flight);
#   - the restored image, loop-attached read-only as the README says, mounts and holds the ext4 tree.
# Plus the usual after-checks of xb_run: exit 0, the mailed subject, no snapshot LV, no mount, the lock.
. "$XB_HOST/test/vm/lib.sh"
. "$XB_HOST/test/vm/xenbackup-lib.sh"

WRITER_BLOCK=$((48 * 256)) # 4 KiB block number of the writer's region (48 MiB)

xb_setup 256M
lvcreate -qq -y -L 64M -n g5-raw "$VG"
dev=/dev/$VG/g5-raw
mkfs.ext4 -q -F -L g5 "$dev" 16M
mkdir -p /srv/g5
mount "$dev" /srv/g5
fill_tree /srv/g5
tree_sums /srv/g5 > "$XB/sums-g5"
umount /srv/g5
dd if=/dev/urandom of="$dev" bs=1M seek=24 count=16 oflag=direct conv=notrunc status=none

# raw_record I: the 4 KiB block the writer writes for record I.
raw_record() { printf '%-4095s\n' "record $1"; }
for k in 0 1 2 3 4 5 6 7; do raw_record 0; done | dd of="$dev" bs=4096 seek="$WRITER_BLOCK" oflag=direct conv=notrunc status=none

# The writer: one dd per record (O_DIRECT|O_DSYNC: on the device, in order, before it is logged), then
# "i EPOCHREALTIME" to the log xb_writer_bounds reads; four records a second.
: > "$XB/writer-g5.log"
mkfifo "$XB/g5-tick"
(
  exec 7<> "$XB/g5-tick"
  i=0
  while :; do
    i=$((i + 1))
    raw_record "$i" > "$XB/g5-record"
    dd if="$XB/g5-record" of="$dev" bs=4096 seek=$((WRITER_BLOCK + i % 8)) count=1 oflag=direct,dsync conv=notrunc status=none || exit 1
    echo "$i $EPOCHREALTIME" >> "$XB/writer-g5.log"
    read -r -t 0.25 -u 7 _ || true
  done
) &
writer=$!
on_exit "kill $writer 2>/dev/null; wait $writer 2>/dev/null"

xb_vol "g5|raw|$dev|raw||snapsize=32M"
xb_run 0
xb_subject_like "^\[xenbackup\] OK $XB_HOSTN\.test: 1/1 volumes ok"
xb_body_has ".full.raw.zst"
kill "$writer"
wait "$writer" 2>/dev/null || true
bounds=$(xb_writer_bounds "$XB/writer-g5.log" g5-raw-xbsnap)
say "writer: $(wc -l < "$XB/writer-g5.log") records in all; $bounds around lvcreate"
grep -E "exec: mount .*g5" "$XB_LOG" && fail "the raw volume was mounted"
grep -E "g5/raw: raw image of 64\.0 MiB in 16 chunks of 4\.0 MiB: [0-9]+ stored, [0-9]+ zero, 0 unchanged" "$XB_LOG" > /dev/null \
  || fail "the log has no chunk counts line for g5/raw"

# Restore the image to a file.
img=$XB/restore/g5.img
xb_mount_medium
node "$XB_HOST/bin/xenbackup" restore g5/raw --medium "$BCKMNTP" --host "$XB_HOSTN" --to "$img" > "$XB_ART/restore.out" 2>&1 \
  || { sed 's/^/  | /' "$XB_ART/restore.out"; fail "xenbackup restore of g5/raw failed"; }
xb_umount_medium
grep -E "restored the raw image of backup .* \(64\.0 MiB, xxh64 [0-9a-f]{16} as recorded\) to the file $img" "$XB_ART/restore.out" > /dev/null \
  || { sed 's/^/  | /' "$XB_ART/restore.out"; fail "restore did not report the image"; }
[[ $(stat -c %s "$img") == $((64 << 20)) ]] || fail "the restored image is $(stat -c %s "$img") bytes, not 64 MiB"

# Outside the writer's region: the origin's bytes.
cmp -n $((WRITER_BLOCK * 4096)) "$img" "$dev" || fail "the image differs from the origin before the writer's region"
cmp -i $(((WRITER_BLOCK + 8) * 4096)) "$img" "$dev" || fail "the image differs from the origin after the writer's region"

# The writer's region: records 1..N exactly, one instant inside lvcreate.
read -r lo hi <<< "$bounds"
n=0
for k in 0 1 2 3 4 5 6 7; do
  v=$(dd if="$img" bs=4096 skip=$((WRITER_BLOCK + k)) count=1 status=none | awk 'NR == 1 { print $2 }')
  ((v > n)) && n=$v
done
((n >= lo && n <= hi + 1)) || fail "the image holds the writer's records up to $n, but $lo were written before lvcreate started and $hi by when it had returned"
for k in 0 1 2 3 4 5 6 7; do
  want=$((n - ((n - k) % 8 + 8) % 8))
  ((want < 1)) && want=0
  cmp <(dd if="$img" bs=4096 skip=$((WRITER_BLOCK + k)) count=1 status=none) <(raw_record "$want") > /dev/null \
    || fail "slot $k of the writer's region is not record $want (records 1..$n): $(dd if="$img" bs=4096 skip=$((WRITER_BLOCK + k)) count=1 status=none | head -c 40)"
done
say "g5/raw: the writer's region holds records 1..$n, one instant inside lvcreate ($lo..$((hi + 1)))"

# As the README says: attach read-only (partitions would appear as loopNpK), mount read-only.
loop=$(losetup --find --show --read-only --partscan "$img")
on_exit "losetup -d '$loop'"
mkdir -p "$XB/g5-mnt"
mount -o ro "$loop" "$XB/g5-mnt"
on_exit "umount '$XB/g5-mnt'"
tree_sums "$XB/g5-mnt" > "$XB/sums-g5-restored"
diff "$XB/sums-g5" "$XB/sums-g5-restored" > /dev/null || { diff "$XB/sums-g5" "$XB/sums-g5-restored" | head -20 | sed 's/^/  | /'; fail "the ext4 tree in the restored image differs"; }
say "g5/raw: the restored image's ext4 holds the tree as written"
