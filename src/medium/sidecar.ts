/**
 * The sidecar: a small JSON file next to each backup that says what it is
 * (full or incremental, which backup it builds on), how it was made, and
 * the xxh64 of its files. It is written last: a backup without its sidecar
 * is not a backup, only debris of an interrupted run.
 *
 * In memory a sidecar is a discriminated union on `engine`: a common header
 * (identity, chain, times, status, stats, manifest) and what only that
 * engine has (tar: compression, frame index, archive sizes and hash; raw:
 * the image's geometry in `raw`; rsync: nothing more). On the medium it is
 * the same JSON as version 1 always was, so media written before stay
 * readable; an rsync sidecar no longer needs the tar fields it used to
 * carry as dummies (still accepted when present).
 *
 * parseSidecar is the one gate for sidecars read from the medium: every
 * field is checked here, once, for every reader (list, ls, restore, verify,
 * prune, the next backup), so the rest of the code can trust the object.
 * sidecarText is the one writer.
 */
import { checkHostName, isBackupId, parseVolumeName } from '../core/names.js';
import { backupFileNames, COMPRESSIONS, ENGINE_NAMES, type BackupKind, type Compression, type EngineName } from './layout.js';
import { MediumDamage } from './medium-error.js';

export type { BackupKind, Compression, EngineName } from './layout.js';

/** What a backup pass did; the same counts for every engine (a raw image counts chunks as entries). */
export interface ArchiveStats {
  /** Entries in the tree (the new manifest). */
  entries: number;
  /** Members written to this archive (directories included). */
  stored: number;
  /** Entries carried over from the previous backup without reading. */
  unchanged: number;
  /** Entries of the previous backup that are gone. */
  deleted: number;
  /** Regular files opened and read (the change-detection fast path keeps this at 0 when nothing changed). */
  filesRead: number;
  bytesRead: number;
  /** Apparent bytes of all regular files in the tree. */
  sourceBytes: number;
}

/** What every sidecar says, whatever made the backup. */
export interface SidecarHeader {
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
  engine: EngineName;
  /** File names in the volume's folder: exactly what medium/layout.ts gives. */
  archive: string;
  manifest: string;
  startedAt: string;
  finishedAt: string;
  /** partial: some files could not be read (listed in `unreadable`). */
  status: 'complete' | 'partial';
  stats: ArchiveStats;
  /** Absent in the earliest sidecars; the manifest's own trailer still checks it. */
  manifestXxh64?: string;
  warnings: string[];
  unreadable: string[];
}

/** A compressed file of independent frames (tar and raw), and the hash of its bytes. */
interface ArchiveFile {
  compression: Compression;
  /** Bytes before compression (the tar stream; a raw container's chunks). */
  tarBytes: number;
  archiveBytes: number;
  archiveXxh64: string;
}

/** `archive` is a tar file in seekable frames. */
export interface TarSidecar extends SidecarHeader, ArchiveFile {
  engine: 'tar';
  /** [compressed offset, tar offset] of each independently compressed frame. */
  frames: Array<[number, number]>;
}

/** `archive` is a dated directory tree, a full copy (unchanged files hardlinked to the previous tree). */
export interface RsyncSidecar extends SidecarHeader {
  engine: 'rsync';
  kind: 'full';
}

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

/** `archive` is a chunk container of a block device's image (engines/raw/raw-container.ts). */
export interface RawSidecar extends SidecarHeader, ArchiveFile {
  engine: 'raw';
  compression: 'zstd';
  raw: RawInfo;
}

export type Sidecar = TarSidecar | RsyncSidecar | RawSidecar;

/**
 * The common header of a new backup's sidecar: identity and chain as the
 * skeleton decided them, and the file names the layout gives.
 */
export function sidecarHeader<E extends EngineName>(h: {
  volume: string;
  host: string;
  id: string;
  kind: BackupKind;
  base: string | null;
  chain: string;
  engine: E;
  compression: Compression;
  startedAt: Date;
  finishedAt: Date;
}): Pick<SidecarHeader, 'format' | 'version' | 'volume' | 'host' | 'id' | 'kind' | 'base' | 'chain' | 'archive' | 'manifest' | 'startedAt' | 'finishedAt'> & { engine: E } {
  const names = backupFileNames(h.id, h.kind, h.engine, h.compression);
  return {
    format: 'xenbackup-backup',
    version: 1,
    volume: h.volume,
    host: h.host,
    id: h.id,
    kind: h.kind,
    base: h.base,
    chain: h.chain,
    engine: h.engine,
    archive: names.archive,
    manifest: names.manifest,
    startedAt: h.startedAt.toISOString(),
    finishedAt: h.finishedAt.toISOString(),
  };
}

/** The one writer of a sidecar's bytes. */
export function sidecarText(s: Sidecar): string {
  return JSON.stringify(s, null, 1) + '\n';
}

const STATS_KEYS = ['entries', 'stored', 'unchanged', 'deleted', 'filesRead', 'bytesRead', 'sourceBytes'] as const;
const RAW_COUNTS = ['imageBytes', 'chunkSize', 'chunks', 'storedChunks', 'zeroChunks', 'unchangedChunks'] as const;
const HASH_RE = /^[0-9a-f]{16}$/;
const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/;
const MAX_TEXTS = 10_000;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parses and checks a sidecar read from `file`; `expectName` is its own file
 * name, which must be the one its id, kind and engine give.
 */
export function parseSidecar(text: string, file: string, expectName?: string): Sidecar {
  const bad = (what: string): never => {
    throw new MediumDamage(file, what);
  };
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return bad('not valid JSON');
  }
  if (!isObj(o) || o.format !== 'xenbackup-backup' || o.version !== 1) return bad('not a xenbackup sidecar (version 1)');
  const str = (k: string): string => (typeof o[k] === 'string' ? (o[k] as string) : bad(`field "${k}" must be a string`));
  const id = str('id');
  if (!isBackupId(id)) bad(`field "id" must be a backup id such as 20261127T013600Z, not ${JSON.stringify(id).slice(0, 60)}`);
  const kind = str('kind') as BackupKind;
  if (kind !== 'full' && kind !== 'incremental') bad('field "kind" must be full or incremental');
  // Absent in sidecars of earlier versions: tar, and said so in the object every reader gets (null is no engine).
  const engine = (o.engine === undefined ? 'tar' : o.engine) as EngineName;
  if (!ENGINE_NAMES.includes(engine)) bad(`field "engine" must be one of ${ENGINE_NAMES.join(', ')}`);
  o.engine = engine;
  // rsync sidecars of earlier versions carry compression 'none' as a dummy; newer ones none at all.
  const compression = (engine === 'rsync' && o.compression === undefined ? 'none' : str('compression')) as Compression;
  if (!COMPRESSIONS.includes(compression)) bad(`field "compression" must be one of ${COMPRESSIONS.join(', ')}`);
  try {
    parseVolumeName(str('volume'));
    checkHostName(str('host'));
  } catch (e) {
    if (e instanceof MediumDamage) throw e;
    bad((e as Error).message);
  }
  if (o.base !== null && !isBackupId(o.base)) bad('field "base" must be null or a backup id');
  if (!isBackupId(o.chain)) bad('field "chain" must be a backup id');
  const base = o.base as string | null;
  const chain = o.chain as string;
  if (kind === 'full' ? base !== null || chain !== id : base === null || base >= id || chain > base) {
    bad(kind === 'full' ? 'a full backup has base null and is its own chain' : 'an incremental builds on an earlier backup of its chain');
  }
  if (engine === 'rsync' && kind !== 'full') bad('an rsync backup is always a full (a dated tree)');
  // File names are not free text: exactly what the layout gives for this id, kind, engine and compression.
  const names = backupFileNames(id, kind, engine, compression);
  if (o.archive !== names.archive) bad(`field "archive" must be ${names.archive}`);
  if (o.manifest !== names.manifest) bad(`field "manifest" must be ${names.manifest}`);
  if (expectName !== undefined && expectName !== names.sidecar) bad(`a sidecar of backup ${id} must be named ${names.sidecar}`);
  for (const k of ['startedAt', 'finishedAt']) if (!ISO_RE.test(str(k))) bad(`field "${k}" must be an ISO time`);
  if (o.status !== 'complete' && o.status !== 'partial') bad('field "status" must be complete or partial');
  if (!isObj(o.stats)) bad('field "stats" must be an object');
  for (const k of STATS_KEYS) if (!isCount((o.stats as Obj)[k])) bad(`field "stats.${k}" must be a count`);
  if (o.manifestXxh64 !== undefined && !HASH_RE.test(str('manifestXxh64'))) bad('field "manifestXxh64" must be 16 hex digits');
  for (const k of ['warnings', 'unreadable']) {
    const list = o[k];
    if (!Array.isArray(list) || list.length > MAX_TEXTS || !list.every((s) => typeof s === 'string')) bad(`field "${k}" must be a list of texts`);
  }
  if (engine === 'rsync') {
    // The tar fields earlier versions wrote as dummies: absent, or the dummies.
    if (o.archiveXxh64 !== undefined && o.archiveXxh64 !== '' && !HASH_RE.test(str('archiveXxh64'))) bad('field "archiveXxh64" must be 16 hex digits');
    for (const k of ['tarBytes', 'archiveBytes']) if (o[k] !== undefined && !isCount(o[k])) bad(`field "${k}" must be a count`);
    if (o.frames !== undefined && (!Array.isArray(o.frames) || o.frames.length)) bad('field "frames" must be an empty list for an rsync tree');
    return o as unknown as RsyncSidecar;
  }
  for (const k of ['tarBytes', 'archiveBytes']) if (!isCount(o[k])) bad(`field "${k}" must be a count`);
  if (!HASH_RE.test(str('archiveXxh64'))) bad('field "archiveXxh64" must be 16 hex digits');
  if (engine === 'tar' || o.frames !== undefined) checkFrames(o.frames, o.archiveBytes as number, o.tarBytes as number, bad);
  if (engine === 'raw') {
    if (compression !== 'zstd') bad('a raw backup is compressed with zstd');
    checkRaw(o.raw, bad);
    return o as unknown as RawSidecar;
  }
  return o as unknown as TarSidecar;
}

/** Frames: [compressed offset, tar offset] pairs, both increasing from [0, 0], within the archive's sizes. */
function checkFrames(frames: unknown, archiveBytes: number, tarBytes: number, bad: (what: string) => never): void {
  if (!Array.isArray(frames)) bad('field "frames" must be a list');
  let prev: [number, number] = [-1, -1];
  for (const f of frames as unknown[]) {
    if (!Array.isArray(f) || f.length !== 2 || !isCount(f[0]) || !isCount(f[1])) bad('field "frames" must hold [compressed offset, tar offset] pairs');
    const [c, t] = f as [number, number];
    if (prev[0] < 0 ? c !== 0 || t !== 0 : c <= prev[0] || t <= prev[1]) bad('field "frames" must start at [0, 0] and increase');
    if (c > archiveBytes || t > tarBytes) bad('field "frames" points past the end of the archive');
    prev = [c, t];
  }
}

/** The raw section: the image's geometry, which restore and verify rely on. */
function checkRaw(raw: unknown, bad: (what: string) => never): void {
  if (!isObj(raw)) bad('field "raw" must be an object (the image\'s size, chunk size and hash)');
  const r = raw as Obj;
  for (const k of RAW_COUNTS) if (!isCount(r[k])) bad(`field "raw.${k}" must be a count`);
  if ((r.chunkSize as number) === 0) bad('field "raw.chunkSize" must not be 0');
  if (typeof r.imageXxh64 !== 'string' || !HASH_RE.test(r.imageXxh64)) bad('field "raw.imageXxh64" must be 16 hex digits');
  if (typeof r.device !== 'string') bad('field "raw.device" must be a string');
}

/** The bytes of the backup's archive as its sidecar records them; 0 for an rsync tree, whose size no sidecar records. */
export function archiveBytesOf(s: Sidecar): number {
  return 'archiveBytes' in s ? s.archiveBytes : 0;
}
