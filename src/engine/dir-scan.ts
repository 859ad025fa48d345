/**
 * One directory's children as native/scandir.c lists them: names in walk
 * order with their lstat, packed in one Buffer. Fields are read on demand;
 * an unchanged child costs the archiver one byte comparison of its key
 * (the manifest's text for type, mode, owner, size, times and inode) with
 * the previous manifest's line, and no object beyond its name.
 */
import os from 'node:os';
import { closeFd, scanDirRaw } from '../native/xbfs.js';
import type { EntryStat } from './metadata.js';

const HEADER = 96;

const ERRNO_NAMES = new Map<number, string>(Object.entries(os.constants.errno).map(([k, v]) => [v, k]));

export class DirScan {
  readonly count: number;
  /** The directory, open (O_RDONLY) when `keepOpen` was asked for, else -1: close() releases it. */
  fd: number;
  private readonly buf: Buffer;
  private readonly offsets: Uint32Array;

  /**
   * Lists `abs`; throws an Error with `code` (EACCES, ENOENT, ...) when it
   * cannot be listed. With `keepOpen` the directory stays open as `fd`, for
   * opening children relative to it (native openAt) until close().
   */
  constructor(abs: Buffer, keepOpen = false) {
    let raw: { buffer: Buffer; length: number; count: number; fd: number };
    try {
      raw = scanDirRaw(abs, keepOpen);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw Object.assign(new Error(`${err.code}: ${err.message}`), { code: err.code });
    }
    this.fd = raw.fd;
    this.buf = raw.buffer;
    this.count = raw.count;
    this.offsets = new Uint32Array(raw.count);
    let off = 0;
    for (let i = 0; i < raw.count; i++) {
      this.offsets[i] = off;
      off += this.buf.readUInt32LE(off);
    }
  }

  close(): void {
    if (this.fd >= 0) closeFd(this.fd);
    this.fd = -1;
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

  /** Does child i's key equal bytes [start, end) of `line`? */
  keyEquals(i: number, line: Buffer, start: number, end: number): boolean {
    const o = this.offsets[i]!;
    const keyStart = o + HEADER + this.buf.readUInt16LE(o + 88);
    const keyLen = this.buf.readUInt16LE(o + 90);
    if (keyLen === 0 || keyLen !== end - start) return false;
    // A byte loop: ~100 bytes, once per child; cheaper than the native compare's call.
    const b = this.buf;
    for (let i = 0; i < keyLen; i++) if (b[keyStart + i] !== line[start + i]) return false;
    return true;
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
