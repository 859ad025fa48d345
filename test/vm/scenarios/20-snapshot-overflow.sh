#!/bin/bash
# A snapshot whose COW overflows while it is mounted, with dmeventd monitoring as on a real host:
# records what xenbackup will see (lvs attr/Snap%/invalid, whether dmeventd unmounts it, what tar of
# the mountpoint does then) as fixtures, and proves the invalid snapshot can still be released.
. "$XB_HOST/test/vm/lib.sh"

make_vg
make_origin g2-root 64M ext4 /srv/g2/root
fill_tree /srv/g2/root
make_snapshot g2-root g2-root-xbsnap 4M
assert_eq "$(snapshot_field g2-root-xbsnap seg_monitor)" monitored "dmeventd monitoring of g2-root-xbsnap"
mnt=$MNTSOURCEDIR/g2/root
mount_ro "/dev/$VG/g2-root-xbsnap" "$mnt" ro
ls "$mnt/data" > /dev/null

# More new data than the 4 MiB COW can hold.
say "writing 24 MiB to the origin"
dd if=/dev/urandom of=/srv/g2/root/big bs=1M count=24 conv=fsync status=none
sync
# dmeventd may unmount the invalid snapshot behind our back: watch for up to 10 s (mountinfo only, cheap).
gone_after=
for i in $(seq 100); do
  if ! is_mounted "$mnt"; then gone_after=$(awk -v i="$i" 'BEGIN { printf "%.1f", (i - 1) * 0.1 }'); break; fi
  sleep 0.1
done
capture vm-mountinfo-overflowed.txt < /proc/self/mountinfo >/dev/null
set +e
tar_bytes=$(tar -C "$mnt" -cf - . 2>/tmp/tar.err | wc -c)
tar_rc=${PIPESTATUS[0]}
set -e
invalid=0
for _ in $(seq 50); do
  invalid=$(snapshot_field g2-root-xbsnap lv_snapshot_invalid)
  [[ $invalid == 1 ]] && break
  sleep 0.2
done
assert_eq "$invalid" 1 "lv_snapshot_invalid (--binary) after overflow"
attr=$(snapshot_field g2-root-xbsnap lv_attr)
assert_eq "${attr:4:1}" I "5th lv_attr character of the overflowed snapshot ($attr)"
assert_eq "$(snapshot_field g2-root-xbsnap snap_percent)" 100.00 "snap_percent of the overflowed snapshot"
lvs_json | capture vm-lvs-overflowed.json
lvs_json --binary | capture vm-lvs-overflowed-binary.json >/dev/null
capture_product_reports overflowed
lvs -a -o lv_name,lv_attr,lv_size,origin,lv_tags,snap_percent,seg_monitor "$VG" | capture vm-lvs-overflowed-table.txt

{
  echo "lv_attr=$attr"
  if [[ -n $gone_after ]]; then
    echo "unmounted_by_dmeventd=yes (gone from mountinfo ${gone_after} s after the overflowing write and sync returned)"
  else
    echo "unmounted_by_dmeventd=no (still mounted 10 s after the overflowing write)"
  fi
  echo "mountpoint_entries=$(find "$mnt" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
  echo "tar_of_mountpoint_exit=$tar_rc bytes=$tar_bytes stderr=$(head -c 300 /tmp/tar.err | tr '\n' ' ')"
  echo "dmesg:"
  dmesg | grep -iE 'snapshot|device-mapper' | sed 's/^\[[ 0-9.]*\] //' | sort -u
} | capture vm-overflow-observed.txt

# Release works on an invalid snapshot too.
if is_mounted "$mnt"; then umount "$mnt"; fi
lvremove -qq -y "$VG/g2-root-xbsnap"
assert_released
