/**
 * Compresses one raw chunk into one independent zstd frame. In-process
 * through the native libzstd addon (src/native/zstd.ts) when it is built:
 * a `zstd` child per 4 MiB chunk costs a fork+exec, two pipes and copies
 * each way, which measured here at ~1.7 CPU-s of system time per 256 MiB,
 * more than compressing it. Without the addon, the `zstd` binary is the
 * fallback (same frames, slower), so raw mode never depends on it.
 */
import { runFilter } from '../host/exec.js';
import type { Logger } from '../util/log.js';

export type CompressFrame = (data: Buffer) => Promise<Buffer>;

let chosen: Promise<{ compress: CompressFrame; how: string }> | undefined;

async function choose(logger?: Logger): Promise<{ compress: CompressFrame; how: string }> {
  // A computed specifier: the addon's wrapper may be absent from a build, and then the CLI serves.
  const specifier = '../native/zstd.js';
  try {
    const mod = (await import(specifier)) as { zstdCompressFrame?: (input: Buffer, level?: number) => Promise<Buffer> };
    const native = mod.zstdCompressFrame;
    if (typeof native === 'function') {
      await native(Buffer.alloc(16), 1); // loads the addon now, not in the middle of a backup
      return { compress: (data) => native(data, 1), how: 'libzstd in-process' };
    }
  } catch (e) {
    logger?.debug(`raw: native zstd unavailable (${(e as Error).message.split('\n')[0]}); using the zstd binary`);
  }
  return {
    // Idle priority like the tar engine's zstd children: dom0 serves the guests while it backs them up.
    compress: (data) => runFilter('zstd', ['-1', '-q', '-c', '--no-progress'], data, { logger, idle: true }),
    how: 'zstd binary per chunk',
  };
}

/** The compressor to use, chosen once per process. */
export function chunkCompressor(logger?: Logger): Promise<{ compress: CompressFrame; how: string }> {
  chosen ??= choose(logger);
  return chosen;
}
