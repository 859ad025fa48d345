/**
 * Checking manifest files of either version against the backup they belong
 * to, version 1's line reader, and the previous manifest's blocks as the
 * next backup reads them (PreviousBlock, ManifestCursor). Formats:
 * core/manifest.ts (lines), core/manifest-v2.ts and manifest-container.ts
 * (version 2's frames); writing is manifest-writer.ts's, reading blocks
 * manifest-reader.ts's.
 */
import fs from 'node:fs';
import { decodeDirLine, decodeHeader, ManifestFormatError, parseLine, sliceEntryLine, type ManifestEntry, type ManifestHeader, type StoredEntry } from '../core/manifest.js';
import type { ChildRef } from '../core/manifest-v2.js';
import { comparePaths } from '../core/path-order.js';
import { createXxh64 } from '../native/xxh.js';
import { HASH_CHUNK, hashRangeSync, xxh64OfFd } from '../util/file-xxh.js';
import { manifestIndex } from '../native/xbfs.js';
import { FramedManifest, isFramedManifest, MAGIC_BYTES, parseTrailer, TRAILER_BYTES } from './manifest-container.js';
import { openMediumFile, readMediumFile } from './medium-file.js';

export function fileXxh64(file: string): string {
  const fd = openMediumFile(file);
  try {
    return xxh64OfFd(fd).hash;
  } finally {
    fs.closeSync(fd);
  }
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
  const problems: string[] = [];
  let h: ManifestHeader;
  try {
    h = isVersion2Manifest(file) ? framedProblems(file, owner, problems) : lineProblems(file, owner, problems);
    if (h.backup !== owner.id || h.base !== owner.base || h.volume !== owner.volume) {
      problems.push(`belongs to ${h.volume} backup ${h.backup} (base ${h.base}), not to ${owner.volume} backup ${owner.id}`);
    }
  } catch (e) {
    if (!(e instanceof ManifestFormatError)) throw e;
    problems.push(e.message.startsWith(file + ': ') ? e.message.slice(file.length + 2) : e.message);
  }
  return problems;
}

/** Does the file start as a version 2 manifest? */
export function isVersion2Manifest(file: string): boolean {
  const fd = openMediumFile(file);
  try {
    const head = Buffer.alloc(MAGIC_BYTES);
    fs.readSync(fd, head, 0, MAGIC_BYTES, 0);
    return isFramedManifest(head);
  } finally {
    fs.closeSync(fd);
  }
}

function lineProblems(file: string, owner: ManifestOwner, problems: string[]): ManifestHeader {
  const data = readMediumFile(file);
  if (owner.manifestXxh64 !== undefined) {
    const got = createXxh64().update(data).digest();
    if (got !== owner.manifestXxh64) problems.push(`xxh64 ${got} does not match the sidecar's ${owner.manifestXxh64}`);
  }
  return verifyManifestBytes(file, data);
}

/**
 * Version 2: the bytes hashed in pieces (never whole in memory), against the sidecar and the trailer; the index checked.
 * Both hashes come from one read before the structure is looked at, so that damage which breaks the structure
 * (a byte of the index or the trailer) is still said against the sidecar, as version 1's is; and the trailer's
 * checksum is compared before the index is decoded, so that a changed byte before it is said as a checksum mismatch.
 */
function framedProblems(file: string, owner: ManifestOwner, problems: string[]): ManifestHeader {
  const fd = openMediumFile(file);
  let before: string;
  let whole: string;
  const tail = Buffer.alloc(TRAILER_BYTES);
  try {
    const trailerAt = Math.max(0, fs.fstatSync(fd).size - TRAILER_BYTES);
    const hash = createXxh64();
    const buf = Buffer.allocUnsafe(HASH_CHUNK);
    hashRangeSync(fd, hash, 0, trailerAt, buf);
    before = hash.digest();
    hashRangeSync(fd, hash, trailerAt, Infinity, buf);
    whole = hash.digest();
    fs.readSync(fd, tail, 0, TRAILER_BYTES, trailerAt);
  } finally {
    fs.closeSync(fd);
  }
  if (owner.manifestXxh64 !== undefined && whole !== owner.manifestXxh64) problems.push(`xxh64 ${whole} does not match the sidecar's ${owner.manifestXxh64}`);
  const trailer = parseTrailer(tail);
  if (trailer && trailer.xxh64 !== before) throw new ManifestFormatError(`${file}: checksum mismatch (damaged)`);
  const m = FramedManifest.open(file); // the trailer's place of the index, and the index
  try {
    return m.header;
  } finally {
    m.close();
  }
}

/** manifestProblems as one ManifestFormatError naming the file (restore and ls: refuse, don't list). */
export function verifyManifestOf(file: string, owner: ManifestOwner, shown = file): void {
  const problems = manifestProblems(file, owner);
  if (problems.length) throw new ManifestFormatError(`${shown}: ${problems.join('; ')}`);
}

/**
 * A version 1 manifest's trailer checksum, line count and header, from its
 * bytes; `entryLines`, when the caller has counted the lines already
 * (manifestIndex), spares counting them. Throws ManifestFormatError naming the problem.
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

/** Ints per line of manifestIndex (native/manifest-merge.c): start, end, kind | encoding << 4 | bad << 8, name start/end, key start/end. */
export const INDEX_STRIDE = 8;
export const KIND_CHILD = 0;
export const KIND_DIR = 1;
const KIND_OTHER = 2;

/** Where a block's directory line is: a frame of its own manifest, while its children may be in another's. */
export interface DirLineAt {
  dirData: Buffer;
  dirIndex: Int32Array;
  dirLine: number;
}

/** A run of a block's child lines, [first, end) of its index, and where a later manifest finds them. */
export interface Segment {
  first: number;
  end: number;
  ref: ChildRef;
}

/**
 * A block of a previous manifest as the next backup reads it: the located
 * lines of one directory. Its children's lines [first, end) of `index` in
 * `data` are joined with the new listing in C (engines/tar/tree-archiver.ts,
 * mergeBlock); `entries` (StoredEntry objects) and `self` are built only when asked for.
 */
export class PreviousBlock {
  private selfEntry: ManifestEntry | undefined;
  private stored: StoredEntry[] | undefined;

  constructor(
    readonly data: Buffer,
    readonly index: Int32Array,
    readonly dir: Buffer,
    /** The block's child lines: [first, end) of the index. */
    readonly first: number,
    readonly end: number,
    private readonly dirAt: DirLineAt,
    /** Version 2 only: where its child lines are stored, for a later manifest to refer to. */
    readonly segments?: Segment[],
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
      const { dirData, dirIndex, dirLine } = this.dirAt;
      const r = dirLine * INDEX_STRIDE;
      this.selfEntry = decodeDirLine(parseLine(dirData.toString('utf8', dirIndex[r]!, dirIndex[r + 1]!)))!.self;
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
}

/** The bytes a located name stands for: as they are, JSON-unescaped, or base64-decoded. */
export function locatedName(data: Buffer, index: Int32Array, line: number): Buffer {
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
 * A version 1 manifest, read whole and checked (verifyManifestBytes, from
 * the same read), with its blocks located by one native pass (no JSON decoding).
 */
export function readLineManifest(file: string): { header: ManifestHeader; blocks: () => Generator<PreviousBlock> } {
  const data = readMediumFile(file);
  const index = manifestIndex(data);
  const lines = index.length / INDEX_STRIDE;
  const header = verifyManifestBytes(file, data, lines - 2); // all lines but the header and the trailer
  return { header, blocks: () => lineBlocks(file, data, index) };
}

function* lineBlocks(file: string, data: Buffer, index: Int32Array): Generator<PreviousBlock> {
  const lines = index.length / INDEX_STRIDE;
  const show = (line: number): string => data.toString('utf8', index[line * INDEX_STRIDE]!, Math.min(index[line * INDEX_STRIDE + 1]!, index[line * INDEX_STRIDE]! + 80));
  let line = 1; // after the header line
  let last: Buffer | undefined;
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
    const dir = locatedName(data, index, dirLine);
    // Blocks come in walk order, each directory once: a manifest that repeats or reorders them is not ours.
    if (last && comparePaths(last, dir) >= 0) throw new ManifestFormatError(`${file}: directory blocks out of order`);
    last = dir;
    yield new PreviousBlock(data, index, dir, first, line, { dirData: data, dirIndex: index, dirLine });
  }
}

