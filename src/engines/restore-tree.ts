/**
 * Restore of a file tree, shared by the engines whose backups are trees
 * (tar, rsync): plan from the chosen backup's manifest, refuse a plan that
 * is not a tree (restore-checks.ts), then hand each planned item to the
 * RestoreWriter, which writes beneath --to. Where each item's bytes come
 * from is the engine's MemberSource: the members of tar archives, the files
 * of an rsync tree. A single file costs one frame of one archive, not the
 * whole chain.
 */
import type { Logger } from '../util/log.js';
import { planRestore, type PlannedItem } from '../core/restore-plan.js';
import { showPath } from '../core/path-order.js';
import type { ManifestEntry } from '../core/manifest.js';
import type { Sidecar } from '../medium/sidecar.js';
import type { VolumeStore } from '../repo/volume-store.js';
import { formatBytes } from '../util/human-format.js';
import type { TarEntry } from '../tar/entry.js';
import { DamagedBackupError, RestoreError, RestoreWriter } from './restore-writer.js';
import { checkMember, checkPlanShape } from './restore-checks.js';
import { withPlanBlocks } from './restore-point.js';
import type { RestoreRequest, RestoreResult } from './restore-request.js';

/** Called as each wanted member begins; true when its data should follow (writer.data, writer.end). */
export type BeginHandler = (item: PlannedItem, meta: TarEntry) => boolean;

/** Where a tree engine's backups keep each entry. */
export interface MemberSource {
  /** Entries are members at offsets of an archive (tar): hardlinks group by data member, and members are checked against the manifest. */
  positional: boolean;
  /** Reads the wanted members of one backup, in the order of their offsets, handing each to onBegin and its data to the writer. */
  read(store: VolumeStore, backup: Sidecar, members: Map<number, PlannedItem[]>, onBegin: BeginHandler, writer: RestoreWriter, log: Logger): Promise<void>;
}

export async function restoreTree(req: RestoreRequest, store: VolumeStore, backup: Sidecar, source: MemberSource): Promise<RestoreResult> {
  const plan = await withPlanBlocks(store, backup, (blocks) => planRestore(blocks(req.paths), req.paths), req.tempDir);
  if (plan.missing.length) {
    throw new RestoreError(`not in backup ${backup.id} of ${req.volume}: ${plan.missing.map((p) => showPath(p) || '/').join(', ')}`);
  }
  // Before anything is written: a manifest that puts entries under a symlink or lists a path twice.
  checkPlanShape(plan.items, `backup ${backup.id} of ${req.volume}`);
  const writer = new RestoreWriter(req.targetDir, req.force, req.logger);
  try {
    return await restoreInto(writer, store, backup, plan.items, req, source);
  } finally {
    writer.close();
  }
}

async function restoreInto(writer: RestoreWriter, store: VolumeStore, backup: Sidecar, items: PlannedItem[], req: RestoreRequest, source: MemberSource): Promise<RestoreResult> {
  const log = req.logger;
  if (!req.force) {
    const conflicts = writer.conflicts(items);
    if (conflicts.length) {
      throw new RestoreError(
        `${conflicts.length} path(s) already exist in ${req.targetDir}, e.g. ${conflicts.slice(0, 3).join(', ')}; nothing was restored (use --force to replace them)`,
      );
    }
  }
  log.info(`${req.volume}: restoring ${items.length} entries from backup ${backup.id} into ${req.targetDir}`);

  const sidecars = new Map((await store.list()).map((s) => [s.id, s]));
  // Which members of which archive each item needs: the entry's own member (metadata), and for a
  // hardlink member the member holding the data.
  const byArchive = new Map<string, Map<number, PlannedItem[]>>();
  const want = (archive: string, offset: number, item: PlannedItem): void => {
    let m = byArchive.get(archive);
    if (!m) byArchive.set(archive, (m = new Map()));
    const list = m.get(offset);
    if (list) list.push(item);
    else m.set(offset, [item]);
  };
  for (const item of items) want(item.entry.archive, item.entry.dataOffset ?? item.entry.offset, item);

  // Directories first (in walk order), so files land in them; metadata comes at finish().
  // Names of one inode are linked again: grouped by inode, times and content (one backup's manifest
  // is one moment of one tree), not only by data member, because a directory rename can leave the
  // names of one file in different archives.
  const groupOf = (archiveId: string, e: ManifestEntry, rel: Buffer): string =>
    e.nlink > 1 && e.hash && !e.unread
      ? `ino:${e.ino}:${e.ctimeNs}:${e.mtimeNs}:${e.size}:${e.hash}`
      : source.positional
        ? `${archiveId}:${e.dataOffset ?? e.offset}`
        : `tree:${rel.toString('latin1')}`; // a tree has no member offsets: each path is its own
  const firstOfGroup = new Map<string, Buffer>();
  for (const [archiveId, members] of byArchive) {
    const sc = sidecars.get(archiveId);
    if (!sc) throw new DamagedBackupError(`backup ${archiveId}, which ${backup.id} needs, is missing from ${store.dir}`);
    const onBegin = (item: PlannedItem, meta: TarEntry): boolean => {
      const key = groupOf(archiveId, item.entry, item.rel);
      const first = firstOfGroup.get(key);
      if (source.positional) checkMember(item, meta, sc.archive);
      if (first && item.entry.type === 'file') {
        writer.hardlink(item.rel, first);
        return false;
      }
      if (item.entry.type === 'file') firstOfGroup.set(key, item.rel);
      writer.begin(item.rel, item.entry, meta);
      return item.entry.type === 'file';
    };
    await source.read(store, sc, members, onBegin, writer, log);
  }
  writer.finish();
  if (writer.errors.length) for (const e of writer.errors) log.error(e);
  return {
    backup,
    entries: items.length,
    files: writer.filesWritten,
    bytes: writer.bytesWritten,
    errors: writer.errors,
    summary: `restored ${items.length} entries (${writer.filesWritten} files, ${formatBytes(writer.bytesWritten)}) from backup ${backup.id} into ${req.targetDir}`,
    warnings: [],
  };
}

