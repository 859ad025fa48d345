/**
 * The manifest: xenbackup's record of one backup of one volume. It lists
 * every entry of the tree as of that backup, with the stat fields used for
 * change detection, the xxh64 of each regular file's content, and where the
 * version lives (which backup's archive, at which tar offset), so that a
 * restore reads only the members it needs and the next incremental reads
 * only files whose stat changed.
 *
 * Text layout (one JSON object per line, so it streams and diffs well):
 *   {"xenbackup":"manifest","version":1,...header}
 *   {"d":"etc","t":"d",...}          a directory block: the directory's own entry,
 *   {"n":"passwd","t":"f",...}       then its children that are not directories
 *   ...
 *   ...
 *   {"end":N,"xxh64":"..."}          N entries; hash of every byte before this line
 * Blocks appear in walk order (see path-order.ts): a directory's block, then
 * its subdirectories' blocks depth first. Names that are not valid UTF-8 are
 * stored base64 ("nb", "db", "lb") so bytes survive JSON.
 * This module is pure: it turns entries into lines and back.
 */
import type { EntryType } from '../tar/entry.js';

export type ManifestType = Exclude<EntryType, 'hardlink'>;

export interface ManifestEntry {
  name: Buffer;
  type: ManifestType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  /** Inode number as decimal text (64-bit safe). */
  ino: string;
  nlink: number;
  link?: Buffer;
  rdev?: [number, number];
  /** xxh64 of a regular file's content, 16 hex digits. */
  hash?: string;
  /** The backup whose archive holds this version's member. */
  archive: string;
  /** Byte offset of the member's first header block in that archive's tar stream. */
  offset: number;
  /** For a hardlink member: offset of the member in the same archive that holds the data. */
  dataOffset?: number;
  sparse?: boolean;
  /** Content could not be read at backup time: never treated as unchanged. */
  unread?: boolean;
}

export interface ManifestHeader {
  volume: string;
  backup: string;
  base: string | null;
  createdAt: string;
}

const TYPE_CODE: Record<ManifestType, string> = { file: 'f', dir: 'd', symlink: 'l', char: 'c', block: 'b', fifo: 'p' };
const CODE_TYPE: Record<string, ManifestType> = Object.fromEntries(
  Object.entries(TYPE_CODE).map(([k, v]) => [v, k as ManifestType]),
);

/** A name as a JSON string when it is valid UTF-8, else base64 under the other key. */
function putBytes(o: Record<string, unknown>, key: string, b64key: string, v: Buffer): void {
  const s = v.toString('utf8');
  if (Buffer.byteLength(s) === v.length && !s.includes('\ufffd')) o[key] = s;
  else o[b64key] = v.toString('base64');
}

function getBytes(o: Record<string, unknown>, key: string, b64key: string): Buffer | undefined {
  if (typeof o[key] === 'string') return Buffer.from(o[key] as string, 'utf8');
  if (typeof o[b64key] === 'string') return Buffer.from(o[b64key] as string, 'base64');
  return undefined;
}

export function entryToJson(e: ManifestEntry): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  putBytes(o, 'n', 'nb', e.name);
  o.t = TYPE_CODE[e.type];
  o.m = e.mode;
  o.u = e.uid;
  o.g = e.gid;
  o.s = e.size;
  o.mt = e.mtimeNs.toString();
  o.ct = e.ctimeNs.toString();
  o.i = e.ino;
  if (e.nlink !== 1) o.k = e.nlink;
  if (e.link) putBytes(o, 'l', 'lb', e.link);
  if (e.rdev) o.r = e.rdev;
  if (e.hash) o.h = e.hash;
  o.a = e.archive;
  o.o = e.offset;
  if (e.dataOffset !== undefined) o.do = e.dataOffset;
  if (e.sparse) o.sp = 1;
  if (e.unread) o.bad = 1;
  return o;
}

/** Printable ASCII without '"' or '\\': JSON.stringify leaves such a name as it is, so its bytes can be copied into a line. */
export function isPlainJsonName(name: Buffer): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!;
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

/** The archive member of an entry line, `"a":"<backup id>"`, as bytes (ManifestWriter.plainFileLine). */
export function archiveMember(archive: string): Buffer {
  return Buffer.from(`"a":${JSON.stringify(archive)}`);
}

/** A name as its JSON member: "key":"text" when valid UTF-8, else "b64key":"base64" (as putBytes). */
function bytesMember(key: string, b64key: string, v: Buffer): string {
  const s = v.toString('utf8');
  if (Buffer.byteLength(s) === v.length && !s.includes('\ufffd')) return `"${key}":${JSON.stringify(s)}`;
  return `"${b64key}":"${v.toString('base64')}"`;
}

/**
 * The line of one entry: byte for byte JSON.stringify(entryToJson(e)) (a test holds them equal), built
 * as text because a full backup writes one per file and the intermediate object was a measurable cost.
 */
export function encodeEntry(e: ManifestEntry): string {
  let out = `{${bytesMember('n', 'nb', e.name)},"t":"${TYPE_CODE[e.type]}","m":${e.mode},"u":${e.uid},"g":${e.gid},"s":${e.size},"mt":"${e.mtimeNs}","ct":"${e.ctimeNs}","i":${JSON.stringify(e.ino)}`;
  if (e.nlink !== 1) out += `,"k":${e.nlink}`;
  if (e.link) out += `,${bytesMember('l', 'lb', e.link)}`;
  if (e.rdev) out += `,"r":[${e.rdev[0]},${e.rdev[1]}]`;
  if (e.hash) out += `,"h":${JSON.stringify(e.hash)}`;
  out += `,"a":${JSON.stringify(e.archive)},"o":${e.offset}`;
  if (e.dataOffset !== undefined) out += `,"do":${e.dataOffset}`;
  if (e.sparse) out += ',"sp":1';
  if (e.unread) out += ',"bad":1';
  return out + '}';
}

export class ManifestFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestFormatError';
  }
}

const DECIMAL_RE = /^-?\d{1,20}$/;
const INODE_RE = /^\d{1,20}$/;
const HASH_RE = /^[0-9a-f]{16}$/;
const BACKUP_ID_RE = /^\d{8}T\d{6}Z$/;
const MAX_ID = 0xffffffff;

function count(o: Record<string, unknown>, key: string, what: string, max = Number.MAX_SAFE_INTEGER): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) {
    throw new ManifestFormatError(v === undefined ? `missing field ${what}` : `${what} ${JSON.stringify(v)?.slice(0, 40)} is not a whole number from 0 to ${max}`);
  }
  return v;
}

function nanoseconds(o: Record<string, unknown>, key: string, what: string): bigint {
  const v = o[key];
  if (typeof v !== 'string' || !DECIMAL_RE.test(v)) throw new ManifestFormatError(v === undefined ? `missing field ${what}` : `${what} must be nanoseconds as decimal text`);
  return BigInt(v);
}

/** A name of one directory entry: not empty, no '/', not '.' or '..', no NUL. */
function isEntryName(b: Buffer): boolean {
  if (b.length === 0 || b.length > 255 || b.includes(0x2f) || b.includes(0)) return false;
  return !(b.length <= 2 && b.every((c) => c === 0x2e));
}

/**
 * An entry from a manifest line's object. The one place a manifest read from
 * the medium is checked field by field: a line that is not what xenbackup
 * writes is a ManifestFormatError, never a value the restore acts on.
 */
export function entryFromJson(o: Record<string, unknown>, isDirLine = false): ManifestEntry {
  const type = CODE_TYPE[String(o.t)];
  if (!type || !Object.hasOwn(CODE_TYPE, String(o.t))) throw new ManifestFormatError(`unknown entry type ${JSON.stringify(o.t)?.slice(0, 20)}`);
  const name = getBytes(o, 'n', 'nb');
  if (!name) throw new ManifestFormatError('missing field name');
  if (!isDirLine && !isEntryName(name)) throw new ManifestFormatError(`refusing unsafe path ${JSON.stringify(name.toString('utf8').slice(0, 60))}: an entry's name must be one plain name`);
  if (isDirLine && type !== 'dir') throw new ManifestFormatError('a directory line holds an entry that is not a directory');
  if (!isDirLine && type === 'dir') throw new ManifestFormatError('a directory appears as a child entry, not as its own block');
  const archive = o.a;
  if (typeof archive !== 'string' || !BACKUP_ID_RE.test(archive)) throw new ManifestFormatError('field archive must be a backup id');
  const ino = o.i;
  if (typeof ino !== 'string' || !INODE_RE.test(ino)) throw new ManifestFormatError('field inode must be decimal text');
  const e: ManifestEntry = {
    name,
    type,
    mode: count(o, 'm', 'mode', 0o7777),
    uid: count(o, 'u', 'uid', MAX_ID),
    gid: count(o, 'g', 'gid', MAX_ID),
    size: count(o, 's', 'size'),
    mtimeNs: nanoseconds(o, 'mt', 'mtime'),
    ctimeNs: nanoseconds(o, 'ct', 'ctime'),
    ino,
    nlink: o.k === undefined ? 1 : count(o, 'k', 'link count', MAX_ID),
    archive,
    offset: count(o, 'o', 'offset'),
  };
  if (e.offset % 512 !== 0) throw new ManifestFormatError('field offset must be a multiple of 512 (a tar block)');
  const link = getBytes(o, 'l', 'lb');
  if (link) {
    if (type !== 'symlink' && type !== 'file') throw new ManifestFormatError(`a ${type} has no link target`);
    if (link.length === 0 || link.length > 4096 || link.includes(0)) throw new ManifestFormatError('link target must be 1 to 4096 bytes without NUL');
    e.link = link;
  } else if (type === 'symlink') throw new ManifestFormatError('a symlink without its target');
  if (o.r !== undefined) {
    const r = o.r;
    if (!Array.isArray(r) || r.length !== 2) throw new ManifestFormatError('field rdev must be [major, minor]');
    e.rdev = [count({ r: r[0] }, 'r', 'rdev major', MAX_ID), count({ r: r[1] }, 'r', 'rdev minor', MAX_ID)];
  }
  if (o.h !== undefined) {
    if (typeof o.h !== 'string' || !HASH_RE.test(o.h)) throw new ManifestFormatError('field hash must be 16 hex digits');
    e.hash = o.h;
  }
  if (o.do !== undefined) {
    e.dataOffset = count(o, 'do', 'data offset');
    if (e.dataOffset % 512 !== 0) throw new ManifestFormatError('field data offset must be a multiple of 512 (a tar block)');
  }
  if (o.sp !== undefined && o.sp !== 1) throw new ManifestFormatError('field sp must be 1 when present');
  if (o.bad !== undefined && o.bad !== 1) throw new ManifestFormatError('field bad must be 1 when present');
  if (o.sp) e.sparse = true;
  if (o.bad) e.unread = true;
  return e;
}

export function decodeEntry(line: string): ManifestEntry {
  return entryFromJson(parseLine(line));
}

/** A manifest line's JSON object; anything else is a ManifestFormatError. */
export function parseLine(line: string): Record<string, unknown> {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    throw new ManifestFormatError(`not JSON: ${line.slice(0, 80)}`);
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new ManifestFormatError(`not a JSON object: ${line.slice(0, 80)}`);
  return o as Record<string, unknown>;
}

export function encodeHeader(h: ManifestHeader): string {
  return JSON.stringify({
    xenbackup: 'manifest',
    version: 1,
    volume: h.volume,
    backup: h.backup,
    base: h.base,
    createdAt: h.createdAt,
  });
}

export function decodeHeader(line: string): ManifestHeader {
  return headerOf(parseLine(line), 1);
}

/** The header fields of a manifest of `version` (both versions' headers start alike). */
export function headerOf(o: Record<string, unknown>, version: 1 | 2): ManifestHeader {
  if (o.xenbackup !== 'manifest' || o.version !== version) throw new ManifestFormatError(`not a xenbackup manifest (version ${version})`);
  if (typeof o.backup !== 'string' || !BACKUP_ID_RE.test(o.backup)) throw new ManifestFormatError('header field backup must be a backup id');
  if (o.base !== null && (typeof o.base !== 'string' || !BACKUP_ID_RE.test(o.base))) throw new ManifestFormatError('header field base must be null or a backup id');
  if (typeof o.volume !== 'string' || typeof o.createdAt !== 'string') throw new ManifestFormatError('header fields volume and createdAt must be text');
  return { volume: o.volume, backup: o.backup, base: o.base as string | null, createdAt: o.createdAt };
}

/**
 * A block line: the directory's own entry, keyed by its path from the
 * volume's root ("" for the root) instead of its name.
 */
export function encodeDirLine(dir: Buffer, self: ManifestEntry): string {
  // Byte for byte JSON.stringify of entryToJson(self) without the name and with "d" (or "db") last (a test
  // holds them equal): the child line's text, its leading {"n":"", dropped.
  const child = encodeEntry({ ...self, name: EMPTY_NAME });
  return `{${child.slice(EMPTY_NAME_MEMBER.length, -1)},${bytesMember('d', 'db', dir)}}`;
}

const EMPTY_NAME = Buffer.alloc(0);
const EMPTY_NAME_MEMBER = '{"n":"",';

/** The directory a block line opens (with its own entry), or undefined when the line is a child entry. */
export function decodeDirLine(o: Record<string, unknown>): { dir: Buffer; self: ManifestEntry } | undefined {
  const dir = getBytes(o, 'd', 'db');
  if (!dir) return undefined;
  if (dir.length > 0 && !dir.toString('latin1').split('/').every((c) => isEntryName(Buffer.from(c, 'latin1')))) {
    throw new ManifestFormatError(`refusing unsafe path ${JSON.stringify(dir.toString('utf8').slice(0, 80))}: a directory's path must be relative, of plain names`);
  }
  const self = entryFromJson({ ...o, n: '' }, true);
  self.name = dir;
  return { dir, self };
}

export function encodeTrailer(count: number, xxh64: string): string {
  return JSON.stringify({ end: count, xxh64 });
}

/** Is this entry's content unchanged, judged by stat alone (no read)? */
export function statUnchanged(
  prev: ManifestEntry,
  cur: { type: ManifestType; size: number; mtimeNs: bigint; ctimeNs: bigint; ino: string },
): boolean {
  return (
    !prev.unread &&
    prev.type === cur.type &&
    prev.size === cur.size &&
    prev.mtimeNs === cur.mtimeNs &&
    prev.ctimeNs === cur.ctimeNs &&
    prev.ino === cur.ino
  );
}

/**
 * An entry line of a previous manifest kept as its bytes. Its
 * change-detection key is the text from `"t":` through the inode value,
 * which entryToJson always writes in that order; the archiver compares it
 * with the live file's (native/manifest-merge.c, which locates lines the
 * way this module's sliceEntryLine does) and copies unchanged lines into the
 * new manifest; only entries that changed are ever decoded.
 */
export class StoredEntry {
  private decoded: ManifestEntry | undefined;

  constructor(
    /** The manifest's bytes; this entry is [start, end) without its newline. */
    readonly data: Buffer,
    readonly start: number,
    readonly end: number,
    readonly name: Buffer,
    readonly keyStart: number,
    readonly keyEnd: number,
    /** Content could not be read at that backup ("bad":1): never unchanged. */
    readonly unread: boolean,
  ) {}

  get line(): Buffer {
    return this.data.subarray(this.start, this.end);
  }

  get entry(): ManifestEntry {
    return (this.decoded ??= decodeEntry(this.data.toString('utf8', this.start, this.end)));
  }
}

/** Does data hold the bytes of `ascii` at `at`? A byte loop: cheaper than a native compare for a few bytes. */
function bytesAt(data: Buffer, at: number, ascii: string): boolean {
  for (let i = 0; i < ascii.length; i++) if (data[at + i] !== ascii.charCodeAt(i)) return false;
  return true;
}

/**
 * Slices one child entry line [start, end) of `data` without parsing it as
 * JSON; undefined when it is not a child entry line (a directory line, the
 * trailer). Inside JSON strings every '"' is escaped, so the first '","t":"'
 * closes the name and the first ',"i":"' after it is the inode key. Byte
 * loops, not Buffer#indexOf: a no-change incremental slices every line of
 * the previous manifest, and the native calls cost more than the scanning.
 */
export function sliceEntryLine(data: Buffer, start: number, end: number): StoredEntry | undefined {
  let nameStart: number;
  let base64 = false;
  if (bytesAt(data, start, '{"n":"')) nameStart = start + 6;
  else if (bytesAt(data, start, '{"nb":"')) {
    nameStart = start + 7;
    base64 = true;
  } else return undefined;
  let close = -1;
  let escaped = false;
  for (let i = nameStart; i < end; i++) {
    const c = data[i];
    if (c === 0x5c) escaped = true;
    else if (c === 0x22 && bytesAt(data, i, '","t":"')) {
      close = i;
      break;
    }
  }
  if (close < 0) throw new ManifestFormatError(`entry line without a type: ${data.toString('utf8', start, Math.min(end, start + 80))}`);
  const keyStart = close + 2;
  let keyEnd = -1;
  for (let i = keyStart; i < end; i++) {
    if (data[i] === 0x2c && bytesAt(data, i, ',"i":"')) {
      for (let k = i + 6; k < end; k++) {
        if (data[k] === 0x22) {
          keyEnd = k + 1;
          break;
        }
      }
      break;
    }
  }
  if (keyEnd <= 0) throw new ManifestFormatError(`entry line without an inode: ${data.toString('utf8', start, Math.min(end, start + 80))}`);
  let name: Buffer;
  if (base64) name = Buffer.from(data.toString('latin1', nameStart, close), 'base64');
  else if (!escaped) name = data.subarray(nameStart, close);
  else name = Buffer.from(JSON.parse(data.toString('utf8', nameStart - 1, close + 1)) as string, 'utf8');
  const unread = end - start >= 9 && bytesAt(data, end - 9, ',"bad":1}');
  return new StoredEntry(data, start, end, name, keyStart, keyEnd, unread);
}
