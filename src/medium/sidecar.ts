/**
 * The sidecar: a small JSON file next to each archive that says what it is
 * (full or incremental, which backup it builds on), how it was made, and
 * the xxh64 of the archive and manifest files. It is written last: a backup
 * without its sidecar is not a backup, only debris of an interrupted run.
 *
 * parseSidecar is the one gate for sidecars read from the medium: every
 * field is checked here, once, for every reader (list, ls, restore, verify,
 * prune, the next backup), so the rest of the code can trust the object.
 */
import { COMPRESSIONS, type Compression } from '../engines/compression.js';
import type { ArchiveStats } from '../engines/tar/tree-archiver.js';
import { checkHostName, isBackupId, parseVolumeName } from '../core/names.js';
import { backupFileNames, type BackupKind, type Engine } from './layout.js';
import { MediumDamage } from './medium-error.js';

export type { BackupKind } from './layout.js';

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
   * raw: `archive` is a chunk container of a block device's image (src/engines/raw/raw-layout.ts).
   */
  engine: Engine;
  compression: Compression;
  /** File names, relative to the volume's folder (medium/layout.ts). */
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

const ENGINES: readonly Engine[] = ['tar', 'rsync', 'raw'];
const STATS_KEYS = ['entries', 'stored', 'unchanged', 'deleted', 'filesRead', 'bytesRead', 'sourceBytes'] as const;
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
  const engine = (o.engine ?? 'tar') as Engine;
  if (!ENGINES.includes(engine)) bad(`field "engine" must be one of ${ENGINES.join(', ')}`);
  const compression = str('compression') as Compression;
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
  // File names are not free text: exactly what the layout gives for this id, kind, engine and compression.
  const names = backupFileNames(id, kind, engine, compression);
  if (o.archive !== names.archive) bad(`field "archive" must be ${names.archive}`);
  if (o.manifest !== names.manifest) bad(`field "manifest" must be ${names.manifest}`);
  if (expectName !== undefined && expectName !== names.sidecar) bad(`a sidecar of backup ${id} must be named ${names.sidecar}`);
  for (const k of ['startedAt', 'finishedAt']) if (!ISO_RE.test(str(k))) bad(`field "${k}" must be an ISO time`);
  if (o.status !== 'complete' && o.status !== 'partial') bad('field "status" must be complete or partial');
  if (!isObj(o.stats)) bad('field "stats" must be an object');
  for (const k of STATS_KEYS) if (!isCount((o.stats as Obj)[k])) bad(`field "stats.${k}" must be a count`);
  for (const k of ['tarBytes', 'archiveBytes']) if (!isCount(o[k])) bad(`field "${k}" must be a count`);
  const archiveHash = str('archiveXxh64');
  if (!(HASH_RE.test(archiveHash) || (engine === 'rsync' && archiveHash === ''))) bad('field "archiveXxh64" must be 16 hex digits');
  // Absent in the earliest sidecars; the manifest's own trailer still checks it.
  if (o.manifestXxh64 !== undefined && !HASH_RE.test(str('manifestXxh64'))) bad('field "manifestXxh64" must be 16 hex digits');
  checkFrames(o.frames, o.archiveBytes as number, o.tarBytes as number, bad);
  for (const k of ['warnings', 'unreadable']) {
    const list = o[k];
    if (!Array.isArray(list) || list.length > MAX_TEXTS || !list.every((s) => typeof s === 'string')) bad(`field "${k}" must be a list of texts`);
  }
  return o as unknown as Sidecar;
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
