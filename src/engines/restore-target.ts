/**
 * The restore target as a directory fd, and every directory below it
 * reached from that fd one name at a time without following a symlink
 * (native/beneath.c): what a backup or a concurrent writer put in the
 * target can fail a restore, never redirect it. The user's own --to path is
 * taken as given (it may pass through symlinks); it is created if missing,
 * and one that cannot be created or is not a directory is one clear line.
 */
import fs from 'node:fs';
import path from 'node:path';
import { safeComponents, showPath } from '../core/path-order.js';
import { beneathDir, mkdirAt, S_IFDIR, S_IFLNK, S_IFMT, statAt } from '../native/beneath.js';
import { closeFd } from '../native/xbfs.js';
import { PathInTheWay, RestoreError } from './restore-errors.js';

const MAX_CACHED = 256;
const SLASH = 0x2f;

/** Creates dir and its missing parents; every failure is an error (mkdir -p, bounded by the path's depth). */
function makeDirs(dir: string): void {
  try {
    fs.mkdirSync(dir, { mode: 0o755 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw e;
    makeDirs(parent);
    fs.mkdirSync(dir, { mode: 0o755 });
  }
}

export class RestoreTarget {
  /** The target directory, opened read-only (its own metadata is set through it). */
  readonly fd: number;
  private readonly dirs = new Map<string, number>();
  private closed = false;

  constructor(readonly shown: string) {
    try {
      makeDirs(path.resolve(shown));
    } catch (e) {
      throw new RestoreError(`cannot create the restore target ${shown}: ${(e as Error).message}`);
    }
    try {
      this.fd = fs.openSync(shown, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new RestoreError(
        code === 'ENOTDIR' ? `the restore target ${shown} exists and is not a directory; nothing was restored` : `cannot open the restore target ${shown}: ${(e as Error).message}`,
      );
    }
  }

  /**
   * The directory `relDir` beneath the target, as an O_PATH fd the target keeps (do not close it;
   * valid until the next trim() or forget()).
   * Missing directories are made (mode 0755) when `create`, else the answer is undefined. A symlink
   * or anything but a directory on the way is an error naming `forPath`.
   */
  dir(relDir: Buffer, forPath: Buffer, create = true): number | undefined {
    if (relDir.length === 0) return this.fd;
    const key = relDir.toString('latin1');
    const hit = this.dirs.get(key);
    if (hit !== undefined) return hit;
    const parts = safeComponents(relDir);
    if (!parts) throw new RestoreError(`refusing unsafe path "${showPath(forPath)}"`);
    // From the deepest directory already open, one name at a time.
    const ends: number[] = [];
    let pos = 0;
    for (const p of parts) {
      pos += p.length;
      ends.push(pos);
      pos++;
    }
    let fd = this.fd;
    let first = 0;
    for (let k = parts.length - 2; k >= 0; k--) {
      const known = this.dirs.get(relDir.subarray(0, ends[k]).toString('latin1'));
      if (known !== undefined) {
        fd = known;
        first = k + 1;
        break;
      }
    }
    for (let i = first; i < parts.length; i++) {
      const name = parts[i]!;
      const sofar = relDir.subarray(0, ends[i]);
      const mode = statAt(fd, name);
      if (mode === 0) {
        if (!create) return undefined;
        mkdirAt(fd, name, 0o755);
      } else if ((mode & S_IFMT) === S_IFLNK) {
        throw new PathInTheWay(`refusing to restore ${showPath(forPath)}: ${showPath(sofar)} in the target is a symlink and could lead outside it`, true);
      } else if ((mode & S_IFMT) !== S_IFDIR) {
        throw new PathInTheWay(`cannot restore ${showPath(forPath)}: ${showPath(sofar)} in the target is not a directory`, false);
      }
      let next: number;
      try {
        next = beneathDir(fd, name);
      } catch (e) {
        // Swapped between the look and the open.
        throw new RestoreError(`refusing to restore ${showPath(forPath)}: ${showPath(sofar)} in the target changed while restoring (${(e as Error).message})`);
      }
      this.dirs.set(sofar.toString('latin1'), next);
      fd = next;
    }
    return fd;
  }

  /** The parent directory's fd and the last name of rel (not the root). */
  parentOf(rel: Buffer, create = true): { dirFd: number; name: Buffer } | undefined {
    const slash = rel.lastIndexOf(SLASH);
    const dirFd = this.dir(slash < 0 ? Buffer.alloc(0) : rel.subarray(0, slash), rel, create);
    if (dirFd === undefined) return undefined;
    return { dirFd, name: rel.subarray(slash + 1) };
  }

  /** Closes the open directories when there are many; call it only where no fd from dir() is held. */
  trim(): void {
    if (this.dirs.size >= MAX_CACHED) this.forget();
  }

  /** Drops the open directories (after a removal, so none names a directory no longer in the tree). */
  forget(): void {
    for (const fd of this.dirs.values()) closeFd(fd);
    this.dirs.clear();
  }

  /** Closes the open directories at rel and below it (rel was removed). */
  forgetBelow(rel: Buffer): void {
    const key = rel.toString('latin1');
    for (const [k, fd] of this.dirs) {
      if (k === key || k.startsWith(key + '/')) {
        closeFd(fd);
        this.dirs.delete(k);
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.forget();
    closeFd(this.fd);
  }
}
