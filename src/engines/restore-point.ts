/**
 * The backup a restore, ls or raw restore reads (the newest, or the newest
 * at or before --at), and its manifest's blocks, checked against its
 * sidecar first and read from a local copy when the storage is remote.
 */
import type { Logger } from '../util/log.js';
import { restorePointAt } from '../core/chain.js';
import { readBlocks, verifyManifestOf } from '../medium/manifest-file.js';
import type { Sidecar } from '../medium/sidecar.js';
import { localCopy } from '../repo/local-copy.js';
import { backupIdFor, type VolumeStore } from '../repo/volume-store.js';
import { RestoreError } from './restore-errors.js';

/** The backup a restore as of `at` uses; a clear error when there is none. */
export async function chooseBackup(store: VolumeStore, at: Date | undefined, log: Logger): Promise<Sidecar> {
  const backups = await store.list((m) => log.warn(m));
  if (backups.length === 0) throw new RestoreError(`no backups of ${store.volume} under ${store.dir}`);
  const point = restorePointAt(backups, at ? backupIdFor(at) : undefined);
  if (!point) {
    throw new RestoreError(`no backup of ${store.volume} at or before ${at!.toISOString()}; the first is ${backups[0]!.id}`);
  }
  return point;
}

/**
 * The blocks of a backup's manifest, checked against its sidecar (xxh64,
 * header) first; `use` runs while the file (or its local copy) is there,
 * and may read the blocks more than once.
 */
export async function withPlanBlocks<T>(store: VolumeStore, backup: Sidecar, use: (blocks: () => ReturnType<typeof readBlocks>) => T, tempDir?: string): Promise<T> {
  const copy = await localCopy(store, backup.manifest, tempDir);
  try {
    verifyManifestOf(copy.path, { ...backup, volume: store.volume }, store.show(backup.manifest));
    return use(() => readBlocks(copy.path));
  } finally {
    copy.release();
  }
}

