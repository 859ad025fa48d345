/**
 * The sidecar: a small JSON file next to each archive that says what it is
 * (full or incremental, which backup it builds on), how it was made, and
 * the xxh64 of the archive and manifest files. It is written last: a backup
 * without its sidecar is not a backup, only debris of an interrupted run.
 */
import type { Compression } from '../engine/compression.js';
import type { ArchiveStats } from '../engine/tree-archiver.js';

export type BackupKind = 'full' | 'incremental';

export interface Sidecar {
  format: 'xenbackup-backup';
  version: 1;
  volume: string;
  host: string;
  id: string;
  kind: BackupKind;
  /** The backup this incremental builds on (null for a full). */
  base: string | null;
  /** The full backup that starts this chain. */
  chain: string;
  /**
   * tar: `archive` is a tar file; rsync: `archive` is a dated directory tree (a full copy);
   * raw: `archive` is a chunk container of a block device's image (src/raw/raw-layout.ts).
   */
  engine: 'tar' | 'rsync' | 'raw';
  compression: Compression;
  /** File names, relative to the volume's folder. */
  archive: string;
  manifest: string;
  startedAt: string;
  finishedAt: string;
  /** partial: some files could not be read (listed in `unreadable`). */
  status: 'complete' | 'partial';
  stats: ArchiveStats;
  tarBytes: number;
  archiveBytes: number;
  archiveXxh64: string;
  manifestXxh64: string;
  /** [compressed offset, tar offset] of each independently compressed frame. */
  frames: Array<[number, number]>;
  warnings: string[];
  unreadable: string[];
}

export function parseSidecar(text: string, file: string): Sidecar {
  let o: Partial<Sidecar>;
  try {
    o = JSON.parse(text) as Partial<Sidecar>;
  } catch {
    throw new Error(`${file}: not valid JSON`);
  }
  if (o.format !== 'xenbackup-backup' || o.version !== 1) throw new Error(`${file}: not a xenbackup sidecar (version 1)`);
  for (const k of ['id', 'kind', 'archive', 'manifest', 'chain', 'archiveXxh64'] as const) {
    if (typeof o[k] !== 'string') throw new Error(`${file}: field "${k}" missing`);
  }
  if (o.kind !== 'full' && o.kind !== 'incremental') throw new Error(`${file}: kind must be full or incremental`);
  return o as Sidecar;
}
