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
import fs from 'node:fs';
import path from 'node:path';
import { sidecarName } from '../medium/layout.js';
import { BACKUP_FILE_RE, timeOfId, type VolumeStore } from './volume-store.js';
import { fsyncDir } from '../storage/atomic-file.js';
import type { Sidecar } from '../medium/sidecar.js';
import { decideRetention, type RetentionDecision, type RetentionRules } from '../core/retention.js';
import { lockVolume } from './volume-lock.js';
import { silentLogger, type Logger } from '../util/log.js';

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
export function backupBytes(store: VolumeStore, s: Sidecar): number {
  let total = 0;
  for (const name of backupFiles(s)) total += bytesOf(store.pathOf(name));
  return total;
}

function bytesOf(p: string): number {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return 0; // already gone
  }
  if (!st.isDirectory()) return st.nlink > 1 ? 0 : st.size;
  let total = st.size;
  for (const name of fs.readdirSync(p)) total += bytesOf(path.join(p, name));
  return total;
}

/** A backup's file names in deletion order: the sidecar first. */
export function backupFiles(s: Sidecar): string[] {
  return [sidecarName(s), s.archive, s.manifest];
}

export { sidecarName };

/**
 * Deletes one backup: sidecar, fsync of the folder, archive (an rsync tree
 * recursively), manifest, fsync. A missing archive or manifest is not an
 * error (a crash before left it so); a sidecar that cannot be removed is, or
 * one that is not there (it was just listed: then its name is not what we
 * think), and then nothing else goes.
 */
export function deleteBackup(store: VolumeStore, s: Sidecar, afterStep?: PruneOptions['afterStep']): void {
  const remove = (name: string, mustExist: boolean): void => {
    const p = store.pathOf(name);
    try {
      if (fs.lstatSync(p).isDirectory()) fs.rmSync(p, { recursive: true });
      else fs.unlinkSync(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || mustExist) throw new Error(`removing ${p}: ${(e as Error).message}`);
    }
  };
  remove(sidecarName(s), true);
  fsyncDir(store.dir);
  afterStep?.('sidecar-removed', s);
  remove(s.archive, false);
  afterStep?.('archive-removed', s);
  remove(s.manifest, false);
  fsyncDir(store.dir);
  afterStep?.('manifest-removed', s);
}

/**
 * Archives and manifests that no sidecar claims and that are older than the
 * newest backup: what an interrupted prune leaves. Younger unclaimed files
 * may belong to a backup being committed right now, so they are left to the
 * next backup's own debris sweep (VolumeStore.removeDebris), as are ".partial" files.
 */
export function pruneDebris(store: VolumeStore, backups: readonly Sidecar[]): string[] {
  if (!store.exists() || backups.length === 0) return [];
  const claimed = new Set<string>();
  for (const s of backups) for (const f of backupFiles(s)) claimed.add(f);
  const newest = backups[backups.length - 1]!.id;
  return fs.readdirSync(store.dir).filter((name) => {
    const m = BACKUP_FILE_RE.exec(name);
    return m !== null && !claimed.has(name) && m[1]! < newest;
  });
}

/** Decides and (unless dryRun) prunes one volume. Throws RetentionRulesError for rules that keep nothing. */
export function pruneVolume(store: VolumeStore, rules: RetentionRules, opts: PruneOptions): VolumePruneResult {
  const errors: string[] = [];
  const backups = store.list((msg) => errors.push(`${store.volume}: ${msg}`));
  const decision = decideRetention(backups, opts.now, rules, timeOfId, { utc: opts.utcCalendar });
  const result: VolumePruneResult = { volume: store.volume, dryRun: opts.dryRun, decision, deleted: [], debris: [], errors };
  // A sidecar we could not read hides which files it claims: touch nothing in this folder.
  if (errors.length) {
    errors.push(`${store.volume}: not pruned while a sidecar cannot be read (remove or repair it first)`);
    return result;
  }
  const reasonOf = new Map(decision.items.map((i) => [i.backup.id, i.reasons.join('; ')]));
  for (const s of decision.drop) {
    const entry: DeletedBackup = { id: s.id, kind: s.kind, files: backupFiles(s), bytes: backupBytes(store, s), reason: reasonOf.get(s.id)! };
    if (!opts.dryRun) {
      try {
        deleteBackup(store, s, opts.afterStep);
      } catch (e) {
        // Older backups may be needed by this one: stop here rather than break its chain.
        errors.push(`${store.volume}: ${(e as Error).message}; stopped pruning this volume (${decision.drop.length - result.deleted.length} backups left to delete)`);
        return result;
      }
    }
    result.deleted.push(entry);
  }
  // what this prune deleted is gone already; a dry run must not call its files debris
  const debris = pruneDebris(store, backups);
  for (const name of debris) {
    if (opts.dryRun) {
      result.debris.push(name);
      continue;
    }
    try {
      fs.rmSync(store.pathOf(name), { recursive: true }); // an rsync tree is a directory
      result.debris.push(name);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') errors.push(`${store.volume}: removing debris ${store.pathOf(name)}: ${(e as Error).message}`);
    }
  }
  if (!opts.dryRun && result.debris.length) fsyncDir(store.dir);
  return result;
}

/**
 * pruneVolume under the volume's backup lock (a dry run needs none). Throws
 * VolumeBusyError, having deleted nothing, while a backup of the volume runs.
 */
export async function pruneVolumeLocked(store: VolumeStore, rules: RetentionRules, opts: PruneOptions & { logger?: Logger }): Promise<VolumePruneResult> {
  if (opts.dryRun || !store.exists()) return pruneVolume(store, rules, opts);
  const lock = await lockVolume(store.dir, store.volume, opts.logger ?? silentLogger);
  try {
    return pruneVolume(store, rules, opts);
  } finally {
    lock.release();
  }
}
