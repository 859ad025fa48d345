/**
 * The rsync engine: each backup is a browsable dated tree,
 *   <volume dir>/<id>.tree/   made by rsync -aHAX --numeric-ids --delete --link-dest=<previous tree>
 * in which unchanged files are hardlinks into the previous tree, so every
 * tree is a complete copy that costs only what changed. The tree is built as
 * "<id>.tree.partial" and renamed when rsync succeeded; a manifest of the
 * source (tree-scanner.ts) and the sidecar, written last, make it a backup
 * that list, ls, restore, verify and prune handle like an archive: a "full"
 * that needs nothing else.
 */
import fs from 'node:fs';
import path from 'node:path';
import { run } from '../../host/exec.js';
import type { Logger } from '../../util/log.js';
import { ManifestCursor, ManifestWriter } from '../../medium/manifest-file.js';
import { fsyncDir, writeFileAtomic } from '../../storage/atomic-file.js';
import type { Sidecar } from '../../medium/sidecar.js';
import { nextBackupId, VolumeStore } from '../../repo/volume-store.js';
import { prepareUnderVolumeLock } from '../../repo/volume-lock.js';
import { TreeScanner, type ScanStats } from './tree-scanner.js';

export interface MirrorRequest {
  sourceDir: string;
  medium: string;
  host: string;
  volume: string;
  logger: Logger;
  now?: () => Date;
  /** Kill rsync after this long (default 12 h). */
  timeoutMs?: number;
  /** Aborting it (SIGTERM of the run) stops rsync at once; the partial tree is then removed. */
  signal?: AbortSignal;
}

export interface PreparedMirror {
  id: string;
  treePath: string;
  unreadable: string[];
  /** Directories of another filesystem kept empty (rsync --one-file-system), e.g. nested btrfs subvolumes. */
  otherFilesystems: string[];
  stats: { entries: number; hashed: number; unchanged: number; bytesRead: number; sourceBytes: number };
  commit(): Sidecar;
  abort(): Promise<void>;
}

/** The sidecar of an rsync tree: a full that needs nothing else (local and remote targets alike). */
export function treeSidecar(t: {
  volume: string;
  host: string;
  id: string;
  treeName: string;
  manifestName: string;
  startedAt: Date;
  finishedAt: Date;
  stats: ScanStats;
  unreadable: string[];
  manifestXxh64: string;
}): Sidecar {
  const s = t.stats;
  return {
    format: 'xenbackup-backup',
    version: 1,
    volume: t.volume,
    host: t.host,
    id: t.id,
    kind: 'full',
    base: null,
    chain: t.id,
    engine: 'rsync',
    compression: 'none',
    archive: t.treeName,
    manifest: t.manifestName,
    startedAt: t.startedAt.toISOString(),
    finishedAt: t.finishedAt.toISOString(),
    status: t.unreadable.length ? 'partial' : 'complete',
    stats: { entries: s.entries, stored: s.hashed, unchanged: s.unchanged, deleted: 0, filesRead: s.hashed, bytesRead: s.bytesRead, sourceBytes: s.sourceBytes },
    tarBytes: 0,
    archiveBytes: 0,
    archiveXxh64: '',
    manifestXxh64: t.manifestXxh64,
    frames: [],
    warnings: [],
    unreadable: t.unreadable.slice(0, 200),
  };
}

export function rsyncArgs(source: string, target: string, linkDest: string | undefined): string[] {
  // --modify-window=-1: compare mtimes to the nanosecond; at whole seconds, a file rewritten with the same size
  // within the second of the previous backup would be hardlinked to its stale copy.
  const args = ['-aHAX', '--numeric-ids', '--delete', '--one-file-system', '--sparse', '--modify-window=-1'];
  if (linkDest) args.push(`--link-dest=${linkDest}`);
  args.push(source.replace(/\/*$/, '/'), target.replace(/\/*$/, '/'));
  return args;
}

export async function prepareMirror(req: MirrorRequest): Promise<PreparedMirror> {
  if (!fs.statSync(req.sourceDir).isDirectory()) throw new Error(`source ${req.sourceDir} is not a directory`);
  const store = new VolumeStore(req.medium, req.host, req.volume);
  store.ensure();
  // Held until commit() or abort(): a second backup of this volume would take our .partial files for debris.
  return prepareUnderVolumeLock(store.dir, req.volume, req.logger, () => prepareMirrorLocked(req, store));
}

async function prepareMirrorLocked(req: MirrorRequest, store: VolumeStore): Promise<PreparedMirror> {
  const log = req.logger;
  const now = req.now ?? (() => new Date());
  for (const name of store.removeDebris()) log.warn(`${req.volume}: removed ${name}, left by an interrupted run`);
  const backups = store.list((m) => log.warn(m));
  const previous = [...backups].reverse().find((b) => b.engine === 'rsync');
  const { id, started } = await nextBackupId(backups, now, req.volume, store.dir);
  const treeName = `${id}.tree`;
  const tree = store.pathOf(treeName);
  const partial = `${tree}.partial`;
  const manifestPath = store.pathOf(`${id}.tree.manifest`);
  const sidecarPath = store.pathOf(`${id}.tree.json`);
  const linkDest = previous ? store.pathOf(previous.archive) : undefined;
  log.info(`${req.volume}: rsync mirror ${id} of ${req.sourceDir}${linkDest ? ` (unchanged files linked to ${previous!.id})` : ' (first tree: full copy)'}`);

  fs.mkdirSync(partial, { mode: 0o700 });
  let manifest: ManifestWriter | undefined;
  try {
    await run('rsync', rsyncArgs(req.sourceDir, partial, linkDest), { logger: log, timeoutMs: req.timeoutMs ?? 12 * 3600_000, idle: true, signal: req.signal });
    // rsync copies the source root's mode onto the tree; the tree must stay private (it holds /etc/shadow).
    fs.chmodSync(partial, 0o700);
    let cursor: ManifestCursor | null = null;
    if (previous) {
      try {
        cursor = new ManifestCursor(store.pathOf(previous.manifest)); // checks it (checksum, count)
      } catch (e) {
        log.warn(`${req.volume}: the manifest of ${previous.id} is unusable (${(e as Error).message}); hashing every file`);
      }
    }
    manifest = new ManifestWriter(manifestPath, { volume: req.volume, backup: id, base: null, createdAt: started.toISOString() });
    const scanner = new TreeScanner(req.sourceDir, id, manifest, cursor, log);
    scanner.run();
    const m = manifest;
    let done = false;
    return {
      id,
      treePath: tree,
      unreadable: scanner.unreadable,
      otherFilesystems: scanner.otherFilesystems,
      stats: scanner.stats,
      commit(): Sidecar {
        if (done) throw new Error('mirror already committed or aborted');
        done = true;
        fs.renameSync(partial, tree);
        fsyncDir(store.dir);
        const manifestXxh64 = m.commit();
        const sidecar = treeSidecar({
          volume: req.volume,
          host: req.host,
          id,
          treeName,
          manifestName: path.basename(manifestPath),
          startedAt: started,
          finishedAt: now(),
          stats: scanner.stats,
          unreadable: scanner.unreadable,
          manifestXxh64,
        });
        writeFileAtomic(sidecarPath, JSON.stringify(sidecar, null, 1) + '\n');
        return sidecar;
      },
      async abort(): Promise<void> {
        if (done) return;
        done = true;
        m.abort();
        fs.rmSync(partial, { recursive: true, force: true });
      },
    };
  } catch (e) {
    manifest?.abort();
    fs.rmSync(partial, { recursive: true, force: true });
    throw e;
  }
}
