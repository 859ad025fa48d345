/**
 * Typed access to the native addon (native/xbfs.c, built by node-gyp at
 * `npm ci`): extended attributes, nanosecond timestamps and SEEK_DATA/HOLE,
 * which Node's fs does not offer; and the archiver's per-file path (a
 * directory listed with its lstat, children opened relative to it, read,
 * hashed with xxh64 in place) without fs's per-call overhead. Paths are Buffers so that any byte
 * sequence a guest uses as a file name works.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { installRoot } from './install-root.js';

/** One directory's records (native/scandir.h layout); fd: the directory kept open, or -1. */
export interface RawListing {
  buffer: Buffer;
  length: number;
  count: number;
  fd: number;
  /** flistxattr's answer for the directory itself: 0 none, > 0 some, < 0 unknown. */
  dirXattrs: number;
  /** Prefetched file contents (walker.c), addressed by the records. */
  data?: Buffer;
}

declare const walkerBrand: unique symbol;
export type WalkerHandle = { readonly [walkerBrand]: true };

/** A listing the walker made: `rel` is the directory's path from the root; `error` when it could not be listed. */
export type WalkedListing = { rel: Buffer } & ({ error: NodeJS.ErrnoException } | (RawListing & { error?: undefined }));

interface XbfsBinding {
  llistxattr(path: Buffer): string[];
  lgetxattr(path: Buffer, name: string): Buffer;
  lsetxattr(path: Buffer, name: string, value: Buffer): void;
  lutimens(path: Buffer, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void;
  seek(fd: number, offset: number, whence: number): number;
  scanDir(path: Buffer, keepOpen?: boolean, baseFd?: number, rel?: Buffer): RawListing;
  manifestIndex(data: Buffer): Int32Array;
  mergeBlock(records: Buffer, count: number, keep: Uint8Array, data: Buffer | null, index: Int32Array | null, first: number, end: number, match: Int32Array, dumpdir: Buffer): number;
  archiveUnchangedDir(
    parent: Buffer, at: number, records: Buffer, count: number, data: Buffer, index: Int32Array, first: number, end: number,
    rel: Buffer, member: Buffer, offset: number, seg: Buffer, man: Buffer, match: Int32Array, out: Float64Array, dirs: Int32Array,
  ): boolean;
  walkerStart(root: Buffer, excludes: Buffer[], oneFileSystem: boolean, prefetchMax: number, verifyAfterRead: boolean, threads: number): WalkerHandle;
  walkerNext(handle: WalkerHandle): WalkedListing | null;
  walkerPrefetch(handle: WalkerHandle, prefetchMax: number): void;
  walkerStop(handle: WalkerHandle): void;
  walkerOpenDir(handle: WalkerHandle, rel: Buffer): number;
  openAt(dirFd: number, name: Buffer): number;
  readAt(fd: number, buffer: Buffer, offset: number, length: number, position: number): number;
  closeFd(fd: number): void;
  flistxattr(fd: number): string[];
  fgetxattr(fd: number, name: string): Buffer;
  xxh64(data: Uint8Array): string;
  xxh64Init(state: Buffer): void;
  xxh64Update(state: Buffer, data: Uint8Array): void;
  xxh64Digest(state: Buffer): string;
  xxh64UpdateAsync(state: Buffer, data: Uint8Array): Promise<void>;
}

/** An addon built by node-gyp into build/Release of the installation (native/install-root.ts finds it from dist/src or dist/bundle). */
export function loadAddon<T>(name: string): T {
  const require = createRequire(import.meta.url);
  const file = path.join(installRoot(), 'build', 'Release', `${name}.node`);
  try {
    return require(file) as T;
  } catch (e) {
    throw new Error(`xenbackup's native helper (${file}) is missing or broken: run "npm ci" (needs make, g++, python3, libzstd-dev). ${String(e)}`);
  }
}

const binding = loadAddon<XbfsBinding>('xbfs');

export const llistxattr = binding.llistxattr;
export const lgetxattr = binding.lgetxattr;
export const lsetxattr = binding.lsetxattr;

const NS = 1_000_000_000n;
/** Nanoseconds since the epoch as utimensat's [seconds, nanoseconds], the nanoseconds never negative. */
export function splitTimeNs(t: bigint): [number, number] {
  let s = t / NS;
  let n = t % NS;
  if (n < 0n) {
    n += NS;
    s -= 1n;
  }
  return [Number(s), Number(n)];
}

/** Sets atime and mtime (nanoseconds since the epoch) without following symlinks. */
export function lutimesNs(p: Buffer, atimeNs: bigint, mtimeNs: bigint): void {
  const [as, an] = splitTimeNs(atimeNs);
  const [ms, mn] = splitTimeNs(mtimeNs);
  binding.lutimens(p, as, an, ms, mn);
}

/** Next offset >= `offset` holding data, or -1 if only a hole follows. */
export function seekData(fd: number, offset: number): number {
  return binding.seek(fd, offset, 3);
}

/** Next hole at or after `offset` (the file's size counts as a hole). */
export function seekHole(fd: number, offset: number): number {
  return binding.seek(fd, offset, 4);
}

/** One directory's children with their lstat, sorted by name: see native/scandir.c and engines/dir-scan.ts. */
export const scanDirRaw = binding.scanDir;

/**
 * A manifest's lines located (8 ints per line) and a listing joined with a
 * block of them, in C (native/manifest-merge.c): see medium/manifest-file.ts
 * (ManifestCursor) and engines/tar/tree-archiver.ts.
 */
export const manifestIndex = binding.manifestIndex;
export const mergeBlockRaw = binding.mergeBlock;
export const archiveUnchangedDirRaw = binding.archiveUnchangedDir;

/** Directory listings made ahead on a thread (native/walker.c); engines/tar/dir-walker.ts is the interface. */
export const walkerNative = { start: binding.walkerStart, next: binding.walkerNext, prefetch: binding.walkerPrefetch, stop: binding.walkerStop, openDir: binding.walkerOpenDir };

/**
 * The archiver's per-file calls: openAt (a regular file child of a directory
 * scanDirRaw kept open: O_NOFOLLOW, O_NONBLOCK, O_NOATIME where allowed),
 * readAt (pread), closeFd, and xattrs through an fd.
 */
export function openAt(dirFd: number, name: Buffer): number {
  try {
    return binding.openAt(dirFd, name);
  } catch (e) {
    throw withCode(e);
  }
}
export function readAt(fd: number, buffer: Buffer, offset: number, length: number, position: number): number {
  try {
    return binding.readAt(fd, buffer, offset, length, position);
  } catch (e) {
    throw withCode(e);
  }
}
/** "EACCES: open: Permission denied", as Node's fs words it (the code first): messages and tests rely on it. */
function withCode(e: unknown): unknown {
  const err = e as NodeJS.ErrnoException;
  if (err.code && !err.message.startsWith(err.code)) err.message = `${err.code}: ${err.message}`;
  return err;
}
export const closeFd = binding.closeFd;
export const flistxattr = binding.flistxattr;
export const fgetxattr = binding.fgetxattr;

/** xxh64 in C over bytes in place (native/xxh64.c); native/xxh.ts is the interface the rest uses. */
export const xxh64Native = {
  stateSize: 80,
  oneShot: binding.xxh64,
  init: binding.xxh64Init,
  update: binding.xxh64Update,
  digest: binding.xxh64Digest,
  updateAsync: binding.xxh64UpdateAsync,
};
