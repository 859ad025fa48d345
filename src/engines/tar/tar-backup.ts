/**
 * One tar backup of one tree into its volume's folder, in the two phases
 * of engines/two-phase.ts so the caller can still refuse it: prepareBackup()
 * writes the archive and the manifest under staged names and returns what
 * happened; commit() publishes them and writes the sidecar last (only then
 * does the backup exist); abort() removes them. The cron job commits only
 * after it has confirmed the snapshot was still mounted and valid. The
 * archive and manifest writers write local files: this engine needs a
 * storage with local access.
 */
import fs from 'node:fs';
import os from 'node:os';
import type { Logger } from '../../util/log.js';
import { decideKind, type FullPolicy, type KindDecision } from '../../core/chain.js';
import { ManifestCursor, openManifest } from '../../medium/manifest-reader.js';
import { ManifestWriter } from '../../medium/manifest-writer.js';
import { chainHolders, checkChainManifests } from '../../repo/chain-manifests.js';
import { backupFileNames } from '../../medium/layout.js';
import { sidecarHeader, type ArchiveStats, type Sidecar, type TarSidecar } from '../../medium/sidecar.js';
import { openBase } from '../../repo/chain-base.js';
import { timeOfId, VolumeStore } from '../../repo/volume-store.js';
import { asStorage, type Medium } from '../../storage/as-storage.js';
import { prepareTwoPhase, type StagedBackup, type TwoPhase } from '../two-phase.js';
import { ArchiveWriter } from './archive-writer.js';
import type { Compression } from '../compression.js';
import { TreeArchiver } from './tree-archiver.js';
import { DirWalker, PREFETCH_MAX } from './dir-walker.js';

/**
 * Threads listing the source. The stat walk is what an incremental cannot skip; once unchanged
 * directories cost the main thread next to nothing (engines/tar/unchanged-dir.ts), it waited on one
 * walker thread most of the pass, and a second one uses the other core.
 */
const WALKER_THREADS = Math.min(2, os.availableParallelism());

export interface BackupRequest extends FullPolicy {
  sourceDir: string;
  medium: Medium;
  host: string;
  volume: string;
  compression: Compression;
  /** Compress at nice 19 (default): dom0 keeps serving the guests. `xenbackup backup` turns it off unless --nice. */
  idlePriority?: boolean;
  oneFileSystem: boolean;
  excludes: Buffer[];
  liveSource: boolean;
  logger: Logger;
  now?: () => Date;
  onProgress?: (stats: ArchiveStats, at: Buffer) => void;
  signal?: AbortSignal;
}

export interface TarPassReport {
  decision: KindDecision;
  stats: ArchiveStats;
  warnings: string[];
  unreadable: string[];
  /** Directories of another filesystem that were kept empty (oneFileSystem), e.g. nested btrfs subvolumes. */
  otherFilesystems: string[];
  archivePath: string;
  archiveBytes: number;
}

/** A tar backup written and not yet counted: commit() makes it durable and visible, abort() removes it. */
export type PreparedBackup = TarPassReport & TwoPhase<TarSidecar>;

export async function prepareBackup(req: BackupRequest): Promise<PreparedBackup> {
  let st: fs.Stats;
  try {
    st = fs.statSync(req.sourceDir);
  } catch (e) {
    throw new Error(`source ${req.sourceDir}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : (e as Error).message}`);
  }
  if (!st.isDirectory()) throw new Error(`source ${req.sourceDir} is not a directory`);
  fs.accessSync(req.sourceDir, fs.constants.R_OK | fs.constants.X_OK);

  const store = new VolumeStore(asStorage(req.medium), req.host, req.volume);
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
    return await prepareTwoPhase(store, req.logger, now, async ({ backups, id, started }) => {
      const decision = decideKind(backups, started, req, timeOfId);
      if (decision.kind === 'full') walker.prefetch(PREFETCH_MAX);
      return writeTarBackup(req, store, backups, id, started, decision, walker);
    });
  } finally {
    walker.stop();
  }
}

/** A raw backup's manifest is a chunk map (the fstype was changed from raw): nothing a tree can build on. */
export function refuseTarBase(base: Sidecar): string | undefined {
  return base.engine === 'raw' ? `the previous backup ${base.id} is a raw image, not a file tree` : undefined;
}

async function writeTarBackup(
  req: BackupRequest,
  store: VolumeStore,
  backups: Sidecar[],
  id: string,
  started: Date,
  decided: KindDecision,
  walker: DirWalker,
): Promise<{ report: TarPassReport; staged: StagedBackup<TarSidecar> }> {
  const log = req.logger;
  const { decision, previous, warning } = openBase(
    decided,
    backups,
    req.volume,
    refuseTarBase,
    (base) => {
      checkChainManifests(store, backups, base);
      return new ManifestCursor(openManifest(store.pathOf(base.manifest), chainHolders(store, backups, base)));
    },
    log,
  );
  const warnings: string[] = warning ? [warning] : [];
  const kind = decision.kind;
  const base = decision.kind === 'incremental' ? decision.base : null;
  const chain = base ? backups.find((b) => b.id === base)!.chain : id;
  log.info(`${req.volume}: ${kind} backup ${id} of ${req.sourceDir} (${decision.reason})`);

  const names = backupFileNames(id, kind, 'tar', req.compression);
  const archivePath = store.pathOf(names.archive);
  let writer: ArchiveWriter | undefined;
  let manifest: ManifestWriter | undefined;
  try {
    writer = new ArchiveWriter(archivePath, req.compression, log, req.idlePriority ?? true);
    manifest = new ManifestWriter(store.pathOf(names.manifest), {
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
    try {
      await archiver.run();
    } finally {
      previous?.close();
    }
    // The manifest's bytes reach the disk while the archive's last segments are compressed and synced.
    // Both settle before anything is aborted: no fsync may still run on a file being closed.
    const [finished, synced] = await Promise.allSettled([writer.finish(), manifest.flushToDisk()]);
    if (finished.status === 'rejected') throw finished.reason;
    if (synced.status === 'rejected') throw synced.reason;
    const archive = finished.value;
    warnings.push(...archiver.warnings);
    const w = writer;
    const m = manifest;
    let manifestXxh64 = '';
    return {
      report: {
        decision,
        stats: archiver.stats,
        warnings,
        unreadable: archiver.unreadable,
        otherFilesystems: archiver.otherFilesystems,
        archivePath,
        archiveBytes: archive.archiveBytes,
      },
      staged: {
        names: [names.archive, names.manifest],
        async seal(): Promise<void> {
          w.seal();
          manifestXxh64 = m.seal();
        },
        sidecar: (finishedAt): TarSidecar => ({
          ...sidecarHeader({ volume: req.volume, host: req.host, id, kind, base, chain, engine: 'tar', compression: req.compression, startedAt: started, finishedAt }),
          compression: req.compression,
          status: archiver.unreadable.length ? 'partial' : 'complete',
          stats: archiver.stats,
          tarBytes: archive.tarBytes,
          archiveBytes: archive.archiveBytes,
          archiveXxh64: archive.xxh64,
          manifestXxh64,
          frames: archive.frames,
          warnings: warnings.slice(0, 200),
          unreadable: archiver.unreadable.slice(0, 200),
        }),
        async discard(): Promise<void> {
          await w.abort();
          m.abort();
        },
      },
    };
  } catch (e) {
    previous?.close();
    await writer?.abort();
    manifest?.abort();
    throw e;
  }
}
