/**
 * Where a sparse file holds data, from the kernel (lseek SEEK_DATA and
 * SEEK_HOLE through the native addon; Node's fs has neither): the archiver
 * stores only these regions, and restore, verify and the rsync scanner read
 * only these, where reading a 1 TiB hole as zeros would take minutes.
 */
import { seekData, seekHole } from '../native/xbfs.js';

/** Files at least this big are checked for holes (smaller ones are stored dense). */
const SPARSE_MIN_SIZE = 1 << 20;
/** Allocated bytes this far below the apparent size make a file worth asking for its holes. */
const SLACK = 65536n;

/**
 * Whether a file is worth asking for its holes: big enough, and with fewer
 * blocks allocated than its size needs. The tar archiver and the rsync
 * scanner both decide so; a file they ask about and find regions for is
 * stored (or hashed) sparse, so both must ask about the same files.
 */
export function worthAskingForHoles(size: number, st: { readonly blocks: bigint; readonly size: bigint }): boolean {
  return size >= SPARSE_MIN_SIZE && st.blocks * 512n + SLACK < st.size;
}

/** The data regions of a sparse file via SEEK_DATA/SEEK_HOLE; undefined where the filesystem cannot say. */
export function dataRegions(fd: number, size: number): Array<[number, number]> | undefined {
  const map: Array<[number, number]> = [];
  let pos = 0;
  try {
    while (pos < size) {
      const data = seekData(fd, pos);
      if (data < 0 || data >= size) break;
      let hole = seekHole(fd, data);
      if (hole < 0 || hole > size) hole = size;
      map.push([data, hole - data]);
      pos = hole;
    }
  } catch {
    return undefined;
  }
  return map;
}
