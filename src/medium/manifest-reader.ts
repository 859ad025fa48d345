/**
 * Reads a manifest of either version as blocks in walk order: stored (the
 * located lines, for the next incremental's merge) or decoded (entries, for
 * restore, ls and verify), from the first block or from a given directory
 * on. Version 1 is read whole, as it always was; version 2 frame by frame,
 * following each reference line into the earlier manifest of the chain that
 * holds those lines (`holders`), so memory is bounded by a few frames and
 * the largest directory, and a lookup decodes the frame it needs only.
 */
import { entryFromJson, ManifestFormatError, parseLine, type ManifestEntry, type ManifestHeader } from '../core/manifest.js';
import { decodeRefLine, REF_LINE_START, type ChildRef } from '../core/manifest-v2.js';
import { comparePaths, isWithin, showPath } from '../core/path-order.js';
import { manifestIndex } from '../native/xbfs.js';
import { FramedManifest } from './manifest-container.js';
import type { Segment } from './manifest-file.js';
import { INDEX_STRIDE, isVersion2Manifest, KIND_CHILD, KIND_DIR, locatedName, PreviousBlock, readLineManifest } from './manifest-file.js';

/** Where the earlier manifests of a chain are: the local path of backup `id`'s, or undefined when `id` is not one. */
export type HolderFiles = (id: string) => string | undefined;

export interface ManifestBlock {
  dir: Buffer;
  /** The directory's own entry (name = its path from the root). */
  self: ManifestEntry;
  /** Its children that are not directories, in name order. */
  entries: ManifestEntry[];
}

interface FrameView {
  data: Buffer;
  index: Int32Array;
  lines: number;
}

/** Decoded holder frames kept: references of one manifest walk their holders' frames in order. */
const HOLDER_FRAMES_KEPT = 8;

export interface ManifestReader {
  readonly file: string;
  readonly header: ManifestHeader;
  /** Blocks as stored, from `from`'s block (or the first after where it would be) on; `linksOnly`: only blocks that may hold a file of several links. */
  storedBlocks(from?: Buffer, linksOnly?: boolean): Generator<PreviousBlock>;
  close(): void;
}

/** Opens a manifest of either version; `holders` finds the manifests its references may name (none: it may name none). */
export function openManifest(file: string, holders?: HolderFiles): ManifestReader {
  return isVersion2Manifest(file) ? new FramedReader(file, holders) : new LineReader(file);
}

/** The decoded blocks of a stored block stream; errors name the file. */
export function* decodedBlocks(reader: ManifestReader, from?: Buffer): Generator<ManifestBlock> {
  for (const b of reader.storedBlocks(from)) {
    const entries: ManifestEntry[] = [];
    const names = new Set<string>();
    for (let line = b.first; line < b.end; line++) {
      const r = line * INDEX_STRIDE;
      let e: ManifestEntry;
      try {
        e = entryFromJson(parseLine(b.data.toString('utf8', b.index[r]!, b.index[r + 1]!)));
      } catch (err) {
        if (err instanceof ManifestFormatError) throw new ManifestFormatError(`${reader.file}, block ${showPath(b.dir) || '/'}: ${err.message}`);
        throw err;
      }
      const key = e.name.toString('latin1');
      // A second entry of one name: not what xenbackup writes.
      if (names.has(key)) throw new ManifestFormatError(`${reader.file}, block ${showPath(b.dir) || '/'}: a second entry of the same name in its directory`);
      names.add(key);
      entries.push(e);
    }
    let self: ManifestEntry;
    try {
      self = b.self;
    } catch (err) {
      if (err instanceof ManifestFormatError) throw new ManifestFormatError(`${reader.file}, block ${showPath(b.dir) || '/'}: ${err.message}`);
      throw err;
    }
    yield { dir: b.dir, self, entries };
  }
}

/** The decoded blocks of a manifest file, closed when the walk ends (either version). */
export function* readBlocks(file: string, holders?: HolderFiles, from?: Buffer): Generator<ManifestBlock> {
  const reader = openManifest(file, holders);
  try {
    yield* decodedBlocks(reader, from);
  } finally {
    reader.close();
  }
}

/** Version 1: the whole file in memory, checked by its trailer first (manifest-file.ts). */
class LineReader implements ManifestReader {
  readonly header: ManifestHeader;
  private readonly blocks: () => Generator<PreviousBlock>;

  constructor(readonly file: string) {
    const opened = readLineManifest(file);
    this.header = opened.header;
    this.blocks = opened.blocks;
  }

  *storedBlocks(from?: Buffer): Generator<PreviousBlock> {
    for (const b of this.blocks()) {
      if (from && comparePaths(b.dir, from) < 0) continue;
      yield b;
    }
  }

  close(): void {}
}

function viewOf(data: Buffer): FrameView {
  const index = manifestIndex(data);
  return { data, index, lines: index.length / INDEX_STRIDE };
}

/** Version 2: the index at open, frames as the walk reaches them. */
class FramedReader implements ManifestReader {
  readonly header: ManifestHeader;
  private readonly m: FramedManifest;
  private readonly holderManifests = new Map<string, FramedManifest>();
  private readonly holderFrames = new Map<string, FrameView>();

  constructor(
    readonly file: string,
    private readonly holders?: HolderFiles,
  ) {
    this.m = FramedManifest.open(file);
    this.header = this.m.header;
  }

  *storedBlocks(from?: Buffer, linksOnly = false): Generator<PreviousBlock> {
    const m = this.m;
    const own = this.header.backup;
    let last: Buffer | undefined;
    for (let i = from ? m.frameFor(from) : 0; i < m.frames.length; i++) {
      const f = m.frames[i]!;
      if (linksOnly && !f.links) continue;
      const v = viewOf(m.frame(i));
      const where = `${this.file}, frame ${i}`;
      let line = 0;
      let blocks = 0;
      while (line < v.lines) {
        const r = line * INDEX_STRIDE;
        const kind = v.index[r + 2]! & 15;
        if (kind !== KIND_DIR) throw new ManifestFormatError(`${where}: ${kind === KIND_CHILD ? 'entry before any directory block' : 'line neither entry nor directory'}`);
        const dirLine = line++;
        const dir = locatedName(v.data, v.index, dirLine);
        if (blocks === 0 && !dir.equals(f.firstDir)) throw new ManifestFormatError(`${where}: its first block is not the one its index names`);
        if (last && comparePaths(last, dir) >= 0) throw new ManifestFormatError(`${where}: directory blocks out of order`);
        last = dir;
        blocks++;
        // The children: runs of literal lines and reference lines, in name order, up to the next directory line.
        const parts: Array<{ ref: ChildRef; literal: boolean; first: number }> = [];
        while (line < v.lines) {
          const kind = v.index[line * INDEX_STRIDE + 2]! & 15;
          if (kind === KIND_DIR) break;
          if (kind === KIND_CHILD) {
            const first = line;
            while (line < v.lines && (v.index[line * INDEX_STRIDE + 2]! & 15) === KIND_CHILD) line++;
            const start = v.index[first * INDEX_STRIDE]!;
            const stop = v.index[(line - 1) * INDEX_STRIDE + 1]! + 1;
            parts.push({ ref: { holder: own, at: f.at, len: f.len, raw: f.raw, from: start, to: stop, lines: line - first, links: false }, literal: true, first });
          } else if (isRefLine(v, line)) {
            parts.push({ ref: this.refAt(v, line, where), literal: false, first: -1 });
            line++;
          } else throw new ManifestFormatError(`${where}: line neither entry nor directory`);
        }
        if (from && comparePaths(dir, from) < 0) continue;
        if (linksOnly && !parts.some((p) => (p.literal ? v.data.subarray(p.ref.from, p.ref.to).indexOf(LINKS_MARK) >= 0 : p.ref.links))) continue;
        const dirAt = { dirData: v.data, dirIndex: v.index, dirLine };
        let block: PreviousBlock;
        if (parts.length === 0) {
          block = new PreviousBlock(v.data, v.index, dir, line, line, dirAt, []);
        } else if (parts.length === 1) {
          // One run: its lines where they are, no copy.
          const p = parts[0]!;
          const at = p.literal ? { view: v, first: p.first } : this.resolve(p.ref, where);
          block = new PreviousBlock(at.view.data, at.view.index, dir, at.first, at.first + p.ref.lines, dirAt, [{ first: at.first, end: at.first + p.ref.lines, ref: p.ref }]);
        } else {
          // Several: their bytes joined (a directory with a few changed children), located once more.
          const pieces: Buffer[] = [];
          const segments: Segment[] = [];
          let lines = 0;
          for (const p of parts) {
            const data = p.literal ? v.data : this.resolve(p.ref, where).view.data;
            pieces.push(data.subarray(p.ref.from, p.ref.to));
            segments.push({ first: lines, end: lines + p.ref.lines, ref: p.ref });
            lines += p.ref.lines;
          }
          // Whole child lines each (literal runs by the scan above, references by resolve): they join as such.
          const joined = viewOf(Buffer.concat(pieces));
          block = new PreviousBlock(joined.data, joined.index, dir, 0, lines, dirAt, segments);
        }
        yield block;
      }
      if (blocks !== f.blocks) throw new ManifestFormatError(`${where}: ${blocks} blocks, its index says ${f.blocks}`);
    }
  }

  private refAt(v: FrameView, line: number, where: string): ChildRef {
    const r = line * INDEX_STRIDE;
    try {
      return decodeRefLine(v.data.toString('utf8', v.index[r]!, v.index[r + 1]!));
    } catch (e) {
      if (e instanceof ManifestFormatError) throw new ManifestFormatError(`${where}: ${e.message}`);
      throw e;
    }
  }

  /** The holder's frame and the first of the lines a reference names, after checking they are whole child lines. */
  private resolve(ref: ChildRef, where: string): { view: FrameView; first: number } {
    const key = `${ref.holder}@${ref.at}`;
    let view = this.holderFrames.get(key);
    if (view) {
      this.holderFrames.delete(key); // most recently used last
    } else {
      const holder = this.holder(ref.holder, where);
      view = viewOf(holder.frame(holder.frameNumberAt(ref.at, ref.len, ref.raw, where)));
      if (this.holderFrames.size >= HOLDER_FRAMES_KEPT) this.holderFrames.delete(this.holderFrames.keys().next().value!);
    }
    this.holderFrames.set(key, view);
    const first = lineStartingAt(view, ref.from);
    const end = first + ref.lines;
    const bad = (): never => {
      throw new ManifestFormatError(`${where}: a reference to ${ref.holder} names bytes that are not ${ref.lines} whole entry lines`);
    };
    if (first < 0 || end > view.lines || view.index[(end - 1) * INDEX_STRIDE + 1]! + 1 !== ref.to) bad();
    for (let l = first; l < end; l++) if ((view.index[l * INDEX_STRIDE + 2]! & 15) !== KIND_CHILD) bad();
    return { view, first };
  }

  private holder(id: string, where: string): FramedManifest {
    let h = this.holderManifests.get(id);
    if (h) return h;
    // Only an earlier backup of the same chain: a reference may not reach outside it, nor loop.
    const file = id < this.header.backup ? this.holders?.(id) : undefined;
    if (!file) throw new ManifestFormatError(`${where}: refers to backup ${id}, whose manifest is missing or not one its chain builds on`);
    h = FramedManifest.open(file);
    if (h.header.backup !== id || h.header.volume !== this.header.volume) {
      h.close();
      throw new ManifestFormatError(`${where}: the manifest of ${id} belongs to ${h.header.volume} backup ${h.header.backup}`);
    }
    this.holderManifests.set(id, h);
    return h;
  }

  close(): void {
    this.m.close();
    for (const h of this.holderManifests.values()) h.close();
    this.holderManifests.clear();
    this.holderFrames.clear();
  }
}

function isRefLine(v: FrameView, line: number): boolean {
  const start = v.index[line * INDEX_STRIDE]!;
  return v.data.compare(REF_LINE_START, 0, REF_LINE_START.length, start, start + REF_LINE_START.length) === 0;
}

/** The line of `view` that starts at byte `at`, or -1. */
function lineStartingAt(view: FrameView, at: number): number {
  let lo = 0;
  let hi = view.lines - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const s = view.index[mid * INDEX_STRIDE]!;
    if (s === at) return mid;
    if (s < at) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/**
 * The reference a later manifest writes for lines [first, end) of a block
 * (within one of its segments), or undefined when they span segments or the
 * block has none (a version 1 manifest's).
 */
export function refForLines(b: PreviousBlock, first: number, end: number): ChildRef | undefined {
  const seg = b.segments?.find((s) => s.first <= first && end <= s.end);
  if (!seg || end <= first) return undefined;
  const base = seg.ref.from - b.index[seg.first * INDEX_STRIDE]!;
  const from = base + b.index[first * INDEX_STRIDE]!;
  const to = base + b.index[(end - 1) * INDEX_STRIDE + 1]! + 1;
  const bytes = b.data.subarray(from - base, to - base);
  return { ...seg.ref, from, to, lines: end - first, links: bytes.indexOf(LINKS_MARK) >= 0 };
}

const LINKS_MARK = Buffer.from(',"k":');

/**
 * Walks a previous manifest alongside a new walk: `take(dir)` returns the
 * block of `dir` if the old tree had it, skipping blocks of directories that
 * no longer exist. Calls must come in walk order. Closing it closes the reader.
 */
export class ManifestCursor {
  private readonly it: Iterator<PreviousBlock>;
  private head: PreviousBlock | undefined;
  /** Entries in blocks skipped by take(): directories that no longer exist, with their files. */
  skippedEntries = 0;
  private closed = false;

  /** Takes `reader` over: closing the cursor closes it, and so does failing to read its first block. */
  constructor(readonly reader: ManifestReader) {
    this.it = reader.storedBlocks();
    try {
      this.advance();
    } catch (e) {
      reader.close();
      throw e;
    }
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

  /** Closes the reader's files; again is nothing (error paths close what the success path may have closed). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.it.return?.(undefined);
    this.reader.close();
  }
}
