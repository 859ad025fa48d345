/**
 * Reading an archive written by compression.ts back as tar bytes, from any
 * frame boundary on: zstd through the `zstd` binary (host/exec.ts), gzip
 * through zlib. A module of its own so that a backup, which only
 * compresses, does not load child_process, zlib and streams at its start.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import type { Readable } from 'node:stream';
import { spawnStreaming } from '../../host/exec.js';
import type { Logger } from '../../util/log.js';
import type { Compression } from '../compression.js';
import { openMediumFile } from '../../medium/medium-file.js';

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
  // Opened here, not by zstd or the stream: a planted fifo or symlink is refused instead of blocking or followed.
  const raw = fs.createReadStream(file, { fd: openMediumFile(file), start: compressedOffset, highWaterMark: 1 << 20 });
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
