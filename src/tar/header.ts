/**
 * The 512-byte tar header block: field offsets (ustar, plus the old-GNU fields
 * that GNU-format archives put where ustar has `prefix`), the checksum, and
 * small helpers to copy raw name bytes into fixed-width fields.
 *
 * Shared by the writer (which only ever writes POSIX ustar blocks, as GNU tar
 * does in --format=pax) and the reader (which also accepts GNU and v7 blocks).
 */

export const BLOCK_SIZE = 512;

/** Field offsets and widths of a ustar header block. */
export const F = {
  name: 0, nameLen: 100,
  mode: 100, uid: 108, gid: 116, idLen: 8,
  size: 124, mtime: 136, bigLen: 12,
  chksum: 148, chksumLen: 8,
  typeflag: 156,
  linkname: 157, linknameLen: 100,
  magic: 257, version: 263,
  uname: 265, gname: 297, unameLen: 32,
  devmajor: 329, devminor: 337, devLen: 8,
  prefix: 345, prefixLen: 155,
  // Old GNU format (magic "ustar  \0") uses the prefix area differently.
  gnuSparse: 386, gnuSparseEntries: 4, gnuIsExtended: 482, gnuRealSize: 483,
} as const;

export const MAGIC_USTAR = Buffer.from('ustar\x0000', 'latin1'); // magic + version of POSIX ustar
export const MAGIC_GNU = Buffer.from('ustar  \x00', 'latin1'); // magic + version of old GNU

/** Type flags, as byte values. */
export const T = {
  file: 0x30, oldFile: 0x00, hardlink: 0x31, symlink: 0x32, char: 0x33, block: 0x34, dir: 0x35,
  fifo: 0x36, contiguous: 0x37,
  paxLocal: 0x78 /* x */, paxGlobal: 0x67 /* g */,
  gnuLongName: 0x4c /* L */, gnuLongLink: 0x4b /* K */, gnuDumpdir: 0x44 /* D */,
  gnuSparse: 0x53 /* S */, gnuVolume: 0x56 /* V */, gnuMultivolume: 0x4d /* M */,
} as const;

/**
 * Writes the checksum of the block at buf[off..off+512): the sum of all bytes
 * with the checksum field counted as spaces, as six octal digits, NUL, space.
 */
export function writeChecksum(buf: Buffer, off: number): void {
  storeChecksum(buf, off, sumRange(buf, off, off + F.chksum) + sumRange(buf, off + F.chksum + F.chksumLen, off + BLOCK_SIZE));
}

/**
 * writeChecksum for blocks the writer built: only the name, the numeric fields,
 * typeflag, linkname, magic and device fields can hold non-zero bytes, so only
 * those are summed (this runs once per archived file).
 */
export function writeUstarChecksum(buf: Buffer, off: number, nameLength: number, linkLength: number): void {
  storeChecksum(
    buf,
    off,
    sumRange(buf, off, off + nameLength) +
      sumRange(buf, off + F.mode, off + F.chksum) +
      buf[off + F.typeflag]! +
      sumRange(buf, off + F.linkname, off + F.linkname + linkLength) +
      sumRange(buf, off + F.magic, off + F.uname) +
      sumRange(buf, off + F.devmajor, off + F.prefix),
  );
}

function sumRange(buf: Buffer, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i++) sum += buf[i]!;
  return sum;
}

function storeChecksum(buf: Buffer, off: number, sumWithoutField: number): void {
  let v = sumWithoutField + 8 * 0x20;
  for (let i = off + F.chksum + 5; i >= off + F.chksum; i--) {
    buf[i] = 48 + (v & 7);
    v >>= 3;
  }
  buf[off + F.chksum + 6] = 0;
  buf[off + F.chksum + 7] = 0x20;
}

/**
 * True if the stored checksum matches. Like GNU tar, accepts both the unsigned
 * sum (the standard) and the signed-char sum some old tars wrote.
 */
export function checksumMatches(buf: Buffer, off: number, stored: number): boolean {
  let unsigned = 8 * 0x20;
  let high = 0; // bytes >= 128, which count 256 less when summed as signed chars
  for (let i = off; i < off + BLOCK_SIZE; i++) {
    const b = buf[i]!;
    unsigned += b;
    high += b >>> 7;
  }
  for (let i = off + F.chksum; i < off + F.chksum + F.chksumLen; i++) {
    const b = buf[i]!;
    unsigned -= b;
    high -= b >>> 7;
  }
  return stored === unsigned || stored === unsigned - 256 * high;
}

export function isZeroBlock(buf: Buffer, off: number): boolean {
  for (let i = off; i < off + BLOCK_SIZE; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Length of the NUL-terminated string in a fixed-width field. */
export function fieldLength(buf: Buffer, off: number, width: number): number {
  for (let i = 0; i < width; i++) if (buf[off + i] === 0) return i;
  return width;
}
