/**
 * Sparse files in the pax "GNU.sparse 1.0" layout, exactly as GNU tar 1.34
 * writes them with `--format=pax -S`:
 *
 *   pax records  GNU.sparse.major=1, GNU.sparse.minor=0,
 *                GNU.sparse.name=<real path>, GNU.sparse.realsize=<apparent size>
 *   ustar name   <dir>/GNUSparseFile.0/<base> (GNU tar puts its pid where we put 0)
 *   ustar size   the STORED size = encodeSparseMap(...).length + sparseDataSize(map)
 *   data         the map block(s): decimal lines "<count>\n" then "<offset>\n<length>\n"
 *                per region, NUL-padded to a multiple of 512; then the data of
 *                each region, concatenated; then padding to 512.
 *
 * A file that ends in a hole gets a final zero-length region at its apparent
 * size: GNU tar's extractor seeks there and truncates, which is what gives the
 * extracted file its full length. `encodeSparseMap` adds that region itself;
 * the reader drops zero-length regions again, so `TarEntry.sparseMap` only
 * ever lists real data.
 *
 * GNU tar reads (and writes) every region in whole 512-byte blocks, while the
 * size and other readers treat the data as contiguous. Both agree only if every
 * region but the last has a length that is a multiple of 512, which the writer
 * therefore requires; alignSparseMap() makes any map so (SEEK_DATA/SEEK_HOLE
 * maps already are, being file-system-block aligned).
 */
import { BLOCK_SIZE } from './header.js';

export type SparseMap = Array<[offset: number, length: number]>;

/** Bytes of file data stored in the archive for this map: the sum of region lengths. */
export function sparseDataSize(map: SparseMap): number {
  let total = 0;
  for (const [, length] of map) total += length;
  return total;
}

/**
 * The map regions as stored: without zero-length regions, plus the terminal
 * [realSize, 0] region when the file ends in a hole (or has no data at all).
 * Throws if regions overlap, go backwards or pass realSize.
 */
export function storedSparseRegions(map: SparseMap, realSize: number): SparseMap {
  const regions: SparseMap = [];
  let end = 0;
  for (const [offset, length] of map) {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < end || length < 0 || offset + length > realSize) {
      throw new Error(`sparse map region [${offset}, ${length}] is out of order, overlapping or beyond the file size ${realSize}`);
    }
    if (length === 0) continue;
    const previous = regions[regions.length - 1];
    if (previous && previous[1] % BLOCK_SIZE !== 0) {
      throw new Error(`sparse map region [${previous[0]}, ${previous[1]}] is not a multiple of 512 bytes long but not the last (GNU tar would misread it; use alignSparseMap)`);
    }
    regions.push([offset, length]);
    end = offset + length;
  }
  if (end < realSize || regions.length === 0) regions.push([realSize, 0]);
  return regions;
}

/**
 * Rounds every region outward to 512-byte boundaries (the end capped at the
 * file size) and merges regions that then touch, so that the map satisfies
 * the writer. The caller stores the bytes of the widened regions, which in
 * the file read as zeros where they were hole.
 */
export function alignSparseMap(map: SparseMap, realSize: number): SparseMap {
  const aligned: SparseMap = [];
  for (const [offset, length] of map) {
    if (length === 0) continue;
    const start = offset - (offset % BLOCK_SIZE);
    const end = Math.min(realSize, Math.ceil((offset + length) / BLOCK_SIZE) * BLOCK_SIZE);
    const last = aligned[aligned.length - 1];
    if (last && start <= last[0] + last[1]) last[1] = Math.max(last[0] + last[1], end) - last[0];
    else aligned.push([start, end - start]);
  }
  return aligned;
}

/** Byte length of encodeSparseMap(map, realSize), without building it. */
export function sparseMapSize(map: SparseMap, realSize: number): number {
  const regions = storedSparseRegions(map, realSize);
  let length = String(regions.length).length + 1;
  for (const [offset, len] of regions) length += String(offset).length + String(len).length + 2;
  return Math.ceil(length / BLOCK_SIZE) * BLOCK_SIZE;
}

/** The sparse map block(s) that start a 1.0 sparse member's data, padded to 512. */
export function encodeSparseMap(map: SparseMap, realSize: number): Buffer {
  const regions = storedSparseRegions(map, realSize);
  let text = `${regions.length}\n`;
  for (const [offset, length] of regions) text += `${offset}\n${length}\n`;
  const size = Math.ceil(text.length / BLOCK_SIZE) * BLOCK_SIZE;
  const block = Buffer.alloc(size);
  block.write(text, 0, 'latin1');
  return block;
}

/**
 * Incremental parser of the 1.0 map at the start of a member's data: feed it
 * bytes until `done`; `consumed` then says how many bytes (a multiple of 512)
 * the map occupied, padding included.
 */
export class SparseMapParser {
  private readonly numbers: number[] = [];
  private count = -1;
  private current = 0;
  private digits = 0;
  private numbersDone = false;
  consumed = 0;

  get done(): boolean {
    return this.numbersDone && this.consumed % BLOCK_SIZE === 0;
  }

  /** Parses data[start..end); returns the index where it stopped, or an error message. */
  feed(data: Buffer, start: number, end: number): number | string {
    let i = start;
    while (i < end && !this.numbersDone) {
      const c = data[i]!;
      i++;
      this.consumed++;
      if (c >= 48 && c <= 57) {
        this.current = this.current * 10 + (c - 48);
        if (++this.digits > 16) return 'sparse map number too long';
      } else if (c === 0x0a && this.digits > 0) {
        if (this.count < 0) {
          this.count = this.current;
          if (this.count > 10_000_000) return `sparse map claims ${this.count} regions`;
        } else {
          this.numbers.push(this.current);
        }
        this.current = 0;
        this.digits = 0;
        if (this.numbers.length === this.count * 2) this.numbersDone = true;
      } else {
        return 'bad character in sparse map';
      }
    }
    if (this.numbersDone) {
      // The map is NUL-padded to the block boundary; skip the padding too.
      const take = Math.min((BLOCK_SIZE - (this.consumed % BLOCK_SIZE)) % BLOCK_SIZE, end - i);
      this.consumed += take;
      i += take;
    }
    return i;
  }

  regions(): SparseMap {
    const map: SparseMap = [];
    for (let i = 0; i < this.numbers.length; i += 2) map.push([this.numbers[i]!, this.numbers[i + 1]!]);
    return map;
  }
}
