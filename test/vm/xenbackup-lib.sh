#!/bin/bash
# Helpers for the `xenbackup run` VM scenarios (test/vm/scenarios/3*-*.sh), sourced after lib.sh:
#   . "$XB_HOST/test/vm/lib.sh"; . "$XB_HOST/test/vm/xenbackup-lib.sh"
# xb_setup makes the medium (an LV of its own), a mail sink (a real SMTP server, xb-helper.mjs) and a
# config in /etc/xenbackup.conf style; xb_run runs `xenbackup run` and checks its exit code, the
# mailed subject and that nothing of it is left (snapshot LVs, mounts, the lock, the medium mount);
# xb_restores_verify restores backups with `xenbackup restore` and compares them with what the volume held.
#
# Time: every node start costs 20-40 s in the guest (compiling ~1.4 MB of JavaScript under emulation),
# so the SMTP sink starts while the volumes are being made, and restores are batched into one process.
XB=/tmp/xb
# What a person debugging a failure wants (config, the run's log and output, the mails) is kept in
# memory while the scenario runs (9p writes cost tens of ms each under emulation) and copied to the
# artifacts folder when it ends, passed or failed: artifacts/xb/SCENARIO/ on the host.
XB_ART=/tmp/xb-art/$XB_SCENARIO
XB_CONF=$XB_ART/xenbackup.conf
XB_VOLS=$XB_ART/xenback_vols
XB_MAIL=$XB_ART/mail
XB_LOCK=$XB/run.lock
XB_LOG=$XB_ART/xenbackup.log
XB_HOSTN=vmhost
XB_MEDIUM_DEV=/dev/$VG/medium
# The guest is ours: nothing else listens there, and a fixed port lets the config be written before
# the sink (a node start) is up.
XB_SMTP_PORT=2525
XB_SMTP_PID=
XB_RUNS=0

# xb_deadline SECONDS: prints the epoch second SECONDS from now (for waits that must survive a slow guest).
xb_deadline() { echo $(( ${EPOCHREALTIME%.*} + $1 )); }
xb_before() { (( ${EPOCHREALTIME%.*} < $1 )); }

# xb_setup [MEDIUM_SIZE]: VG, medium LV, SMTP sink, config (SNAPSIZE 16M; change with xb_conf KEY=VALUE).
xb_setup() {
  mkdir -p "$XB" "$XB_ART" "$XB_MAIL" "$BCKMNTP" "$MNTSOURCEDIR"
  on_exit "mkdir -p '$XB_ARTIFACTS/xb' && cp -a '$XB_ART' '$XB_ARTIFACTS/xb/'"
  node "$XB_HOST/test/vm/xb-helper.mjs" smtp "$XB_MAIL" "$XB_SMTP_PORT" > "$XB_ART/smtp.out" 2>&1 &
  XB_SMTP_PID=$!
  on_exit "kill $XB_SMTP_PID 2>/dev/null; wait $XB_SMTP_PID 2>/dev/null"
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
SMTP_URL=smtp://127.0.0.1:$XB_SMTP_PORT
REPORT_WHEN=always
BACKUP_DOM0=no
ARCHIVE_TTL_DAYS=3650
CONF
  : > "$XB_VOLS"
  say "medium $XB_MEDIUM_DEV, mail to 127.0.0.1:$XB_SMTP_PORT, config $XB_CONF (kept in artifacts/xb/$XB_SCENARIO)"
}

# xb_smtp_ready: waits (once) until the SMTP sink listens.
xb_smtp_ready() {
  [[ -s $XB_MAIL/port ]] && return 0
  local deadline
  deadline=$(xb_deadline 300)
  while [[ ! -s $XB_MAIL/port ]] && xb_before "$deadline"; do
    kill -0 "$XB_SMTP_PID" 2>/dev/null || { sed 's/^/  | /' "$XB_ART/smtp.out"; fail "the SMTP sink died"; }
    sleep 0.2
  done
  [[ -s $XB_MAIL/port ]] || fail "the SMTP sink did not listen within 300 s"
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
  xb_smtp_ready
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
  local n=$((XB_MAILS_BEFORE + 1)) deadline
  deadline=$(xb_deadline 30)
  while [[ ! -e $XB_MAIL/$n.subject ]] && xb_before "$deadline"; do sleep 0.1; done
  [[ -e $XB_MAIL/$n.subject ]] || { sed 's/^/  | /' "$XB_OUT"; fail "run $XB_RUNS mailed no report"; }
  XB_SUBJECT=$(cat "$XB_MAIL/$n.subject")
  XB_BODY=$XB_MAIL/$n.eml
  say "mail: $XB_SUBJECT"
}

# xb_subject_like REGEX: the last mail's subject matches (grep -E).
xb_subject_like() {
  grep -qE -- "$1" <<< "$XB_SUBJECT" || fail "run $XB_RUNS: subject '$XB_SUBJECT' does not match /$1/"
}

xb_subject_like_quiet() { grep -qE -- "$1" <<< "$XB_SUBJECT"; }

# xb_body_has TEXT: the last mail's body holds TEXT (fixed string; quoted-printable soft breaks undone).
xb_body_has() {
  sed -e ':a' -e '/=$/{N;s/=\n//;ba}' "$XB_BODY" | grep -qF -- "$1" \
    || { sed 's/^/  | /' "$XB_BODY"; fail "run $XB_RUNS: the report does not say '$1'"; }
}

# xb_assert_clean: no snapshot LV of ours, no -real/-cow device, no mount under MNTSOURCEDIR (lib.sh),
# the medium unmounted again (unless it was mounted before the run), and the run lock released: its
# newest generation marked .released: by the rule of src/host/lock.ts, a free lock. (Read from its
# files: a node process taking it for real costs 10-40 s in the guest; `xb-helper.mjs lock PATH` does.)
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

# Restores are queued, then done together with the medium mounted once. The archives are restored the
# way the README's "Restoring without xenbackup" says, with GNU tar (tar -x -G over the chain): that is
# the format's promise, it costs no node start (20-40 s each in the guest), and C is far quicker than
# JavaScript under emulation. XENBACKUP_VM_RESTORE_WITH=xenbackup restores with `xenbackup restore`
# instead (all in one node process, xb-helper.mjs cli). rsync backups are plain trees: compared as they
# lie on the medium.
XB_QUEUE=()
# xb_restore_queue DOMU/PART EXPECTED_SUMS [--at WHEN]: queues a restore of the whole volume as it was
# at WHEN (the newest backup made by then), to be compared with EXPECTED_SUMS (tree_sums of the volume
# at snapshot time; the writer's folder is checked apart). Sets XB_RESTORED: the folder it will be
# restored into.
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

# xb_sidecar_field FILE KEY: a top-level string field of a sidecar (JSON.stringify(sidecar, null, 1):
# one key per line, top-level keys indented by one space).
xb_sidecar_field() { sed -n "s/^ \"$2\": \"\([^\"]*\)\",\{0,1\}\$/\1/p" "$1"; }

# xb_restore_gnu DOMU/PART WHEN DIR: restores into DIR the newest backup of the volume started at or
# before WHEN (an ISO time; empty: the newest), with GNU tar; sets XB_GOT to the backup id, or to
# "tree:PATH" for an rsync tree (nothing to restore). The medium must be mounted.
xb_restore_gnu() {
  local vdir=$BCKMNTP/$XB_HOSTN/$1 at=$2 dir=$3 limit=99999999T999999Z sc id chain engine target=
  [[ -n $at ]] && limit=$(date -u -d "$at" +%Y%m%dT%H%M%SZ)
  for sc in "$vdir"/*.json; do
    [[ -e $sc ]] || continue
    id=${sc##*/}; id=${id%%.*}
    [[ ! $id > $limit ]] && target=$sc
  done
  [[ -n $target ]] || fail "restore of $1 at ${at:-now}: no backup in $vdir (files: $(ls "$vdir" 2>&1 | tr '\n' ' '))"
  engine=$(xb_sidecar_field "$target" engine)
  chain=$(xb_sidecar_field "$target" chain)
  id=$(xb_sidecar_field "$target" id)
  [[ -n $engine && -n $chain && -n $id ]] || fail "$target: no engine/chain/id field"
  if [[ $engine == rsync ]]; then XB_GOT="tree:$vdir/$(xb_sidecar_field "$target" archive)"; return; fi
  [[ $engine == tar ]] || fail "$target: engine $engine cannot be restored here"
  mkdir -p "$dir"
  for sc in "$vdir"/*.json; do
    [[ $(xb_sidecar_field "$sc" chain) == "$chain" ]] || continue
    [[ ${sc##*/} > ${target##*/} ]] && continue
    tar -x -G --xattrs --xattrs-include='*' --acls --numeric-owner -f "$vdir/$(xb_sidecar_field "$sc" archive)" -C "$dir" \
      || fail "GNU tar cannot extract $(xb_sidecar_field "$sc" archive) of $1"
  done
  XB_GOT=$id
}

# xb_restores_verify: restores every queued backup and compares it with the volume at snapshot time.
# (The run lock is proven free after every run by xb_assert_clean, from its files.)
xb_restores_verify() {
  local item vol want dir at i=0 rc got out=$XB/restores.out
  ((${#XB_QUEUE[@]})) || return 0
  xb_mount_medium
  if [[ ${XENBACKUP_VM_RESTORE_WITH:-gnu-tar} == xenbackup ]]; then
    : > "$XB/restores.cmds"
    for item in "${XB_QUEUE[@]}"; do
      IFS='|' read -r vol want dir at <<< "$item"
      rm -rf "$dir"
      printf 'restore\t%s\t--medium\t%s\t--host\t%s\t--to\t%s\t-q%s\n' "$vol" "$BCKMNTP" "$XB_HOSTN" "$dir" "${at:+$'\t'${at// /$'\t'}}" >> "$XB/restores.cmds"
    done
    node "$XB_HOST/test/vm/xb-helper.mjs" cli "$XB/restores.cmds" > "$out" 2>&1 || true
  fi
  for item in "${XB_QUEUE[@]}"; do
    i=$((i + 1))
    IFS='|' read -r vol want dir at <<< "$item"
    if [[ ${XENBACKUP_VM_RESTORE_WITH:-gnu-tar} == xenbackup ]]; then
      rc=$(awk -v i="$i" '$1 == "@@rc" && $3 == i { print $2 }' "$out")
      [[ $rc == 0 ]] || { sed 's/^/  | /' "$out"; fail "xenbackup restore of $vol $at: exit ${rc:-none}"; }
      got="by xenbackup restore"
    else
      rm -rf "$dir"
      xb_restore_gnu "$vol" "${at#--at }" "$dir"
      got=$XB_GOT
      if [[ $got == tree:* ]]; then dir=${got#tree:}; got="rsync tree ${dir##*/}"; else got="backup $got by GNU tar -x -G"; fi
    fi
    if ! diff <(xb_sums_of "$dir") <(xb_sums "$want") > "$XB/diff.txt"; then
      head -40 "$XB/diff.txt"
      xb_umount_medium
      fail "restore of $vol ${at:-(newest)} ($got) differs from the volume at snapshot time (< restored, > volume)"
    fi
    say "restore of $vol ${at:-(newest)} ($got) equals the volume at snapshot time"
  done
  xb_umount_medium
  XB_QUEUE=()
}

# xb_start_writer DIR LOG [fsync]: a live writer. Record i: blob(i mod 4) <- "i" (one 9-byte write in place:
# a snapshot sees the old record or the new one, never a torn one), then line i appended to
# DIR/writer/seq, then "i EPOCHREALTIME" to LOG (outside the volume), four times a second.
# Only bash builtins in the loop: under emulation every fork+exec costs tens of milliseconds of CPU,
# and a writer that spawned mv and sleep took a good part of the guest's two CPUs from the run it watches.
# With "fsync" it writes as a database does: the blob is fsynced before line i is appended, and seq
# after it (coreutils sync FILE: two processes per record), so each record is durable before it is
# logged, and a state after a crash (or an unfrozen snapshot plus its replayed log) is still one
# instant for xb_writer_check: no seq line without its blob, no blob beyond N+1.
xb_start_writer() {
  local d=$1 log=$2 k durable=${3:-}
  mkdir -p "$d/writer"
  for k in 0 1 2 3; do printf '%08d\n' 0 > "$d/writer/blob$k"; done
  : > "$log"
  mkfifo "$XB/writer-tick.$$.${#_xb_cleanups[@]}"
  (
    # read -t on a FIFO that nobody writes: a sleep without a process
    exec 7<> "$XB/writer-tick.$$.${#_xb_cleanups[@]}"
    i=0
    while :; do
      i=$((i + 1))
      printf '%08d\n' "$i" 1<> "$d/writer/blob$((i % 4))"
      [[ $durable == fsync ]] && sync "$d/writer/blob$((i % 4))"
      printf '%08d\n' "$i" >> "$d/writer/seq"
      [[ $durable == fsync ]] && sync "$d/writer/seq"
      echo "$i $EPOCHREALTIME" >> "$log"
      read -r -t 0.25 -u 7 _ || true
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
  local deadline
  rm -f "$XB/paused"
  export XENBACKUP_DEBUG_PAUSE=$1 XENBACKUP_DEBUG_PAUSE_FILE=$XB/paused
  xb_start
  unset XENBACKUP_DEBUG_PAUSE XENBACKUP_DEBUG_PAUSE_FILE
  # a node start alone may take a minute or two in a loaded guest
  deadline=$(xb_deadline 400)
  while [[ ! -s $XB/paused ]] && xb_before "$deadline"; do
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
  local dir=$BCKMNTP/$XB_HOSTN/$1 deadline
  xb_start
  deadline=$(xb_deadline 400)
  while ! compgen -G "$dir/*.partial" >/dev/null && xb_before "$deadline"; do
    kill -0 "$XB_PID" 2>/dev/null || break
    sleep 0.05
  done
  compgen -G "$dir/*.partial" >/dev/null || { sed 's/^/  | /' "$XB_OUT"; fail "run $XB_RUNS: never saw $1's archive being written"; }
  kill "-$2" "$XB_PID"
  say "run $XB_RUNS: $2 while $(basename "$(compgen -G "$dir/*.partial" | head -1)") was being written"
}
