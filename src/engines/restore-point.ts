/**
 * The backup a restore, ls or raw restore reads (the newest, or the newest
 * at or before --at), and its manifest's blocks, checked against its
 * sidecar first and read from a local copy when the storage is remote.
 */
import type { Logger } from '../util/log.js';
import { restorePointAt } from '../core/chain.js';
import { comparePaths, isWithin, parentOf } from '../core/path-order.js';
import { isVersion2Manifest, verifyManifestOf } from '../medium/manifest-file.js';
import { decodedBlocks, openManifest, type ManifestBlock, type ManifestReader } from '../medium/manifest-reader.js';
import { ancestorsOf, holdersFrom } from '../repo/chain-manifests.js';
import type { Sidecar } from '../medium/sidecar.js';
import { localCopy, type LocalCopy } from '../repo/local-copy.js';
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

/** The blocks a restore of `paths` reads (all of them for none, or for the root), in walk order. */
export type PlanBlocks = (paths?: Buffer[]) => Iterable<ManifestBlock>;

/**
 * The blocks of a backup's manifest, checked against its sidecar (xxh64,
 * header) first; `use` runs while the file (or its local copy) is there,
 * and may read the blocks more than once. A version 2 manifest's references
 * are read from its ancestors' manifests (copied too from a remote storage).
 */
export async function withPlanBlocks<T>(store: VolumeStore, backup: Sidecar, use: (blocks: PlanBlocks) => T, tempDir?: string): Promise<T> {
  const copies: LocalCopy[] = [];
  try {
    const copy = await localCopy(store, backup.manifest, tempDir);
    copies.push(copy);
    verifyManifestOf(copy.path, { ...backup, volume: store.volume }, store.show(backup.manifest));
    const ancestors = backup.kind === 'full' || !isVersion2Manifest(copy.path) ? [] : ancestorsOf(await store.list(), backup);
    const paths = new Map<string, string>();
    for (const s of ancestors) {
      const c = await localCopy(store, s.manifest, tempDir);
      copies.push(c);
      paths.set(s.id, c.path);
    }
    const reader = openManifest(copy.path, holdersFrom(ancestors, (s) => paths.get(s.id)));
    try {
      return use((wanted) => blocksFor(reader, wanted ?? []));
    } finally {
      reader.close();
    }
  } finally {
    for (const c of copies) c.release();
  }
}

/**
 * Only the blocks that can hold `wanted`: each path's parent's block and the
 * blocks of its own subtree, found through the manifest's index (version 2)
 * rather than by reading every block before them.
 */
function* blocksFor(reader: ManifestReader, wanted: Buffer[]): Generator<ManifestBlock> {
  if (wanted.length === 0 || wanted.some((p) => p.length === 0)) {
    yield* decodedBlocks(reader);
    return;
  }
  const targets = [...wanted.map((p) => ({ dir: parentOf(p), subtree: false })), ...wanted.map((p) => ({ dir: p, subtree: true }))];
  targets.sort((a, b) => comparePaths(a.dir, b.dir) || Number(b.subtree) - Number(a.subtree));
  let last: Buffer | undefined;
  for (const t of targets) {
    for (const block of decodedBlocks(reader, t.dir)) {
      if (last && comparePaths(block.dir, last) <= 0) continue;
      if (!(block.dir.equals(t.dir) || (t.subtree && isWithin(block.dir, t.dir)))) break;
      last = block.dir;
      yield block;
    }
  }
}
