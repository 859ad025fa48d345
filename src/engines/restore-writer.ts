/**
 * Creates restored entries under a target directory, safely: every
 * operation (mkdir, create, unlink, link, symlink, mknod, chown, chmod,
 * utimes, setxattr) names its object by a directory fd opened beneath the
 * target's fd without following a symlink, and never follows the last name
 * (restore-target.ts, native/beneath.c); symlinks are created only after
 * all files; nothing is overwritten without `force`, and what force removes
 * is removed without entering a symlink; file content is checked against
 * the manifest's xxh64 as it is written. Ownership, modes, xattrs, ACLs
 * and nanosecond times are applied per entry; directories get theirs last,
 * deepest first, so adding their contents does not disturb them.
 */
import fs from 'node:fs';
import type { ManifestEntry } from '../core/manifest.js';
import { showPath } from '../core/path-order.js';
import type { TarEntry } from '../tar/entry.js';
import { aclXattrFromText } from '../tar/acl.js';
import { lsetxattr, lutimesNs } from '../native/xbfs.js';
import { chmodAt, chownAt, createAt, linkAt, mkdirAt, mknodAt, removeAt, S_IFDIR, S_IFMT, setxattrAt, statAt, symlinkAt, utimesAt } from '../native/beneath.js';
import { ContentHash } from './file-hash.js';
import type { Logger } from '../util/log.js';
import { RestoreError } from './restore-errors.js';
import { RestoreTarget } from './restore-target.js';

export { RestoreError, DamagedBackupError } from './restore-errors.js';

interface OpenFile {
  fd: number;
  rel: Buffer;
  entry: ManifestEntry;
  meta: TarEntry;
  hash: ContentHash;
  /** The entry is sparse: holes past the last region are made by truncating to its size. */
  sparse: boolean;
}

const MKNOD_KIND: Partial<Record<ManifestEntry['type'], 'c' | 'b' | 'p'>> = { char: 'c', block: 'b', fifo: 'p' };

export class RestoreWriter {
  private readonly target: RestoreTarget;
  private readonly deferredSymlinks: Array<{ rel: Buffer; entry: ManifestEntry; meta: TarEntry }> = [];
  private readonly dirMeta: Array<{ rel: Buffer; entry: ManifestEntry; meta: TarEntry }> = [];
  private current: OpenFile | undefined;
  readonly errors: string[] = [];
  filesWritten = 0;
  bytesWritten = 0;

  constructor(
    targetDir: string,
    private readonly force: boolean,
    private readonly logger: Logger,
  ) {
    this.target = new RestoreTarget(targetDir);
  }

  /** Lists the planned paths that already exist (and would be replaced only with force), or lie under something that is not a directory. */
  conflicts(items: Array<{ rel: Buffer; entry: ManifestEntry }>): string[] {
    const out: string[] = [];
    for (const { rel, entry } of items) {
      if (rel.length === 0) continue;
      this.target.trim();
      let mode: number;
      try {
        const at = this.target.parentOf(rel, false);
        if (!at) continue; // a parent is missing: nothing there
        mode = statAt(at.dirFd, at.name);
      } catch {
        out.push(showPath(rel)); // a symlink or a file on the way
        continue;
      }
      if (mode === 0 || ((mode & S_IFMT) === S_IFDIR && entry.type === 'dir')) continue;
      out.push(showPath(rel));
    }
    this.target.forget();
    return out;
  }

  /** The parent's fd and the name of rel; parents are made as needed, never through a symlink. */
  private at(rel: Buffer): { dirFd: number; name: Buffer } {
    return this.target.parentOf(rel)!;
  }

  /** Makes room for rel: nothing there, or (with force) whatever is there removed; a directory stays for a directory. */
  private clearWay(dirFd: number, name: Buffer, rel: Buffer, isDir: boolean): void {
    const mode = statAt(dirFd, name);
    if (mode === 0) return;
    if (isDir && (mode & S_IFMT) === S_IFDIR) return;
    if (!this.force) throw new RestoreError(`${showPath(rel)} exists in the target (use --force to replace it)`);
    removeAt(dirFd, name);
    // Directories below it may have been open; dirFd itself stays valid until the next trim().
    if ((mode & S_IFMT) === S_IFDIR) this.target.forgetBelow(rel);
  }

  /** A system call's error (EACCES, ENOSPC, ELOOP of a race...) made to name the path it was about. */
  private named<T>(rel: Buffer, f: () => T): T {
    try {
      return f();
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (!(e instanceof RestoreError) && typeof err.code === 'string' && typeof err.message === 'string') {
        err.message = `cannot restore ${showPath(rel) || '/'} in ${this.target.shown}: ${err.message}`;
      }
      throw e;
    }
  }

  /** Creates a non-file entry, or opens a regular file for its data. */
  begin(rel: Buffer, entry: ManifestEntry, meta: TarEntry): void {
    this.named(rel, () => this.beginEntry(rel, entry, meta));
  }

  private beginEntry(rel: Buffer, entry: ManifestEntry, meta: TarEntry): void {
    if (rel.length === 0) {
      this.dirMeta.push({ rel, entry, meta });
      return;
    }
    if (entry.type === 'symlink') {
      this.deferredSymlinks.push({ rel, entry, meta });
      return;
    }
    this.target.trim();
    const { dirFd, name } = this.at(rel);
    switch (entry.type) {
      case 'dir':
        this.clearWay(dirFd, name, rel, true);
        if (statAt(dirFd, name) === 0) mkdirAt(dirFd, name, 0o700);
        this.dirMeta.push({ rel, entry, meta });
        return;
      case 'file': {
        this.clearWay(dirFd, name, rel, false);
        const fd = createAt(dirFd, name, 0o600);
        this.current = { fd, rel, entry, meta, hash: new ContentHash(entry.sparse ? meta.sparseMap ?? [] : undefined), sparse: !!entry.sparse };
        return;
      }
      default: {
        const kind = MKNOD_KIND[entry.type];
        if (!kind) throw new RestoreError(`${showPath(rel)}: cannot restore type ${entry.type}`);
        this.clearWay(dirFd, name, rel, false);
        const [maj, min] = entry.rdev ?? [0, 0];
        mknodAt(dirFd, name, kind, 0o600, maj, min);
        this.applyMeta(rel, entry, meta);
      }
    }
  }

  data(chunk: Buffer, fileOffset: number): void {
    const f = this.current;
    if (!f) return;
    f.hash.update(chunk, fileOffset);
    let off = 0;
    this.named(f.rel, () => {
      while (off < chunk.length) off += fs.writeSync(f.fd, chunk, off, chunk.length - off, fileOffset + off);
    });
    this.bytesWritten += chunk.length;
  }

  /** Closes the current file, checking its content hash. */
  end(): void {
    const f = this.current;
    if (!f) return;
    this.named(f.rel, () => this.endFile(f));
  }

  private endFile(f: OpenFile): void {
    this.current = undefined;
    try {
      if (f.sparse) {
        // Regions with no data still count in the hash (zero-length regions are dropped by the reader).
        fs.ftruncateSync(f.fd, f.entry.size);
      }
      const got = f.hash.digest();
      if (f.entry.hash && got !== f.entry.hash) {
        this.errors.push(`${showPath(f.rel)}: content does not match the backup's checksum (xxh64 ${got}, expected ${f.entry.hash})`);
      }
      fs.fchownSync(f.fd, f.entry.uid, f.entry.gid);
      fs.fchmodSync(f.fd, f.entry.mode);
    } finally {
      fs.closeSync(f.fd);
    }
    const { dirFd, name } = this.at(f.rel);
    this.applyXattrs(dirFd, name, f.rel, f.meta);
    utimesAt(dirFd, name, f.entry.mtimeNs, f.entry.mtimeNs);
    this.filesWritten++;
  }

  /** A second name for a file restored earlier in this run (both names beneath the target; nothing followed). */
  hardlink(rel: Buffer, existingRel: Buffer): void {
    this.target.trim();
    this.named(rel, () => {
      const to = this.at(rel);
      this.clearWay(to.dirFd, to.name, rel, false);
      const from = this.at(existingRel);
      linkAt(from.dirFd, from.name, to.dirFd, to.name);
    });
  }

  /** Sets an xattr on the entry itself (dirFd -1: the target directory). */
  private setXattr(dirFd: number, name: Buffer, xattr: string, value: Buffer): void {
    if (dirFd < 0) lsetxattr(Buffer.from(`/proc/self/fd/${this.target.fd}/.`), xattr, value);
    else setxattrAt(dirFd, name, xattr, value);
  }

  private applyXattrs(dirFd: number, name: Buffer, rel: Buffer, meta: TarEntry): void {
    try {
      if (meta.xattrs) for (const [x, value] of meta.xattrs) this.setXattr(dirFd, name, x, value);
      if (meta.aclAccess) this.setXattr(dirFd, name, 'system.posix_acl_access', aclXattrFromText(meta.aclAccess));
      if (meta.aclDefault) this.setXattr(dirFd, name, 'system.posix_acl_default', aclXattrFromText(meta.aclDefault));
    } catch (e) {
      this.logger.warn(`could not set extended attributes on ${showPath(rel) || this.target.shown}: ${(e as Error).message}`);
    }
  }

  /** Owner, then mode (chown clears setuid), xattrs and times of the entry itself; the root is the target directory. */
  private applyMeta(rel: Buffer, entry: ManifestEntry, meta: TarEntry): void {
    if (rel.length === 0) {
      fs.fchownSync(this.target.fd, entry.uid, entry.gid);
      fs.fchmodSync(this.target.fd, entry.mode);
      this.applyXattrs(-1, rel, rel, meta);
      lutimesNs(Buffer.from(`/proc/self/fd/${this.target.fd}/.`), entry.mtimeNs, entry.mtimeNs);
      return;
    }
    const { dirFd, name } = this.at(rel);
    chownAt(dirFd, name, entry.uid, entry.gid);
    chmodAt(dirFd, name, entry.mode); // leaves a symlink alone
    this.applyXattrs(dirFd, name, rel, meta);
    utimesAt(dirFd, name, entry.mtimeNs, entry.mtimeNs);
  }

  /** Symlinks, then directory metadata deepest first. */
  finish(): void {
    try {
      for (const s of this.deferredSymlinks) {
        this.target.trim();
        this.named(s.rel, () => {
          const { dirFd, name } = this.at(s.rel);
          this.clearWay(dirFd, name, s.rel, false);
          symlinkAt(s.entry.link ?? s.meta.linkTarget ?? Buffer.alloc(0), dirFd, name);
          this.applyMeta(s.rel, s.entry, s.meta);
        });
      }
      // The target itself is in dirMeta only for a whole-volume restore: then it takes the volume root's metadata.
      for (const d of this.dirMeta.reverse()) {
        this.target.trim();
        this.named(d.rel, () => this.applyMeta(d.rel, d.entry, d.meta));
      }
    } finally {
      this.close();
    }
  }

  /** Closes the target's descriptors (finish() does; call it when a restore stops early). */
  close(): void {
    if (this.current) {
      fs.closeSync(this.current.fd);
      this.current = undefined;
    }
    this.target.close();
  }
}
