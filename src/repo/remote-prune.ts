/**
 * Prune on a remote medium (`user@host:/path`, RSYNC_TARGET): the remote
 * counterpart of prune.ts, with the same decision (core/retention.ts) and
 * the same order, so a crash or a dropped connection mid-prune leaves only
 * debris: backups newest first; per backup the sidecar FIRST, made durable
 * (sync), then the tree and the manifest.
 *
 * Connections per volume: one lists the folder; with nothing to delete,
 * that is all. A dry run measures what would go (one more). A real prune
 * with work to do then takes the volume's lock, lists again and removes
 * debris (RemoteVolume.open), and deletes every dropped backup and
 * releases the lock in one more connection. Under that lock no backup of
 * the volume is running, so partial trees and trees without a sidecar are
 * debris whatever their age.
 *
 * Sizes are the bytes of the files only that backup holds (link count 1),
 * measured on the remote host with GNU find; 0 when find cannot say.
 */
import { decideRetention, type RetentionRules } from '../core/retention.js';
import { runRemote } from '../host/ssh.js';
import type { Logger } from '../util/log.js';
import { backupFiles, sidecarName, type DeletedBackup, type VolumePruneResult } from './prune.js';
import { RemoteVolume, type RemoteListing, type RemoteMedium } from './remote-volume.js';
import type { Sidecar } from '../medium/sidecar.js';
import { VOLUME_LOCK_NAME } from './volume-lock.js';
import { timeOfId } from './volume-store.js';

export interface RemotePruneOptions {
  dryRun: boolean;
  now: Date;
  utcCalendar?: boolean;
  logger: Logger;
}

const STEP_TIMEOUT_MS = 30 * 60_000; // deleting a tree of a million files takes a while

/** Shell function: bytes of the named files (recursively) with one link, directories counted too. */
const SIZE_FN = `size() { find "$@" \\( -type d -o -links 1 \\) -printf '%s\\n' 2>/dev/null | awk '{s+=$1} END {printf "%d", s}'; }`;

/** $1 dir; then per backup: id sidecar tree manifest. Prints S<id>\\0<bytes>\\0 each. */
const SIZES_SCRIPT = `set -u
cd -- "$1" || exit 1
shift
${SIZE_FN}
while [ $# -ge 4 ]; do
  printf 'S%s\\0%s\\0' "$1" "$(size "$2" "$3" "$4")"
  shift 4
done`;

/**
 * $1 dir, $2 lock holder; then per backup, newest first: id sidecar tree
 * manifest. Prints D<id>\\0<bytes>\\0 once a backup is gone; stops at the
 * first failure (exit 1) so an older backup a remaining one needs is never
 * removed; releases the lock if it is still ours, whatever happened.
 */
const DELETE_SCRIPT = `set -u
dir=$1; holder=$2; shift 2
cd -- "$dir" || exit 1
${SIZE_FN}
durable() { sync -- "$@" 2>/dev/null || sync; }
rc=0
while [ $# -ge 4 ]; do
  b=$(size "$2" "$3" "$4")
  if [ ! -f "$2" ]; then echo "$dir/$2 is not there" >&2; rc=1; break; fi
  rm -f -- "$2" && durable . || { echo "removing $dir/$2 failed" >&2; rc=1; break; }
  rm -rf -- "$3" && rm -f -- "$4" && durable . || { echo "removing $dir/$3 or $dir/$4 failed" >&2; rc=1; break; }
  printf 'D%s\\0%s\\0' "$1" "$b"
  shift 4
done
if [ "$(cat -- ${VOLUME_LOCK_NAME} 2>/dev/null)" = "$holder" ]; then rm -f -- ${VOLUME_LOCK_NAME}; fi
exit $rc`;

/** Pairs of NUL-terminated records with the given tag: id -> bytes. */
function taggedSizes(stdout: string, tag: string): Map<string, number> {
  const recs = stdout.split('\0');
  const out = new Map<string, number>();
  for (let i = 0; i + 1 < recs.length; i += 2) {
    if (recs[i]!.startsWith(tag)) out.set(recs[i]!.slice(1), Number(recs[i + 1]) || 0);
  }
  return out;
}

function lastLine(text: string): string {
  return text.trim().split('\n').filter(Boolean).pop() ?? '';
}

/** Sidecar names in the folder that did not parse: their backups' files are unknown, so nothing may go. */
function unreadableSidecars(listing: RemoteListing): string[] {
  const claimed = new Set(listing.backups.map(sidecarName));
  return listing.names.filter((n) => n.endsWith('.json') && /^\d{8}T\d{6}Z\./.test(n) && !claimed.has(n));
}

/** What RemoteVolume.open removes: partials, and trees or manifests no sidecar claims. */
function hasDebris(listing: RemoteListing): boolean {
  const claimed = new Set(listing.backups.flatMap((b) => [b.archive, b.manifest]));
  return listing.names.some((n) => n.endsWith('.partial') || (/^\d{8}T\d{6}Z\.tree(\.manifest)?$/.test(n) && !claimed.has(n)));
}

function backupArgs(drop: readonly Sidecar[]): string[] {
  return drop.flatMap((s) => [s.id, ...backupFiles(s)]);
}

/**
 * The bytes deleting each backup would free on the remote host (as
 * backupBytes does locally: files only that backup holds), in one
 * connection; by backup id.
 */
export async function measureRemoteBackups(m: RemoteMedium, host: string, volume: string, backups: readonly Sidecar[], log: Logger): Promise<Map<string, number>> {
  if (backups.length === 0) return new Map();
  const remote = new RemoteVolume(m, host, volume, log);
  const r = await runRemote(m.target, m.ssh, ['sh', '-c', SIZES_SCRIPT, 'xenbackup-sizes', remote.dir, ...backupArgs(backups)], { logger: log, timeoutMs: STEP_TIMEOUT_MS, quiet: true });
  return taggedSizes(r.stdout, 'S');
}

/** Decides and (unless dryRun) prunes one volume on the remote medium. Throws VolumeBusyError while a backup of it runs. */
export async function pruneRemoteVolume(m: RemoteMedium, host: string, volume: string, rules: RetentionRules, opts: RemotePruneOptions): Promise<VolumePruneResult> {
  const log = opts.logger;
  const remote = new RemoteVolume(m, host, volume, log);
  const errors: string[] = [];
  let listing = await remote.list();
  let debris: string[] = [];
  // The lock (another connection, and one to release it) only when there is something to remove.
  let locked = !opts.dryRun && (hasDebris(listing) || decideRetention(listing.backups, opts.now, rules, timeOfId, { utc: opts.utcCalendar }).drop.length > 0);
  if (locked) {
    const opened = await remote.open();
    listing = opened;
    debris = opened.removed;
  }
  try {
    const decision = decideRetention(listing.backups, opts.now, rules, timeOfId, { utc: opts.utcCalendar });
    const result: VolumePruneResult = { volume, dryRun: opts.dryRun, decision, deleted: [], debris, errors };
    const bad = unreadableSidecars(listing);
    if (bad.length) {
      errors.push(`${volume}: not pruned while a sidecar cannot be read (remove or repair ${remote.shown}/${bad[0]} first)`);
      return result;
    }
    const reasonOf = new Map(decision.items.map((i) => [i.backup.id, i.reasons.join('; ')]));
    const entry = (s: Sidecar, bytes: number): DeletedBackup => ({ id: s.id, kind: s.kind, files: backupFiles(s), bytes, reason: reasonOf.get(s.id)! });
    if (decision.drop.length === 0) return result;
    const args = backupArgs(decision.drop);
    if (opts.dryRun) {
      const sizes = await measureRemoteBackups(m, host, volume, decision.drop, log);
      result.deleted.push(...decision.drop.map((s) => entry(s, sizes.get(s.id) ?? 0)));
      return result;
    }
    locked = false; // the delete step releases the lock itself, whatever happens
    const r = await runRemote(m.target, m.ssh, ['sh', '-c', DELETE_SCRIPT, 'xenbackup-prune', remote.dir, remote.holderText, ...args], {
      logger: log,
      timeoutMs: STEP_TIMEOUT_MS,
      quiet: true,
      allowFailure: true,
    });
    const gone = taggedSizes(r.stdout, 'D');
    for (const s of decision.drop) if (gone.has(s.id)) result.deleted.push(entry(s, gone.get(s.id)!));
    if (r.exitCode !== 0) {
      const why = lastLine(r.stderr) || `exit ${r.exitCode}`;
      errors.push(`${volume}: pruning ${remote.shown} failed: ${why}; stopped pruning this volume (${decision.drop.length - result.deleted.length} backups left to delete)`);
    }
    return result;
  } finally {
    if (locked) await remote.abort(undefined).catch((e: Error) => log.warn(`${volume}: releasing the lock on ${remote.shown}: ${e.message}`));
  }
}

