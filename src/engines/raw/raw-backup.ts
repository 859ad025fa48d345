/**
 * One raw backup of a block device (a snapshot that cannot or should not
 * be mounted), in the same two phases as engines/tar/tar-backup.ts:
 * prepareRawBackup() reads the device once, front to back, hashes every
 * chunk (xxh64), stores the changed non-zero ones in the container and
 * writes container and chunk manifest under staged names; commit()
 * publishes them and writes the sidecar last (only then does the backup
 * exist); abort() removes them (engines/two-phase.ts). Full or incremental by the same rules as tar
 * (core/chain.ts decideKind); an incremental compares each chunk's hash
 * with the previous backup's manifest and stores only the changed chunks.
 */
import type { Logger } from '../../util/log.js';
import { xxh64 } from '../../native/xxh.js';
import { decideKind, type KindDecision } from '../../core/chain.js';
import { openBase } from '../../repo/chain-base.js';
import { chunkFate, checkChunkSize, DEFAULT_CHUNK_SIZE, mapImageHash, type ChunkMap, type ChunkRecord } from '../../core/raw-chunks.js';
import { backupFileNames } from '../../medium/layout.js';
import type { ArchiveStats, RawInfo, RawSidecar, Sidecar } from '../../medium/sidecar.js';
import { timeOfId, VolumeStore } from '../../repo/volume-store.js';
import { asStorage, type Medium } from '../../storage/as-storage.js';
import { prepareTwoPhase, type StagedBackup, type TwoPhase } from '../two-phase.js';
import { compressSegment } from '../compression.js';
import { ImageReader } from './image-reader.js';
import { RawContainerWriter } from './raw-container.js';
import { readRawManifest, RawManifestWriter } from './raw-manifest.js';

export interface RawBackupRequest {
  /** The block device (the snapshot) or image file to read. */
  device: string;
  medium: Medium;
  host: string;
  volume: string;
  /** For a full backup; an incremental keeps its chain's chunk size. Default 4 MiB. */
  chunkSize?: number;
  forceFull: boolean;
  fullIntervalDays: number;
  maxChainLength: number;
  fullWeekday?: number;
  fullMonthday?: number;
  logger: Logger;
  now?: () => Date;
  /** Called after each chunk (progress, and tests that stop a backup half way). */
  onProgress?: (p: { chunk: number; chunks: number; bytesRead: number }) => void;
  signal?: AbortSignal;
  /** Chunks compressed at once (default 2). */
  parallel?: number;
  /** Compress at nice 19 (default), as the tar engine does: dom0 keeps serving the guests. */
  idlePriority?: boolean;
}

export interface RawPassReport {
  decision: KindDecision;
  info: RawInfo;
  stats: ArchiveStats;
  warnings: string[];
  archivePath: string;
  archiveBytes: number;
}

export type PreparedRawBackup = RawPassReport & TwoPhase<RawSidecar>;

export async function prepareRawBackup(req: RawBackupRequest): Promise<PreparedRawBackup> {
  const store = new VolumeStore(asStorage(req.medium), req.host, req.volume);
  return prepareTwoPhase(store, req.logger, req.now ?? (() => new Date()), ({ backups, id, started }) => writeRawBackup(req, store, backups, id, started));
}

/** Tar and raw never build on each other (the fstype was changed): a full. */
export function refuseRawBase(base: Sidecar): string | undefined {
  return base.engine !== 'raw' ? `the previous backup ${base.id} is a ${base.engine} backup, not raw` : undefined;
}

async function writeRawBackup(req: RawBackupRequest, store: VolumeStore, backups: Sidecar[], id: string, started: Date): Promise<{ report: RawPassReport; staged: StagedBackup<RawSidecar> }> {
  const log = req.logger;
  const { decision, previous, warning } = openBase(
    decideKind(backups, started, req, timeOfId),
    backups,
    req.volume,
    refuseRawBase,
    (base): ChunkMap => readRawManifest(store.pathOf(base.manifest)).map,
    log,
  );
  const warnings: string[] = warning ? [warning] : [];
  const kind = decision.kind;
  const base = decision.kind === 'incremental' ? decision.base : null;
  const chain = base ? backups.find((b) => b.id === base)!.chain : id;
  const chunkSize = previous?.chunkSize ?? req.chunkSize ?? DEFAULT_CHUNK_SIZE;
  checkChunkSize(chunkSize);

  const reader = new ImageReader(req.device, chunkSize);
  const names = backupFileNames(id, kind, 'raw', 'zstd');
  const files = { archive: store.pathOf(names.archive), manifest: store.pathOf(names.manifest) };
  let writer: RawContainerWriter | undefined;
  let manifest: RawManifestWriter | undefined;
  try {
    log.info(`${req.volume}: raw ${kind} backup ${id} of ${req.device}, ${reader.imageBytes} bytes in ${reader.chunks} chunks of ${chunkSize >> 10} KiB (${decision.reason})`);
    if (previous && previous.imageBytes !== reader.imageBytes) {
      const msg = `${req.volume}: ${req.device} is ${reader.imageBytes} bytes, ${previous.imageBytes} at the previous backup (resized?)`;
      log.warn(msg);
      warnings.push(msg);
    }
    // In-process libzstd on worker threads (engines/compression.ts): one independent frame per chunk.
    const idle = req.idlePriority ?? true;
    writer = new RawContainerWriter(files.archive, chunkSize, (data) => compressSegment('zstd', data, idle), req.parallel ?? 2);
    const w = writer;
    const prevByIndex = new Map<number, ChunkRecord>(previous?.chunks.map((c) => [c.index, c]) ?? []);
    const records: ChunkRecord[] = [];
    let zeroChunks = 0;
    let unchangedChunks = 0;
    for await (const chunk of reader) {
      if (req.signal?.aborted) throw new Error(`${req.volume}: raw backup aborted at chunk ${chunk.index} of ${reader.chunks}`);
      const hash = chunk.zero ? null : xxh64(chunk.data!);
      const fate = chunkFate(prevByIndex.get(chunk.index), hash);
      if (fate === 'zero') {
        zeroChunks++;
        if (chunk.data) reader.release(chunk.data);
      } else if (fate === 'unchanged') {
        unchangedChunks++;
        records.push(prevByIndex.get(chunk.index)!);
        reader.release(chunk.data!);
      } else {
        records.push({ index: chunk.index, hash: hash!, holder: id });
        if (w.backlogged) await w.drain();
        const data = chunk.data!;
        w.add(chunk.index, data, hash!, () => reader.release(data));
      }
      req.onProgress?.({ chunk: chunk.index, chunks: reader.chunks, bytesRead: reader.bytesRead });
    }
    const container = await w.finish();
    const map: ChunkMap = { imageBytes: reader.imageBytes, chunkSize, chunks: records };
    const info: RawInfo = {
      imageBytes: reader.imageBytes,
      chunkSize,
      chunks: reader.chunks,
      storedChunks: container.stored,
      zeroChunks,
      unchangedChunks,
      imageXxh64: mapImageHash(map, xxh64),
      device: req.device,
    };
    manifest = new RawManifestWriter(files.manifest);
    const manifestXxh64 = manifest.write(
      { volume: req.volume, backup: id, base, createdAt: started.toISOString(), imageBytes: info.imageBytes, chunkSize, imageXxh64: info.imageXxh64 },
      records,
    );
    const stats: ArchiveStats = {
      entries: info.chunks,
      stored: info.storedChunks,
      unchanged: unchangedChunks,
      deleted: 0,
      filesRead: 1,
      bytesRead: reader.bytesRead,
      sourceBytes: info.imageBytes,
    };
    log.info(
      `${req.volume}: raw ${kind} ${id}: ${info.storedChunks} chunks stored, ${unchangedChunks} unchanged, ${zeroChunks} zero; ` +
        `${container.bytes} bytes written, ${reader.bytesRead} read`,
    );
    const m = manifest;
    return {
      report: { decision, info, stats, warnings, archivePath: files.archive, archiveBytes: container.bytes },
      staged: {
        names: [names.archive, names.manifest],
        async seal(): Promise<void> {
          w.seal();
          m.seal();
        },
        sidecar: (finishedAt): RawSidecar => ({
          format: 'xenbackup-backup',
          version: 1,
          volume: req.volume,
          host: req.host,
          id,
          kind,
          base,
          chain,
          engine: 'raw',
          compression: 'zstd',
          archive: names.archive,
          manifest: names.manifest,
          startedAt: started.toISOString(),
          finishedAt: finishedAt.toISOString(),
          status: 'complete',
          stats,
          tarBytes: container.rawBytes,
          archiveBytes: container.bytes,
          archiveXxh64: container.xxh64,
          manifestXxh64,
          warnings: warnings.slice(0, 200),
          unreadable: [],
          raw: info,
        }),
        async discard(): Promise<void> {
          await w.abort();
          m.abort();
        },
      },
    };
  } catch (e) {
    await writer?.abort();
    manifest?.abort();
    throw e;
  } finally {
    reader.close();
  }
}
