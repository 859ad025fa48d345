/**
 * Files on the medium are born as "<name>.partial", written, fsynced, then
 * renamed into place and the directory fsynced: a name without ".partial"
 * is always complete. Mode 0600: archives hold the guests' /etc/shadow.
 */
import fs from 'node:fs';
import path from 'node:path';

import { PARTIAL_SUFFIX } from './layout.js';

export { PARTIAL_SUFFIX };

export class AtomicFile {
  readonly fd: number;
  readonly partialPath: string;
  private closed = false;
  private committed = false;

  /** exclusive: an existing ".partial" is an error (two writers of one archive must fail, not interleave). */
  constructor(
    readonly finalPath: string,
    exclusive = true,
  ) {
    this.partialPath = finalPath + PARTIAL_SUFFIX;
    this.fd = fs.openSync(this.partialPath, exclusive ? 'wx' : 'w', 0o600);
    fs.fchmodSync(this.fd, 0o600);
  }

  /**
   * fsync on libuv's thread pool: the caller's other work overlaps the
   * disk's, and commit()'s own fsync then finds little left to write.
   */
  syncAsync(): Promise<void> {
    return new Promise((resolve, reject) => fs.fsync(this.fd, (e) => (e ? reject(e) : resolve())));
  }

  /** fsync + close: durable under the partial name, which Storage.publish then renames. */
  seal(): void {
    if (this.closed) return;
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.closed = true;
  }

  /** seal + rename + fsync of the directory. */
  commit(): void {
    this.seal();
    fs.renameSync(this.partialPath, this.finalPath);
    this.committed = true;
    fsyncDir(path.dirname(this.finalPath));
  }

  /** Closes and removes the partial file; safe to call after commit or twice. */
  abort(): void {
    if (!this.closed) {
      try {
        fs.closeSync(this.fd);
      } catch {
        /* already closed */
      }
      this.closed = true;
    }
    if (!this.committed) fs.rmSync(this.partialPath, { force: true });
  }
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes a small file atomically (sidecars). */
export function writeFileAtomic(finalPath: string, data: string | Buffer): void {
  // Written in one go: a stale ".partial" of a small file is simply replaced.
  const f = new AtomicFile(finalPath, false);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += fs.writeSync(f.fd, buf, off, buf.length - off);
    f.commit();
  } catch (e) {
    f.abort();
    throw e;
  }
}

/**
 * An fs error (ENOSPC, EIO, ...) with the file it happened on in its
 * message: "ENOSPC: no space left on device, write" alone does not say that
 * the backup medium is full. The errno code is kept.
 */
export function withFileName(e: unknown, file: string, action: string): unknown {
  const err = e as NodeJS.ErrnoException;
  if (!(e instanceof Error) || typeof err.code !== 'string' || err.message.includes(file)) return e;
  const wrapped: NodeJS.ErrnoException = new Error(`${action} ${file}: ${err.message}`);
  wrapped.code = err.code;
  return wrapped;
}
