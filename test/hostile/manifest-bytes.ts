/**
 * A manifest file of either version as lines an attacker edits, and those
 * lines written back as bytes the product's checksums accept (media-edit.ts
 * for the corpus, fuzz-mutate.ts for the fuzzer). Version 1 is its text: a
 * header line, entry and directory lines, a trailer. Version 2
 * (src/medium/manifest-container.ts) is shown the same way: a header object
 * (the index's header without its counts), then the data lines of every frame
 * in file order, a reference line either kept or expanded into the child lines
 * it names in the holder's frame; written back as a magic frame, data frames,
 * an index (the header line built from lines[0], one honest record per frame)
 * and a trailer whose xxh64 covers every byte before it, so that an edit is
 * refused for what it says, not for a checksum. `tamper` makes the index and
 * the trailer lie where a case needs them to. Test-only code.
 */
import { isVersion2Manifest } from '../../src/medium/manifest-file.js';
import { folderHolders } from '../helpers/manifest-read.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeRefLine, encodeFrameRecord, REF_LINE_START, type FrameRecord } from '../../src/core/manifest-v2.js';
import { FramedManifest, MAGIC_BYTES, magicFrame, trailerFrame } from '../../src/medium/manifest-container.js';
import { INDEX_STRIDE, KIND_DIR, locatedName } from '../../src/medium/manifest-file.js';
import { manifestIndex } from '../../src/native/xbfs.js';
import { xxh64 } from '../../src/native/xxh.js';
import { zstdCompressFrameSync, zstdFrameBound } from '../../src/native/zstd.js';

/** Does the file start as a version 2 manifest? (A regular file only: never opens a fifo or follows a link.) */
export function isFramedFile(file: string): boolean {
  return fs.lstatSync(file).isFile() && isVersion2Manifest(file);
}

/** The lines of a frame's decompressed bytes (each ended by "\n"). */
function splitLines(data: Buffer): string[] {
  const lines = data.toString('utf8').split('\n');
  if (lines.pop() !== '') throw new Error('a frame that does not end with a newline');
  return lines;
}

/** Frame by frame, the data lines of a version 2 manifest; references expanded into the lines they name when `expand`. */
export function framedParts(file: string, expand: boolean): { header: Record<string, unknown>; frames: string[][] } {
  const m = FramedManifest.open(file);
  const holders = new Map<string, FramedManifest>();
  const inFolder = folderHolders(file);
  const holderFile = (id: string): string => {
    const found = inFolder(id);
    if (!found) throw new Error(`${file}: a reference to ${id}, whose manifest is not in ${path.dirname(file)}`);
    return found;
  };
  try {
    const frames: string[][] = [];
    for (let i = 0; i < m.frames.length; i++) {
      const out: string[] = [];
      for (const line of splitLines(m.frame(i))) {
        if (!expand || !line.startsWith(REF_LINE_START.toString())) {
          out.push(line);
          continue;
        }
        const ref = decodeRefLine(line);
        let h = holders.get(ref.holder);
        if (!h) holders.set(ref.holder, (h = FramedManifest.open(holderFile(ref.holder))));
        const data = h.frame(h.frameNumberAt(ref.at, ref.len, ref.raw, file));
        const children = splitLines(data.subarray(ref.from, ref.to));
        if (children.length !== ref.lines) throw new Error(`${file}: a reference to ${ref.holder} names ${children.length} lines, it says ${ref.lines}`);
        out.push(...children);
      }
      frames.push(out);
    }
    const { volume, backup, base, createdAt } = m.header;
    return { header: { xenbackup: 'manifest', version: 2, volume, backup, base, createdAt }, frames };
  } finally {
    m.close();
    for (const h of holders.values()) h.close();
  }
}

/**
 * A manifest's lines, header first, without any trailer: version 1's text
 * lines, or version 2's header object and data lines (framedParts, all
 * frames one after another).
 */
export function manifestLinesOf(file: string, expand = true): string[] {
  if (isFramedFile(file)) {
    const { header, frames } = framedParts(file, expand);
    return [JSON.stringify(header), ...frames.flat()];
  }
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  lines.pop(); // after the last "\n"
  lines.pop(); // the trailer
  return lines;
}

/** Version 1: the text of `lines` (header first) with a correct trailer. */
export function lineManifestBytes(lines: string[]): Buffer {
  const body = Buffer.from(lines.map((l) => l + '\n').join(''));
  return Buffer.concat([body, Buffer.from(JSON.stringify({ end: lines.length - 1, xxh64: xxh64(body) }) + '\n')]);
}

export interface TrailerFields {
  indexAt: number;
  indexLen: number;
  indexRaw: number;
  xxh64: string;
}

/** Where the lies go: index records edited after they were made honestly, trailer fields replaced. */
export interface FramedTamper {
  /** Edits the records (one per data frame, in file order) before they are encoded; a string[] replaces their lines. */
  records?: (records: FrameRecord[]) => void | string[];
  /** Replaces fields of the trailer (the index's place and size, the hash of the bytes before it), or says them from the honest ones. */
  trailer?: Partial<TrailerFields> | ((honest: TrailerFields) => Partial<TrailerFields>);
}

/** What the index says of one frame of lines, as manifest-writer.ts would say it. */
function recordOf(at: number, packed: Buffer, raw: Buffer): FrameRecord {
  const index = manifestIndex(raw);
  let blocks = 0;
  let firstDir: Buffer | undefined;
  for (let line = 0; line < index.length / INDEX_STRIDE; line++) {
    if ((index[line * INDEX_STRIDE + 2]! & 15) !== KIND_DIR) continue;
    blocks++;
    if (!firstDir) {
      try {
        firstDir = Buffer.from(locatedName(raw, index, line));
      } catch {
        firstDir = Buffer.alloc(0); // a name the reader cannot decode either: it refuses the line
      }
    }
  }
  const links = raw.indexOf(',"k":') >= 0 || raw.toString('latin1').split('\n').some((l) => l.startsWith('{"ref":') && l.includes('"hl":1'));
  return { at, len: packed.length, raw: raw.length, blocks, firstDir: firstDir ?? Buffer.alloc(0), links };
}

/** The index's header line: lines[0] with the counts, when it is an object; otherwise as it is (the reader refuses it). */
function headerLine(first: string, counts: { entries: number; blocks: number; frames: number }): string {
  let o: unknown;
  try {
    o = JSON.parse(first);
  } catch {
    return first;
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return first;
  const h = o as Record<string, unknown>;
  return JSON.stringify({ ...h, entries: h.entries ?? counts.entries, blocks: h.blocks ?? counts.blocks, frames: h.frames ?? counts.frames });
}

/** Lines a reference line stands for (its "lines"), else 1. */
function entriesOf(line: string): number {
  if (!line.startsWith('{"ref":')) return 1;
  try {
    return decodeRefLine(line).lines;
  } catch {
    return 1;
  }
}

/**
 * Version 2 bytes of a header line and frames of data lines: magic, one zstd
 * frame per entry of `frames` (none for an empty one), the index and the trailer.
 */
export function framedManifestBytes(header: string, frames: string[][], tamper: FramedTamper = {}): Buffer {
  const parts: Buffer[] = [magicFrame()];
  let at = MAGIC_BYTES;
  const records: FrameRecord[] = [];
  let entries = 0;
  for (const lines of frames) {
    if (lines.length === 0) continue;
    const raw = Buffer.from(lines.map((l) => l + '\n').join(''));
    const packed = Buffer.from(zstdCompressFrameSync(raw, Buffer.allocUnsafe(zstdFrameBound(raw.length))));
    records.push(recordOf(at, packed, raw));
    parts.push(packed);
    at += packed.length;
    for (const l of lines) entries += entriesOf(l);
  }
  const counts = { entries, blocks: records.reduce((n, r) => n + r.blocks, 0), frames: records.length };
  const recordLines = tamper.records?.(records) ?? records.map(encodeFrameRecord);
  const index = Buffer.from([headerLine(header, counts), ...recordLines, ''].join('\n'));
  const packed = Buffer.from(zstdCompressFrameSync(index, Buffer.allocUnsafe(zstdFrameBound(index.length)), 3));
  parts.push(packed);
  const before = Buffer.concat(parts);
  const honest: TrailerFields = { indexAt: at, indexLen: packed.length, indexRaw: index.length, xxh64: xxh64(before) };
  const t = { ...honest, ...(typeof tamper.trailer === 'function' ? tamper.trailer(honest) : tamper.trailer) };
  return Buffer.concat([before, trailerFrame(t.indexAt, t.indexLen, t.indexRaw, t.xxh64)]);
}

/** One frame per directory block (a frame starts at each directory line, as the reader classifies lines; lines before the first go with it). */
export function framesByBlock(dataLines: string[]): string[][] {
  const index = manifestIndex(Buffer.from(dataLines.map((l) => l + '\n').join('')));
  if (index.length / INDEX_STRIDE !== dataLines.length) throw new Error('lines with a newline inside');
  const frames: string[][] = [];
  dataLines.forEach((l, i) => {
    if (frames.length === 0 || (index[i * INDEX_STRIDE + 2]! & 15) === KIND_DIR) frames.push([]);
    frames[frames.length - 1]!.push(l);
  });
  return frames;
}

/**
 * The bytes of a manifest of `lines` (header first) in the version of the
 * file it replaces: version 2 (all lines one frame) when `framed`, else version 1's text.
 */
export function manifestBytes(lines: string[], framed: boolean, tamper?: FramedTamper): Buffer {
  if (!framed) return lineManifestBytes(lines);
  return framedManifestBytes(lines[0] ?? '', [lines.slice(1)], tamper);
}
