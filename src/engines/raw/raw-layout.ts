/**
 * A raw backup's files in its volume's folder, beside the tar and rsync
 * backups (repo/volume-store.ts):
 *   <id>.<full|incr>.raw.zst        the chunk container (raw-container.ts)
 *   <id>.<full|incr>.raw.manifest   the chunk map (raw-manifest.ts)
 *   <id>.<full|incr>.raw.json       the sidecar, written last
 * The sidecar is the common one with engine 'raw' and a `raw` section; the
 * sidecar's name is the manifest's with ".json", as prune expects of all.
 */
import type { BackupKind, Sidecar } from '../../medium/sidecar.js';
import { backupFileNames } from '../../medium/layout.js';
import type { BackupFiles, VolumeStore } from '../../repo/volume-store.js';

export interface RawInfo {
  /** The image's size in bytes (the device's size at backup time). */
  imageBytes: number;
  chunkSize: number;
  /** Chunks in the image. */
  chunks: number;
  /** Chunks stored in this backup's container. */
  storedChunks: number;
  /** Chunks whose bytes were all zero (stored nowhere). */
  zeroChunks: number;
  /** Non-zero chunks the previous backup already holds (an incremental's unchanged chunks). */
  unchangedChunks: number;
  /** The whole-image xxh64 (core/raw-chunks.ts wholeImageHash). */
  imageXxh64: string;
  /** The device read. */
  device: string;
}

export interface RawSidecar extends Sidecar {
  engine: 'raw';
  raw: RawInfo;
}

export function isRawSidecar(s: Sidecar): s is RawSidecar {
  return s.engine === 'raw';
}

export function rawFilesFor(store: VolumeStore, id: string, kind: BackupKind): BackupFiles {
  const names = backupFileNames(id, kind, 'raw', 'zstd');
  return { archive: store.pathOf(names.archive), manifest: store.pathOf(names.manifest), sidecar: store.pathOf(names.sidecar) };
}

/** A raw sidecar's own checks beyond parseSidecar's: the fields restore and verify rely on. */
export function checkRawSidecar(s: Sidecar, file: string): RawSidecar {
  const r = (s as Partial<RawSidecar>).raw;
  if (s.engine !== 'raw' || !r) throw new Error(`${file}: not a raw backup's sidecar`);
  if (!Number.isSafeInteger(r.imageBytes) || !Number.isSafeInteger(r.chunkSize) || typeof r.imageXxh64 !== 'string') {
    throw new Error(`${file}: the raw section lacks the image size, chunk size or image hash`);
  }
  return s as RawSidecar;
}
