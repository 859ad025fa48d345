/**
 * Carries out a retention decision (core/retention.ts) on one volume's
 * folder. The order is what makes a crash harmless:
 *
 *   - backups go newest first, so a backup is never left behind its base
 *     (the deleted set is closed under "is needed by");
 *   - per backup the sidecar goes FIRST and the directory is fsynced, then
 *     the archive and the manifest: the sidecar is what makes a backup exist,
 *     so after a crash what remains is an archive or manifest without a
 *     sidecar, which `list` ignores and the next prune or backup removes.
 *
 * Nothing here decides what to delete; a dry run goes through the same path
 * and only reports. A real prune holds the volume's backup lock
 * (repo/volume-lock.ts) so that a backup being made meanwhile, e.g. a manual
 * `xenbackup backup` beside the nightly run, neither loses the base it builds
 * on nor has its files taken for debris.
 */
import { backupFiles, BACKUP_FILE_RE, sidecarName } from '../medium/layout.js';
import { timeOfId, type VolumeStore } from './volume-store.js';
import type { Sidecar } from '../medium/sidecar.js';
import { decideRetention, type RetentionDecision, type RetentionRules } from '../core/retention.js';
import { lockVolume } from './volume-lock.js';
import { silentLogger, type Logger } from '../util/log.js';

export { backupFiles, sidecarName };

export interface DeletedBackup {
  id: string;
  kind: Sidecar['kind'];
  /** Names removed (or that a dry run would remove), relative to the volume's folder. */
  files: string[];
  /** Bytes those files held. */
  bytes: number;
  reason: string;
}

export interface VolumePruneResult {
  volume: string;
  dryRun: boolean;
  decision: RetentionDecision<Sidecar>;
  /** In deletion order (newest first). */
  deleted: DeletedBackup[];
  /** Debris of an interrupted prune removed (archives or manifests no sidecar claims). */
  debris: string[];
  /** One line per failure; pruning of this volume stopped at the first one. */
  errors: string[];
}

/** A step of deleting one backup, for tests that stop a prune half way (a crash). */
export type PruneStep = 'sidecar-removed' | 'archive-removed' | 'manifest-removed';

export interface PruneOptions {
  dryRun: boolean;
  now: Date;
  utcCalendar?: boolean;
  /** Called after each step of each deletion. */
  afterStep?: (step: PruneStep, backup: Sidecar) => void;
}

/**
 * The bytes deleting a backup frees: its archive, manifest and sidecar. An
 * rsync tree counts the files only it holds (one link); the others are
 * hardlinks shared with neighbouring trees and stay.
 */
export async function backupBytes(store: VolumeStore, s: Sidecar): Promise<number> {
  return store.storage.bytesHeld(store.folder, backupFiles(s));
}

/**
 * Deletes one backup: the sidecar (durably gone before anything else), then
 * the archive (an rsync tree recursively) and the manifest. A missing
 * archive or manifest is not an error (a crash before left it so). The
 * sidecar was just listed under the volume's lock, so its name is what
 * parseSidecar checked; a storage that fails to remove it stops the prune
 * before the backup's files go.
 */
export async function deleteBackup(store: VolumeStore, s: Sidecar, afterStep?: PruneOptions['afterStep']): Promise<void> {
  const remove = async (name: string): Promise<void> => {
    try {
      await store.storage.remove(store.folder, name);
    } catch (e) {
      throw new Error(`removing ${store.show(name)}: ${(e as Error).message}`);
    }
  };
  await remove(sidecarName(s));
  afterStep?.('sidecar-removed', s);
  await remove(s.archive);
  afterStep?.('archive-removed', s);
  await remove(s.manifest);
  afterStep?.('manifest-removed', s);
}

/**
 * Archives and manifests that no sidecar claims and that are older than the
 * newest backup: what an interrupted prune leaves. Younger unclaimed files
 * may belong to a backup being committed right now, so they are left to the
 * next backup's own debris sweep (VolumeStore.tidy), as are staged files.
 */
export async function pruneDebris(store: VolumeStore, backups: readonly Sidecar[]): Promise<string[]> {
  if (backups.length === 0) return [];
  const claimed = new Set<string>();
  for (const s of backups) for (const f of backupFiles(s)) claimed.add(f);
  const newest = backups[backups.length - 1]!.id;
  return (await store.names()).filter((name) => {
    const m = BACKUP_FILE_RE.exec(name);
    return m !== null && !claimed.has(name) && m[1]! < newest;
  });
}

/** Decides and (unless dryRun) prunes one volume. Throws RetentionRulesError for rules that keep nothing. */
export async function pruneVolume(store: VolumeStore, rules: RetentionRules, opts: PruneOptions): Promise<VolumePruneResult> {
  const errors: string[] = [];
  const backups = await store.list((msg) => errors.push(`${store.volume}: ${msg}`));
  const decision = decideRetention(backups, opts.now, rules, timeOfId, { utc: opts.utcCalendar });
  const result: VolumePruneResult = { volume: store.volume, dryRun: opts.dryRun, decision, deleted: [], debris: [], errors };
  // A sidecar we could not read hides which files it claims: touch nothing in this folder.
  if (errors.length) {
    errors.push(`${store.volume}: not pruned while a sidecar cannot be read (remove or repair it first)`);
    return result;
  }
  const reasonOf = new Map(decision.items.map((i) => [i.backup.id, i.reasons.join('; ')]));
  for (const s of decision.drop) {
    const entry: DeletedBackup = { id: s.id, kind: s.kind, files: backupFiles(s), bytes: await backupBytes(store, s), reason: reasonOf.get(s.id)! };
    if (!opts.dryRun) {
      try {
        await deleteBackup(store, s, opts.afterStep);
      } catch (e) {
        // Older backups may be needed by this one: stop here rather than break its chain.
        errors.push(`${store.volume}: ${(e as Error).message}; stopped pruning this volume (${decision.drop.length - result.deleted.length} backups left to delete)`);
        return result;
      }
    }
    result.deleted.push(entry);
  }
  // what this prune deleted is gone already; a dry run must not call its files debris
  for (const name of await pruneDebris(store, backups)) {
    if (opts.dryRun) {
      result.debris.push(name);
      continue;
    }
    try {
      await store.storage.remove(store.folder, name); // an rsync tree is a directory
      result.debris.push(name);
    } catch (e) {
      errors.push(`${store.volume}: removing debris ${store.show(name)}: ${(e as Error).message}`);
    }
  }
  return result;
}

/**
 * pruneVolume under the volume's backup lock (a dry run needs none). Throws
 * VolumeBusyError, having deleted nothing, while a backup of the volume runs.
 */
export async function pruneVolumeLocked(store: VolumeStore, rules: RetentionRules, opts: PruneOptions & { logger?: Logger }): Promise<VolumePruneResult> {
  if (opts.dryRun || !(await store.exists())) return pruneVolume(store, rules, opts);
  const lock = await lockVolume(store, opts.logger ?? silentLogger);
  try {
    return await pruneVolume(store, rules, opts);
  } finally {
    await lock.release();
  }
}
