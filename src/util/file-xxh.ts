/**
 * xxh64 of an open file's bytes, read a chunk at a time: the one loop behind
 * every "read it and hash it" (a manifest or archive checked against its
 * sidecar, a restored file read back, the content rule of
 * engines/file-hash.ts). Callers open the file themselves, each the way its
 * place requires (a medium file without following a symlink, a restored
 * file beneath the target), and pass the fd; this module only reads it.
 */
import fs from 'node:fs';
import { promisify } from 'node:util';
import { createXxh64, type StreamingHash } from '../native/xxh.js';

const readAsync = promisify(fs.read);

/** The chunk size when the caller brings no buffer. */
export const HASH_CHUNK = 1 << 20;

/**
 * Feeds bytes [position, position + length) of fd to h (fewer if the file
 * ends first; length Infinity: to its end), through buf; returns how many.
 */
export function hashRangeSync(fd: number, h: StreamingHash, position: number, length: number, buf: Buffer): number {
  const end = position + length;
  let pos = position;
  while (pos < end) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos);
    if (n <= 0) break;
    h.update(buf.subarray(0, n));
    pos += n;
  }
  return pos - position;
}

/**
 * hashRangeSync off the main thread (libuv's pool), so signals get through
 * while a large file is read; `beforeRead`, called before each chunk, may
 * throw to stop (an aborted verify).
 */
export async function hashRangeAsync(
  fd: number,
  h: StreamingHash,
  position: number,
  length: number,
  buf: Buffer,
  beforeRead?: () => void,
): Promise<number> {
  const end = position + length;
  let pos = position;
  while (pos < end) {
    beforeRead?.();
    const { bytesRead } = await readAsync(fd, buf, 0, Math.min(buf.length, end - pos), pos);
    if (bytesRead <= 0) break;
    h.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return pos - position;
}

/** xxh64 of all of fd's bytes, and how many there were. */
export function xxh64OfFd(fd: number, buf: Buffer = Buffer.allocUnsafe(HASH_CHUNK)): { hash: string; bytes: number } {
  const h = createXxh64();
  const bytes = hashRangeSync(fd, h, 0, Infinity, buf);
  return { hash: h.digest(), bytes };
}

/** xxh64OfFd off the main thread; `beforeRead` as for hashRangeAsync. */
export async function xxh64OfFdAsync(
  fd: number,
  buf: Buffer = Buffer.allocUnsafe(HASH_CHUNK),
  beforeRead?: () => void,
): Promise<{ hash: string; bytes: number }> {
  const h = createXxh64();
  const bytes = await hashRangeAsync(fd, h, 0, Infinity, buf, beforeRead);
  return { hash: h.digest(), bytes };
}
