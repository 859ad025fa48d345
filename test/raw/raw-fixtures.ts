/**
 * Shared parts of the raw-mode tests: loop devices over sparse image files
 * (detached after the test, also when it fails), a saved copy of what a
 * device holds, and the chunk facts of an image computed independently of
 * src/raw (plain reads and comparisons), to check the backups against.
 * Test-only code: commands run through execFileSync directly.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createLogger, type Logger } from '../../src/util/log.js';
import type { CleanupContext } from '../helpers/scratch.js';

export const MiB = 1 << 20;

export const quietLogger: Logger = createLogger([], 'error');

/** Attaches a loop device over `file` and detaches it after the test. */
export function attachLoop(t: CleanupContext, file: string, readOnly = false): string {
  const dev = execFileSync('losetup', ['--find', '--show', ...(readOnly ? ['--read-only'] : []), file], { encoding: 'utf8' }).trim();
  t.after(() => detachLoop(dev));
  return dev;
}

export function detachLoop(dev: string): void {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      execFileSync('losetup', ['--detach', dev], { stdio: ['ignore', 'ignore', 'pipe'] });
      return;
    } catch {
      if (!fs.existsSync(`/sys/block/${dev.replace('/dev/', '')}/loop`)) return; // already gone
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100 * (attempt + 1));
    }
  }
}

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Writes `data` at `offset` of a device or file, bypassing nothing: as dd conv=notrunc would. */
export function writeAt(file: string, offset: number, data: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, data, 0, data.length, offset);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** A sparse copy of what a device (or file) holds now. */
export function saveImage(from: string, to: string): void {
  sh('dd', [`if=${from}`, `of=${to}`, 'bs=1M', 'conv=sparse', 'status=none']);
}

/** Per chunk: 'zero' or the chunk's bytes as a hex digest (sha1), read plainly. */
export function chunkFacts(file: string, chunkSize: number): Array<'zero' | string> {
  const out: Array<'zero' | string> = [];
  const buf = Buffer.alloc(chunkSize);
  const zero = Buffer.alloc(chunkSize);
  const fd = fs.openSync(file, 'r');
  try {
    for (let pos = 0; ; pos += chunkSize) {
      const n = fs.readSync(fd, buf, 0, chunkSize, pos);
      if (n === 0) break;
      const view = buf.subarray(0, n);
      out.push(view.equals(zero.subarray(0, n)) ? 'zero' : crypto.createHash('sha1').update(view).digest('hex'));
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/** Deterministic random bytes (AES-CTR keystream of a seed). */
export function seededBytes(length: number, seed: number): Buffer {
  const key = crypto.createHash('sha256').update(`raw-test-${seed}`).digest();
  const c = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return c.update(Buffer.alloc(length));
}

/** Allocated bytes of a file (st_blocks * 512). */
export function allocatedBytes(file: string): number {
  return fs.statSync(file).blocks * 512;
}
