/**
 * The raw container, `<id>.<full|incr>.raw.zst`: the chunks one raw backup
 * stores, each an independent zstd frame, in chunk order, then an index and
 * a fixed 32-byte trailer. Index and trailer are zstd *skippable* frames,
 * so the whole file is still one valid zstd stream (`zstd -d` yields the
 * stored chunks back to back, and skips the index), while a restore seeks
 * straight to the frames it needs (frame-decoder.ts decodes them).
 *
 *   frame 0 .. frame n-1                      zstd frames (one per stored chunk)
 *   u32le 0x184D2A5B, u32le size, payload     index: "XBRAWIX1", u32le chunk size,
 *                                             u32le count, count x 32 bytes:
 *                                             u64le chunk, u64le offset, u32le length,
 *                                             u32le raw length, 8 bytes xxh64 (big endian)
 *   u32le 0x184D2A5C, u32le 24, "XBRAWEND",   trailer: where the index starts and
 *   u64le index offset, 8 bytes xxh64         the xxh64 of the index frame
 *
 * Written as ".partial", fsynced by finish(), renamed by commit().
 */
import fs from 'node:fs';
import { MediumDamage } from '../../medium/medium-error.js';
import { openMediumFile } from '../../medium/medium-file.js';
import { AtomicFile, withFileName } from '../../medium/atomic-file.js';
import { createXxh64, xxh64 } from '../../native/xxh.js';

/** Compresses one chunk into one independent zstd frame. */
export type CompressFrame = (data: Buffer) => Promise<Buffer>;

const INDEX_MAGIC = 0x184d2a5b;
const TRAILER_MAGIC = 0x184d2a5c;
const INDEX_TAG = 'XBRAWIX1';
const TRAILER_TAG = 'XBRAWEND';
export const TRAILER_BYTES = 32;
const ENTRY_BYTES = 32;

/** Where one stored chunk lives in its container. */
export interface ContainerEntry {
  /** Chunk number in the image. */
  index: number;
  /** Offset and length of its zstd frame in the container. */
  offset: number;
  length: number;
  /** Length of the chunk's bytes. */
  rawLength: number;
  /** xxh64 of the chunk's bytes. */
  hash: string;
}

export interface ContainerIndex {
  chunkSize: number;
  entries: ContainerEntry[];
  /** Offset of the index frame = end of the last chunk frame. */
  indexOffset: number;
  fileBytes: number;
}

export class RawContainerError extends Error {
  constructor(file: string, why: string) {
    super(`${file}: ${why}`);
    this.name = 'RawContainerError';
  }
}

export interface ContainerResult {
  bytes: number;
  xxh64: string;
  stored: number;
  /** Sum of the stored chunks' lengths. */
  rawBytes: number;
}

/**
 * Appends chunks as frames, compressed `parallel` at a time and written in
 * the order they were added. A chunk's buffer belongs to the writer until
 * its `release` callback runs.
 */
export class RawContainerWriter {
  private readonly file: AtomicFile;
  private readonly hash = createXxh64();
  private readonly entries: ContainerEntry[] = [];
  private bytes = 0;
  private rawBytes = 0;
  private inFlight = 0;
  private tail: Promise<void> = Promise.resolve();
  private failure: unknown;
  private waiters: Array<() => void> = [];

  constructor(
    finalPath: string,
    private readonly chunkSize: number,
    private readonly compress: CompressFrame,
    private readonly parallel = 2,
  ) {
    this.file = new AtomicFile(finalPath);
  }

  get partialPath(): string {
    return this.file.partialPath;
  }

  /** True when the caller should `await drain()` before adding more. */
  get backlogged(): boolean {
    return this.inFlight >= this.parallel || this.failure !== undefined;
  }

  async drain(): Promise<void> {
    while (this.inFlight >= this.parallel && this.failure === undefined) await new Promise<void>((r) => this.waiters.push(r));
    if (this.failure !== undefined) throw this.failure;
  }

  add(index: number, data: Buffer, hash: string, release: () => void): void {
    this.inFlight++;
    const compressed = this.compress(data);
    compressed.catch(() => undefined);
    this.tail = this.tail.then(async () => {
      try {
        if (this.failure !== undefined) return;
        const out = await compressed;
        this.writeAll(out);
        this.entries.push({ index, offset: this.bytes - out.length, length: out.length, rawLength: data.length, hash });
        this.rawBytes += data.length;
      } catch (e) {
        this.failure ??= withFileName(e, this.file.partialPath, 'writing');
      } finally {
        release();
        this.inFlight--;
        this.waiters.shift()?.();
      }
    });
  }

  private writeAll(buf: Buffer): void {
    this.hash.update(buf);
    let off = 0;
    while (off < buf.length) off += fs.writeSync(this.file.fd, buf, off, buf.length - off);
    this.bytes += buf.length;
  }

  /** Writes the index and trailer after the last frame and fsyncs; the file stays ".partial". */
  async finish(): Promise<ContainerResult> {
    await this.tail;
    for (const w of this.waiters.splice(0)) w();
    if (this.failure !== undefined) throw this.failure;
    const indexOffset = this.bytes;
    const index = encodeIndex(this.chunkSize, this.entries);
    const trailer = Buffer.alloc(TRAILER_BYTES);
    trailer.writeUInt32LE(TRAILER_MAGIC, 0);
    trailer.writeUInt32LE(TRAILER_BYTES - 8, 4);
    trailer.write(TRAILER_TAG, 8, 'latin1');
    trailer.writeBigUInt64LE(BigInt(indexOffset), 16);
    trailer.write(xxh64(index), 24, 8, 'hex');
    try {
      this.writeAll(index);
      this.writeAll(trailer);
      fs.fsyncSync(this.file.fd);
    } catch (e) {
      throw withFileName(e, this.file.partialPath, 'writing');
    }
    return { bytes: this.bytes, xxh64: this.hash.digest(), stored: this.entries.length, rawBytes: this.rawBytes };
  }

  /** Durable under the partial name; Storage.publish gives it its own. */
  seal(): void {
    this.file.seal();
  }

  /** Waits for compressions in flight (nothing writes after), then removes the partial file. */
  async abort(): Promise<void> {
    this.failure ??= new Error('aborted');
    await this.tail.catch(() => undefined);
    this.file.abort();
  }
}

function encodeIndex(chunkSize: number, entries: readonly ContainerEntry[]): Buffer {
  const payload = 16 + ENTRY_BYTES * entries.length;
  const buf = Buffer.alloc(8 + payload);
  buf.writeUInt32LE(INDEX_MAGIC, 0);
  buf.writeUInt32LE(payload, 4);
  buf.write(INDEX_TAG, 8, 'latin1');
  buf.writeUInt32LE(chunkSize, 16);
  buf.writeUInt32LE(entries.length, 20);
  let p = 24;
  for (const e of entries) {
    buf.writeBigUInt64LE(BigInt(e.index), p);
    buf.writeBigUInt64LE(BigInt(e.offset), p + 8);
    buf.writeUInt32LE(e.length, p + 16);
    buf.writeUInt32LE(e.rawLength, p + 20);
    buf.write(e.hash, p + 24, 8, 'hex');
    p += ENTRY_BYTES;
  }
  return buf;
}

function readExactly(fd: number, length: number, position: number, file: string): Buffer {
  const buf = Buffer.alloc(length);
  let off = 0;
  while (off < length) {
    const n = fs.readSync(fd, buf, off, length - off, position + off);
    if (n === 0) throw new RawContainerError(file, `ends at ${position + off}, expected ${length} bytes at ${position}`);
    off += n;
  }
  return buf;
}

/**
 * Reads and checks a container's trailer and index: magic numbers, the
 * index's xxh64, and frames that tile the file from 0 to the index with
 * no gap or overlap. A truncated or overwritten container fails here.
 */
export function readContainerIndex(file: string): ContainerIndex {
  let fd: number;
  try {
    fd = openMediumFile(file);
  } catch (e) {
    if (e instanceof MediumDamage) throw e;
    throw new RawContainerError(file, `cannot be opened (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const fileBytes = fs.fstatSync(fd).size;
    if (fileBytes < TRAILER_BYTES + 24) throw new RawContainerError(file, `too short (${fileBytes} bytes) to be a raw container: truncated?`);
    const trailer = readExactly(fd, TRAILER_BYTES, fileBytes - TRAILER_BYTES, file);
    if (trailer.readUInt32LE(0) !== TRAILER_MAGIC || trailer.toString('latin1', 8, 16) !== TRAILER_TAG) {
      throw new RawContainerError(file, 'no raw container trailer at its end: truncated or damaged');
    }
    const indexOffset = Number(trailer.readBigUInt64LE(16));
    const indexBytes = fileBytes - TRAILER_BYTES - indexOffset;
    if (!(indexOffset >= 0 && indexBytes >= 24)) throw new RawContainerError(file, `trailer names index offset ${indexOffset}, outside the file`);
    const index = readExactly(fd, indexBytes, indexOffset, file);
    if (xxh64(index) !== trailer.toString('hex', 24, 32)) throw new RawContainerError(file, 'index checksum mismatch: damaged');
    if (index.readUInt32LE(0) !== INDEX_MAGIC || index.readUInt32LE(4) !== indexBytes - 8 || index.toString('latin1', 8, 16) !== INDEX_TAG) {
      throw new RawContainerError(file, 'index frame is malformed');
    }
    const chunkSize = index.readUInt32LE(16);
    const count = index.readUInt32LE(20);
    if (24 + count * ENTRY_BYTES !== indexBytes) throw new RawContainerError(file, `index holds ${count} entries in ${indexBytes} bytes: malformed`);
    const entries: ContainerEntry[] = [];
    let expectOffset = 0;
    let prevIndex = -1;
    for (let k = 0, p = 24; k < count; k++, p += ENTRY_BYTES) {
      const e: ContainerEntry = {
        index: Number(index.readBigUInt64LE(p)),
        offset: Number(index.readBigUInt64LE(p + 8)),
        length: index.readUInt32LE(p + 16),
        rawLength: index.readUInt32LE(p + 20),
        hash: index.toString('hex', p + 24, p + 32),
      };
      if (e.offset !== expectOffset || e.length === 0 || e.index <= prevIndex || e.rawLength === 0 || e.rawLength > chunkSize) {
        throw new RawContainerError(file, `index entry ${k} (chunk ${e.index} at ${e.offset}) does not follow the previous frame`);
      }
      expectOffset += e.length;
      prevIndex = e.index;
      entries.push(e);
    }
    if (expectOffset !== indexOffset) throw new RawContainerError(file, `frames end at ${expectOffset} but the index starts at ${indexOffset}`);
    return { chunkSize, entries, indexOffset, fileBytes };
  } finally {
    fs.closeSync(fd);
  }
}
