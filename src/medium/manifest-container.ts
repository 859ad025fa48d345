/**
 * The bytes of a version 2 manifest around its lines (docs/design/manifest-v2.md):
 *
 *   magic    zstd skippable frame 0x184D2A50, 12 bytes: "XBMANIF2", u16 version 2, u16 flags 0
 *   frames   zstd frames (checksummed) of whole directory blocks, ~256 KiB each before compression
 *   index    one zstd frame: the header line, then one record line per data frame (core/manifest-v2.ts)
 *   trailer  zstd skippable frame 0x184D2A5E, 32 bytes: u64 index offset, u64 index length,
 *            u64 index size decompressed, xxh64 of every byte before the trailer (big endian)
 *
 * All little endian but the hash. The file is one valid zstd stream (`zstd -dc` prints the lines).
 * FramedManifest opens one: the trailer and the index only, each checked against the file's size and
 * each other, so that a reader touches the one frame it needs and no field read here points outside.
 */
import fs from 'node:fs';
import { ManifestFormatError } from '../core/manifest.js';
import { decodeFrameRecord, decodeHeaderV2, MAX_FRAME_RAW, type FrameRecord, type ManifestHeaderV2 } from '../core/manifest-v2.js';
import { comparePaths } from '../core/path-order.js';
import { zstdDecompressFrameSync } from '../native/zstd.js';
import { openMediumFile } from './medium-file.js';

const SKIPPABLE_MAGIC = 0x184d2a50;
const TRAILER_MAGIC = 0x184d2a5e;
const MAGIC_TEXT = 'XBMANIF2';
export const MAGIC_BYTES = 20;
export const TRAILER_BYTES = 40;

/** The magic frame every version 2 manifest starts with. */
export function magicFrame(): Buffer {
  const b = Buffer.alloc(MAGIC_BYTES);
  b.writeUInt32LE(SKIPPABLE_MAGIC, 0);
  b.writeUInt32LE(12, 4);
  b.write(MAGIC_TEXT, 8, 'latin1');
  b.writeUInt16LE(2, 16);
  b.writeUInt16LE(0, 18);
  return b;
}

/** Do these first bytes start a version 2 manifest? (Version 1 starts with '{'.) */
export function isFramedManifest(head: Buffer): boolean {
  return head.length >= MAGIC_BYTES && head.readUInt32LE(0) === SKIPPABLE_MAGIC && head.toString('latin1', 8, 16) === MAGIC_TEXT;
}

export function trailerFrame(indexAt: number, indexLen: number, indexRaw: number, xxh64Hex: string): Buffer {
  const b = Buffer.alloc(TRAILER_BYTES);
  b.writeUInt32LE(TRAILER_MAGIC, 0);
  b.writeUInt32LE(32, 4);
  b.writeBigUInt64LE(BigInt(indexAt), 8);
  b.writeBigUInt64LE(BigInt(indexLen), 16);
  b.writeBigUInt64LE(BigInt(indexRaw), 24);
  b.writeBigUInt64BE(BigInt('0x' + xxh64Hex), 32);
  return b;
}

/** The trailer's fields when `t` (the file's last TRAILER_BYTES bytes) is one, else undefined. */
export function parseTrailer(t: Buffer): { indexAt: number; indexLen: number; indexRaw: number; xxh64: string } | undefined {
  if (t.length !== TRAILER_BYTES || t.readUInt32LE(0) !== TRAILER_MAGIC || t.readUInt32LE(4) !== 32) return undefined;
  return {
    indexAt: Number(t.readBigUInt64LE(8)),
    indexLen: Number(t.readBigUInt64LE(16)),
    indexRaw: Number(t.readBigUInt64LE(24)),
    xxh64: t.readBigUInt64BE(32).toString(16).padStart(16, '0'),
  };
}

function readExactly(fd: number, at: number, len: number, file: string): Buffer {
  const b = Buffer.allocUnsafe(len);
  let got = 0;
  while (got < len) {
    const n = fs.readSync(fd, b, got, len - got, at + got);
    if (n <= 0) throw new ManifestFormatError(`${file}: truncated (wanted ${len} bytes at ${at})`);
    got += n;
  }
  return b;
}

/** A version 2 manifest opened for reading: its header and frame records, checked; frames on demand. */
export class FramedManifest {
  readonly header: ManifestHeaderV2;
  readonly frames: FrameRecord[];

  private constructor(
    readonly file: string,
    private readonly fd: number,
    readonly size: number,
  ) {
    if (size < MAGIC_BYTES + TRAILER_BYTES) throw new ManifestFormatError(`${file}: truncated (${size} bytes)`);
    if (!isFramedManifest(readExactly(fd, 0, MAGIC_BYTES, file))) throw new ManifestFormatError(`${file}: not a xenbackup manifest (version 2)`);
    const t = parseTrailer(readExactly(fd, size - TRAILER_BYTES, TRAILER_BYTES, file));
    if (!t) throw new ManifestFormatError(`${file}: no trailer (truncated or damaged)`);
    const { indexAt, indexLen, indexRaw } = t;
    if (indexAt < MAGIC_BYTES || indexLen < 1 || indexAt + indexLen !== size - TRAILER_BYTES || indexRaw < 1 || indexRaw > MAX_FRAME_RAW) {
      throw new ManifestFormatError(`${file}: trailer places the index outside the file`);
    }
    const index = this.decode(indexAt, indexLen, indexRaw, 'its index').toString('utf8');
    const lines = index.split('\n');
    if (lines.pop() !== '') throw new ManifestFormatError(`${file}: index does not end with a newline`);
    try {
      this.header = decodeHeaderV2(lines[0] ?? '');
    } catch (e) {
      throw new ManifestFormatError(`${file}: bad header (${(e as Error).message})`);
    }
    this.frames = [];
    let at = MAGIC_BYTES;
    let blocks = 0;
    for (let i = 1; i < lines.length; i++) {
      let f: FrameRecord;
      try {
        f = decodeFrameRecord(lines[i]!);
      } catch (e) {
        throw new ManifestFormatError(`${file}: index record ${i}: ${(e as Error).message}`);
      }
      // Frames tile the file between the magic and the index, in order, each block once, in walk order.
      if (f.at !== at) throw new ManifestFormatError(`${file}: index record ${i}: frame at ${f.at}, expected ${at}`);
      const prev = this.frames[this.frames.length - 1];
      if (prev && comparePaths(prev.firstDir, f.firstDir) >= 0) throw new ManifestFormatError(`${file}: index record ${i}: frames out of walk order`);
      at += f.len;
      blocks += f.blocks;
      this.frames.push(f);
    }
    if (at !== indexAt) throw new ManifestFormatError(`${file}: the frames end at ${at}, the index starts at ${indexAt}`);
    if (this.frames.length !== this.header.frames || blocks !== this.header.blocks) {
      throw new ManifestFormatError(`${file}: the index lists ${this.frames.length} frames of ${blocks} blocks, its header says ${this.header.frames} of ${this.header.blocks}`);
    }
  }

  static open(file: string): FramedManifest {
    const fd = openMediumFile(file);
    try {
      return new FramedManifest(file, fd, fs.fstatSync(fd).size);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** Frame i's lines. */
  frame(i: number): Buffer {
    const f = this.frames[i]!;
    return this.decode(f.at, f.len, f.raw, `frame ${i}`);
  }

  /** The frame a reference names by its offset; a ManifestFormatError unless one starts there with that length and size. */
  frameNumberAt(at: number, len: number, raw: number, shown: string): number {
    // The records tile the file in order: a binary search by offset.
    let lo = 0;
    let hi = this.frames.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const f = this.frames[mid]!;
      if (f.at === at) {
        if (f.len !== len || f.raw !== raw) break;
        return mid;
      }
      if (f.at < at) lo = mid + 1;
      else hi = mid - 1;
    }
    throw new ManifestFormatError(`${shown} refers to a frame ${this.file} does not have (at ${at})`);
  }

  /** The number of the frame that holds `dir`'s block if the manifest has it: the last whose first block is not after it. */
  frameFor(dir: Buffer): number {
    let lo = 0;
    let hi = this.frames.length - 1;
    let found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (comparePaths(this.frames[mid]!.firstDir, dir) <= 0) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  private decode(at: number, len: number, raw: number, what: string): Buffer {
    const out = Buffer.allocUnsafe(raw);
    try {
      zstdDecompressFrameSync(readExactly(this.fd, at, len, this.file), out, raw);
    } catch (e) {
      if (e instanceof ManifestFormatError) throw e;
      throw new ManifestFormatError(`${this.file}: ${what} (at ${at}) is damaged: ${(e as Error).message}`);
    }
    return out;
  }
}
