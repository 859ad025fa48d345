/**
 * The content hash a manifest records for a regular file, in one place: the
 * xxh64 of its bytes; for a file stored sparse (entry.sparse), of its data
 * regions in order, each preceded by a 16-byte header (the region's offset
 * and length as little-endian u64s), so moving data within the file changes
 * the hash. The rsync scanner and tree verify read a file with
 * contentHashSync/contentHashAsync; restore and tar verify, which get the
 * content as a stream of (chunk, file offset), use ContentHash. Every
 * manifest ever written was hashed this way: changing it breaks verify of
 * existing backups.
 *
 * One writer of the rule hashes inline instead: the tar archiver
 * (tar/child-saver.ts, ChildSaver.storeFile and copy) reads each file once
 * straight into the archive's segment buffer and hashes it there, with
 * xxh64's one-shot form for a file that arrives in one read. Routing that
 * through these readers would read the file twice or copy it, on the
 * backup's hot path; it takes only the region header from here
 * (hashRegionHeader).
 */
import { createXxh64, type StreamingHash } from '../native/xxh.js';
import { hashRangeAsync, hashRangeSync } from '../util/file-xxh.js';

/** Data regions of a sparse file, [offset, length], in file order (sparse-regions.ts, a tar sparse map). */
export type Regions = ReadonlyArray<readonly [number, number]>;

/** One header at a time: every caller feeds it to the hash before the next (all synchronous). */
const header = Buffer.alloc(16);

/** Feeds a region's header (offset and length, u64 little-endian) to h; its data follows. */
export function hashRegionHeader(h: StreamingHash, offset: number, length: number): void {
  header.writeBigUInt64LE(BigInt(offset), 0);
  header.writeBigUInt64LE(BigInt(length), 8);
  h.update(header);
}

/**
 * The content hash of fd: its first `size` bytes, or with `regions` the
 * regions with their headers; `bytes` is how many were read. A file shorter
 * than expected is hashed as far as it goes.
 */
export function contentHashSync(fd: number, size: number, regions: Regions | undefined, buf: Buffer): { hash: string; bytes: number } {
  const h = createXxh64();
  if (!regions) {
    const bytes = hashRangeSync(fd, h, 0, size, buf);
    return { hash: h.digest(), bytes };
  }
  let bytes = 0;
  for (const [off, len] of regions) {
    hashRegionHeader(h, off, len);
    bytes += hashRangeSync(fd, h, off, len, buf);
  }
  return { hash: h.digest(), bytes };
}

/** contentHashSync off the main thread (reads on libuv's pool). */
export async function contentHashAsync(fd: number, size: number, regions: Regions | undefined, buf: Buffer): Promise<{ hash: string; bytes: number }> {
  const h = createXxh64();
  if (!regions) {
    const bytes = await hashRangeAsync(fd, h, 0, size, buf);
    return { hash: h.digest(), bytes };
  }
  let bytes = 0;
  for (const [off, len] of regions) {
    hashRegionHeader(h, off, len);
    bytes += await hashRangeAsync(fd, h, off, len, buf);
  }
  return { hash: h.digest(), bytes };
}

/**
 * The content hash of a file that arrives as chunks in file order, each
 * with its file offset (a tar member's data: restore, tar verify). With
 * `regions` (the member's sparse map), a region's header goes in when the
 * chunk at its offset arrives (a region no chunk starts at adds none).
 */
export class ContentHash {
  private readonly h = createXxh64();
  private nextRegion = 0;

  constructor(private readonly regions?: Regions) {}

  update(chunk: Buffer, fileOffset: number): void {
    if (this.regions) {
      const r = this.regions[this.nextRegion];
      if (r && r[0] === fileOffset) {
        hashRegionHeader(this.h, r[0], r[1]);
        this.nextRegion++;
      }
    }
    this.h.update(chunk);
  }

  digest(): string {
    return this.h.digest();
  }
}
