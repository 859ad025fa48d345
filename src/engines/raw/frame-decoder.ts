/**
 * Decodes chunk frames of one raw container in-process (libzstd on libuv's
 * worker threads, native/xbzstd.c), for restore and full verify: the
 * frames a caller needs are read in big sequential reads (neighbouring
 * frames, and small gaps between them, in one read of up to 16 MiB, the
 * next read already in flight), several frames decompress at once, each
 * straight into a chunk buffer of a small pool, and the chunks are handed
 * over strictly in index order.
 *
 * The caller owns each chunk buffer until it calls `release`, so a restore
 * can hash the chunk and write it from that very buffer, no copy (the
 * buffers are page-aligned for O_DIRECT); the pool (and so the memory) is
 * bounded, and decoding waits for released buffers.
 *
 * Replaces a `zstd -d` child fed through a pipe, which copied every byte
 * three more times and decoded on one core while the main thread waited.
 */
import fs from 'node:fs';
import { MediumDamage } from '../../medium/medium-error.js';
import { openMediumFileAsync } from '../../medium/medium-file.js';
import os from 'node:os';
import { alignedBuffer, zstdDecompressFrame } from '../../native/zstd.js';
import { RawContainerError, type ContainerEntry } from './raw-container.js';

/** One read covers up to this many bytes of frames. */
const READ_BYTES = 16 << 20;
/** A gap between needed frames up to this size is read through rather than seeked over. */
const MAX_GAP = 1 << 20;

export interface DecodeOptions {
  signal?: AbortSignal;
  /** Frames decompressing at once (default: the CPUs, at most 4). */
  parallel?: number;
  /** Chunk buffers in the pool (default: parallel + 6): decoded chunks the caller may hold at once, plus those decoding. */
  buffers?: number;
  /** Nice value of the decompressing threads. */
  nice?: number;
}

/**
 * Receives chunk `entry`'s bytes; `data` stays the caller's until `release()`
 * (call it once, also on failure). Decoding waits for released buffers: a
 * sink that keeps more than the pool holds, waiting for later chunks, waits forever.
 */
export type ChunkSink = (entry: ContainerEntry, data: Buffer, release: () => void) => void | Promise<void>;

interface Batch {
  start: number;
  end: number;
  /** Index of the first and one past the last entry it covers. */
  first: number;
  last: number;
}

/** Groups entries (ascending offsets) into reads. */
function planReads(entries: readonly ContainerEntry[]): Batch[] {
  const batches: Batch[] = [];
  for (let k = 0; k < entries.length; k++) {
    const e = entries[k]!;
    const cur = batches[batches.length - 1];
    if (cur && e.offset >= cur.end && e.offset - cur.end <= MAX_GAP && e.offset + e.length - cur.start <= READ_BYTES) {
      cur.end = e.offset + e.length;
      cur.last = k + 1;
    } else {
      batches.push({ start: e.offset, end: e.offset + e.length, first: k, last: k + 1 });
    }
  }
  return batches;
}

/** A counting semaphore of buffers: take() waits while none is free, and gets undefined once the pool is closed. */
class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly waiters: Array<(b: Buffer | undefined) => void> = [];
  private closed = false;

  constructor(count: number, size: number, aligned = false) {
    for (let i = 0; i < count; i++) this.free.push(aligned ? alignedBuffer(size) : Buffer.allocUnsafe(size));
  }

  take(): Promise<Buffer | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const b = this.free.pop();
    return b ? Promise.resolve(b) : new Promise((r) => this.waiters.push(r));
  }

  give(b: Buffer): void {
    const w = this.waiters.shift();
    if (w) w(b);
    else this.free.push(b);
  }

  /** Wakes every waiter empty-handed: the consumer stopped (it may never release what it holds). */
  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w(undefined);
  }
}

/**
 * Decodes the frames of `entries` (ascending offsets; any subset of the
 * container's index) and hands each chunk to `sink` in order, awaiting it.
 * Throws a RawContainerError naming the file, chunk and offset when a frame
 * does not decode (damaged bytes, failed checksum) or decodes to another
 * length than its index records; the chunk hashes are the caller's to check.
 */
export async function decodeFrames(file: string, entries: readonly ContainerEntry[], sink: ChunkSink, opts: DecodeOptions = {}): Promise<void> {
  if (entries.length === 0) return;
  const parallel = Math.max(1, opts.parallel ?? Math.min(4, os.availableParallelism()));
  const maxRaw = Math.max(...entries.map((e) => e.rawLength));
  // No more buffers than chunks: a small incremental's container needs few.
  const pool = new BufferPool(Math.min(entries.length, Math.max(parallel + 1, opts.buffers ?? parallel + 6)), maxRaw, true);
  const batches = planReads(entries);
  let fh: fs.promises.FileHandle;
  try {
    fh = await openMediumFileAsync(file);
  } catch (e) {
    if (e instanceof MediumDamage) throw e;
    throw new RawContainerError(file, `cannot be opened (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }

  // Three read buffers, reused (fresh 16 MiB buffers cost a page fault per 4 KiB each time):
  // one whose frames are decompressing, one being read, one spare.
  const readSize = Math.max(...batches.map((b) => b.end - b.start));
  const readPool = new BufferPool(Math.min(3, batches.length), readSize);
  const readBatch = async (b: Batch): Promise<Buffer | undefined> => {
    const whole = await readPool.take();
    if (!whole) return undefined;
    const buf = whole.subarray(0, b.end - b.start);
    let off = 0;
    try {
      while (off < buf.length) {
        const { bytesRead } = await fh.read(buf, off, buf.length - off, b.start + off);
        if (bytesRead === 0) throw new RawContainerError(file, `ends at ${b.start + off}, inside the frame data its index records`);
        off += bytesRead;
      }
    } catch (e) {
      readPool.give(whole);
      throw e;
    }
    return buf;
  };

  interface Job {
    entry: ContainerEntry;
    out: Buffer;
    done: Promise<void>;
  }
  const jobs: Job[] = [];
  let jobAdded: (() => void) | undefined;
  let stopped = false;
  let running = 0;
  let slotFreed: (() => void) | undefined;

  // Producer: reads ahead one batch and keeps `parallel` frames decompressing.
  const produce = async (): Promise<void> => {
    let reading = readBatch(batches[0]!);
    for (let bi = 0; bi < batches.length && !stopped; bi++) {
      const b = batches[bi]!;
      const data = await reading;
      if (!data) break;
      if (bi + 1 < batches.length) {
        reading = readBatch(batches[bi + 1]!);
        reading.catch(() => undefined);
      }
      const decoding: Array<Promise<void>> = [];
      for (let k = b.first; k < b.last && !stopped; k++) {
        const entry = entries[k]!;
        const out = await pool.take();
        if (!out) break;
        while (running >= parallel && !stopped) await new Promise<void>((r) => (slotFreed = r));
        if (stopped) break;
        running++;
        const frame = data.subarray(entry.offset - b.start, entry.offset - b.start + entry.length);
        const done = zstdDecompressFrame(frame, out, entry.rawLength, opts.nice ?? 0).then(
          () => undefined,
          (e: unknown) => {
            const why = `zstd: ${(e as Error).message}, frame of chunk ${entry.index} at offset ${entry.offset}`;
            throw new RawContainerError(file, `does not decode (${why}): the container is damaged`);
          },
        );
        done
          .catch(() => undefined)
          .finally(() => {
            running--;
            const r = slotFreed;
            slotFreed = undefined;
            r?.();
          });
        decoding.push(done.catch(() => undefined));
        jobs.push({ entry, out, done });
        const r = jobAdded;
        jobAdded = undefined;
        r?.();
      }
      // The read buffer is free again once no frame of it is still being decompressed.
      const whole = Buffer.from(data.buffer, data.byteOffset, readSize);
      void Promise.all(decoding).then(() => readPool.give(whole));
    }
    await reading.catch(() => undefined);
  };

  const stop = (): void => {
    stopped = true;
    pool.close();
    readPool.close();
    slotFreed?.();
  };
  opts.signal?.addEventListener('abort', stop, { once: true });
  const producing = produce();
  producing.catch(() => {
    stopped = true;
    jobAdded?.();
  });
  let delivered = 0;
  try {
    for (; delivered < entries.length; delivered++) {
      if (opts.signal?.aborted) throw new Error('aborted');
      while (jobs.length === 0) {
        if (stopped) {
          await producing; // its error, if it failed
          throw new Error('aborted');
        }
        await new Promise<void>((r) => (jobAdded = r));
      }
      const job = jobs.shift()!;
      let released = false;
      const release = (): void => {
        if (!released) pool.give(job.out);
        released = true;
      };
      try {
        await job.done;
      } catch (e) {
        release();
        throw e;
      }
      await sink(job.entry, job.out.subarray(0, job.entry.rawLength), release);
    }
    await producing;
  } finally {
    opts.signal?.removeEventListener('abort', stop);
    stop();
    // Nothing may decompress into a pool buffer, nor read from the file, after we return.
    await producing.catch(() => undefined);
    await Promise.all(jobs.map((j) => j.done.catch(() => undefined)));
    while (running > 0) await new Promise<void>((r) => (slotFreed = r));
    await fh.close();
  }
}
