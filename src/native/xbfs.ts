/**
 * Typed access to the native addon (native/xbfs.c, built by node-gyp at
 * `npm ci`): extended attributes, nanosecond timestamps and SEEK_DATA/HOLE,
 * which Node's fs does not offer. Paths are Buffers so that any byte
 * sequence a guest uses as a file name works.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

interface XbfsBinding {
  llistxattr(path: Buffer): string[];
  lgetxattr(path: Buffer, name: string): Buffer;
  lsetxattr(path: Buffer, name: string, value: Buffer): void;
  lutimens(path: Buffer, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void;
  seek(fd: number, offset: number, whence: number): number;
  scanDir(path: Buffer): { buffer: Buffer; length: number; count: number };
}

const here = path.dirname(fileURLToPath(import.meta.url));
/** dist/src/native -> project root (three up); src/native when run from source would be two up. */
export function loadAddon<T>(name: string): T {
  const require = createRequire(import.meta.url);
  const candidates = [
    path.resolve(here, `../../../build/Release/${name}.node`),
    path.resolve(here, `../../build/Release/${name}.node`),
  ];
  let lastError: unknown;
  for (const c of candidates) {
    try {
      return require(c) as T;
    } catch (e) {
      lastError = e;
    }
  }
  throw new Error(
    `xenbackup's native helper (build/Release/${name}.node) is missing or broken: run "npm ci" (needs make, g++, python3, libzstd-dev). ${String(lastError)}`,
  );
}

const binding = loadAddon<XbfsBinding>('xbfs');

export const llistxattr = binding.llistxattr;
export const lgetxattr = binding.lgetxattr;
export const lsetxattr = binding.lsetxattr;

const NS = 1_000_000_000n;
/** Sets atime and mtime (nanoseconds since the epoch) without following symlinks. */
export function lutimesNs(p: Buffer, atimeNs: bigint, mtimeNs: bigint): void {
  const split = (t: bigint): [number, number] => {
    let s = t / NS;
    let n = t % NS;
    if (n < 0n) {
      n += NS;
      s -= 1n;
    }
    return [Number(s), Number(n)];
  };
  const [as, an] = split(atimeNs);
  const [ms, mn] = split(mtimeNs);
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

/** One directory's children with their lstat, sorted by name: see native/scandir.c and engine/dir-scan.ts. */
export const scanDirRaw = binding.scanDir;
