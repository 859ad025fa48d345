/**
 * Restore: pick the backup (the newest, or the newest at or before --at),
 * plan from its manifest which entries to recreate (core/restore-plan),
 * then, per archive holding any of them, decompress from the frame that
 * holds the first wanted member, skip to it, and hand each wanted member to
 * the RestoreWriter. A single file costs one frame, not the whole chain.
 */
import type { Logger } from '../util/log.js';
import { restorePointAt } from '../core/chain.js';
import { planRestore, type PlannedItem } from '../core/restore-plan.js';
import { showPath } from '../core/path-order.js';
import { readBlocks, verifyManifestOf } from '../medium/manifest-file.js';
import type { Sidecar } from '../medium/sidecar.js';
import { backupIdFor, VolumeStore } from '../repo/volume-store.js';
import { TarParser } from '../tar/read.js';
import type { TarEntry } from '../tar/entry.js';
import type { ManifestEntry } from '../core/manifest.js';
import { openDecompressed } from './tar/decompression.js';
import { DamagedBackupError, RestoreError, RestoreWriter } from './restore-writer.js';
import { checkMember, checkPlanShape } from './restore-checks.js';
import { TarFormatError } from '../tar/errors.js';
import { CommandError } from '../host/command-error.js';
import { readTreeMembers } from './rsync/tree-reader.js';

export interface RestoreRequest {
  medium: string;
  host: string;
  volume: string;
  paths: Buffer[];
  targetDir: string;
  at?: Date;
  force: boolean;
  logger: Logger;
}

export interface RestoreResult {
  backup: Sidecar;
  entries: number;
  files: number;
  bytes: number;
  errors: string[];
}

/** The backup a restore as of `at` uses; a clear error when there is none. */
export function chooseBackup(store: VolumeStore, at: Date | undefined, log: Logger): Sidecar {
  const backups = store.list((m) => log.warn(m));
  if (backups.length === 0) throw new RestoreError(`no backups of ${store.volume} under ${store.dir}`);
  const point = restorePointAt(backups, at ? backupIdFor(at) : undefined);
  if (!point) {
    throw new RestoreError(`no backup of ${store.volume} at or before ${at!.toISOString()}; the first is ${backups[0]!.id}`);
  }
  return point;
}

export function loadPlanBlocks(store: VolumeStore, backup: Sidecar): ReturnType<typeof readBlocks> {
  const file = store.pathOf(backup.manifest);
  verifyManifestOf(file, { ...backup, volume: store.volume });
  return readBlocks(file);
}

export async function restore(req: RestoreRequest): Promise<RestoreResult> {
  const log = req.logger;
  const store = new VolumeStore(req.medium, req.host, req.volume);
  const backup = chooseBackup(store, req.at, log);
  const plan = planRestore(loadPlanBlocks(store, backup), req.paths);
  if (plan.missing.length) {
    throw new RestoreError(`not in backup ${backup.id} of ${req.volume}: ${plan.missing.map((p) => showPath(p) || '/').join(', ')}`);
  }
  // Before anything is written: a manifest that puts entries under a symlink or lists a path twice.
  checkPlanShape(plan.items, `backup ${backup.id} of ${req.volume}`);
  const writer = new RestoreWriter(req.targetDir, req.force, log);
  try {
    return await restoreInto(writer, store, backup, plan.items, req);
  } finally {
    writer.close();
  }
}

async function restoreInto(writer: RestoreWriter, store: VolumeStore, backup: Sidecar, items: PlannedItem[], req: RestoreRequest): Promise<RestoreResult> {
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

  const sidecars = new Map(store.list().map((s) => [s.id, s]));
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
      : sidecars.get(archiveId)?.engine === 'rsync'
        ? `tree:${rel.toString('latin1')}` // a tree has no member offsets: each path is its own
        : `${archiveId}:${e.dataOffset ?? e.offset}`;
  const firstOfGroup = new Map<string, Buffer>();
  for (const [archiveId, members] of byArchive) {
    const sc = sidecars.get(archiveId);
    if (!sc) throw new DamagedBackupError(`backup ${archiveId}, which ${backup.id} needs, is missing from ${store.dir}`);
    const onBegin = (item: PlannedItem, meta: TarEntry): boolean => {
      const key = groupOf(archiveId, item.entry, item.rel);
      const first = firstOfGroup.get(key);
      if (sc.engine !== 'rsync') checkMember(item, meta, sc.archive);
      if (first && item.entry.type === 'file') {
        writer.hardlink(item.rel, first);
        return false;
      }
      if (item.entry.type === 'file') firstOfGroup.set(key, item.rel);
      writer.begin(item.rel, item.entry, meta);
      return item.entry.type === 'file';
    };
    if (sc.engine === 'rsync') {
      await readTreeMembers(store, sc, [...members.values()].flat(), onBegin, writer);
      continue;
    }
    await readMembers(store, sc, members, (item, meta, kind) => kind === 'begin' && onBegin(item, meta), writer, log);
  }
  writer.finish();
  if (writer.errors.length) for (const e of writer.errors) log.error(e);
  return { backup, entries: items.length, files: writer.filesWritten, bytes: writer.bytesWritten, errors: writer.errors };
}

type BeginHandler = (item: PlannedItem, meta: TarEntry, kind: 'begin') => boolean;

/** Frame whose tar offset is the largest <= offset. */
function frameFor(frames: Array<[number, number]>, offset: number): [number, number] {
  let lo = 0;
  let hi = frames.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (frames[mid]![1] <= offset) lo = mid;
    else hi = mid - 1;
  }
  return frames[lo] ?? [0, 0];
}

const RESTART_GAP = 64 << 20;

/**
 * Reads the wanted members of one archive in offset order. Members close
 * together are read in one pass; a large gap restarts decompression at the
 * frame holding the next wanted member.
 */
async function readMembers(
  store: VolumeStore,
  sc: Sidecar,
  members: Map<number, PlannedItem[]>,
  onBegin: BeginHandler,
  writer: RestoreWriter,
  log: Logger,
): Promise<void> {
  const offsets = [...members.keys()].sort((a, b) => a - b);
  const file = store.pathOf(sc.archive);
  let i = 0;
  while (i < offsets.length) {
    const start = offsets[i]!;
    const [compressed, tarOffset] = frameFor(sc.frames, start);
    const src = openDecompressed(sc.compression, file, compressed, log);
    let pos = tarOffset; // tar offset of the next byte from the stream
    const parserBase = start;
    let receiving = false;
    let stopAt = -1;
    // Set once the last member of this pass has been fully handed over.
    let passDone = false;
    // The wanted member whose data is being read, if any (for the message of an archive that ends in it).
    let inMember = -1;
    const parser = new TarParser(
      {
        entry: (meta, info) => {
          const abs = parserBase + info.offset;
          receiving = false;
          if (abs === offsets[i]) {
            inMember = abs;
            const items = members.get(abs)!;
            i++;
            for (const item of items) {
              if (onBegin(item, meta, 'begin')) receiving = true;
            }
            if (i < offsets.length && offsets[i]! - abs > RESTART_GAP) stopAt = i;
          } else if (abs > (offsets[i] ?? Infinity)) {
            throw new DamagedBackupError(`${file}: no member at tar offset ${offsets[i]}, where the manifest places ${showPath(members.get(offsets[i]!)![0]!.rel) || '/'} (the manifest and the archive disagree)`);
          }
        },
        data: (chunk, fileOffset) => {
          if (receiving) writer.data(chunk, fileOffset);
        },
        endEntry: () => {
          if (receiving) writer.end();
          receiving = false;
          inMember = -1;
          if (i >= offsets.length || stopAt === i) passDone = true;
        },
      },
      { source: file },
    );
    try {
      try {
        for await (const raw of src.stream) {
        let chunk = raw as Buffer;
        if (pos < start) {
          const skip = Math.min(chunk.length, start - pos);
          pos += skip;
          chunk = chunk.subarray(skip);
          if (chunk.length === 0) continue;
        }
          pos += chunk.length;
          parser.write(chunk);
          if (passDone || parser.ended) break;
        }
      } finally {
        src.stop();
      }
      await src.done;
    } catch (e) {
      // The parser names the archive and the byte; one line, as damage of the medium.
      // Its offset counts from where this pass started reading: made an offset in the whole tar stream.
      if (e instanceof TarFormatError) throw new DamagedBackupError(e.message.replace(/ at byte \d+$/, ` at tar offset ${e.offset + start}`));
      // zstd's exit status, or zlib's complaint: the compressed bytes are damaged.
      if (e instanceof CommandError || /^Z_/.test(String((e as NodeJS.ErrnoException).code))) {
        throw new DamagedBackupError(`${file}: cannot be decompressed: ${(e as Error).message.split('\n')[0]}`);
      }
      throw e;
    }
    if (!passDone) {
      const at = inMember >= 0 ? inMember : offsets[i]!;
      const rel = members.get(at)![0]!.rel;
      throw new DamagedBackupError(
        `${file}: ends ${inMember >= 0 ? 'inside' : 'before'} the member of ${showPath(rel) || '/'} at tar offset ${at} (truncated or damaged archive)`,
      );
    }
  }
}
