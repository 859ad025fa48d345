/**
 * One backup of one tree into its volume's folder, in two phases so the
 * caller can still refuse it: prepareBackup() writes the archive and the
 * manifest as ".partial" files and returns what happened; commit() makes
 * them durable and writes the sidecar last (only then does the backup
 * exist); abort() removes the partials. The cron job commits only after it
 * has confirmed the snapshot was still mounted and valid.
 */
import fs from 'node:fs';
import type { Logger } from '../../util/log.js';
import { decideKind, type KindDecision } from '../../core/chain.js';
import { ManifestCursor, ManifestWriter } from '../../medium/manifest-file.js';
import { writeFileAtomic } from '../../storage/atomic-file.js';
import { openBase } from '../../repo/chain-base.js';
import { prepareUnderVolumeLock } from '../../repo/volume-lock.js';
import type { Sidecar } from '../../medium/sidecar.js';
import { nextBackupId, timeOfId, VolumeStore } from '../../repo/volume-store.js';
import { ArchiveWriter } from './archive-writer.js';
import type { Compression } from '../compression.js';
import { TreeArchiver, type ArchiveStats } from './tree-archiver.js';
import { DirWalker, PREFETCH_MAX } from './dir-walker.js';
import os from 'node:os';
import path from 'node:path';

/**
 * Threads listing the source. The stat walk is what an incremental cannot skip; once unchanged
 * directories cost the main thread next to nothing (engines/tar/unchanged-dir.ts), it waited on one
 * walker thread most of the pass, and a second one uses the other core.
 */
const WALKER_THREADS = Math.min(2, os.availableParallelism());

export interface BackupRequest {
  sourceDir: string;
  medium: string;
  host: string;
  volume: string;
  compression: Compression;
  /** Compress at nice 19 (default): dom0 keeps serving the guests. `xenbackup backup` turns it off unless --nice. */
  idlePriority?: boolean;
  forceFull: boolean;
  fullIntervalDays: number;
  maxChainLength: number;
  /** FULL_WEEKDAY / FULL_MONTHDAY (see core/chain.ts). */
  fullWeekday?: number;
  fullMonthday?: number;
  oneFileSystem: boolean;
  excludes: Buffer[];
  liveSource: boolean;
  logger: Logger;
  now?: () => Date;
  onProgress?: (stats: ArchiveStats, at: Buffer) => void;
  signal?: AbortSignal;
}

export interface PreparedBackup {
  id: string;
  decision: KindDecision;
  stats: ArchiveStats;
  warnings: string[];
  unreadable: string[];
  /** Directories of another filesystem that were kept empty (oneFileSystem), e.g. nested btrfs subvolumes. */
  otherFilesystems: string[];
  archivePath: string;
  archiveBytes: number;
  /** Makes the backup durable and visible; returns its sidecar. */
  commit(): Sidecar;
  /** Removes everything this backup wrote. */
  abort(): Promise<void>;
}

export async function prepareBackup(req: BackupRequest): Promise<PreparedBackup> {
  let st: fs.Stats;
  try {
    st = fs.statSync(req.sourceDir);
  } catch (e) {
    throw new Error(`source ${req.sourceDir}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : (e as Error).message}`);
  }
  if (!st.isDirectory()) throw new Error(`source ${req.sourceDir} is not a directory`);
  fs.accessSync(req.sourceDir, fs.constants.R_OK | fs.constants.X_OK);

  const store = new VolumeStore(req.medium, req.host, req.volume);
  store.ensure();
  // Held until commit() or abort(): a second backup of this volume would take our .partial files for debris.
  return prepareUnderVolumeLock(store.dir, req.volume, req.logger, () => prepareLocked(req, store));
}

async function prepareLocked(req: BackupRequest, store: VolumeStore): Promise<PreparedBackup> {
  const log = req.logger;
  const now = req.now ?? (() => new Date());
  // The source's listings start first, on their own thread, while the medium is tidied, the backup id
  // chosen (which may wait for the next second) and the previous manifest read and checked: they need
  // nothing from any of it. Small files are read ahead too once the backup is known to be a full.
  // Stopped once the archive is written, or on any failure.
  const walker = new DirWalker(Buffer.from(req.sourceDir), {
    excludes: req.excludes,
    oneFileSystem: req.oneFileSystem,
    prefetchMax: req.forceFull ? PREFETCH_MAX : 0,
    verifyAfterRead: req.liveSource,
    threads: WALKER_THREADS,
  });
  try {
    for (const name of store.removeDebris()) log.warn(`${req.volume}: removed ${name}, left by an interrupted run`);
    const backups = store.list((msg) => log.warn(msg));
    const { id, started } = await nextBackupId(backups, now, req.volume, store.dir);
    const decision = decideKind(backups, started, req, timeOfId);
    if (decision.kind === 'full') walker.prefetch(PREFETCH_MAX);
    return await prepareWalking(req, store, backups, id, started, decision, walker);
  } finally {
    walker.stop();
  }
}

async function prepareWalking(
  req: BackupRequest,
  store: VolumeStore,
  backups: ReturnType<VolumeStore['list']>,
  id: string,
  started: Date,
  decided: KindDecision,
  walker: DirWalker,
): Promise<PreparedBackup> {
  const log = req.logger;
  const now = req.now ?? (() => new Date());
  const { decision, previous, warning } = openBase(
    decided,
    backups,
    req.volume,
    // A raw backup's manifest is a chunk map (the fstype was changed from raw): nothing a tree can build on.
    (base) => (base.engine === 'raw' ? `the previous backup ${base.id} is a raw image, not a file tree` : undefined),
    (base) => new ManifestCursor(store.pathOf(base.manifest)), // checks it (checksum, count)
    log,
  );
  const warnings: string[] = warning ? [warning] : [];
  const kind = decision.kind;
  const base = decision.kind === 'incremental' ? decision.base : null;
  const chain = base ? backups.find((b) => b.id === base)!.chain : id;
  log.info(`${req.volume}: ${kind} backup ${id} of ${req.sourceDir} (${decision.reason})`);

  const files = store.filesFor(id, kind, req.compression);
  const writer = new ArchiveWriter(files.archive, req.compression, log, req.idlePriority ?? true);
  let manifest: ManifestWriter | undefined;
  try {
    manifest = new ManifestWriter(files.manifest, {
      volume: req.volume,
      backup: id,
      base,
      createdAt: started.toISOString(),
    });
    const archiver = new TreeArchiver(
      {
        sourceDir: req.sourceDir,
        backupId: id,
        oneFileSystem: req.oneFileSystem,
        excludes: req.excludes,
        liveSource: req.liveSource,
        logger: log,
        onProgress: req.onProgress,
        signal: req.signal,
      },
      writer,
      manifest,
      previous,
      walker,
    );
    await archiver.run();
    // The manifest's bytes reach the disk while the archive's last segments are compressed and synced.
    // Both settle before anything is aborted: no fsync may still run on a file being closed.
    const [finished, synced] = await Promise.allSettled([writer.finish(), manifest.flushToDisk()]);
    if (finished.status === 'rejected') throw finished.reason;
    if (synced.status === 'rejected') throw synced.reason;
    const archive = finished.value;
    warnings.push(...archiver.warnings);
    const m = manifest;
    let done = false;
    return {
      id,
      decision,
      stats: archiver.stats,
      warnings,
      unreadable: archiver.unreadable,
      otherFilesystems: archiver.otherFilesystems,
      archivePath: files.archive,
      archiveBytes: archive.archiveBytes,
      commit(): Sidecar {
        if (done) throw new Error('backup already committed or aborted');
        done = true;
        writer.commit();
        const manifestXxh64 = m.commit();
        const sidecar: Sidecar = {
          format: 'xenbackup-backup',
          version: 1,
          volume: req.volume,
          host: req.host,
          id,
          kind,
          base,
          chain,
          engine: 'tar',
          compression: req.compression,
          archive: path.basename(files.archive),
          manifest: path.basename(files.manifest),
          startedAt: started.toISOString(),
          finishedAt: now().toISOString(),
          status: archiver.unreadable.length ? 'partial' : 'complete',
          stats: archiver.stats,
          tarBytes: archive.tarBytes,
          archiveBytes: archive.archiveBytes,
          archiveXxh64: archive.xxh64,
          manifestXxh64,
          frames: archive.frames,
          warnings: warnings.slice(0, 200),
          unreadable: archiver.unreadable.slice(0, 200),
        };
        writeFileAtomic(files.sidecar, JSON.stringify(sidecar, null, 1) + '\n');
        return sidecar;
      },
      async abort(): Promise<void> {
        if (done) return;
        done = true;
        await writer.abort();
        m.abort();
        fs.rmSync(files.archive, { force: true });
        fs.rmSync(files.manifest, { force: true });
      },
    };
  } catch (e) {
    await writer.abort();
    manifest?.abort();
    throw e;
  }
}
