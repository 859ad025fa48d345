/**
 * zstd frames compressed in-process by the system's libzstd (native/xbzstd.c)
 * on libuv's worker threads: one call, one independent frame, as `zstd -1`
 * would write it (checksum and content size in the frame header).
 * Decompression stays with the `zstd` binary (engine/compression.ts):
 * restores stream whole archives, where one long-lived process is cheap.
 */
import { loadAddon } from './xbfs.js';

interface ZstdBinding {
  compress(input: Buffer, level: number, nice: number): Promise<Buffer>;
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

/** The libzstd version the addon runs with (for `--version` and the report). */
export function libzstdVersion(): string {
  return binding.version();
}
