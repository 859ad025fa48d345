/**
 * Writes a version 2 manifest (layout: manifest-container.ts). Lines are
 * version 1's, gathered into a frame buffer that is compressed and written
 * when a block starts and the frame holds FRAME_TARGET bytes or more: frames
 * hold whole blocks, so a reader finds a directory in one frame. An unchanged
 * directory's child lines become one reference line to the manifest that
 * holds them (wroteBlockReferring), which is what keeps a no-change night small.
 */
import fs from 'node:fs';
import { encodeDirLine, encodeEntry, isPlainJsonName, type ManifestEntry, type ManifestHeader, type StoredEntry } from '../core/manifest.js';
import { encodeFrameRecord, encodeHeaderV2, encodeRefLine, type FrameRecord } from '../core/manifest-v2.js';
import { INDEX_STRIDE, type PreviousBlock } from './manifest-file.js';
import { refForLines } from './manifest-reader.js';
import { createXxh64, type StreamingHash } from '../native/xxh.js';
import { zstdCompressFrameSync, zstdFrameBound } from '../native/zstd.js';
import { AtomicFile, withFileName } from './atomic-file.js';
import { magicFrame, trailerFrame } from './manifest-container.js';

/** Decompressed bytes per frame: a one-file restore decodes one; larger frames compress a little better. */
export const FRAME_TARGET = 256 << 10;
/** Unchanged child lines shorter than this are copied: a reference line takes ~130 bytes. */
const REF_WORTH = 256;
/** The text that marks a line of a file with more than one link (manifest.ts writes "k" only then). */
const LINKS_MARK = Buffer.from(',"k":');

export class ManifestWriter {
  private readonly file: AtomicFile;
  private readonly hash: StreamingHash = createXxh64();
  private buf = Buffer.allocUnsafe(FRAME_TARGET + 65536);
  private packed = Buffer.allocUnsafe(zstdFrameBound(FRAME_TARGET + 65536));
  private used = 0;
  private offset = 0;
  private count = 0;
  private blocks = 0;
  private frameBlocks = 0;
  private frameFirst: Buffer | undefined;
  private frameLinks = false;
  /** Unchanged child lines of a previous block being copied, written when something else comes (copyPrevious). */
  private run: { previous: PreviousBlock; first: number; end: number } | undefined;
  private readonly frames: FrameRecord[] = [];
  constructor(
    finalPath: string,
    private readonly header: ManifestHeader,
  ) {
    this.file = new AtomicFile(finalPath);
    this.writeOut(magicFrame());
  }

  /** Where the manifest is written until it is published. */
  get partialPath(): string {
    return this.file.partialPath;
  }

  /** A block starts here, the only place a frame may end: the frame is written when it is full. */
  startBlock(): void {
    this.flushRun();
    if (this.used >= FRAME_TARGET) this.cut();
  }

  private noteBlock(dir: Buffer): void {
    if (this.frameBlocks === 0) this.frameFirst = Buffer.from(dir);
    this.frameBlocks++;
    this.blocks++;
  }

  /** Opens the block of `dir` (its path from the root); `self` is the directory's own entry. */
  beginDir(dir: Buffer, self: ManifestEntry): void {
    this.startBlock();
    this.noteBlock(dir);
    this.count++;
    this.line(encodeDirLine(dir, self));
  }

  entry(e: ManifestEntry): void {
    this.flushRun();
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
    this.flushRun();
    this.ensure(name.length + key.length + hash.length + archiveMember.length + 40);
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
    return true;
  }

  /** At least `n` bytes of buffer to write a block into, after startBlock(); wroteBlock() or wroteUnchangedBlock() then says what was written. */
  room(n: number): Buffer {
    this.flushRun();
    this.ensure(n);
    return this.buf.subarray(this.used);
  }

  /** The block of `dir`, `bytes` of whole lines (each ending in "\n") holding `lines` entries, was written at the start of room(). */
  wroteBlock(dir: Buffer, bytes: number, lines: number): void {
    this.noteBlock(dir);
    this.used += bytes;
    this.count += lines;
  }

  /**
   * The block of `dir` was written at the start of room(): its directory line (`dirLineBytes`, newline
   * included), then byte for byte the child lines of `previous` (nothing changed, nothing gone). Those
   * are written again as references to where they are stored, where that is shorter.
   */
  wroteUnchangedBlock(dir: Buffer, dirLineBytes: number, previous: PreviousBlock): void {
    this.noteBlock(dir);
    this.used += dirLineBytes;
    this.count += 1 + previous.childCount;
    this.writePrevious(previous, previous.first, previous.end);
  }

  /** Child line `line` of a previous manifest's block, unchanged: consecutive ones are written as one reference. */
  copyPrevious(previous: PreviousBlock, line: number): void {
    this.count++;
    const run = this.run;
    if (run && run.previous === previous && run.end === line) {
      run.end++;
      return;
    }
    this.flushRun();
    this.run = { previous, first: line, end: line + 1 };
  }

  private flushRun(): void {
    const run = this.run;
    if (!run) return;
    this.run = undefined;
    this.writePrevious(run.previous, run.first, run.end);
  }

  /** Lines [first, end) of `previous`: a reference per stored run they cover where that is shorter, else their bytes. */
  private writePrevious(previous: PreviousBlock, first: number, end: number): void {
    const idx = previous.index;
    let at = first;
    while (at < end) {
      const seg = previous.segments?.find((s) => s.first <= at && at < s.end);
      const stop = seg ? Math.min(end, seg.end) : end;
      const start = idx[at * INDEX_STRIDE]!;
      const bytes = idx[(stop - 1) * INDEX_STRIDE + 1]! + 1 - start;
      const ref = seg && bytes >= REF_WORTH ? refForLines(previous, at, stop) : undefined;
      if (ref) {
        const line = encodeRefLine(ref) + '\n';
        this.ensure(line.length);
        this.used += this.buf.write(line, this.used, 'latin1');
        if (ref.links) this.frameLinks = true;
      } else {
        this.ensure(bytes);
        this.used += previous.data.copy(this.buf, this.used, start, start + bytes);
      }
      at = stop;
    }
  }

  /** Carries an entry of the previous manifest over byte for byte (it is unchanged). */
  copy(e: StoredEntry): void {
    this.copyLine(e.data, e.start, e.end);
  }

  /** Carries the entry line [start, end) of a previous manifest's bytes over as it is. */
  copyLine(data: Buffer, start: number, end: number): void {
    this.flushRun();
    this.count++;
    this.ensure(end - start + 1);
    this.used += data.copy(this.buf, this.used, start, end);
    this.buf[this.used++] = 0x0a;
  }

  private line(s: string): void {
    this.ensure(s.length * 3 + 1);
    this.used += this.buf.write(s, this.used);
    this.buf[this.used++] = 0x0a;
  }

  /** Room for n more bytes in the frame buffer: it grows within a block (a frame ends only between blocks). */
  private ensure(n: number, keep = 0): void {
    if (this.used + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.used + n));
    this.buf.copy(bigger, 0, 0, this.used + keep);
    this.buf = bigger;
  }

  /** Compresses and writes the frame gathered so far, and records it for the index. */
  private cut(): void {
    if (this.used === 0) return;
    const raw = this.buf.subarray(0, this.used);
    const links = this.frameLinks || raw.indexOf(LINKS_MARK) >= 0;
    const frame = this.compress(raw);
    this.frames.push({ at: this.offset, len: frame.length, raw: raw.length, blocks: this.frameBlocks, firstDir: this.frameFirst!, links });
    this.writeOut(frame);
    this.used = 0;
    this.frameBlocks = 0;
    this.frameFirst = undefined;
    this.frameLinks = false;
    if (this.buf.length > 4 * FRAME_TARGET) this.buf = Buffer.allocUnsafe(FRAME_TARGET + 65536); // after a huge block
  }

  private compress(raw: Buffer): Buffer {
    const bound = zstdFrameBound(raw.length);
    if (this.packed.length < bound) this.packed = Buffer.allocUnsafe(bound);
    return zstdCompressFrameSync(raw, this.packed);
  }

  private writeOut(buf: Buffer): void {
    this.hash.update(buf);
    let off = 0;
    try {
      while (off < buf.length) off += fs.writeSync(this.file.fd, buf, off, buf.length - off);
    } catch (e) {
      throw withFileName(e, this.file.partialPath, 'writing');
    }
    this.offset += buf.length;
  }

  /**
   * Ends the lines: writes the last frame and syncs off the main thread. A
   * backup calls this when its pass is over, so that the manifest reaches
   * the disk while the archive's last segments are compressed and synced;
   * what follows is seal() (which syncs again) or abort(), or a new block.
   */
  async flushToDisk(): Promise<void> {
    this.flushRun();
    this.cut();
    try {
      await this.file.syncAsync();
    } catch (e) {
      throw withFileName(e, this.file.partialPath, 'writing');
    }
  }

  /**
   * Writes the last frame, the index and the trailer and makes the file
   * durable under its partial name (Storage.publish gives it its own).
   * Returns the file's xxh64, hashed as it was written.
   */
  seal(): string {
    this.flushRun();
    this.cut();
    const h = this.header;
    const lines = [encodeHeaderV2({ ...h, entries: this.count, blocks: this.blocks, frames: this.frames.length }), ...this.frames.map(encodeFrameRecord), ''];
    const index = Buffer.from(lines.join('\n'));
    const packed = zstdCompressFrameSync(index, Buffer.allocUnsafe(zstdFrameBound(index.length)), 3);
    const indexAt = this.offset;
    this.writeOut(packed);
    this.writeOut(trailerFrame(indexAt, packed.length, index.length, this.hash.digest()));
    this.file.seal();
    return this.hash.digest();
  }

  abort(): void {
    this.file.abort();
  }
}

