/**
 * The tree's directory listings in walk order, made ahead of the archiver on
 * threads of their own (native/walker.c; backups use two): while the archiver stores one
 * directory, the next ones are already listed and stat'ed, and for a full
 * backup their small files already read and hashed. The archiver asks for
 * each directory it enters, in its own order; the walker enters the same
 * directories by the same rules (excludes, one filesystem), and a listing
 * for any other directory is a bug reported as such, never a silent skip.
 *
 * A DirWalker holds a thread, memory and open directories: stop() releases
 * them, and the archiver calls it in a `finally`.
 */
import { walkerNative, type WalkerHandle } from '../../native/xbfs.js';
import { showPath } from '../../core/path-order.js';
import { DirScan, listingError } from '../dir-scan.js';

/** Files up to this size are read ahead in a full backup (most of a system's files are smaller). */
export const PREFETCH_MAX = 64 * 1024;

export interface DirWalkerOptions {
  /** Paths relative to the root that are not entered (the archiver leaves them out). */
  excludes: Buffer[];
  /** Directories on another device than the root are not entered. */
  oneFileSystem: boolean;
  /** Read regular files up to this size ahead (0: none; see prefetch()). Only worth it when every file will be read: a full backup. */
  prefetchMax: number;
  /** A live source: a prefetched file must still have the listed size and mtime after it was read. */
  verifyAfterRead: boolean;
  /** Threads listing at once (1-4; default 1; backup-volume.ts uses two where there are two cores). */
  threads?: number;
}

/** The walker listed another directory than the archiver entered: a bug, never to be taken for an unreadable directory. */
export class WalkOutOfStep extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WalkOutOfStep';
  }
}

export class DirWalker {
  private handle: WalkerHandle | undefined;

  constructor(root: Buffer, opts: DirWalkerOptions) {
    this.handle = walkerNative.start(root, opts.excludes, opts.oneFileSystem, opts.prefetchMax, opts.verifyAfterRead, opts.threads ?? 1);
  }

  /**
   * The listing of `rel`, the next directory of the walk, its directory kept
   * open (DirScan.fd). Throws the listing's error (EACCES, ...) like
   * DirScan.list, or an Error when the walk is out of step with the caller.
   */
  next(rel: Buffer): DirScan {
    if (!this.handle) throw new Error('directory walker used after stop()');
    const l = walkerNative.next(this.handle);
    if (!l) throw new WalkOutOfStep(`directory walker ended before ${showPath(rel) || '/'}`);
    if (!l.rel.equals(rel)) {
      const scan = l.error ? undefined : new DirScan(l);
      scan?.close();
      throw new WalkOutOfStep(`directory walker out of step: listed ${showPath(l.rel) || '/'}, the archiver entered ${showPath(rel) || '/'}`);
    }
    if (l.error) throw listingError(l.error);
    const rel0 = Buffer.from(rel);
    return new DirScan(l, () => {
      if (!this.handle) throw new Error('directory walker used after stop()');
      try {
        return walkerNative.openDir(this.handle, rel0);
      } catch (e) {
        throw listingError(e as NodeJS.ErrnoException);
      }
    });
  }

  /**
   * Opens the directory `rel` of the tree beneath the root, no symlink
   * followed (as the listings are); the caller closes the fd. Throws the
   * open's error (ENOENT, ENOTDIR, ELOOP, ...).
   */
  openDir(rel: Buffer): number {
    if (!this.handle) throw new Error('directory walker used after stop()');
    return walkerNative.openDir(this.handle, rel);
  }

  /**
   * Reads small files ahead from now on (listings not yet made), or stops
   * doing so (0). The walk can start before the backup knows it is a full.
   */
  prefetch(max: number): void {
    if (this.handle) walkerNative.prefetch(this.handle, max);
  }

  /** Ends the thread and releases what it still holds (queued listings, their open directories). Idempotent. */
  stop(): void {
    if (this.handle) walkerNative.stop(this.handle);
    this.handle = undefined;
  }
}
