/**
 * The backup pass over one tree: walks it in walk order (core/path-order),
 * compares each directory's children with the previous manifest's block for
 * that directory (DirScan.merge: no read when the change key, i.e. type,
 * mode, owner, size, mtime, ctime and inode, is the same), and writes, for
 * each directory, a member whose GNU.dumpdir lists every child ('Y' stored here, 'N' unchanged, 'D'
 * directory) followed by the members of its changed children, then recurses.
 * Changed files are read once, straight into the archive's segment buffer,
 * and hashed from there. The new manifest is written alongside.
 *
 * Parts: DirWalker (listings made ahead on a thread), ArchiveWriter
 * (segments, compression, .partial file), ManifestWriter (the new manifest),
 * ManifestCursor (the old one), metadata.ts (stat and xattrs to TarEntry).
 * This file decides what goes in, in which order.
 */
import fs from 'node:fs';
import type { Logger } from '../util/log.js';
import { createXxh64, xxh64, type StreamingHash } from '../util/xxh.js';
import type { TarEntry } from '../tar/entry.js';
import { encodeSparseMap, padding, storedSize } from '../tar/write.js';
import { archiveMember, type ManifestEntry, type ManifestType } from '../core/manifest.js';
import { baseName, joinRel, parentOf, showPath } from '../core/path-order.js';
import { INDEX_STRIDE, type ManifestCursor, type ManifestWriter, type PreviousBlock } from '../repo/manifest-file.js';
import { closeFd, openAt, seekData, seekHole } from '../native/xbfs.js';
import type { ArchiveWriter } from './archive-writer.js';
import { MergeBuffers, type DirScan } from './dir-scan.js';
import { UnchangedDirArchiver } from './unchanged-dir.js';
import { PREFETCH_MAX, WalkOutOfStep, type DirWalker } from './dir-walker.js';
import { devMajor, devMinor, entryTypeOfMode, readExtendedAttributes, manifestEntryOf, type EntryStat } from './metadata.js';

export interface ArchiveStats {
  /** Entries in the tree (the new manifest). */
  entries: number;
  /** Members written to this archive (directories included). */
  stored: number;
  /** Entries carried over from the previous backup without reading. */
  unchanged: number;
  /** Entries of the previous backup that are gone. */
  deleted: number;
  /** Regular files opened and read (the change-detection fast path keeps this at 0 when nothing changed). */
  filesRead: number;
  bytesRead: number;
  /** Apparent bytes of all regular files in the tree. */
  sourceBytes: number;
}

export interface TreeArchiverOptions {
  sourceDir: string;
  backupId: string;
  /** Stay on the source's filesystem: other mounts appear as empty directories. */
  oneFileSystem: boolean;
  /** Paths relative to the source root that are left out, with everything below them. */
  excludes: Buffer[];
  /** The source is live (dom0's root): a file changing while read is a warning, not an error. */
  liveSource: boolean;
  logger: Logger;
  onProgress?: (stats: ArchiveStats, path: Buffer) => void;
  /** Aborting it (SIGTERM, SIGINT) stops the pass at the next file with an InterruptedError. */
  signal?: AbortSignal;
}

export class InterruptedError extends Error {
  constructor(reason: string) {
    super(`interrupted (${reason})`);
    this.name = 'InterruptedError';
  }
}

/** A child of the directory being archived; path and stat are built only when something needs them. */
class Child {
  private relPath: Buffer | undefined;
  private absPath: Buffer | undefined;
  private statCache: EntryStat | undefined;

  constructor(
    private readonly parentRel: Buffer,
    private readonly parentAbs: Buffer,
    /** The listing it is a child of. */
    readonly scan: DirScan,
    readonly index: number,
    readonly name: Buffer,
    readonly type: ManifestType,
  ) {}

  get rel(): Buffer {
    return (this.relPath ??= joinRel(this.parentRel, this.name));
  }

  get abs(): Buffer {
    return (this.absPath ??= this.parentAbs.length === 1 && this.parentAbs[0] === 0x2f ? Buffer.concat([this.parentAbs, this.name]) : joinRel(this.parentAbs, this.name));
  }

  /** Apparent size, without building the BigInt stat (an unchanged file needs only this). */
  get size(): number {
    return this.scan.size(this.index);
  }

  get st(): EntryStat {
    return (this.statCache ??= this.scan.stat(this.index));
  }

  get dev(): bigint {
    return this.statCache?.dev ?? this.scan.dev(this.index);
  }

  /** The listing's change key (manifest text from "t" through the inode). */
  get key(): Buffer {
    return this.scan.key(this.index);
  }

  /** Content and hash the walker read ahead, if it did. */
  get prefetched(): { content: Buffer; hash: string } | undefined {
    return this.scan.prefetched(this.index);
  }

  /** The open directory holding this child, for openAt (opened now when the listing did not keep it open). */
  get dirFd(): number {
    return this.scan.openDirectory(this.parentAbs);
  }
}

/** A directory's listing and the children the archive takes (keep[i] = 1; listChildren). */
interface Listing {
  scan: DirScan;
  keep: Uint8Array;
}

const SPARSE_MIN_SIZE = 1 << 20;
const SLACK = 65536n;
const EMPTY = Buffer.alloc(0);
const ROOT_NAME = Buffer.from('.');

export class TreeArchiver {
  readonly stats: ArchiveStats = { entries: 0, stored: 0, unchanged: 0, deleted: 0, filesRead: 0, bytesRead: 0, sourceBytes: 0 };
  readonly warnings: string[] = [];
  /** Paths whose content or listing could not be read (the backup is partial). */
  readonly unreadable: string[] = [];
  /** Directories of another filesystem kept empty (oneFileSystem): mount points, btrfs subvolumes. Printable paths. */
  readonly otherFilesystems: string[] = [];
  private readonly sourceAbs: Buffer;
  private readonly excludes: Set<string>;
  /** The directories holding an excluded path (latin1 keys, as `excludes`). */
  private readonly excludeParents: Set<string>;
  /** dev:ino of hardlinked files already stored in this archive -> the member holding the data. */
  private readonly links = new Map<string, { path: Buffer; offset: number; hash: string }>();
  private rootDev = 0n;
  /**
   * merge()'s output, reused for every directory: its dumpdir is copied into the archive at once, and its
   * matches are read across the awaits of directoryMembers, which is safe because the next merge comes
   * only after directoryMembers has returned (directories are archived one at a time).
   */
  private readonly mergeBuffers = new MergeBuffers();
  private readonly unchangedDirs: UnchangedDirArchiver;
  /** `"a":"<backup id>"`, the archive member of every manifest line this backup writes. */
  private readonly archiveMember: Buffer;

  constructor(
    private readonly opts: TreeArchiverOptions,
    private readonly writer: ArchiveWriter,
    private readonly manifest: ManifestWriter,
    private readonly previous: ManifestCursor | null,
    /** The source's listings, made ahead (started by the caller, which stops it; it may have started before the kind of backup was known). */
    private readonly walker: DirWalker,
  ) {
    this.sourceAbs = Buffer.from(opts.sourceDir.replace(/\/+$/, '') || '/');
    this.excludes = new Set(opts.excludes.map((p) => p.toString('latin1')));
    this.excludeParents = new Set(opts.excludes.map((p) => parentOf(p).toString('latin1')));
    this.archiveMember = archiveMember(opts.backupId);
    this.unchangedDirs = new UnchangedDirArchiver(writer, manifest, this.archiveMember);
  }

  async run(): Promise<void> {
    const st = fs.lstatSync(this.sourceAbs, { bigint: true });
    if (!st.isDirectory()) throw new Error(`${this.opts.sourceDir} is not a directory`);
    this.rootDev = st.dev;
    // Only a full reads every file: then the walker reads the small ones ahead too.
    if (!this.previous) this.walker.prefetch(PREFETCH_MAX);
    await this.directory(EMPTY, this.sourceAbs, st);
    this.stats.deleted += this.previous?.skippedEntries ?? 0;
  }

  /** `self`: the directory as its parent listed it (every directory but the root, whose stat is `st`). */
  private async directory(rel: Buffer, abs: Buffer, st: EntryStat | undefined, self?: Child): Promise<void> {
    const previous = this.previous?.take(rel);
    const scan = this.nextListing(rel);
    if (!scan) {
      if (previous) return this.keepUnlisted(rel, abs, st ?? self!.st, previous);
      await this.directoryMembers(rel, abs, st ?? self!.st, previous, null);
      return;
    }
    let dirs: Child[];
    try {
      dirs =
        (self && previous && this.unchangedDirectory(rel, abs, self, scan, previous)) ||
        (await this.directoryMembers(rel, abs, st ?? self!.st, previous, this.keptChildren(rel, scan)));
    } finally {
      // Closed before recursing: open directories never pile up with the depth of the tree.
      scan.close();
    }
    for (const d of dirs) {
      if (this.opts.oneFileSystem && d.dev !== this.rootDev) {
        // Another filesystem mounted here (dom0's /proc, /boot, ...): keep the directory, not its content.
        await this.mountpointDirectory(d);
      } else {
        await this.directory(d.rel, d.abs, undefined, d);
      }
    }
  }

  /**
   * A directory whose children are all as the previous backup has them, archived by native code in one
   * call (engine/unchanged-dir.ts); undefined, nothing written, when it declines (then directoryMembers).
   */
  private unchangedDirectory(rel: Buffer, abs: Buffer, self: Child, scan: DirScan, previous: PreviousBlock): Child[] | undefined {
    // Its own extended attributes, and children left out by an exclude, are the general path's work.
    if (!scan.dirWithoutXattrs || (this.excludeParents.size > 0 && this.excludeParents.has(rel.toString('latin1')))) return undefined;
    this.checkSignal();
    const done = this.unchangedDirs.archive(rel, self.scan, self.index, scan, previous);
    if (!done) return undefined;
    const s = this.stats;
    s.stored++;
    s.entries += 1 + done.children;
    s.unchanged += done.children;
    s.sourceBytes += done.sourceBytes;
    s.deleted += done.deleted;
    const dirs: Child[] = [];
    for (const i of done.subdirs) dirs.push(new Child(rel, abs, scan, i, scan.name(i), 'dir'));
    this.opts.onProgress?.(this.stats, rel);
    return dirs;
  }

  /**
   * The directory's member and its changed non-directory children's; returns
   * the subdirectories. The listing is joined with the previous manifest's
   * block in C (mergeBlock): per child, the matching line and whether its key
   * is the same, and the dumpdir. An unchanged child then costs a copy of its
   * old line, and no object.
   */
  private async directoryMembers(rel: Buffer, abs: Buffer, st: EntryStat, previous: PreviousBlock | undefined, listed: Listing | null): Promise<Child[]> {
    const dirs: Child[] = [];
    const scan = listed?.scan;
    const keep = listed?.keep ?? new Uint8Array(0);
    const merged = scan ? scan.merge(keep, previous, this.mergeBuffers) : { match: new Int32Array(0), dumpdir: Buffer.from([0]) };

    const self = this.baseEntry(rel, st, 'dir');
    const tarEntry = this.tarEntry(rel.length ? rel : ROOT_NAME, abs, st, 'dir', scan?.fd ?? -1, !scan?.dirWithoutXattrs);
    tarEntry.dumpdir = merged.dumpdir;
    self.offset = this.writer.offset;
    this.writer.writeHeader(tarEntry);
    this.stats.stored++;
    this.stats.entries++;
    this.manifest.beginDir(rel, self);

    const match = merged.match;
    const lines = previous?.index;
    let matched = 0;
    for (let i = 0; i < keep.length; i++) {
      if (!keep[i]) continue;
      const type = entryTypeOfMode(scan!.mode(i)) as ManifestType; // kept: one of the archived types
      if (type === 'dir') {
        dirs.push(new Child(rel, abs, scan!, i, scan!.name(i), type));
        continue;
      }
      this.checkSignal();
      this.stats.entries++;
      if (type === 'file') this.stats.sourceBytes += scan!.size(i);
      const m = match[i]!;
      if (m >= 0) matched++;
      if (m >= 0 && (m & 1) === 1) {
        this.stats.unchanged++;
        const r = (m >> 1) * INDEX_STRIDE;
        this.manifest.copyLine(previous!.data, lines![r]!, lines![r + 1]!);
        continue;
      }
      const child = new Child(rel, abs, scan!, i, scan!.name(i), type);
      if (type === 'file' && this.storePrefetched(child)) continue;
      const stored = await this.store(child);
      if (stored) this.manifest.entry(stored);
      // Unreadable now: its last good version stays, as GNU tar -x -G keeps it (the dumpdir says 'Y'
      // but no member follows); marked unread so the next run reads it again.
      else if (m >= 0) this.manifest.entry({ ...previous!.storedAt(m >> 1).entry, unread: true });
      if (this.writer.backlogged) await this.writer.drain();
    }
    this.stats.deleted += (previous?.childCount ?? 0) - matched;
    this.opts.onProgress?.(this.stats, rel);
    return dirs;
  }

  private checkSignal(): void {
    const s = this.opts.signal;
    if (s?.aborted) throw new InterruptedError(String(s.reason ?? 'aborted'));
  }

  private async mountpointDirectory(d: Child): Promise<void> {
    this.otherFilesystems.push(showPath(d.rel));
    this.previous?.take(d.rel);
    const self = this.baseEntry(d.rel, d.st, 'dir');
    const tarEntry = this.tarEntry(d.rel, d.abs, d.st, 'dir');
    tarEntry.dumpdir = Buffer.from([0]);
    self.offset = this.writer.offset;
    this.writer.writeHeader(tarEntry);
    this.stats.stored++;
    this.stats.entries++;
    this.manifest.beginDir(d.rel, self);
  }

  /**
   * A directory that cannot be listed now (EACCES, EIO): its subtree as the
   * previous backup knew it stays in the manifest, and its dumpdir names
   * those children, so neither restore loses them (an empty dumpdir would
   * make GNU tar -x -G delete them). The backup is partial already.
   */
  private keepUnlisted(rel: Buffer, abs: Buffer, st: EntryStat, previous: PreviousBlock): void {
    const below = this.previous!.takeBelow(rel);
    const names = [
      ...previous.entries.map((e) => ({ code: 'N', name: e.name })),
      ...below.filter((b) => parentOf(b.dir).equals(rel)).map((b) => ({ code: 'D', name: baseName(b.dir) })),
    ].sort((a, b) => Buffer.compare(a.name, b.name));
    const tarEntry = this.tarEntry(rel.length ? rel : ROOT_NAME, abs, st, 'dir');
    tarEntry.dumpdir = Buffer.concat([...names.flatMap((n) => [Buffer.from(n.code), n.name, Buffer.from([0])]), Buffer.from([0])]);
    const self = this.baseEntry(rel, st, 'dir');
    self.offset = this.writer.offset;
    this.writer.writeHeader(tarEntry);
    this.stats.stored++;
    for (const block of [{ dir: rel, self, entries: previous.entries }, ...below]) {
      this.manifest.beginDir(block.dir, block.self);
      this.stats.entries += 1 + block.entries.length;
      this.stats.unchanged += block.entries.length;
      for (const e of block.entries) this.manifest.copy(e);
    }
  }

  /** The walker's listing of `rel`; null, reported, when it cannot be listed. */
  private nextListing(rel: Buffer): DirScan | null {
    try {
      return this.walker.next(rel);
    } catch (e) {
      if (e instanceof WalkOutOfStep) throw e;
      this.unreadableEntry(rel, e);
      return null;
    }
  }

  /** Which children of a listing the archive takes (not: excluded, sockets, vanished, unknown types). */
  private keptChildren(rel: Buffer, scan: DirScan): Listing {
    const keep = new Uint8Array(scan.count);
    for (let i = 0; i < scan.count; i++) {
      const failed = scan.errorCode(i);
      if (failed === 'ENOENT') continue; // vanished (live source)
      if (this.excludes.size && this.excludes.has(joinRel(rel, scan.name(i)).toString('latin1'))) continue;
      if (failed) {
        this.unreadableEntry(joinRel(rel, scan.name(i)), new Error(`${failed}: lstat failed`));
        continue;
      }
      const type = entryTypeOfMode(scan.mode(i));
      if (type === 'socket') {
        this.warnings.push(`skipped socket ${showPath(joinRel(rel, scan.name(i)))} (sockets cannot be archived; programs recreate them)`);
        continue;
      }
      if (type === undefined || type === 'hardlink') {
        this.warnings.push(`skipped ${showPath(joinRel(rel, scan.name(i)))}: unknown file type`);
        continue;
      }
      keep[i] = 1;
    }
    return { scan, keep };
  }

  private baseEntry(rel: Buffer, st: EntryStat, type: ManifestType): ManifestEntry {
    const name = rel.lastIndexOf(0x2f) >= 0 ? rel.subarray(rel.lastIndexOf(0x2f) + 1) : rel;
    return manifestEntryOf(name, st, type, this.opts.backupId);
  }


  /** `fd`: the entry open already (its xattrs are read through it), or -1; `xattrs` false: known to have none. */
  private tarEntry(path: Buffer, abs: Buffer, st: EntryStat, type: TarEntry['type'], fd = -1, xattrs = true): TarEntry {
    const e: TarEntry = {
      path,
      type,
      mode: Number(st.mode) & 0o7777,
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: type === 'file' ? Number(st.size) : 0,
      mtimeNs: st.mtimeNs,
    };
    if (!xattrs) return e;
    try {
      readExtendedAttributes(abs, e, fd);
    } catch (err) {
      this.warnings.push(`could not read extended attributes of ${showPath(path)}: ${(err as Error).message}`);
    }
    return e;
  }

  private unreadableEntry(rel: Buffer, e: unknown): void {
    const msg = `cannot read ${showPath(rel) || '/'}: ${(e as Error).message}`;
    this.unreadable.push(msg);
    this.opts.logger.error(msg);
  }

  /**
   * A file the walker read and hashed ahead (no xattrs, one link, unchanged
   * while read): its member from the listing's bytes and its manifest line
   * from the listing's change key. False when it was not read ahead.
   */
  private storePrefetched(c: Child): boolean {
    const ahead = c.prefetched;
    if (!ahead) return false;
    const t = this.tarEntry(c.rel, EMPTY, c.st, 'file', -1, false);
    const offset = this.writer.offset;
    this.writer.writeHeader(t);
    this.writer.write(ahead.content);
    this.writer.zeros(padding(storedSize(t)));
    this.stats.stored++;
    this.stats.filesRead++;
    this.stats.bytesRead += ahead.content.length;
    if (!this.manifest.plainFileLine(c.name, c.key, ahead.hash, this.archiveMember, offset)) {
      const entry = this.baseEntry(c.rel, c.st, 'file');
      entry.name = c.name;
      entry.offset = offset;
      entry.hash = ahead.hash;
      this.manifest.entry(entry);
    }
    return true;
  }

  /** Writes the member(s) of one changed non-directory child; returns its new manifest entry (or none if unreadable). */
  private async store(c: Child): Promise<ManifestEntry | undefined> {
    const entry = this.baseEntry(c.rel, c.st, c.type);
    entry.name = c.name;
    if (c.type === 'file') return this.storeFile(c, entry);
    const t = this.tarEntry(c.rel, c.abs, c.st, c.type);
    if (c.type === 'symlink') {
      try {
        t.linkTarget = fs.readlinkSync(c.abs, { encoding: 'buffer' });
      } catch (e) {
        this.unreadableEntry(c.rel, e);
        return undefined;
      }
      entry.link = t.linkTarget;
    } else if (c.type === 'char' || c.type === 'block') {
      t.devMajor = devMajor(c.st.rdev);
      t.devMinor = devMinor(c.st.rdev);
      entry.rdev = [t.devMajor, t.devMinor];
    }
    entry.offset = this.writer.offset;
    this.writer.writeHeader(t);
    this.stats.stored++;
    return entry;
  }

  private async storeFile(c: Child, entry: ManifestEntry): Promise<ManifestEntry | undefined> {
    const linkKey = c.st.nlink > 1n ? `${c.st.dev}:${c.st.ino}` : undefined;
    const first = linkKey ? this.links.get(linkKey) : undefined;
    if (first) {
      // A second name of a file already in this archive: a hardlink member, no data.
      const t = this.tarEntry(c.rel, c.abs, c.st, 'hardlink');
      t.size = 0;
      t.linkTarget = first.path;
      entry.offset = this.writer.offset;
      entry.dataOffset = first.offset;
      entry.hash = first.hash;
      this.writer.writeHeader(t);
      this.stats.stored++;
      return entry;
    }
    let fd: number;
    try {
      fd = openAt(c.dirFd, c.name);
    } catch (e) {
      this.unreadableEntry(c.rel, e);
      return undefined;
    }
    try {
      const size = Number(c.st.size);
      const t = this.tarEntry(c.rel, EMPTY /* read through fd */, c.st, 'file', fd);
      if (size >= SPARSE_MIN_SIZE && c.st.blocks * 512n + SLACK < c.st.size) {
        const map = dataRegions(fd, size);
        if (map) t.sparseMap = map;
      }
      entry.offset = this.writer.offset;
      this.writer.writeHeader(t);
      this.stats.stored++;
      this.stats.filesRead++;
      let hash: string;
      let complete: boolean;
      if (t.sparseMap) {
        this.writer.write(encodeSparseMap(t.sparseMap, size));
        const h = createXxh64();
        complete = true;
        const header = Buffer.alloc(16);
        for (const [off, len] of t.sparseMap) {
          // Regions are hashed with their position, so moving data within the file changes the hash.
          header.writeBigUInt64LE(BigInt(off), 0);
          header.writeBigUInt64LE(BigInt(len), 8);
          h.update(header);
          complete = (await this.copy(fd, off, len, h, c.rel)).complete && complete;
        }
        hash = h.digest();
        entry.sparse = true;
      } else {
        const r = await this.copy(fd, 0, size, undefined, c.rel);
        hash = r.hash;
        complete = r.complete;
      }
      this.writer.zeros(padding(storedSize(t)));
      if (this.opts.liveSource && complete) {
        const after = fs.fstatSync(fd, { bigint: true });
        if (after.mtimeNs !== c.st.mtimeNs || after.size !== c.st.size) {
          this.warnings.push(`${showPath(c.rel)} changed while it was read; the next run stores it again`);
          complete = false;
        }
      }
      entry.hash = hash;
      if (!complete) entry.unread = true;
      if (linkKey) this.links.set(linkKey, { path: c.rel, offset: entry.offset, hash });
      return entry;
    } finally {
      closeFd(fd);
    }
  }

  /**
   * Copies `length` bytes at `position` of fd into the archive, hashing them.
   * A file that turns out shorter than its stat said is padded with zeros so
   * the archive stays well-formed, and reported.
   */
  private async copy(
    fd: number,
    position: number,
    length: number,
    into: StreamingHash | undefined,
    rel: Buffer,
  ): Promise<{ hash: string; complete: boolean }> {
    let h = into;
    let remaining = length;
    let pos = position;
    let hash = '';
    while (remaining > 0) {
      let view: Buffer;
      try {
        view = this.writer.readFrom(fd, pos, remaining);
      } catch (e) {
        this.writer.zeros(remaining);
        this.unreadableEntry(rel, e);
        return { hash: 'unreadable', complete: false };
      }
      const n = view.length;
      if (n === 0) {
        this.writer.zeros(remaining);
        const msg = `${showPath(rel)} shrank while it was read (${length - remaining} of ${length} bytes)`;
        if (this.opts.liveSource) this.warnings.push(msg);
        else this.unreadable.push(msg);
        return { hash: 'incomplete', complete: false };
      }
      this.stats.bytesRead += n;
      if (!h && n === remaining && pos === position) {
        hash = xxh64(view); // the whole file in one read: no streaming state
      } else {
        h ??= createXxh64();
        h.update(view);
      }
      remaining -= n;
      pos += n;
      if (this.writer.backlogged) {
        await this.writer.drain();
        this.checkSignal();
      }
    }
    if (!into && h) hash = h.digest();
    if (!into && !h && length === 0) hash = xxh64(EMPTY);
    return { hash, complete: true };
  }
}

/** The data regions of a sparse file via SEEK_DATA/SEEK_HOLE; undefined where the filesystem cannot say. */
export function dataRegions(fd: number, size: number): Array<[number, number]> | undefined {
  const map: Array<[number, number]> = [];
  let pos = 0;
  try {
    while (pos < size) {
      const data = seekData(fd, pos);
      if (data < 0 || data >= size) break;
      let hole = seekHole(fd, data);
      if (hole < 0 || hole > size) hole = size;
      map.push([data, hole - data]);
      pos = hole;
    }
  } catch {
    return undefined;
  }
  return map;
}
