#!/bin/bash
# `xenbackup run` without its medium (issue 4, 3h): BCKDEV names a device that does not exist. Nothing
# is written anywhere (no snapshot taken, nothing below BCKMNTP or MNTSOURCEDIR, nothing mounted),
# the run exits 4 and its report says why.
. "$XB_HOST/test/vm/lib.sh"
. "$XB_HOST/test/vm/xenbackup-lib.sh"

xb_setup 64M
make_origin g1-root 32M ext4 /srv/g1/root
fill_tree /srv/g1/root
xb_vol "g1|root|/dev/$VG/g1-root|ext4|ro"
xb_conf "BCKDEV=/dev/$VG/no-such-medium"
touch "$XB/before-run"
mounts_before=$(awk '{ print $5 }' /proc/self/mountinfo | sort)
# (earlier scenarios of this boot may have left empty mountpoints there: only new entries count)
entries_before=$(find "$BCKMNTP" "$MNTSOURCEDIR" -mindepth 1 | sort)
xb_run 4
xb_subject_like "^\[xenbackup\] MEDIUM UNAVAILABLE $XB_HOSTN\.test: "
xb_subject_like "no-such-medium|not exist|no such"
xb_body_has "/dev/$VG/no-such-medium"
assert_eq "$(awk '{ print $5 }' /proc/self/mountinfo | sort)" "$mounts_before" "mount table after the run"
assert_eq "$(find "$BCKMNTP" "$MNTSOURCEDIR" -mindepth 1 | sort)" "$entries_before" "entries below $BCKMNTP and $MNTSOURCEDIR"
grep -q "exec: lvcreate" "$XB_LOG" && fail "a snapshot was taken without a medium"
# written on the root filesystem during the run, outside /tmp (the scenario's lock lives there): nothing
assert_eq "$( (find / -xdev -newer "$XB/before-run" ! -path '/tmp/*' 2>/dev/null || true) | head -5)" "" "files written on / during the run"
xb_restores_verify
