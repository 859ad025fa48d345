/**
 * Writes one archive: the archiver copies headers and file data straight
 * into a fixed-size segment buffer (no per-file streams or promises); full
 * segments are compressed in parallel as independent frames and appended in
 * order to "<archive>.partial", hashing the compressed bytes on the way.
 * The archive becomes visible under its final name only by commit(), after
 * the end-of-archive blocks are written and the file is fsynced.
 */
import fs from 'node:fs';
import { promisify } from 'node:util';
import type { Logger } from '../../util/log.js';
import { createAsyncXxh64 } from '../../native/xxh.js';
import { AtomicFile, withFileName } from '../../medium/atomic-file.js';
import { compressSegment, type Compression } from '../compression.js';
import type { TarEntry } from '../../tar/entry.js';
import { encodeHeader, encodeHeaderInto } from '../../tar/write.js';
import { readAt } from '../../native/xbfs.js';
import { zstdFrameBound } from '../../native/zstd.js';

/** Tar bytes per zstd frame: three segments and two frames are held at once (parallel 2), 20 MB; 8 MiB held 40. */
export const SEGMENT_SIZE = 4 << 20;
/** Start writeback of what was written every this many bytes, so the final fsync has little left to flush. */
const WRITEBACK_EVERY = 128 << 20;
const write = promisify(fs.write);
const fdatasync = promisify(fs.fdatasync);
/** Tar archives are conventionally padded to 20 blocks of 512 bytes. */
const RECORD_SIZE = 10240;

export interface ArchiveResult {
  /** Length of the uncompressed tar stream. */
  tarBytes: number;
  /** Length of the archive file. */
  archiveBytes: number;
  xxh64: string;
  /** [compressed offset, tar offset] of each frame's start. */
  frames: Array<[number, number]>;
}

export class ArchiveWriter {
  private readonly file: AtomicFile;
  private readonly hash = createAsyncXxh64();
  private readonly pool: Buffer[] = [];
  /**
   * zstd's frames are written into these, reused: a fresh buffer per segment, freed only when a garbage
   * collection came round, added up to ~60 MB of a full backup's peak memory.
   */
  private readonly framePool: Buffer[] = [];
  private seg: Buffer;
  private segLen = 0;
  private segStart = 0;
  private archiveBytes = 0;
  private readonly frames: Array<[number, number]> = [];
  private inFlight = 0;
  private tail: Promise<void> = Promise.resolve();
  private failure: unknown;
  private unsynced = 0;
  private writeback: Promise<void> = Promise.resolve();

  constructor(
    finalPath: string,
    private readonly compression: Compression,
    private readonly logger?: Logger,
    /** Compress at idle CPU priority (the nightly run) rather than at the caller's. */
    private readonly idle = true,
    private readonly parallel = 2,
  ) {
    this.file = new AtomicFile(finalPath);
    this.seg = Buffer.allocUnsafe(SEGMENT_SIZE);
  }

  /** Offset in the tar stream of the next byte written. */
  get offset(): number {
    return this.segStart + this.segLen;
  }

  /** True when enough segments are waiting for compression that the caller should `await drain()`. */
  get backlogged(): boolean {
    return this.inFlight >= this.parallel || this.failure !== undefined;
  }

  write(data: Buffer): void {
    let off = 0;
    while (off < data.length) {
      const n = Math.min(data.length - off, SEGMENT_SIZE - this.segLen);
      data.copy(this.seg, this.segLen, off, off + n);
      this.segLen += n;
      off += n;
      if (this.segLen === SEGMENT_SIZE) this.rotate();
    }
  }

  /** Writes a member's header bytes; straight into the segment when they fit (no allocation per file). */
  writeHeader(e: TarEntry): void {
    if (this.segLen === SEGMENT_SIZE) this.rotate();
    const n = encodeHeaderInto(e, this.seg, this.segLen);
    if (n < 0) {
      this.write(encodeHeader(e)); // spans two segments
      return;
    }
    this.segLen += n;
    if (this.segLen === SEGMENT_SIZE) this.rotate();
  }

  /**
   * The rest of the current segment, for a caller that encodes a member in
   * place (engines/tar/unchanged-dir.ts) and then reports its length with wrote().
   */
  room(): Buffer {
    if (this.segLen === SEGMENT_SIZE) this.rotate();
    return this.seg.subarray(this.segLen);
  }

  /** `n` bytes were written at the start of room(). */
  wrote(n: number): void {
    this.segLen += n;
    if (this.segLen === SEGMENT_SIZE) this.rotate();
  }

  zeros(n: number): void {
    while (n > 0) {
      const k = Math.min(n, SEGMENT_SIZE - this.segLen);
      this.seg.fill(0, this.segLen, this.segLen + k);
      this.segLen += k;
      n -= k;
      if (this.segLen === SEGMENT_SIZE) this.rotate();
    }
  }

  /**
   * Reads up to `length` bytes of `fd` at `position` directly into the
   * segment (one copy: kernel to segment). Returns the bytes read (0 at end
   * of file) and a view of them for hashing, valid until the next write.
   */
  readFrom(fd: number, position: number, length: number): Buffer {
    if (this.segLen === SEGMENT_SIZE) this.rotate();
    const want = Math.min(length, SEGMENT_SIZE - this.segLen);
    const n = readAt(fd, this.seg, this.segLen, want, position);
    const view = this.seg.subarray(this.segLen, this.segLen + n);
    this.segLen += n;
    if (this.segLen === SEGMENT_SIZE) {
      // The view must survive the rotation: the buffer returns to the pool only after compression.
      this.rotate();
    }
    return view;
  }

  async drain(): Promise<void> {
    while (this.inFlight >= this.parallel && this.failure === undefined) await this.waitOne();
    if (this.failure !== undefined) throw this.failure;
  }

  private waiters: Array<() => void> = [];
  private waitOne(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }

  private rotate(): void {
    const data = this.seg.subarray(0, this.segLen);
    const buffer = this.seg;
    const tarOffset = this.segStart;
    this.segStart += this.segLen;
    this.segLen = 0;
    this.seg = this.pool.pop() ?? Buffer.allocUnsafe(SEGMENT_SIZE);
    this.inFlight++;
    const frame = this.compression === 'zstd' ? (this.framePool.pop() ?? Buffer.allocUnsafeSlow(zstdFrameBound(SEGMENT_SIZE))) : undefined;
    const compressed = compressSegment(this.compression, data, this.idle, frame);
    compressed.catch(() => undefined);
    this.tail = this.tail.then(async () => {
      try {
        if (this.failure !== undefined) {
          await compressed.catch(() => undefined); // its buffers go back to the pools only once it is done with them
          return;
        }
        const out = await compressed;
        this.frames.push([this.archiveBytes, tarOffset]);
        // Hashing and writing on libuv's threads, side by side: the main thread goes on reading files meanwhile.
        const hashed = this.hash.updateAsync(out);
        let off = 0;
        try {
          while (off < out.length) off += (await write(this.file.fd, out, off, out.length - off, null)).bytesWritten;
        } finally {
          await hashed; // the frame's memory (a segment with --compress none) must not be reused before
        }
        this.archiveBytes += out.length;
        this.unsynced += out.length;
        if (this.unsynced >= WRITEBACK_EVERY) {
          this.unsynced = 0;
          const previous = this.writeback;
          this.writeback = previous.then(() => fdatasync(this.file.fd)).catch((e: unknown) => {
            this.failure ??= withFileName(e, this.file.partialPath, 'syncing');
          });
        }
      } catch (e) {
        this.failure ??= withFileName(e, this.file.partialPath, 'writing');
      } finally {
        this.pool.push(buffer);
        if (frame) this.framePool.push(frame);
        this.inFlight--;
        const w = this.waiters.shift();
        if (w) w();
      }
    });
  }

  /** Writes the end-of-archive blocks, flushes every segment and fsyncs; still ".partial". */
  async finish(): Promise<ArchiveResult> {
    const end = this.offset + 1024;
    this.zeros(1024 + ((RECORD_SIZE - (end % RECORD_SIZE)) % RECORD_SIZE));
    if (this.segLen > 0) this.rotate();
    await this.tail;
    await this.writeback;
    for (const w of this.waiters.splice(0)) w();
    if (this.failure !== undefined) throw this.failure;
    return { tarBytes: this.segStart, archiveBytes: this.archiveBytes, xxh64: this.hash.digest(), frames: this.frames };
  }

  /** Durable under the partial name; Storage.publish gives it its own. */
  seal(): void {
    this.file.seal();
  }

  /** Removes the partial archive; waits for in-flight compressions so nothing writes after. */
  async abort(): Promise<void> {
    this.failure ??= new Error('aborted');
    await this.tail.catch(() => undefined);
    await this.writeback;
    this.file.abort();
  }
}
