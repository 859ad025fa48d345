/**
 * Creates restored entries under a target directory, safely: every parent
 * is checked to be a real directory inside the target (never a symlink),
 * symlinks are created only after all files (so none can redirect a later
 * write), nothing is overwritten without `force`, and file content is
 * checked against the manifest's xxh64 as it is written. Ownership, modes,
 * xattrs, ACLs and nanosecond times are applied per entry; directories get
 * theirs last, deepest first, so adding their contents does not disturb them.
 */
import fs from 'node:fs';
import { runSync } from '../host/exec.js';
import type { ManifestEntry } from '../core/manifest.js';
import { parentOf, safeComponents, showPath } from '../core/path-order.js';
import type { TarEntry } from '../tar/entry.js';
import { aclXattrFromText } from '../tar/acl.js';
import { lsetxattr, lutimesNs } from '../native/xbfs.js';
import { createXxh64, type StreamingHash } from '../util/xxh.js';
import type { Logger } from '../util/log.js';

const SLASH = Buffer.from('/');

export class RestoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RestoreError';
  }
}

interface OpenFile {
  fd: number;
  rel: Buffer;
  entry: ManifestEntry;
  meta: TarEntry;
  hash: StreamingHash;
  regions?: Array<[number, number]>;
  nextRegion: number;
}

export class RestoreWriter {
  private readonly target: Buffer;
  private readonly verifiedDirs = new Set<string>();
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
    fs.mkdirSync(targetDir, { recursive: true });
    this.target = Buffer.from(fs.realpathSync(targetDir));
  }

  abs(rel: Buffer): Buffer {
    return rel.length ? Buffer.concat([this.target, SLASH, rel]) : this.target;
  }

  /** Lists the planned paths that already exist (and would be replaced only with force). */
  conflicts(items: Array<{ rel: Buffer; entry: ManifestEntry }>): string[] {
    const out: string[] = [];
    for (const { rel, entry } of items) {
      try {
        const st = fs.lstatSync(this.abs(rel));
        if (st.isDirectory() && entry.type === 'dir') continue;
        out.push(showPath(rel));
      } catch {
        /* does not exist: fine */
      }
    }
    return out;
  }

  /** Makes sure every parent of rel is a real directory under the target, creating missing ones. */
  private ensureParents(rel: Buffer): void {
    const parts = safeComponents(rel);
    if (!parts) throw new RestoreError(`refusing unsafe path "${showPath(rel)}"`);
    let cur = this.target;
    let key = '';
    for (let i = 0; i < parts.length - 1; i++) {
      cur = Buffer.concat([cur, SLASH, parts[i]!]);
      key += '/' + parts[i]!.toString('latin1');
      if (this.verifiedDirs.has(key)) continue;
      let st: fs.Stats | undefined;
      try {
        st = fs.lstatSync(cur);
      } catch {
        fs.mkdirSync(cur, { mode: 0o755 });
        st = fs.lstatSync(cur);
      }
      if (st.isSymbolicLink()) throw new RestoreError(`refusing to restore ${showPath(rel)}: ${showPath(cur)} is a symlink and could lead outside the target`);
      if (!st.isDirectory()) throw new RestoreError(`cannot restore ${showPath(rel)}: ${showPath(cur)} is not a directory`);
      this.verifiedDirs.add(key);
    }
  }

  private clearWay(abs: Buffer, rel: Buffer, isDir: boolean): void {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(abs);
    } catch {
      return;
    }
    if (isDir && st.isDirectory()) return;
    if (!this.force) throw new RestoreError(`${showPath(rel)} exists in the target (use --force to replace it)`);
    fs.rmSync(abs, { recursive: true, force: true });
  }

  /** Creates a non-file entry, or opens a regular file for its data. */
  begin(rel: Buffer, entry: ManifestEntry, meta: TarEntry): void {
    if (rel.length === 0) {
      this.dirMeta.push({ rel, entry, meta });
      return;
    }
    this.ensureParents(rel);
    const abs = this.abs(rel);
    switch (entry.type) {
      case 'dir':
        this.clearWay(abs, rel, true);
        if (!fs.existsSync(abs)) fs.mkdirSync(abs, { mode: 0o700 });
        this.verifiedDirs.add('/' + rel.toString('latin1'));
        this.dirMeta.push({ rel, entry, meta });
        return;
      case 'symlink':
        this.deferredSymlinks.push({ rel, entry, meta });
        return;
      case 'file': {
        this.clearWay(abs, rel, false);
        const fd = fs.openSync(abs, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
        this.current = { fd, rel, entry, meta, hash: createXxh64(), regions: entry.sparse ? meta.sparseMap ?? [] : undefined, nextRegion: 0 };
        return;
      }
      default:
        this.clearWay(abs, rel, false);
        this.special(abs, rel, entry);
        this.applyMeta(abs, entry, meta, false);
    }
  }

  data(chunk: Buffer, fileOffset: number): void {
    const f = this.current;
    if (!f) return;
    if (f.regions) {
      // Hash regions with their position, as the archiver did.
      const r = f.regions[f.nextRegion];
      if (r && r[0] === fileOffset) {
        const h = Buffer.alloc(16);
        h.writeBigUInt64LE(BigInt(r[0]), 0);
        h.writeBigUInt64LE(BigInt(r[1]), 8);
        f.hash.update(h);
        f.nextRegion++;
      }
    }
    f.hash.update(chunk);
    let off = 0;
    while (off < chunk.length) off += fs.writeSync(f.fd, chunk, off, chunk.length - off, fileOffset + off);
    this.bytesWritten += chunk.length;
  }

  /** Closes the current file, checking its content hash. */
  end(): void {
    const f = this.current;
    if (!f) return;
    this.current = undefined;
    try {
      if (f.regions) {
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
    const abs = this.abs(f.rel);
    this.applyXattrs(abs, f.meta);
    lutimesNs(abs, f.entry.mtimeNs, f.entry.mtimeNs);
    this.filesWritten++;
  }

  /** A second name for a file restored earlier in this run. */
  hardlink(rel: Buffer, existingRel: Buffer): void {
    this.ensureParents(rel);
    const abs = this.abs(rel);
    this.clearWay(abs, rel, false);
    fs.linkSync(this.abs(existingRel), abs);
  }

  private special(abs: Buffer, rel: Buffer, entry: ManifestEntry): void {
    // mknod has no Node API: make it under an ASCII temporary name (the name may not be UTF-8), then rename.
    const tmp = Buffer.concat([parentOf(abs), Buffer.from(`/.xenbackup-restore-${process.pid}-${Math.random().toString(36).slice(2)}`)]);
    const tmpName = tmp.toString('latin1');
    if (entry.type === 'fifo') runSync('mkfifo', ['-m', '600', tmpName], { logger: this.logger });
    else if (entry.type === 'char' || entry.type === 'block') {
      const [maj, min] = entry.rdev ?? [0, 0];
      runSync('mknod', ['-m', '600', tmpName, entry.type === 'char' ? 'c' : 'b', String(maj), String(min)], { logger: this.logger });
    } else throw new RestoreError(`${showPath(rel)}: cannot restore type ${entry.type}`);
    fs.renameSync(tmp, abs);
  }

  private applyXattrs(abs: Buffer, meta: TarEntry): void {
    try {
      if (meta.xattrs) for (const [name, value] of meta.xattrs) lsetxattr(abs, name, value);
      if (meta.aclAccess) lsetxattr(abs, 'system.posix_acl_access', aclXattrFromText(meta.aclAccess));
      if (meta.aclDefault) lsetxattr(abs, 'system.posix_acl_default', aclXattrFromText(meta.aclDefault));
    } catch (e) {
      this.logger.warn(`could not set extended attributes on ${showPath(abs)}: ${(e as Error).message}`);
    }
  }

  private applyMeta(abs: Buffer, entry: ManifestEntry, meta: TarEntry, isSymlink: boolean): void {
    fs.lchownSync(abs, entry.uid, entry.gid);
    if (!isSymlink) fs.chmodSync(abs, entry.mode);
    this.applyXattrs(abs, meta);
    lutimesNs(abs, entry.mtimeNs, entry.mtimeNs);
  }

  /** Symlinks, then directory metadata deepest first. */
  finish(): void {
    for (const s of this.deferredSymlinks) {
      const abs = this.abs(s.rel);
      this.ensureParents(s.rel);
      this.clearWay(abs, s.rel, false);
      fs.symlinkSync(s.entry.link ?? s.meta.linkTarget ?? Buffer.alloc(0), abs);
      this.applyMeta(abs, s.entry, s.meta, true);
    }
    // The target itself is in dirMeta only for a whole-volume restore: then it takes the volume root's metadata.
    for (const d of this.dirMeta.reverse()) this.applyMeta(this.abs(d.rel), d.entry, d.meta, false);
  }
}

