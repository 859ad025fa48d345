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
  ManifestFormatError,
  sliceEntryLine,
  type ManifestEntry,
  type StoredEntry,
  type ManifestHeader,
} from '../core/manifest.js';
import { comparePaths, isWithin } from '../core/path-order.js';
import { createXxh64, type StreamingHash } from '../util/xxh.js';
import { AtomicFile, withFileName } from './atomic-file.js';

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

  /** Carries an entry of the previous manifest over byte for byte (it is unchanged). */
  copy(e: StoredEntry): void {
    this.count++;
    const n = e.end - e.start;
    if (this.used + n + 1 > this.buf.length) this.flush();
    if (n + 1 > this.buf.length) return this.line(e.data.toString('utf8', e.start, e.end));
    this.used += e.data.copy(this.buf, this.used, e.start, e.end);
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
   * Writes the trailer and makes the file durable under its final name.
   * Returns the file's xxh64: the running hash of every byte written,
   * continued over the trailer (no second read of the file).
   */
  commit(): string {
    this.flush();
    const trailer = Buffer.from(encodeTrailer(this.count, this.hash.digest()) + '\n');
    try {
      let off = 0;
      while (off < trailer.length) off += fs.writeSync(this.file.fd, trailer, off, trailer.length - off);
    } catch (e) {
      throw withFileName(e, this.file.partialPath, 'writing');
    }
    this.file.commit();
    return this.hash.update(trailer).digest();
  }

  abort(): void {
    this.file.abort();
  }
}

export function fileXxh64(file: string): string {
  const h = createXxh64();
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest();
}

/** Yields the file's lines (without "\n") reading 1 MiB at a time. */
function* lines(file: string): Generator<string> {
  const fd = fs.openSync(file, 'r');
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
  // Hash the raw bytes and count newlines: no JSON is parsed but the header's
  // and the trailer's (this runs before every incremental and every restore).
  const data = fs.readFileSync(file);
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
  if (typeof trailer.end !== 'number' || typeof trailer.xxh64 !== 'string') throw new ManifestFormatError(`${file}: no trailer (truncated)`);
  const h = createXxh64();
  h.update(data.subarray(0, trailerStart));
  if (trailer.xxh64 !== h.digest()) throw new ManifestFormatError(`${file}: checksum mismatch (damaged)`);
  try {
    header = decodeHeader(data.toString('utf8', 0, firstEnd));
  } catch (e) {
    throw new ManifestFormatError(`${file}: bad header (${(e as Error).message})`);
  }
  let newlines = 0;
  for (let i = data.indexOf(0x0a, firstEnd + 1); i !== -1 && i < trailerStart; i = data.indexOf(0x0a, i + 1)) newlines++;
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
  let first = true;
  for (const line of lines(file)) {
    if (first) {
      first = false;
      continue;
    }
    const o = JSON.parse(line) as Record<string, unknown>;
    if (typeof o.end === 'number') break;
    const opened = decodeDirLine(o);
    if (opened) {
      if (current) yield current;
      current = { dir: opened.dir, self: opened.self, entries: [] };
    } else {
      if (!current) throw new ManifestFormatError(`${file}: entry before any directory block`);
      current.entries.push(entryFromJson(o));
    }
  }
  if (current) yield current;
}

/** A block of a previous manifest as the next backup reads it: children kept as bytes. */
export interface PreviousBlock {
  dir: Buffer;
  self: ManifestEntry;
  entries: StoredEntry[];
}

/** The blocks of a manifest already checked by verifyManifest, children as StoredEntry (no JSON decoding). */
export function* readStoredBlocks(file: string): Generator<PreviousBlock> {
  const data = fs.readFileSync(file);
  let current: PreviousBlock | undefined;
  let start = data.indexOf(0x0a) + 1; // after the header line
  while (start > 0 && start < data.length) {
    let end = data.indexOf(0x0a, start);
    if (end < 0) end = data.length;
    const stored = sliceEntryLine(data, start, end);
    if (stored) {
      if (!current) throw new ManifestFormatError(`${file}: entry before any directory block`);
      current.entries.push(stored);
    } else {
      const o = JSON.parse(data.toString('utf8', start, end)) as Record<string, unknown>;
      if (typeof o.end === 'number') break;
      const opened = decodeDirLine(o);
      if (!opened) throw new ManifestFormatError(`${file}: line neither entry nor directory: ${data.toString('utf8', start, Math.min(end, start + 80))}`);
      if (current) yield current;
      current = { dir: opened.dir, self: opened.self, entries: [] };
    }
    start = end + 1;
  }
  if (current) yield current;
}

/**
 * Walks a previous manifest alongside a new walk: `take(dir)` returns the
 * block of `dir` if the old tree had it, skipping blocks of directories that
 * no longer exist. Calls must come in walk order.
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
      this.skippedEntries += 1 + this.head.entries.length;
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
