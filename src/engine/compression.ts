/**
 * Seekable compression: the tar stream is cut into fixed-size segments and
 * each is compressed as an independent zstd frame (or gzip member). The
 * concatenation is still one valid stream for `zstd -d`, `gzip -d` and
 * `tar -I zstd`, while a restore of one file starts decompressing at the
 * frame holding its member (frame index in the sidecar) instead of at the
 * beginning of a gigabyte.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import { Readable } from 'node:stream';
import { spawnStreaming } from '../host/exec.js';
import { zstdCompressFrame } from '../native/zstd.js';
import type { Logger } from '../util/log.js';

export type Compression = 'zstd' | 'gzip' | 'none';
export const COMPRESSIONS: readonly Compression[] = ['zstd', 'gzip', 'none'];

export const ARCHIVE_EXTENSION: Record<Compression, string> = {
  zstd: '.tar.zst',
  gzip: '.tar.gz',
  none: '.tar',
};

/** The option GNU tar needs to read such an archive (for the README and `list`). */
export const GNU_TAR_FLAG: Record<Compression, string> = { zstd: '--zstd', gzip: '-z', none: '' };

const gzip = promisify(zlib.gzip);

/** Compresses one segment into one independent frame; `idle`: at nice 19, not competing with the guests. */
export async function compressSegment(c: Compression, data: Buffer, idle: boolean): Promise<Buffer> {
  switch (c) {
    case 'zstd':
      // libzstd in a worker thread (native/xbzstd.c): a `zstd` spawn per segment cost more than the compression.
      return zstdCompressFrame(data, 1, idle ? 19 : 0);
    case 'gzip':
      return gzip(data, { level: 6 });
    case 'none':
      return data;
  }
}

/**
 * Decompresses an archive from a frame boundary (`compressedOffset`) on, as
 * a stream of tar bytes. `stop()` ends it early (a single-file restore does
 * not read to the end).
 */
export function openDecompressed(
  c: Compression,
  file: string,
  compressedOffset: number,
  logger?: Logger,
): { stream: AsyncIterable<Buffer>; stop: () => void; done: Promise<void> } {
  const raw = fs.createReadStream(file, { start: compressedOffset, highWaterMark: 1 << 20 });
  if (c === 'none') {
    return { stream: raw, stop: () => raw.destroy(), done: Promise.resolve() };
  }
  if (c === 'gzip') {
    const gunzip = zlib.createGunzip();
    raw.on('error', (e) => gunzip.destroy(e));
    raw.pipe(gunzip);
    return {
      stream: gunzip,
      stop: () => {
        raw.destroy();
        gunzip.destroy();
      },
      done: Promise.resolve(),
    };
  }
  // A whole-volume restore or a full verify may read for hours: no 10-minute default here.
  const { child, done } = spawnStreaming('zstd', ['-d', '-c', '-q'], { logger, quiet: true, timeoutMs: 24 * 3600_000 });
  raw.on('error', (e) => child.kill());
  raw.pipe(child.stdin!);
  child.stdin!.on('error', () => {
    /* zstd stopped reading: reported through its exit status */
  });
  let stopped = false;
  return {
    stream: child.stdout as Readable,
    stop: () => {
      stopped = true;
      raw.destroy();
      child.kill();
    },
    done: done.then(
      () => undefined,
      (e: unknown) => {
        if (!stopped) throw e;
      },
    ),
  };
}
