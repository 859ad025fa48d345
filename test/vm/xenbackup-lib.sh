#!/bin/bash
# Helpers for the `xenbackup run` VM scenarios (test/vm/scenarios/3*-*.sh), sourced after lib.sh:
#   . "$XB_HOST/test/vm/lib.sh"; . "$XB_HOST/test/vm/xenbackup-lib.sh"
# xb_setup makes the medium (an LV of its own), a mail sink (a real SMTP server, xb-helper.mjs) and a
# config in /etc/xenbackup.conf style; xb_run runs `xenbackup run` and checks its exit code, the
# mailed subject and that nothing of it is left (snapshot LVs, mounts, the lock, the medium mount);
# xb_restore_check restores a backup with `xenbackup restore` and compares it with what the volume held.
XB=/tmp/xb
# What a person debugging a failure wants (config, the run's log and output, the mails) goes to the
# artifacts folder, which the host can read while the VM runs and keeps after a failure.
XB_ART=${XB_ARTIFACTS:-/tmp/artifacts}/xb/$XB_SCENARIO
XB_CONF=$XB_ART/xenbackup.conf
XB_VOLS=$XB_ART/xenback_vols
XB_MAIL=$XB_ART/mail
XB_LOCK=$XB/run.lock
XB_LOG=$XB_ART/xenbackup.log
XB_HOSTN=vmhost
XB_MEDIUM_DEV=/dev/$VG/medium
XB_RUNS=0

# xb_setup [MEDIUM_SIZE]: VG, medium LV, SMTP sink, config (SNAPSIZE 16M; change with xb_conf KEY=VALUE).
xb_setup() {
  xb_loopback_up
  mkdir -p "$XB" "$XB_ART" "$XB_MAIL" "$BCKMNTP" "$MNTSOURCEDIR"
  make_vg
  lvcreate -qq -y -L "${1:-256M}" -n medium "$VG"
  mkfs.ext4 -q -L medium "$XB_MEDIUM_DEV"
  # Restores go to ext4, as the volumes: the guest's /tmp is tmpfs, which has no user xattrs before
  # Linux 6.6 (the guest runs 6.1).
  lvcreate -qq -y -L 448M -n restore "$VG"
  mkfs.ext4 -q -L restore "/dev/$VG/restore"
  mkdir -p "$XB/restore"
  mount "/dev/$VG/restore" "$XB/restore"
  on_exit "umount '$XB/restore'"
  node "$XB_HOST/test/vm/xb-helper.mjs" smtp "$XB_MAIL" &
  local pid=$! i
  on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
  for i in $(seq 300); do [[ -s $XB_MAIL/port ]] && break; sleep 0.1; done
  [[ -s $XB_MAIL/port ]] || fail "the SMTP sink did not start"
  cat > "$XB_CONF" <<CONF
# /etc/xenbackup.conf of the VM scenarios
BCKDEV=$XB_MEDIUM_DEV
BCKDEV_FS=ext4
BCKMNTP=$BCKMNTP
MNTSOURCEDIR=$MNTSOURCEDIR
SBCONFIGFILE=$XB_VOLS
SNAPMOUNTDELAY=0
SNAPSIZE=16M
LOGFILE=$XB_LOG
LOCKFILE=$XB_LOCK
HOSTN=$XB_HOSTN
DOMAINN=test
EMAIL_FROM=xenbackup@$XB_HOSTN.test
EMAIL_TO=root@$XB_HOSTN.test
SMTP_URL=smtp://127.0.0.1:$(cat "$XB_MAIL/port")
REPORT_WHEN=always
BACKUP_DOM0=no
ARCHIVE_TTL_DAYS=3650
CONF
  : > "$XB_VOLS"
  say "medium $XB_MEDIUM_DEV, mail to 127.0.0.1:$(cat "$XB_MAIL/port"), config $XB_CONF"
}

# xb_loopback_up: the guest boots with lo down (connect to 127.0.0.1: ENETUNREACH) and has no ip(8):
# SIOCSIFFLAGS IFF_UP|IFF_LOOPBACK|IFF_RUNNING through perl; the kernel then gives lo 127.0.0.1.
xb_loopback_up() {
  perl -MSocket -e 'socket(my $s, PF_INET, SOCK_DGRAM, 0) or die "socket: $!\n";
    my $ifr = pack("a16 s x22", "lo", 0x49); ioctl($s, 0x8914, $ifr) or die "SIOCSIFFLAGS lo: $!\n"'
}

# xb_conf KEY=VALUE: sets (or adds) one config line.
xb_conf() {
  local key=${1%%=*}
  sed -i "/^$key=/d" "$XB_CONF"
  echo "$1" >> "$XB_CONF"
}

# xb_vol LINE: adds a line to the volume table.
xb_vol() { echo "$1" >> "$XB_VOLS"; }

xb_mail_count() { local n=0; while [[ -e $XB_MAIL/$((n + 1)).subject ]]; do n=$((n + 1)); done; echo "$n"; }

# xb_start [ARGS...]: starts `xenbackup run` in the background (for kills); sets XB_PID. Output to $XB/run-N.out.
xb_start() {
  XB_RUNS=$((XB_RUNS + 1))
  XB_MEDIUM_WAS_MOUNTED=0
  is_mounted "$BCKMNTP" && XB_MEDIUM_WAS_MOUNTED=1
  XB_MAILS_BEFORE=$(xb_mail_count)
  XB_OUT=$XB_ART/run-$XB_RUNS.out
  node "$XB_HOST/bin/xenbackup" run -c "$XB_CONF" "$@" > "$XB_OUT" 2>&1 &
  XB_PID=$!
}

# xb_run EXPECTED_EXIT [ARGS...]: one `xenbackup run` to its end; checks the exit code, waits for its
# mail (XB_SUBJECT, XB_BODY: the mail file) and that it left nothing behind.
xb_run() {
  local want=$1 rc t0=$EPOCHREALTIME
  shift
  xb_start "$@"
  XB_RUN_START=$t0
  wait "$XB_PID" && rc=0 || rc=$?
  XB_RUN_END=$EPOCHREALTIME
  xb_mark_time
  say "run $XB_RUNS: exit $rc in $(awk -v a="$XB_RUN_END" -v b="$t0" 'BEGIN { printf "%.1f", a - b }') s"
  if [[ $rc != "$want" ]]; then
    sed 's/^/  | /' "$XB_OUT"
    fail "xenbackup run $XB_RUNS exited $rc, expected $want"
  fi
  xb_wait_mail
  xb_assert_clean
}

# xb_mark_time: XB_AT, now as an ISO time for `restore --at` (the newest backup made so far).
xb_mark_time() { XB_AT=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ); }

# xb_wait_mail: waits for the run's report mail; XB_SUBJECT, XB_BODY (path of the message).
xb_wait_mail() {
  local n=$((XB_MAILS_BEFORE + 1)) i
  for i in $(seq 100); do [[ -e $XB_MAIL/$n.subject ]] && break; sleep 0.1; done
  [[ -e $XB_MAIL/$n.subject ]] || { sed 's/^/  | /' "$XB_OUT"; fail "run $XB_RUNS mailed no report"; }
  XB_SUBJECT=$(cat "$XB_MAIL/$n.subject")
  XB_BODY=$XB_MAIL/$n.eml
  say "mail: $XB_SUBJECT"
}

# xb_subject_like REGEX: the last mail's subject matches (grep -E).
xb_subject_like() {
  grep -qE -- "$1" <<< "$XB_SUBJECT" || fail "run $XB_RUNS: subject '$XB_SUBJECT' does not match /$1/"
}

# xb_body_has TEXT: the last mail's body holds TEXT (fixed string; quoted-printable soft breaks undone).
xb_body_has() {
  sed -e ':a' -e '/=$/{N;s/=\n//;ba}' "$XB_BODY" | grep -qF -- "$1" \
    || { sed 's/^/  | /' "$XB_BODY"; fail "run $XB_RUNS: the report does not say '$1'"; }
}

# xb_assert_clean: no snapshot LV of ours, no -real/-cow device, no mount under MNTSOURCEDIR (lib.sh),
# the medium unmounted again (unless it was mounted before the run), and the run lock released: its
# newest generation (src/host/lock.ts) marked .released. (Read here: a node start costs ~15 s in the
# guest; xb_restores_verify proves it with a real acquire.)
xb_assert_clean() {
  assert_released >/dev/null
  if ((XB_MEDIUM_WAS_MOUNTED == 0)) && is_mounted "$BCKMNTP"; then fail "the medium is still mounted on $BCKMNTP after run $XB_RUNS"; fi
  local top
  top=$(find "$XB_LOCK" -maxdepth 1 -regextype egrep -regex '.*/gen-[0-9]{12}' -printf '%f\n' 2>/dev/null | sort | tail -1)
  [[ -n $top ]] || fail "run $XB_RUNS left no lock generation in $XB_LOCK"
  [[ -e $XB_LOCK/$top.released ]] || fail "run $XB_RUNS did not release the lock $XB_LOCK ($top: $(cat "$XB_LOCK/$top"))"
}

# xb_mount_medium / xb_umount_medium: the medium on BCKMNTP for restores and inspection (read-only).
xb_mount_medium() { is_mounted "$BCKMNTP" || mount -o ro "$XB_MEDIUM_DEV" "$BCKMNTP"; }
xb_umount_medium() { ! is_mounted "$BCKMNTP" || umount "$BCKMNTP"; }

# xb_volume_state DOMU/PART: every file of the volume's folder on the medium with its hash (the chain
# as it stands), for "unchanged" checks. Mounts the medium for the moment.
xb_volume_state() {
  xb_mount_medium
  local d=$BCKMNTP/$XB_HOSTN/$1
  if [[ -d $d ]]; then (cd "$d" && find . -type f ! -name '*.lock' -print0 | sort -z | xargs -0 -r sha256sum); fi
  xb_umount_medium
}

# Restores are batched: each backup to check is queued, then one node process restores them all
# (`xenbackup restore` through xb-helper.mjs cli) and each is compared.
XB_QUEUE=()
# xb_restore_queue DOMU/PART EXPECTED_SUMS [--at WHEN]: queues a restore of the whole volume, to be
# compared with EXPECTED_SUMS (tree_sums of the volume at snapshot time; the writer's folder is checked
# apart). Sets XB_RESTORED: the folder it will be restored into.
xb_restore_queue() {
  local vol=$1 want=$2
  shift 2
  XB_RESTORED=$XB/restore/${#XB_QUEUE[@]}-${vol//\//-}
  XB_QUEUE+=("$vol|$want|$XB_RESTORED|$*")
}

# xb_sums FILE: tree_sums output (lib.sh) without directory sizes, which depend on the filesystem's
# directory format and history (a restored directory is written afresh), not on what it holds.
xb_sums() { sed -E 's/^(.* d [0-7]+ [0-9]+:[0-9]+) [0-9]+ ([0-9.]+ )$/\1 - \2/' "$1"; }
xb_sums_of() { xb_sums <(tree_sums "$1"); }

# xb_restores_verify: runs the queued restores (the medium mounted read-only meanwhile) and compares,
# and proves the run lock free: a new process takes it and gives it back (the real acquireLock).
xb_restores_verify() {
  local item vol want dir at i=0 rc out=$XB/restores.out
  : > "$XB/restores.cmds"
  for item in "${XB_QUEUE[@]}"; do
    IFS='|' read -r vol want dir at <<< "$item"
    rm -rf "$dir"
    printf 'restore\t%s\t--medium\t%s\t--host\t%s\t--to\t%s\t-q%s\n' "$vol" "$BCKMNTP" "$XB_HOSTN" "$dir" "${at:+$'\t'${at// /$'\t'}}" >> "$XB/restores.cmds"
  done
  printf '@lock\t%s\n' "$XB_LOCK" >> "$XB/restores.cmds"
  xb_mount_medium
  node "$XB_HOST/test/vm/xb-helper.mjs" cli "$XB/restores.cmds" > "$out" 2>&1 || true
  xb_umount_medium
  rc=$(awk -v i=$((${#XB_QUEUE[@]} + 1)) '$1 == "@@rc" && $3 == i { print $2 }' "$out")
  [[ $rc == 0 ]] || { sed 's/^/  | /' "$out"; fail "the run lock $XB_LOCK cannot be taken (exit ${rc:-none})"; }
  say "the run lock can be taken"
  for item in "${XB_QUEUE[@]}"; do
    i=$((i + 1))
    IFS='|' read -r vol want dir at <<< "$item"
    rc=$(awk -v i="$i" '$1 == "@@rc" && $3 == i { print $2 }' "$out")
    [[ $rc == 0 ]] || { sed 's/^/  | /' "$out"; fail "restore of $vol $at: exit ${rc:-none}"; }
    if ! diff <(xb_sums_of "$dir") <(xb_sums "$want") > "$XB/diff.txt"; then
      head -40 "$XB/diff.txt"
      fail "restore of $vol $at differs from the volume at snapshot time (< restored, > volume)"
    fi
    say "restore of $vol $at equals the volume at snapshot time"
  done
  XB_QUEUE=()
}

# xb_start_writer DIR LOG: a live writer. Record i: blob(i mod 4) <- "i" (written aside, renamed over:
# atomic), then line i appended to DIR/writer/seq, then "i EPOCHREALTIME" to LOG (outside the volume).
xb_start_writer() {
  local d=$1 log=$2
  mkdir -p "$d/writer"
  : > "$log"
  (
    i=0
    while :; do
      i=$((i + 1))
      printf '%08d\n' "$i" > "$d/writer/blob.new"
      mv -f "$d/writer/blob.new" "$d/writer/blob$((i % 4))"
      printf '%08d\n' "$i" >> "$d/writer/seq"
      echo "$i $EPOCHREALTIME" >> "$log"
      sleep 0.25
    done
  ) &
  local pid=$!
  on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
  XB_WRITER_PID=$pid
}

# xb_log_time REGEX: the epoch time (s.ms) of the last LOGFILE line matching REGEX, and of the line after it.
xb_log_times() {
  local line next
  line=$(grep -nE -- "$1" "$XB_LOG" | tail -1 | cut -d: -f1)
  [[ -n $line ]] || fail "no line /$1/ in $XB_LOG"
  next=$((line + 1))
  echo "$(date -d "$(sed -n "${line}p" "$XB_LOG" | cut -d' ' -f1)" +%s.%N) $(date -d "$(sed -n "${next}p" "$XB_LOG" | cut -d' ' -f1)" +%s.%N)"
}

# xb_writer_bounds LOG SNAPNAME: "LO HI" for the run just done: LO records the writer had finished
# when xenbackup started lvcreate of SNAPNAME (its LOGFILE line "exec: lvcreate"), HI when the next
# log line appeared (lvcreate had returned).
xb_writer_bounds() {
  local t0 t1
  read -r t0 t1 < <(xb_log_times "exec: lvcreate .*$2")
  awk -v a="$t0" -v b="$t1" '$2 < a { lo = $1 } $2 < b + 0.001 { hi = $1 } END { print lo + 0, hi + 0 }' "$1"
}

# xb_writer_check RESTORED_DIR LO HI LABEL: the writer's files in the restore are exactly its state at
# one instant inside lvcreate: seq holds complete lines 1..N with LO <= N <= HI + 1 (line HI+1 may be
# appended before it was logged); each blob holds the last record i <= N of its residue mod 4, or N+1
# (renamed in before line N+1 was appended).
xb_writer_check() {
  local dir=$1 lo=$2 hi=$3 n k v want alt
  n=$(seq_lines "$dir/writer/seq")
  ((n >= lo && n <= hi + 1)) || fail "$4: writer restored with $n records, but $lo were written before lvcreate started and $hi by when it had returned"
  for k in 0 1 2 3; do
    want=$(( n - ((n - k) % 4 + 4) % 4 ))
    alt=$(( (n + 1) % 4 == k ? n + 1 : -1 ))
    if [[ -e $dir/writer/blob$k ]]; then v=$((10#$(cat "$dir/writer/blob$k"))); else v=0; fi
    ((want < 1)) && want=0
    ((v == want || v == alt)) || fail "$4: writer's blob$k holds $v, expected $want (or $alt) with $n records"
  done
  say "$4: writer restored with $n records, a consistent instant inside lvcreate ($lo..$((hi + 1)))"
}

# xb_le32 N: N as 4 little-endian bytes (printf escapes).
xb_le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }

# xb_write_mbr DEVICE START1 SIZE1 START2 SIZE2 (sectors): a DOS partition table with two Linux
# partitions, as an HVM guest's installer leaves it (the guest has no sfdisk: util-linux's fdisk is
# another package). partx reads it like any other.
xb_write_mbr() {
  local dev=$1 entry1 entry2
  entry1="\\x00\\x00\\x00\\x00\\x83\\x00\\x00\\x00$(xb_le32 "$2")$(xb_le32 "$3")"
  entry2="\\x00\\x00\\x00\\x00\\x83\\x00\\x00\\x00$(xb_le32 "$4")$(xb_le32 "$5")"
  dd if=/dev/zero of="$dev" bs=512 count=1 conv=notrunc,fsync status=none
  printf "$entry1$entry2" | dd of="$dev" bs=1 seek=446 conv=notrunc,fsync status=none
  printf '\x55\xaa' | dd of="$dev" bs=1 seek=510 conv=notrunc,fsync status=none
}

# xb_dirty DIR: shuts the filesystem mounted on DIR down after its log is flushed (xfs_io shutdown -f,
# ext4 too) and unmounts it: the LV is left with a journal that needs replaying, as after a guest crash.
xb_dirty() {
  xfs_io -x -c 'shutdown -f' "$1"
  umount "$1"
}

# xb_kill_at POINT: starts a run that stops at POINT (src/run/debug-pause.ts: after-lvcreate,
# after-mount, before-lvremove) and kills it there with SIGKILL.
xb_kill_at() {
  local i
  rm -f "$XB/paused"
  export XENBACKUP_DEBUG_PAUSE=$1 XENBACKUP_DEBUG_PAUSE_FILE=$XB/paused
  xb_start
  unset XENBACKUP_DEBUG_PAUSE XENBACKUP_DEBUG_PAUSE_FILE
  for i in $(seq 1200); do
    [[ -s $XB/paused ]] && break
    kill -0 "$XB_PID" 2>/dev/null || break
    sleep 0.1
  done
  [[ -s $XB/paused ]] || { sed 's/^/  | /' "$XB_OUT"; fail "run $XB_RUNS never reached $1"; }
  kill -KILL "$XB_PID"
  wait "$XB_PID" 2>/dev/null || true
  xb_mark_time
  say "run $XB_RUNS killed (SIGKILL) at $1"
}

# xb_signal_mid_archive DOMU/PART SIGNAL: starts a run and sends SIGNAL as soon as the volume's
# archive is being written (its .partial file exists on the medium).
xb_signal_mid_archive() {
  local dir=$BCKMNTP/$XB_HOSTN/$1 i
  xb_start
  for i in $(seq 2400); do
    compgen -G "$dir/*.partial" >/dev/null && break
    kill -0 "$XB_PID" 2>/dev/null || break
    sleep 0.05
  done
  compgen -G "$dir/*.partial" >/dev/null || { sed 's/^/  | /' "$XB_OUT"; fail "run $XB_RUNS: never saw $1's archive being written"; }
  kill "-$2" "$XB_PID"
  say "run $XB_RUNS: $2 while $(basename "$(compgen -G "$dir/*.partial" | head -1)") was being written"
}
