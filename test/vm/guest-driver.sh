#!/bin/bash
# Guest script (run by run-in-vm.sh inside the VM) that runs every scenario of test/vm/scenarios/
# in name order, each in its own session with a time limit, and frames each one's output with
# markers that the host (test/vm/scenario-log.ts) turns into one subtest per scenario:
#
#   @@xenbackup-vm begin NAME
#   ...the scenario's output...
#   @@xenbackup-vm end NAME status=N seconds=S
#   @@xenbackup-vm summary total=T passed=P failed=F
#
# Scenario files: NN-name.sh (bash), NN-name.mjs (node), or NN-name.ts (run as the host-compiled
# $XB_HOST/dist/test/vm/scenarios/NN-name.js). Other files in the folder are ignored.
# The contract, checked after each scenario (a breach fails it): it leaves no mount, loop device,
# snapshot LV, device-mapper device outside a VG, or process behind. VGs and origin LVs may stay:
# the driver wipes the scratch disk before the next scenario.
#
# Args (or XENBACKUP_VM_SCENARIOS, space-separated): run only scenarios whose name equals or starts
# with one of them. XENBACKUP_VM_SCENARIO_TIMEOUT: seconds per scenario (default 600).
# XENBACKUP_VM_TRACE=1: shell scenarios run under bash -x, each command stamped with the time.
# XENBACKUP_VM_STOP_ON_FAIL=1: stop at the first failed scenario and leave its state for inspection.
set -uo pipefail

scenario_dir=${XB_HOST:-/host}/test/vm/scenarios
per_limit=${XENBACKUP_VM_SCENARIO_TIMEOUT:-600}
# Each scenario's log is written and tailed in memory (over 9p every write and every poll of tail
# is a slow round trip under emulation) and copied to artifacts/logs/ when the scenario ends.
logs=/tmp/xb-logs
artifact_logs=${XB_ARTIFACTS:-/tmp/artifacts}/logs
mkdir -p "$logs" "$artifact_logs"
filters=("$@")
if ((${#filters[@]} == 0)) && [[ -n ${XENBACKUP_VM_SCENARIOS:-} ]]; then
  read -r -a filters <<< "$XENBACKUP_VM_SCENARIOS"
fi

wanted() {
  local f
  ((${#filters[@]} == 0)) && return 0
  for f in "${filters[@]}"; do [[ $1 == "$f"* ]] && return 0; done
  return 1
}

mountpoints() { awk '{ print $5 }' /proc/self/mountinfo | sort; }
loops() { losetup -n -O NAME 2>/dev/null | sort; }
baseline_mounts=$(mountpoints)
baseline_loops=$(loops)

# Prints what the scenario left behind (one line each) and removes it, so the next scenario starts clean.
sweep() {
  local sid=$1 leftover=0 p m l lv
  for p in $(pgrep -s "$sid" 2>/dev/null); do
    echo "left behind: process $p ($(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null))"
    leftover=1
  done
  pkill -KILL -s "$sid" 2>/dev/null
  sleep 0.2
  while read -r m; do
    [[ -z $m ]] && continue
    echo "left behind: mount on $m"
    leftover=1
  done < <(comm -13 <(echo "$baseline_mounts") <(mountpoints))
  # Deepest first; lazily, since a process may still hold one.
  comm -13 <(echo "$baseline_mounts") <(mountpoints) | sort -r | while read -r m; do
    [[ -n $m ]] && umount -l "$m" 2>/dev/null
  done
  while read -r l; do
    [[ -z $l ]] && continue
    echo "left behind: loop device $l"
    leftover=1
    losetup -d "$l" 2>/dev/null
  done < <(comm -13 <(echo "$baseline_loops") <(loops))
  while read -r lv; do
    [[ -z $lv ]] && continue
    echo "left behind: snapshot LV $lv"
    leftover=1
  done < <(lvs --noheadings -o lv_full_name,lv_attr,lv_tags 2>/dev/null | awk '$2 ~ /^[sS]/ || $3 ~ /xenbackup/ { print $1 }')
  wipe_scratch
  if [[ -n $(dmsetup ls 2>/dev/null | grep -v '^No devices found') ]]; then
    echo "left behind: device-mapper devices outside any VG: $(dmsetup ls | awk '{ print $1 }' | tr '\n' ' ')"
    leftover=1
    dmsetup remove_all -f >/dev/null 2>&1
  fi
  return $leftover
}

wipe_scratch() {
  local vg
  for vg in $(vgs --noheadings -o vg_name 2>/dev/null); do
    vgremove -ff -y "$vg" >/dev/null 2>&1
  done
  pvremove -ff -y "$XB_SCRATCH" >/dev/null 2>&1
  wipefs -a -q "$XB_SCRATCH" 2>/dev/null
  udevadm settle --timeout=30
}

runner_for() {
  local file=$1 name=$2
  case $file in
    *.sh) if [[ ${XENBACKUP_VM_TRACE:-0} == 1 ]]; then echo bash -x "$file"; else echo bash "$file"; fi ;;
    *.mjs) echo node "$file" ;;
    *.ts) echo node "${XB_HOST:-/host}/dist/test/vm/scenarios/$name.js" ;;
  esac
}

# For XENBACKUP_VM_TRACE: where the time goes, per command.
export PS4='+ [$(cut -d" " -f1 /proc/uptime)] '
total=0 passed=0 failed=0
wipe_scratch
shopt -s nullglob
for file in "$scenario_dir"/[0-9]*-*.{sh,mjs,ts}; do
  base=${file##*/}
  name=${base%.*}
  wanted "$name" || continue
  read -r -a cmd <<< "$(runner_for "$file" "$name")"
  log=$logs/$name.log
  total=$((total + 1))
  echo "@@xenbackup-vm begin $name"
  start=$(date +%s.%N)
  # Its own session: whatever it leaves running can be found (pgrep -s) and ended.
  XB_SCENARIO=$name setsid timeout -k 10 "$per_limit" "${cmd[@]}" < /dev/null > "$log" 2>&1 &
  sid=$!
  tail -n +1 -s 0.2 -F --pid="$sid" "$log" 2>/dev/null &
  tailer=$!
  wait "$sid"
  rc=$?
  wait "$tailer"
  cp "$log" "$artifact_logs/" 2>/dev/null
  [[ -s $log && $(tail -c 1 "$log" | od -An -c | tr -d ' ') != '\n' ]] && echo
  ((rc == 124)) && echo "FAIL: scenario $name did not finish within ${per_limit} s (XENBACKUP_VM_SCENARIO_TIMEOUT)"
  if ((rc != 0)) && [[ ${XENBACKUP_VM_STOP_ON_FAIL:-0} == 1 ]]; then
    # Leave its state (mounts, LVs, scratch disk) for --shell or XENBACKUP_VM_KEEP=1.
    echo "@@xenbackup-vm end $name status=$rc seconds=0"
    echo "XENBACKUP_VM_STOP_ON_FAIL: stopped after $name, its state left as it was"
    failed=$((failed + 1))
    break
  fi
  if ! leftovers=$(sweep "$sid"); then
    echo "$leftovers"
    echo "FAIL: scenario $name left state behind (see 'left behind' above)"
    ((rc == 0)) && rc=1
  fi
  seconds=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN { printf "%.1f", a - b }')
  echo "@@xenbackup-vm end $name status=$rc seconds=$seconds"
  if ((rc == 0)); then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "@@xenbackup-vm summary total=$total passed=$passed failed=$failed"
((total > 0)) || { echo "FAIL: no scenario matched '${filters[*]}' in $scenario_dir"; exit 1; }
((failed == 0))
