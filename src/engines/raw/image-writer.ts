/**
 * Positional writes of a restored image, a few chunks in flight on libuv's
 * threads, so the main thread goes on decoding while the kernel takes the
 * previous chunks. Each chunk is written from the buffer it was decoded
 * into (frame-decoder.ts), which goes back to its pool once written.
 *
 * A block device target is written with O_DIRECT (a second descriptor,
 * `directFd`), from those buffers (page-aligned: frame-decoder.ts) straight
 * to the disk: no copy into the page cache, and a restore does not push
 * dom0's cache out. Measured with a 4 GiB device: 9-10 s and 1 CPU-s of
 * kernel time, against 13-14 s and 8-10 CPU-s through the page cache.
 * A file target is written through the page cache: O_DIRECT into a sparse
 * file's holes was slower (ext4 serialises allocating writes; the bench's
 * rebuild took 4.4-5.0 s instead of 2.8-3.1 s). Pieces O_DIRECT refuses
 * (a short last chunk, unaligned memory) go through the page cache too.
 * For everything written through the cache, writeback starts as it is
 * written: every 128 MiB an fdatasync runs in the background (as
 * engines/tar/archive-writer.ts does), so the final fsync has little left
 * (64 and 256 MiB measured slower, none at all much slower).
 *
 * For a file target, all-zero 64 KiB blocks are skipped: the file was
 * created as one hole, so they stay holes and the image is about as sparse
 * as the source, also inside chunks that are only partly used.
 */
import fs from 'node:fs';
import { promisify } from 'node:util';

const SPARSE_BLOCK = 64 * 1024;
const ZERO_BLOCK = Buffer.alloc(SPARSE_BLOCK);
const WRITEBACK_EVERY = 128 << 20;
/** O_DIRECT wants offsets and lengths in whole logical blocks: 4 KiB covers every common device. */
const DIRECT_ALIGN = 4096;
const fdatasync = promisify(fs.fdatasync);

/** Writes buf[off..] at position + off once; resolves with the bytes written. */
function pwrite(fd: number, buf: Buffer, off: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buf, off, buf.length - off, position + off, (e, n) => (e ? reject(e) : resolve(n))));
}

export class ImageWriter {
  private readonly inFlight = new Set<Promise<void>>();
  private failure: unknown;
  private unsynced = 0;
  private syncing = false;
  private writeback: Promise<void> = Promise.resolve();
  /** Bytes handed to the kernel (zero blocks skipped in a sparse file are not counted). */
  bytesWritten = 0;
  /** Of those, bytes written with O_DIRECT. */
  bytesDirect = 0;

  constructor(
    private readonly fd: number,
    private readonly file: string,
    private readonly sparse: boolean,
    /** The same target opened with O_DIRECT, if it could be; the caller closes it after flush(). */
    private directFd?: number,
    private readonly maxInFlight = 4,
  ) {}

  /**
   * Queues `data` for writing at `position`; `data` must not change until
   * `release` is called (once the write is done, failed or not; omit it for
   * a buffer that never changes, like the zero chunk). Resolves once there
   * is room for another chunk; throws the first write error.
   */
  async write(data: Buffer, position: number, release?: () => void): Promise<void> {
    if (this.failure !== undefined) {
      release?.();
      throw this.failure;
    }
    const job = this.writeRuns(data, position).then(
      () => undefined,
      (e: unknown) => {
        this.failure ??= new Error(`writing ${this.file} near ${position}: ${(e as Error).message}`);
      },
    );
    const tracked = job.finally(() => {
      this.inFlight.delete(tracked);
      release?.();
    });
    this.inFlight.add(tracked);
    while (this.inFlight.size >= this.maxInFlight) await Promise.race(this.inFlight);
    if (this.failure !== undefined) throw this.failure;
  }

  private async writeRuns(buf: Buffer, position: number): Promise<void> {
    if (!this.sparse) return this.writeAll(buf, position);
    let runStart = -1;
    for (let off = 0; off <= buf.length; off += SPARSE_BLOCK) {
      const block = off < buf.length ? buf.subarray(off, Math.min(off + SPARSE_BLOCK, buf.length)) : undefined;
      const zero = block === undefined || block.equals(ZERO_BLOCK.subarray(0, block.length));
      if (!zero && runStart < 0) runStart = off;
      if (zero && runStart >= 0) {
        await this.writeAll(buf.subarray(runStart, off), position + runStart);
        runStart = -1;
      }
    }
  }

  private async writeAll(buf: Buffer, position: number): Promise<void> {
    let off = 0;
    if (this.directFd !== undefined && position % DIRECT_ALIGN === 0 && buf.length % DIRECT_ALIGN === 0) {
      try {
        while (off < buf.length) off += await pwrite(this.directFd, buf, off, position);
        this.bytesDirect += buf.length;
      } catch (e) {
        // EINVAL: memory or size the device will not take directly; the page cache takes anything.
        if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
        this.directFd = undefined;
      }
    }
    if (off < buf.length) {
      const start = off;
      while (off < buf.length) off += await pwrite(this.fd, buf, off, position);
      this.unsynced += buf.length - start;
    }
    this.bytesWritten += buf.length;
    if (this.unsynced >= WRITEBACK_EVERY && !this.syncing) {
      // One at a time: what is written meanwhile goes with the next one.
      this.unsynced = 0;
      this.syncing = true;
      this.writeback = fdatasync(this.fd)
        .catch((e: unknown) => {
          this.failure ??= new Error(`syncing ${this.file}: ${(e as Error).message}`);
        })
        .finally(() => {
          this.syncing = false;
        });
    }
  }

  /** Waits for every queued write and background sync; throws the first error. */
  async flush(): Promise<void> {
    await Promise.all(this.inFlight);
    await this.writeback;
    if (this.failure !== undefined) throw this.failure;
  }
}
