#!/bin/bash
# `xenbackup run` killed early (issue 4, 3d; 33-run-kill-late has the rest): SIGKILL right after
# lvcreate and after the snapshot mount (each stops at a debug hook, src/run/debug-pause.ts, only
# active with XENBACKUP_DEBUG_PAUSE). After each, the next run sweeps what was left (snapshot, mount,
# the dead run's lock), says so in its report, and succeeds; every backup made restores.
. "$XB_HOST/test/vm/lib.sh"
. "$XB_HOST/test/vm/xenbackup-lib.sh"

xb_setup 256M
make_origin g1-root 32M ext4 /srv/g1/root
fill_tree /srv/g1/root
# (a small volume: the kills stop at debug hooks, not at a moment of the archive)
xb_vol "g1|root|/dev/$VG/g1-root|ext4|ro"
snap=$VG/g1-root-xbsnap
mnt=$MNTSOURCEDIR/g1/root
gen=0

# good_run: a change, a run that must succeed (sweeping what the last kill left), its restore.
good_run() {
  gen=$((gen + 1))
  echo "generation $gen" > /srv/g1/root/generation
  sync
  tree_sums /srv/g1/root > "$XB/sums-$gen"
  xb_run 0
  xb_subject_like "^\[xenbackup\] OK $XB_HOSTN\.test: 1/1 volumes ok"
  xb_restore_queue g1/root "$XB/sums-$gen" --at "$XB_AT"
}
# swept WHAT...: the last report lists each leftover as removed.
swept() {
  xb_body_has "Leftovers of an earlier run, removed before this one:"
  local w
  for w in "$@"; do xb_body_has "$w"; done
}
snapshot_exists() { [[ -n $(lvs --noheadings -o lv_name "$snap" 2>/dev/null) ]]; }

xb_kill_at after-lvcreate
snapshot_exists || fail "no snapshot left after the kill right after lvcreate"
is_mounted "$mnt" && fail "$mnt mounted although the run was killed before mounting"
good_run
swept "removed leftover snapshot $snap of $VG/g1-root"

xb_kill_at after-mount
is_mounted "$mnt" || fail "$mnt not mounted after the kill after the mount"
good_run
swept "unmounted leftover" "$mnt" "removed leftover snapshot $snap"
xb_restores_verify
