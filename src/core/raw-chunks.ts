/**
 * Raw block mode's pure logic: an image (a snapshot's block device) is cut
 * into fixed-size chunks, each known by its xxh64, or as zero when every
 * byte is 0. A backup's chunk map lists every non-zero chunk with its hash
 * and the backup whose container holds that version (its "holder"), so the
 * map of any one backup is enough to plan a restore of the whole image:
 * each container of the chain is read once, in order, for the chunks it
 * still holds the newest version of; zero chunks become holes.
 *
 * No I/O here: src/engines/raw/ reads devices and writes containers; the hash
 * function is handed in, so the rules stay testable without a device.
 */

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const DEFAULT_CHUNK_SIZE = 4 * MiB;

/** One non-zero chunk of an image. */
export interface ChunkRecord {
  /** Chunk number: the chunk covers [index * chunkSize, min(size, (index + 1) * chunkSize)). */
  index: number;
  /** xxh64 of the chunk's bytes, 16 hex digits. */
  hash: string;
  /** Id of the backup whose container stores this version of the chunk. */
  holder: string;
}

/** What one backup knows of its image. Chunks absent from `chunks` are all zero. */
export interface ChunkMap {
  imageBytes: number;
  chunkSize: number;
  /** Non-zero chunks, ascending by index. */
  chunks: ChunkRecord[];
}

/** Chunk sizes are powers of two between 64 KiB and 64 MiB: aligned reads, and a frame that fits in memory. */
export function checkChunkSize(chunkSize: number): void {
  if (!Number.isInteger(chunkSize) || chunkSize < 64 * KiB || chunkSize > 64 * MiB || (chunkSize & (chunkSize - 1)) !== 0) {
    throw new Error(`chunk size ${chunkSize} must be a power of two between 64 KiB and 64 MiB`);
  }
}

export function chunkCount(imageBytes: number, chunkSize: number): number {
  return Math.ceil(imageBytes / chunkSize);
}

/** Length of chunk `index` (the last one may be short). */
export function chunkLength(index: number, imageBytes: number, chunkSize: number): number {
  const start = index * chunkSize;
  if (index < 0 || start >= imageBytes) throw new RangeError(`chunk ${index} is outside an image of ${imageBytes} bytes`);
  return Math.min(chunkSize, imageBytes - start);
}

export type ChunkFate = 'zero' | 'unchanged' | 'changed';

/**
 * What a backup does with chunk i, given its hash now (null: all zero) and
 * the previous backup's record of it: zero chunks are never stored, a chunk
 * whose hash is unchanged keeps its holder, anything else is stored anew.
 * A full backup passes no previous record, so every non-zero chunk is "changed".
 */
export function chunkFate(previous: ChunkRecord | undefined, hash: string | null): ChunkFate {
  if (hash === null) return 'zero';
  return previous !== undefined && previous.hash === hash ? 'unchanged' : 'changed';
}

/** Indexes of the chunks whose content differs between two maps (zero counts as content). */
export function diffMaps(older: ChunkMap, newer: ChunkMap): number[] {
  const n = Math.max(chunkCount(older.imageBytes, older.chunkSize), chunkCount(newer.imageBytes, newer.chunkSize));
  if (older.chunkSize !== newer.chunkSize) return Array.from({ length: n }, (_, i) => i);
  const a = new Map(older.chunks.map((c) => [c.index, c.hash]));
  const b = new Map(newer.chunks.map((c) => [c.index, c.hash]));
  const countA = chunkCount(older.imageBytes, older.chunkSize);
  const countB = chunkCount(newer.imageBytes, newer.chunkSize);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    // A chunk beyond one image's end, or whose length changed (a resized volume), differs.
    const lenA = i < countA ? chunkLength(i, older.imageBytes, older.chunkSize) : -1;
    const lenB = i < countB ? chunkLength(i, newer.imageBytes, newer.chunkSize) : -1;
    if (lenA !== lenB || a.get(i) !== b.get(i)) out.push(i);
  }
  return out;
}

/** Checks a map's internal rules: ascending indexes inside the image, well-formed hashes. */
export function checkChunkMap(map: ChunkMap, what: string): void {
  checkChunkSize(map.chunkSize);
  if (!Number.isSafeInteger(map.imageBytes) || map.imageBytes < 0) throw new Error(`${what}: image size ${map.imageBytes} is not a byte count`);
  const n = chunkCount(map.imageBytes, map.chunkSize);
  let prev = -1;
  for (const c of map.chunks) {
    if (!Number.isSafeInteger(c.index) || c.index <= prev || c.index >= n) {
      throw new Error(`${what}: chunk ${c.index} is out of order or outside the image's ${n} chunks`);
    }
    if (!/^[0-9a-f]{16}$/.test(c.hash)) throw new Error(`${what}: chunk ${c.index} has no valid xxh64 ("${c.hash}")`);
    prev = c.index;
  }
}

/** One container's part in a restore: the chunks to take from it, ascending. */
export interface ContainerReads {
  holder: string;
  chunks: ChunkRecord[];
}

export interface RawRestorePlan {
  imageBytes: number;
  chunkSize: number;
  /** In chain order (the full first); containers with nothing left to give are absent. */
  reads: ContainerReads[];
  /** Chunk indexes that are all zero (holes in a file, zeros written on a device). */
  zeroChunks: number[];
}

/**
 * The restore plan of a backup from its chunk map and its chain (ids,
 * oldest first, as core/chain.ts `needs` gives them). A holder outside the
 * chain means a damaged or foreign manifest: refused, nothing is guessed.
 */
export function planRawRestore(map: ChunkMap, chain: readonly string[]): RawRestorePlan {
  const byHolder = new Map<string, ChunkRecord[]>(chain.map((id) => [id, []]));
  for (const c of map.chunks) {
    const list = byHolder.get(c.holder);
    if (!list) throw new Error(`chunk ${c.index} is held by backup ${c.holder}, which is not in the chain ${chain.join(', ')}`);
    list.push(c);
  }
  const zeroChunks: number[] = [];
  const n = chunkCount(map.imageBytes, map.chunkSize);
  let k = 0;
  for (let i = 0; i < n; i++) {
    if (k < map.chunks.length && map.chunks[k]!.index === i) k++;
    else zeroChunks.push(i);
  }
  const reads = chain.map((holder) => ({ holder, chunks: byHolder.get(holder)! })).filter((r) => r.chunks.length > 0);
  return { imageBytes: map.imageBytes, chunkSize: map.chunkSize, reads, zeroChunks };
}

/**
 * The whole-image hash rule: xxh64 over a fixed prefix naming the image
 * size and chunk size, followed by every chunk's xxh64 (8 bytes, big
 * endian) in order, zero chunks contributing the xxh64 of their zero bytes.
 * It depends on the image's bytes only (not on which backup stored what),
 * costs no second pass over the data, and a restore recomputes it from
 * the chunks it writes.
 */
export function wholeImageHash(
  imageBytes: number,
  chunkSize: number,
  hashOf: (index: number) => string | null,
  xxh64: (data: Uint8Array) => string,
): string {
  const n = chunkCount(imageBytes, chunkSize);
  const prefix = Buffer.from(`xenbackup-raw-image-v1 ${imageBytes} ${chunkSize}\n`);
  const buf = Buffer.alloc(prefix.length + 8 * n);
  prefix.copy(buf, 0);
  const zeroHash = new Map<number, string>();
  for (let i = 0; i < n; i++) {
    let h = hashOf(i);
    if (h === null) {
      const len = chunkLength(i, imageBytes, chunkSize);
      h = zeroHash.get(len) ?? xxh64(new Uint8Array(len));
      zeroHash.set(len, h);
    }
    buf.write(h, prefix.length + 8 * i, 8, 'hex');
  }
  return xxh64(buf);
}

/** wholeImageHash of a chunk map. */
export function mapImageHash(map: ChunkMap, xxh64: (data: Uint8Array) => string): string {
  const hashes = new Map(map.chunks.map((c) => [c.index, c.hash]));
  return wholeImageHash(map.imageBytes, map.chunkSize, (i) => hashes.get(i) ?? null, xxh64);
}
