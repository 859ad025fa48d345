/**
 * Editing a version 2 manifest in tests as an attacker with write access to
 * the medium would: its lines read as JSON objects (the header first, then
 * every directory and entry line in walk order, reference lines expanded to
 * the lines they stand for), edited, and written back as a valid version 2
 * file (magic frame, zstd data frames, index frame, trailer with the xxh64
 * of every byte before it), so that the edit passes the manifest's own
 * checks; the caller fixes the sidecar's manifestXxh64 (manifestXxh64Of).
 *
 * What the edit leaves alone stays as it was stored: a block whose child
 * lines are unchanged keeps its reference line (or its literal lines), a
 * frame whose lines are unchanged keeps its compressed bytes. An edited
 * block is written literally. Blocks stay in the frames they were in; a
 * frame whose length changes moves the frames after it, so a later
 * manifest's references into those frames stop matching (as they would
 * after any such edit on a medium).
 *
 * Test-only code; the checksums are the product's xxh64, which is no secret.
 */
import fs from 'node:fs';
import { decodeRefLine, encodeFrameRecord, encodeHeaderV2, REF_LINE_START, type FrameRecord, type ManifestHeaderV2 } from '../../src/core/manifest-v2.js';
import { FramedManifest, magicFrame, MAGIC_BYTES, trailerFrame } from '../../src/medium/manifest-container.js';
import { xxh64 } from '../../src/native/xxh.js';
import { zstdCompressFrameSync, zstdFrameBound } from '../../src/native/zstd.js';
import { folderHolders } from './manifest-read.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

/** Where the manifests a reference names are: the path of backup `id`'s manifest. */
export type Holders = (id: string) => string | undefined;

/** One directory block as stored. */
interface StoredBlock {
  frame: number;
  dirLine: string;
  /** Its child lines as the file stores them: one reference line, or the lines themselves. */
  stored: string[];
  /** Its child lines, a reference expanded. */
  children: string[];
}

interface Parsed {
  header: ManifestHeaderV2;
  /** The header line as the index stores it. */
  headerLine: string;
  frames: FrameRecord[];
  /** Each frame's bytes in the file, and decompressed. */
  packed: Buffer[];
  raw: Buffer[];
  blocks: StoredBlock[];
}

function linesOf(text: string): string[] {
  const lines = text.split('\n');
  if (lines.pop() !== '') throw new Error('lines that do not end with a newline');
  return lines;
}

/** Does the line open a directory block? (A line that is not JSON does not: a hostile edit may write one.) */
function isDirLine(line: string): boolean {
  if (line.startsWith(REF_LINE_START.toString('latin1'))) return false;
  try {
    const o = JSON.parse(line) as Json;
    return typeof o === 'object' && o !== null && (typeof o.d === 'string' || typeof o.db === 'string');
  } catch {
    return false;
  }
}

/** The path of a directory line's block (the frame index's firstDir). */
function dirOf(line: string): Buffer {
  const o = JSON.parse(line) as Json;
  return typeof o.d === 'string' ? Buffer.from(o.d, 'utf8') : Buffer.from(o.db as string, 'base64');
}

function parse(file: string, holders: Holders): Parsed {
  const m = FramedManifest.open(file);
  const heldBy = new Map<string, FramedManifest>();
  try {
    const fd = fs.openSync(file, 'r');
    const packed = m.frames.map((f) => {
      const b = Buffer.alloc(f.len);
      fs.readSync(fd, b, 0, f.len, f.at);
      return b;
    });
    fs.closeSync(fd);
    const raw = m.frames.map((_, i) => m.frame(i));
    const blocks: StoredBlock[] = [];
    raw.forEach((data, frame) => {
      for (const line of linesOf(data.toString('utf8'))) {
        if (isDirLine(line)) {
          blocks.push({ frame, dirLine: line, stored: [], children: [] });
          continue;
        }
        const b = blocks[blocks.length - 1];
        if (!b || b.frame !== frame) throw new Error(`${file}: frame ${frame} starts with an entry line`);
        b.stored.push(line);
        if (!line.startsWith(REF_LINE_START.toString('latin1'))) {
          b.children.push(line);
          continue;
        }
        const ref = decodeRefLine(line);
        let h = heldBy.get(ref.holder);
        if (!h) {
          const path = holders(ref.holder);
          if (!path) throw new Error(`${file}: refers to ${ref.holder}, whose manifest is not there`);
          h = FramedManifest.open(path);
          heldBy.set(ref.holder, h);
        }
        const held = h.frame(h.frameNumberAt(ref.at, ref.len, ref.raw, file));
        b.children.push(...linesOf(held.toString('utf8', ref.from, ref.to)));
      }
    });
    const headerLine = encodeHeaderV2(m.header);
    return { header: m.header, headerLine, frames: m.frames, packed, raw, blocks };
  } finally {
    m.close();
    for (const h of heldBy.values()) h.close();
  }
}

/** A version 2 manifest's header and lines (walk order, references expanded), as text. */
export function readManifestLines(file: string, holders: Holders = folderHolders(file)): { header: ManifestHeaderV2; lines: string[] } {
  const p = parse(file, holders);
  return { header: p.header, lines: p.blocks.flatMap((b) => [b.dirLine, ...b.children]) };
}

export interface RewriteOptions {
  holders?: Holders;
  /** The xxh64 the trailer states (default: the right one); e.g. the original's, to test that the trailer catches an edit. */
  trailerXxh64?: string;
  /** Write the lines that references to this backup stand for instead (before that backup's manifest is edited). */
  expand?: string;
}

/** The xxh64 the trailer of a version 2 manifest's bytes states. */
export function trailerXxh64Of(bytes: Buffer): string {
  return bytes.readBigUInt64BE(bytes.length - 8).toString(16).padStart(16, '0');
}

/** The sidecar's manifestXxh64 for these bytes (the whole file's xxh64). */
export function manifestXxh64Of(bytes: Buffer): string {
  return xxh64(bytes);
}

function compress(raw: Buffer, level = 1): Buffer {
  return Buffer.from(zstdCompressFrameSync(raw, Buffer.allocUnsafe(zstdFrameBound(raw.length)), level));
}

/**
 * The bytes of `file` (a version 2 manifest) after `edit` on its lines as
 * JSON objects, index 0 the header (fields volume, backup, base, createdAt;
 * the counts are recomputed); `edit` may change them in place or return a
 * new list, whose items may also be lines as text. Nothing is written.
 */
export function rewriteManifest(file: string, edit: (objs: Json[]) => Json[] | void, opts: RewriteOptions = {}): Buffer {
  const p = parse(file, opts.holders ?? folderHolders(file));
  // Each object remembers the text it was read from, so an unedited line is written back byte for byte.
  const text = new Map<Json, { line: string; json: string }>();
  const objOf = (line: string): Json => {
    const o = JSON.parse(line) as Json;
    text.set(o, { line, json: JSON.stringify(o) });
    return o;
  };
  const headerObj: Json = JSON.parse(p.headerLine);
  const objs: Json[] = [headerObj, ...p.blocks.flatMap((b) => [b.dirLine, ...b.children].map(objOf))];
  const out = edit(objs) ?? objs;
  const lineOf = (o: Json): string => {
    if (typeof o === 'string') return o;
    const was = text.get(o);
    const json = JSON.stringify(o);
    return was && was.json === json ? was.line : json;
  };

  // The edited lines as blocks, each in the frame its directory was in (a new one in its predecessor's).
  const key = (dirLine: string): string => (dirLine ? dirOf(dirLine).toString('latin1') : '');
  const byDir = new Map(p.blocks.map((b) => [key(b.dirLine), b]));
  const blocks: StoredBlock[] = [];
  for (const o of out.slice(1)) {
    const line = lineOf(o);
    if (isDirLine(line)) {
      const was = byDir.get(key(line));
      const frame = Math.max(blocks[blocks.length - 1]?.frame ?? 0, was?.frame ?? 0);
      blocks.push({ frame, dirLine: line, stored: [], children: [] });
    } else {
      if (!blocks.length) blocks.push({ frame: 0, dirLine: '', stored: [], children: [] }); // lines before any directory (hostile)
      blocks[blocks.length - 1]!.children.push(line);
    }
  }
  for (const b of blocks) {
    const was = b.dirLine ? byDir.get(key(b.dirLine)) : undefined;
    const same = was && was.children.length === b.children.length && was.children.every((l, i) => l === b.children[i]);
    const expanded = opts.expand !== undefined && was?.stored.some((l) => l.startsWith(`{"ref":"${opts.expand}"`));
    b.stored = same && !expanded ? was.stored : b.children;
  }

  const frames: FrameRecord[] = [];
  const packed: Buffer[] = [];
  let at = MAGIC_BYTES;
  const frameNumbers = [...new Set(blocks.map((b) => b.frame))];
  for (const n of frameNumbers) {
    const mine = blocks.filter((b) => b.frame === n);
    const raw = Buffer.from(mine.flatMap((b) => (b.dirLine ? [b.dirLine] : []).concat(b.stored)).map((l) => l + '\n').join(''));
    const kept = p.raw[n]?.equals(raw) === true;
    const bytes = kept ? p.packed[n]! : compress(raw);
    const first = mine.find((b) => b.dirLine);
    frames.push({
      at,
      len: bytes.length,
      raw: raw.length,
      blocks: mine.filter((b) => b.dirLine).length,
      firstDir: first ? dirOf(first.dirLine) : Buffer.alloc(0),
      links: kept ? p.frames[n]!.links : raw.includes(',"k":') || raw.includes('"hl":1'),
    });
    packed.push(bytes);
    at += bytes.length;
  }

  const entries = blocks.reduce((sum, b) => sum + (b.dirLine ? 1 : 0) + b.children.length, 0);
  const header = typeof out[0] === 'string' ? (out[0] as string) : JSON.stringify({ ...out[0], entries, blocks: frames.reduce((s, f) => s + f.blocks, 0), frames: frames.length });
  const index = Buffer.from([header, ...frames.map(encodeFrameRecord), ''].join('\n'));
  const indexPacked = compress(index, 3);
  const body = Buffer.concat([magicFrame(), ...packed, indexPacked]);
  return Buffer.concat([body, trailerFrame(at, indexPacked.length, index.length, opts.trailerXxh64 ?? xxh64(body))]);
}
