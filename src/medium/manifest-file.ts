/**
 * Reading and writing manifest files (format: core/manifest.ts). The writer
 * streams lines through a 1 MiB buffer and hashes as it goes; the reader
 * first checks the trailer's checksum over the whole file, so a damaged
 * manifest is refused before anything trusts it, then streams blocks in
 * walk order with memory bounded by the largest directory.
 */
import fs from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import {
  decodeDirLine,
  decodeHeader,
  encodeDirLine,
  encodeEntry,
  encodeHeader,
  encodeTrailer,
  entryFromJson,
  isPlainJsonName,
  ManifestFormatError,
  parseLine,
  sliceEntryLine,
  type ManifestEntry,
  type StoredEntry,
  type ManifestHeader,
} from '../core/manifest.js';
import { comparePaths, isWithin } from '../core/path-order.js';
import { createXxh64, xxh64, type StreamingHash } from '../native/xxh.js';
import { AtomicFile, withFileName } from './atomic-file.js';
import { xxh64OfFd } from '../util/file-xxh.js';
import { manifestIndex } from '../native/xbfs.js';
import { openMediumFile, readMediumFile } from './medium-file.js';

const FLUSH_AT = 1 << 20;

export class ManifestWriter {
  private readonly file: AtomicFile;
  private readonly hash: StreamingHash = createXxh64();
  private readonly buf = Buffer.allocUnsafe(FLUSH_AT + 65536);
  private used = 0;
  private count = 0;

  constructor(finalPath: string, header: ManifestHeader) {
    this.file = new AtomicFile(finalPath);
    this.line(encodeHeader(header));
  }

  /** Opens the block of `dir` (its path from the root); `self` is the directory's own entry. */
  beginDir(dir: Buffer, self: ManifestEntry): void {
    this.count++;
    this.line(encodeDirLine(dir, self));
  }

  entry(e: ManifestEntry): void {
    this.count++;
    this.line(encodeEntry(e));
  }

  /**
   * The line of a plain regular file (one link, not sparse, readable) written
   * from its listing's change key (`"t":"f",...,"i":"<inode>"`, the very text
   * encodeEntry writes for those fields), without an entry object: a full
   * backup writes 100,000 of these. Returns false, writing nothing, when the
   * name needs JSON escapes or base64 (the caller then uses entry()).
   */
  plainFileLine(name: Buffer, key: Buffer, hash: string, archiveMember: Buffer, offset: number): boolean {
    if (!isPlainJsonName(name) || key.length === 0) return false;
    const need = name.length + key.length + hash.length + archiveMember.length + 40;
    if (this.used + need > this.buf.length) this.flush();
    const b = this.buf;
    let at = this.used;
    b[at++] = 0x7b; // {"n":"
    b[at++] = 0x22;
    b[at++] = 0x6e;
    b[at++] = 0x22;
    b[at++] = 0x3a;
    b[at++] = 0x22;
    for (let i = 0; i < name.length; i++) b[at++] = name[i]!;
    b[at++] = 0x22;
    b[at++] = 0x2c;
    at += key.copy(b, at);
    at += b.write(`,"h":"${hash}",`, at, 'latin1');
    at += archiveMember.copy(b, at);
    at += b.write(`,"o":${offset}}\n`, at, 'latin1');
    this.used = at;
    this.count++;
    if (this.used >= FLUSH_AT) this.flush();
    return true;
  }

  /**
   * At least `n` bytes of buffer to write lines into (flushing what is
   * buffered first if needed), or undefined when n is more than the buffer
   * holds; wrote() then says how much was written.
   */
  room(n: number): Buffer | undefined {
    if (this.used + n > this.buf.length) this.flush();
    return this.used + n > this.buf.length ? undefined : this.buf.subarray(this.used);
  }

  /** `bytes` of whole lines (each ending in "\n"), `lines` of them, were written at the start of room(). */
  wrote(bytes: number, lines: number): void {
    this.used += bytes;
    this.count += lines;
    if (this.used >= FLUSH_AT) this.flush();
  }

  /** Carries an entry of the previous manifest over byte for byte (it is unchanged). */
  copy(e: StoredEntry): void {
    this.copyLine(e.data, e.start, e.end);
  }

  /** Carries the entry line [start, end) of a previous manifest's bytes over as it is. */
  copyLine(data: Buffer, start: number, end: number): void {
    this.count++;
    const n = end - start;
    if (this.used + n + 1 > this.buf.length) this.flush();
    if (n + 1 > this.buf.length) return this.line(data.toString('utf8', start, end));
    this.used += data.copy(this.buf, this.used, start, end);
    this.buf[this.used++] = 0x0a;
    if (this.used >= FLUSH_AT) this.flush();
  }

  private line(s: string): void {
    const max = s.length * 3 + 1;
    if (this.used + max > this.buf.length) this.flush();
    if (max > this.buf.length) {
      this.writeOut(Buffer.from(s + '\n'));
      return;
    }
    this.used += this.buf.write(s, this.used);
    this.buf[this.used++] = 0x0a;
    if (this.used >= FLUSH_AT) this.flush();
  }

  private flush(): void {
    if (this.used === 0) return;
    const n = this.used;
    this.used = 0;
    this.writeOut(this.buf.subarray(0, n));
  }

  private writeOut(buf: Buffer): void {
    this.hash.update(buf);
    let off = 0;
    try {
      while (off < buf.length) off += fs.writeSync(this.file.fd, buf, off, buf.length - off);
    } catch (e) {
      throw withFileName(e, this.file.partialPath, 'writing');
    }
  }

  /**
   * Writes what is buffered and fsyncs it off the main thread: a backup calls
   * this when its pass is over, so that the manifest (20 MB for 100,000
   * files, ~40 ms of writeback here) reaches the disk while the archive's
   * last segments are compressed and synced, not after. commit() still
   * syncs (the trailer, and anything written since).
   */
  /** Where the manifest is written until it is published. */
  get partialPath(): string {
    return this.file.partialPath;
  }

  async flushToDisk(): Promise<void> {
    this.flush();
    try {
      await this.file.syncAsync();
    } catch (e) {
      throw withFileName(e, this.file.partialPath, 'writing');
    }
  }

  /**
   * Writes the trailer and makes the file durable under its partial name
   * (Storage.publish gives it its own). Returns the file's xxh64: the
   * running hash of every byte written, continued over the trailer (no
   * second read of the file).
   */
  seal(): string {
    this.flush();
    const trailer = Buffer.from(encodeTrailer(this.count, this.hash.digest()) + '\n');
    try {
      let off = 0;
      while (off < trailer.length) off += fs.writeSync(this.file.fd, trailer, off, trailer.length - off);
    } catch (e) {
      throw withFileName(e, this.file.partialPath, 'writing');
    }
    this.file.seal();
    return this.hash.update(trailer).digest();
  }

  abort(): void {
    this.file.abort();
  }
}

export function fileXxh64(file: string): string {
  const fd = openMediumFile(file);
  try {
    return xxh64OfFd(fd).hash;
  } finally {
    fs.closeSync(fd);
  }
}

/** Yields the file's lines (without "\n") reading 1 MiB at a time. */
function* lines(file: string): Generator<string> {
  const fd = openMediumFile(file);
  try {
    const buf = Buffer.allocUnsafe(FLUSH_AT);
    // A decoder, not toString: a chunk may end inside a multi-byte character.
    const decoder = new StringDecoder('utf8');
    let rest = '';
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      const text = rest + decoder.write(buf.subarray(0, n));
      const parts = text.split('\n');
      rest = parts.pop()!;
      yield* parts;
    }
    if (rest) yield rest;
  } finally {
    fs.closeSync(fd);
  }
}

/** Checks the trailer checksum; returns the header. Throws ManifestFormatError naming the problem. */
export function verifyManifest(file: string): ManifestHeader {
  return verifyManifestBytes(file, readMediumFile(file));
}

/** The backup a manifest should be: its sidecar's id, base and xxh64 of the file, and the volume whose folder holds it. */
export interface ManifestOwner {
  id: string;
  base: string | null;
  volume: string;
  manifestXxh64?: string;
}

/**
 * What is wrong with a backup's manifest, from one read: its bytes against
 * the sidecar's xxh64 (an attacker who rewrote the trailer must fix the
 * sidecar too), its own trailer, and its header against the backup it should
 * be. Empty when nothing is.
 */
export function manifestProblems(file: string, owner: ManifestOwner): string[] {
  const data = readMediumFile(file);
  const problems: string[] = [];
  if (owner.manifestXxh64 !== undefined) {
    const got = xxh64(data);
    if (got !== owner.manifestXxh64) problems.push(`xxh64 ${got} does not match the sidecar's ${owner.manifestXxh64}`);
  }
  try {
    const h = verifyManifestBytes(file, data);
    if (h.backup !== owner.id || h.base !== owner.base || h.volume !== owner.volume) {
      problems.push(`belongs to ${h.volume} backup ${h.backup} (base ${h.base}), not to ${owner.volume} backup ${owner.id}`);
    }
  } catch (e) {
    if (!(e instanceof ManifestFormatError)) throw e;
    problems.push(e.message.startsWith(file + ': ') ? e.message.slice(file.length + 2) : e.message);
  }
  return problems;
}

/** manifestProblems as one ManifestFormatError naming the file (restore and ls: refuse, don't list). */
export function verifyManifestOf(file: string, owner: ManifestOwner, shown = file): void {
  const problems = manifestProblems(file, owner);
  if (problems.length) throw new ManifestFormatError(`${shown}: ${problems.join('; ')}`);
}

/**
 * verifyManifest on the file's bytes already read; `entryLines`, when the
 * caller has counted the lines already (manifestIndex), spares counting them.
 */
function verifyManifestBytes(file: string, data: Buffer, entryLines?: number): ManifestHeader {
  // Hash the raw bytes and count newlines: no JSON is parsed but the header's
  // and the trailer's (this runs before every incremental and every restore).
  if (data.length === 0) throw new ManifestFormatError(`${file}: empty`);
  if (data[data.length - 1] !== 0x0a) throw new ManifestFormatError(`${file}: no trailer (truncated)`);
  const trailerStart = data.lastIndexOf(0x0a, data.length - 2) + 1;
  const firstEnd = data.indexOf(0x0a);
  if (trailerStart <= 0 || firstEnd >= trailerStart) throw new ManifestFormatError(`${file}: no trailer (truncated)`);
  let trailer: { end?: unknown; xxh64?: unknown };
  let header: ManifestHeader;
  try {
    trailer = JSON.parse(data.toString('utf8', trailerStart, data.length - 1)) as { end?: unknown; xxh64?: unknown };
  } catch {
    throw new ManifestFormatError(`${file}: no trailer (truncated or damaged)`);
  }
  if (typeof trailer !== 'object' || trailer === null || typeof trailer.end !== 'number' || typeof trailer.xxh64 !== 'string') throw new ManifestFormatError(`${file}: no trailer (truncated)`);
  const h = createXxh64();
  h.update(data.subarray(0, trailerStart));
  if (trailer.xxh64 !== h.digest()) throw new ManifestFormatError(`${file}: checksum mismatch (damaged)`);
  try {
    header = decodeHeader(data.toString('utf8', 0, firstEnd));
  } catch (e) {
    throw new ManifestFormatError(`${file}: bad header (${(e as Error).message})`);
  }
  let newlines = entryLines ?? 0;
  if (entryLines === undefined) {
    for (let i = data.indexOf(0x0a, firstEnd + 1); i !== -1 && i < trailerStart; i = data.indexOf(0x0a, i + 1)) newlines++;
  }
  if (trailer.end !== newlines) throw new ManifestFormatError(`${file}: ${newlines} entries, trailer says ${trailer.end}`);
  return header;
}

export interface ManifestBlock {
  dir: Buffer;
  /** The directory's own entry (name = its path from the root). */
  self: ManifestEntry;
  /** Its children that are not directories, in name order. */
  entries: ManifestEntry[];
}

/** Streams the blocks of a manifest already checked by verifyManifest. */
export function* readBlocks(file: string): Generator<ManifestBlock> {
  let current: ManifestBlock | undefined;
  const names = new Set<string>();
  let lineNo = 0;
  for (const line of lines(file)) {
    if (++lineNo === 1) continue;
    let opened: ReturnType<typeof decodeDirLine>;
    let entry: ManifestEntry | undefined;
    try {
      const o = parseLine(line);
      if (typeof o.end === 'number') break;
      opened = decodeDirLine(o);
      if (!opened) entry = entryFromJson(o);
    } catch (e) {
      if (e instanceof ManifestFormatError) throw new ManifestFormatError(`${file}, line ${lineNo}: ${e.message}`);
      throw e;
    }
    if (opened) {
      // Blocks come in walk order, each directory once: a manifest that repeats or reorders them is not ours.
      if (current && comparePaths(current.dir, opened.dir) >= 0) {
        throw new ManifestFormatError(`${file}, line ${lineNo}: directory blocks out of order`);
      }
      if (current) yield current;
      current = { dir: opened.dir, self: opened.self, entries: [] };
      names.clear();
    } else {
      if (!current) throw new ManifestFormatError(`${file}, line ${lineNo}: entry before any directory block`);
      const key = entry!.name.toString('latin1');
      if (names.has(key)) throw new ManifestFormatError(`${file}, line ${lineNo}: a second entry of the same name in its directory`);
      names.add(key);
      current.entries.push(entry!);
    }
  }
  if (current) yield current;
}

/** Ints per line of manifestIndex (native/manifest-merge.c): start, end, kind | encoding << 4 | bad << 8, name start/end, key start/end. */
export const INDEX_STRIDE = 8;
const KIND_CHILD = 0;
const KIND_DIR = 1;
const KIND_OTHER = 2;

/**
 * A block of a previous manifest as the next backup reads it: the located
 * lines of one directory in the manifest's bytes. Its children's lines are
 * joined with the new listing in C (engines/tar/tree-archiver.ts, mergeBlock);
 * `entries` (StoredEntry objects) and `self` are built only when asked for.
 */
export class PreviousBlock {
  private selfEntry: ManifestEntry | undefined;
  private stored: StoredEntry[] | undefined;

  constructor(
    readonly data: Buffer,
    readonly index: Int32Array,
    private readonly dirLine: number,
    readonly dir: Buffer,
    /** The block's child lines: [first, end) of the index. */
    readonly first: number,
    readonly end: number,
  ) {}

  get childCount(): number {
    return this.end - this.first;
  }

  /** Bytes of its child lines, newlines included. */
  get childBytes(): number {
    return this.end > this.first ? this.index[(this.end - 1) * INDEX_STRIDE + 1]! + 1 - this.index[this.first * INDEX_STRIDE]! : 0;
  }

  /** The directory's own entry (name = its path from the root). */
  get self(): ManifestEntry {
    if (!this.selfEntry) {
      const o = parseLine(this.lineText(this.dirLine));
      this.selfEntry = decodeDirLine(o)!.self;
    }
    return this.selfEntry;
  }

  /** Its children that are not directories, in name order. */
  get entries(): StoredEntry[] {
    return (this.stored ??= Array.from({ length: this.childCount }, (_, k) => this.storedAt(this.first + k)));
  }

  /** The child line `line` of the index (within [first, end)) as a StoredEntry. */
  storedAt(line: number): StoredEntry {
    const r = line * INDEX_STRIDE;
    return sliceEntryLine(this.data, this.index[r]!, this.index[r + 1]!)!;
  }

  private lineText(line: number): string {
    const r = line * INDEX_STRIDE;
    return this.data.toString('utf8', this.index[r]!, this.index[r + 1]!);
  }
}

/** The bytes a located name stands for: as they are, JSON-unescaped, or base64-decoded. */
function locatedName(data: Buffer, index: Int32Array, line: number): Buffer {
  const r = line * INDEX_STRIDE;
  const start = index[r + 3]!;
  const end = index[r + 4]!;
  switch ((index[r + 2]! >> 4) & 15) {
    case 0:
      return data.subarray(start, end);
    case 1:
      return Buffer.from(JSON.parse(data.toString('utf8', start - 1, end + 1)) as string, 'utf8');
    default:
      return Buffer.from(data.toString('latin1', start, end), 'base64');
  }
}

/**
 * The blocks of a manifest, located by one native pass (no JSON decoding),
 * after checking it as verifyManifest does (from the same read).
 */
export function* readStoredBlocks(file: string): Generator<PreviousBlock> {
  const data = readMediumFile(file);
  const index = manifestIndex(data);
  const lines = index.length / INDEX_STRIDE;
  verifyManifestBytes(file, data, lines - 2); // all lines but the header and the trailer
  const show = (line: number): string => data.toString('utf8', index[line * INDEX_STRIDE]!, Math.min(index[line * INDEX_STRIDE + 1]!, index[line * INDEX_STRIDE]! + 80));
  let line = 1; // after the header line
  while (line < lines) {
    const kind = index[line * INDEX_STRIDE + 2]! & 15;
    if (kind === KIND_OTHER) break; // the trailer
    if (kind === KIND_CHILD) throw new ManifestFormatError(`${file}: entry before any directory block`);
    if (kind !== KIND_DIR) throw new ManifestFormatError(`${file}: line neither entry nor directory: ${show(line)}`);
    const dirLine = line++;
    const first = line;
    while (line < lines && (index[line * INDEX_STRIDE + 2]! & 15) === KIND_CHILD) line++;
    if (line < lines && (index[line * INDEX_STRIDE + 2]! & 15) > KIND_OTHER) {
      throw new ManifestFormatError(`${file}: line neither entry nor directory: ${show(line)}`);
    }
    yield new PreviousBlock(data, index, dirLine, locatedName(data, index, dirLine), first, line);
  }
}

/**
 * Walks a previous manifest alongside a new walk: `take(dir)` returns the
 * block of `dir` if the old tree had it, skipping blocks of directories that
 * no longer exist. Calls must come in walk order. Opening it checks the
 * manifest as verifyManifest does: a damaged one throws ManifestFormatError.
 */
export class ManifestCursor {
  private readonly it: Iterator<PreviousBlock>;
  private head: PreviousBlock | undefined;
  /** Entries in blocks skipped by take(): directories that no longer exist, with their files. */
  skippedEntries = 0;

  constructor(file: string) {
    this.it = readStoredBlocks(file);
    this.advance();
  }

  private advance(): void {
    const r = this.it.next();
    this.head = r.done ? undefined : r.value;
  }

  take(dir: Buffer): PreviousBlock | undefined {
    while (this.head && comparePaths(this.head.dir, dir) < 0) {
      this.skippedEntries += 1 + this.head.childCount;
      this.advance();
    }
    if (this.head && this.head.dir.equals(dir)) {
      const found = this.head;
      this.advance();
      return found;
    }
    return undefined;
  }

  /** After take(dir): the blocks of every directory below `dir`, in walk order (they follow it). */
  takeBelow(dir: Buffer): PreviousBlock[] {
    const out: PreviousBlock[] = [];
    while (this.head && isWithin(this.head.dir, dir) && !this.head.dir.equals(dir)) {
      out.push(this.head);
      this.advance();
    }
    return out;
  }
}
