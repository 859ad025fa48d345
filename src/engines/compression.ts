/**
 * Seekable compression: the tar stream is cut into fixed-size segments and
 * each is compressed as an independent zstd frame (or gzip member). The
 * concatenation is still one valid stream for `zstd -d`, `gzip -d` and
 * `tar -I zstd`, while a restore of one file starts decompressing at the
 * frame holding its member (frame index in the sidecar) instead of at the
 * beginning of a gigabyte. Reading them back: decompression.ts.
 */
import { promisify } from 'node:util';
import { zstdCompressFrame, zstdCompressFrameInto } from '../native/zstd.js';

import type { Compression } from '../medium/layout.js';

export { ARCHIVE_EXTENSION, COMPRESSIONS, type Compression } from '../medium/layout.js';

/** Loaded on first use: zlib (and the stream modules it loads) would cost every zstd backup's start. */
let gzip: ((data: Buffer, opts: { level: number }) => Promise<Buffer>) | undefined;

/**
 * Compresses one segment into one independent frame; `idle`: at nice 19, not competing with the guests.
 * `into` (zstdFrameBound(data.length) bytes at least): a buffer the caller reuses for zstd's frame.
 */
export async function compressSegment(c: Compression, data: Buffer, idle: boolean, into?: Buffer): Promise<Buffer> {
  switch (c) {
    case 'zstd':
      // libzstd in a worker thread (native/xbzstd.c): a `zstd` spawn per segment cost more than the compression.
      return into ? zstdCompressFrameInto(data, into, 1, idle ? 19 : 0) : zstdCompressFrame(data, 1, idle ? 19 : 0);
    case 'gzip':
      gzip ??= promisify((await import('node:zlib')).gzip);
      return gzip(data, { level: 6 });
    case 'none':
      return data;
  }
}
