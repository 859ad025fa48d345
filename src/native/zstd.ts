/**
 * zstd frames compressed in-process by the system's libzstd (native/xbzstd.c)
 * on libuv's worker threads: one call, one independent frame, as `zstd -1`
 * would write it (checksum and content size in the frame header), and one
 * frame decompressed into a buffer the caller owns (raw restores and
 * verifies: each chunk is its own frame, found through the container index).
 * Tar archives are still decompressed by the `zstd` binary
 * (engines/compression.ts): restores stream whole archives, where one
 * long-lived process is cheap.
 */
import { loadAddon } from './xbfs.js';

interface ZstdBinding {
  compress(input: Buffer, level: number, nice: number): Promise<Buffer>;
  compress(input: Buffer, level: number, nice: number, output: Buffer): Promise<number>;
  decompress(frame: Buffer, output: Buffer, expected: number, nice: number): Promise<number>;
  compressSync(input: Buffer, level: number, output: Buffer): number;
  decompressSync(frame: Buffer, output: Buffer, expected: number): number;
  alignedBuffer(size: number): Buffer;
  version(): string;
}

const binding = loadAddon<ZstdBinding>('xbzstd');

/**
 * Compresses `input` into one zstd frame off the main thread, the worker at
 * `nice` (19: idle, for the nightly run); `input` must not change until it settles.
 */
export function zstdCompressFrame(input: Buffer, level = 1, nice = 0): Promise<Buffer> {
  return binding.compress(input, level, nice);
}

/** The most a frame of `n` input bytes can take (libzstd's ZSTD_COMPRESSBOUND). */
export function zstdFrameBound(n: number): number {
  return n + (n >>> 8) + (n < 128 << 10 ? ((128 << 10) - n) >>> 11 : 0);
}

/**
 * zstdCompressFrame into the start of `output` (at least zstdFrameBound(input.length) bytes), which
 * the caller reuses: resolves with the frame, a view of `output`. Neither buffer may be touched until it settles.
 */
export async function zstdCompressFrameInto(input: Buffer, output: Buffer, level = 1, nice = 0): Promise<Buffer> {
  return output.subarray(0, await binding.compress(input, level, nice, output));
}

/**
 * Decompresses `frame`, exactly one zstd frame, into the start of `output`
 * off the main thread (its checksum checked, when it has one) and resolves
 * with `expected`; rejects with a one-line reason when the bytes are not one
 * frame, or it holds other than `expected` bytes. Neither buffer may be
 * touched until it settles.
 */
export function zstdDecompressFrame(frame: Buffer, output: Buffer, expected: number, nice = 0): Promise<number> {
  return binding.decompress(frame, output, expected, nice);
}

/** One frame compressed on the calling thread into `output` (at least zstdFrameBound bytes): the frame, a view of it. */
export function zstdCompressFrameSync(input: Buffer, output: Buffer, level = 1): Buffer {
  return output.subarray(0, binding.compressSync(input, level, output));
}

/** zstdDecompressFrame on the calling thread: throws with the same one-line reasons. */
export function zstdDecompressFrameSync(frame: Buffer, output: Buffer, expected: number): number {
  return binding.decompressSync(frame, output, expected);
}

/**
 * A buffer of `size` bytes whose memory starts on a 4 KiB boundary, as
 * O_DIRECT I/O needs (Node's own buffers are not aligned); contents undefined.
 * Where the runtime refuses external buffers, a plain one (O_DIRECT writers
 * then fall back to the page cache when the kernel says EINVAL).
 */
export function alignedBuffer(size: number): Buffer {
  try {
    return binding.alignedBuffer(size);
  } catch {
    return Buffer.allocUnsafe(size);
  }
}

/** The libzstd version the addon runs with (for `--version` and the report). */
export function libzstdVersion(): string {
  return binding.version();
}
