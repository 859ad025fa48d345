/**
 * One directory's children as native/scandir.c lists them: names in walk
 * order with their lstat, packed in one Buffer. Fields are read on demand.
 * merge() joins the listing with the previous manifest's block in C: an
 * unchanged child costs a byte comparison of its key (the manifest's text
 * for type, mode, owner, size, times and inode) with the old line, and no
 * JavaScript object. A listing
 * made by the walker (dir-walker.ts) may also hold small files' content,
 * read and hashed ahead (prefetched).
 */
import fs from 'node:fs';
import os from 'node:os';
import { closeFd, mergeBlockRaw, scanDirRaw, type RawListing } from '../native/xbfs.js';
import type { EntryStat } from './metadata.js';

/** Bytes before a record's name (native/scandir.h). */
const HEADER = 120;

const ERRNO_NAMES = new Map<number, string>(Object.entries(os.constants.errno).map(([k, v]) => [v, k]));

/**
 * Where merge() writes, reused from one directory to the next by one
 * archiver: a fresh ArrayBuffer and Buffer per directory cost more than the
 * join itself. Grown as a directory needs.
 */
export class MergeBuffers {
  match = new Int32Array(1024);
  dumpdir = Buffer.allocUnsafe(64 * 1024);

  /** `match`, grown to hold at least `count` children. */
  matchFor(count: number): Int32Array {
    if (this.match.length < count) this.match = new Int32Array(Math.max(count, 2 * this.match.length));
    return this.match;
  }
}

export class DirScan {
  readonly count: number;
  /** The directory, open (O_RDONLY) when `keepOpen` was asked for or openDirectory() opened it, else -1: close() releases it. */
  fd: number;
  /** The directory has no extended attributes (nor ACLs) of its own, as listed. */
  readonly dirWithoutXattrs: boolean;
  private readonly buf: Buffer;
  private readonly offsets: Uint32Array;
  private readonly data: Buffer | undefined;

  /**
   * Lists `abs`; throws an Error with `code` (EACCES, ENOENT, ...) when it
   * cannot be listed. With `keepOpen` the directory stays open as `fd`, for
   * opening children relative to it (native openAt) until close(). With
   * `beneath`, the directory is opened as `rel` beneath the open root `fd`
   * without following a symlink anywhere on the way (ELOOP if one is met;
   * `abs` then only names it), as the walker opens its directories.
   */
  static list(abs: Buffer, keepOpen = false, beneath?: { fd: number; rel: Buffer }): DirScan {
    try {
      return new DirScan(beneath ? scanDirRaw(abs, keepOpen, beneath.fd, beneath.rel) : scanDirRaw(abs, keepOpen));
    } catch (e) {
      throw listingError(e as NodeJS.ErrnoException);
    }
  }

  /**
   * `reopen`: opens this directory again the way it was listed (the walker's: beneath the root, no
   * symlink followed; dir-walker.ts); without it openDirectory() opens the path it is given.
   */
  constructor(
    raw: RawListing,
    private readonly reopen?: () => number,
  ) {
    this.fd = raw.fd;
    this.dirWithoutXattrs = raw.dirXattrs === 0;
    this.buf = raw.buffer;
    this.data = raw.data;
    this.count = raw.count;
    this.offsets = new Uint32Array(raw.count);
    let off = 0;
    for (let i = 0; i < raw.count; i++) {
      this.offsets[i] = off;
      off += this.buf.readUInt32LE(off);
    }
  }

  /**
   * The directory open for openAt: the listing's fd, or opened now: as the
   * walker listed it (a directory swapped for a symlink since, at any level,
   * is refused with ELOOP), or else `abs` with O_NOFOLLOW (the last component
   * only). Throws the open's error.
   */
  openDirectory(abs: Buffer): number {
    if (this.fd < 0) this.fd = this.reopen ? this.reopen() : fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
    return this.fd;
  }

  close(): void {
    if (this.fd >= 0) closeFd(this.fd);
    this.fd = -1;
  }

  /** The packed records (native/scandir.h), for native code that reads a listing whole. */
  get records(): Buffer {
    return this.buf;
  }

  /** Where child i's record starts in `records`. */
  recordOffset(i: number): number {
    return this.offsets[i]!;
  }

  /** Child i's device, without the rest of its stat. */
  dev(i: number): bigint {
    return this.buf.readBigUInt64LE(this.offsets[i]! + 64);
  }

  name(i: number): Buffer {
    const o = this.offsets[i]!;
    return this.buf.subarray(o + HEADER, o + HEADER + this.buf.readUInt16LE(o + 88));
  }

  /** The lstat failure of child i as an errno code (e.g. 'ENOENT'), or undefined when its stat is valid. */
  errorCode(i: number): string | undefined {
    const e = this.buf.readUInt32LE(this.offsets[i]! + 4);
    return e === 0 ? undefined : (ERRNO_NAMES.get(e) ?? `errno ${e}`);
  }

  mode(i: number): number {
    return this.buf.readUInt32LE(this.offsets[i]! + 8);
  }

  size(i: number): number {
    const o = this.offsets[i]!;
    return this.buf.readUInt32LE(o + 24) + this.buf.readUInt32LE(o + 28) * 2 ** 32;
  }

  /**
   * Joins the children marked in `keep` with the previous manifest's block
   * for this directory (native/manifest-merge.c): match[i] = line * 2 + same
   * (same: its change key and the line's are the same bytes), or -1; and the
   * directory's GNU.dumpdir ('D' directories, 'N' same, 'Y' the rest). Both
   * are views of `into`'s buffers, valid until its next merge.
   */
  merge(keep: Uint8Array, previous: { data: Buffer; index: Int32Array; first: number; end: number } | undefined, into: MergeBuffers): { match: Int32Array; dumpdir: Buffer } {
    const match = into.matchFor(this.count);
    for (;;) {
      const n = previous
        ? mergeBlockRaw(this.buf, this.count, keep, previous.data, previous.index, previous.first, previous.end, match, into.dumpdir)
        : mergeBlockRaw(this.buf, this.count, keep, null, null, 0, 0, match, into.dumpdir);
      if (n >= 0) return { match, dumpdir: into.dumpdir.subarray(0, n) };
      if (n === -(2 ** 31)) throw new RangeError('a directory whose dumpdir exceeds 2 GiB');
      into.dumpdir = Buffer.allocUnsafe(Math.max(-n, 2 * into.dumpdir.length));
    }
  }

  /** Child i's content when the walker read it ahead (a small plain file), with its xxh64; else undefined. */
  prefetched(i: number): { content: Buffer; hash: string } | undefined {
    const o = this.offsets[i]!;
    const b = this.buf;
    if (!this.data || b.readUInt32LE(o + 116) !== 1) return undefined;
    const at = b.readUInt32LE(o + 112);
    return { content: this.data.subarray(at, at + this.size(i)), hash: b.toString('latin1', o + 96, o + 112) };
  }

  /** Child i's change key: the manifest's text from "t" through the inode (native/scandir.c format_key); empty if none. */
  key(i: number): Buffer {
    const o = this.offsets[i]!;
    const start = o + HEADER + this.buf.readUInt16LE(o + 88);
    return this.buf.subarray(start, start + this.buf.readUInt16LE(o + 90));
  }

  /** Child i's lstat with the fields (as BigInts) that the rest of the engine reads from fs.BigIntStats. */
  stat(i: number): EntryStat {
    const b = this.buf;
    const o = this.offsets[i]!;
    const ns = (secAt: number, nsecAt: number): bigint => b.readBigInt64LE(o + secAt) * 1_000_000_000n + BigInt(b.readUInt32LE(o + nsecAt));
    return {
      mode: BigInt(b.readUInt32LE(o + 8)),
      uid: BigInt(b.readUInt32LE(o + 12)),
      gid: BigInt(b.readUInt32LE(o + 16)),
      nlink: BigInt(b.readUInt32LE(o + 20)),
      size: b.readBigUInt64LE(o + 24),
      mtimeNs: ns(32, 48),
      ctimeNs: ns(40, 52),
      ino: b.readBigUInt64LE(o + 56),
      dev: b.readBigUInt64LE(o + 64),
      rdev: b.readBigUInt64LE(o + 72),
      blocks: b.readBigUInt64LE(o + 80),
    };
  }
}

/** "EACCES: scandir ...": an Error with the errno code first, as Node's fs words it. */
export function listingError(err: NodeJS.ErrnoException): Error {
  return Object.assign(new Error(`${err.code}: ${err.message}`), { code: err.code });
}
