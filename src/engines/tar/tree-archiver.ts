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
 * Parts: DirWalker (listings made ahead on threads of their own), UnchangedDirArchiver
 * (a directory whose children are all unchanged, in one native call),
 * ChildSaver (the members of a changed child that is not a directory),
 * SplitLinks (unchanged names of hardlinked files a directory rename split,
 * stored again so that GNU tar -x -G keeps them linked),
 * ArchiveWriter (segments, compression, .partial file), ManifestWriter (the
 * new manifest), ManifestCursor (the old one), metadata.ts (stat and xattrs
 * to TarEntry). This file decides what goes in, in which order.
 */
import { collectGarbageAbove } from '../../util/collect-garbage.js';
import fs from 'node:fs';
import type { Logger } from '../../util/log.js';
import type { ArchiveStats } from '../../medium/sidecar.js';
import { InterruptedError } from '../interrupted.js';

export { InterruptedError };
import { archiveMember, type ManifestEntry, type ManifestType } from '../../core/manifest.js';
import { baseName, joinRel, parentOf, showPath } from '../../core/path-order.js';
import type { PreviousBlock } from '../../medium/manifest-file.js';
import type { ManifestCursor } from '../../medium/manifest-reader.js';
import type { ManifestWriter } from '../../medium/manifest-writer.js';
import type { ArchiveWriter } from './archive-writer.js';
import { Child } from './child.js';
import { ChildSaver } from './child-saver.js';
import type { ArchivePass } from './archive-pass.js';
import { MergeBuffers, type DirScan } from '../dir-scan.js';
import { SplitLinks } from './split-links.js';
import { UnchangedDirArchiver } from './unchanged-dir.js';
import { PREFETCH_MAX, WalkOutOfStep, type DirWalker } from './dir-walker.js';
import { entryTypeOfMode, manifestEntryOf, tarEntryOf, type EntryStat } from '../metadata.js';

export type { ArchiveStats };

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

/** A directory's listing and the children the archive takes (keep[i] = 1; keptChildren). */
interface Listing {
  scan: DirScan;
  keep: Uint8Array;
}

const EMPTY = Buffer.alloc(0);
const ROOT_NAME = Buffer.from('.');

/** Directories between two turns of the event loop (a turn costs microseconds; 128 listings a few MB). */
const DIRS_PER_TURN = 128;
/** Native memory of JavaScript objects (listings, frames) let grow between collections (util/collect-garbage.ts). */
const GC_STEP = 8 << 20;

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
  private rootDev = 0n;
  /**
   * merge()'s output, reused for every directory: its dumpdir is copied into the archive at once, and its
   * matches are read across the awaits of directoryMembers, which is safe because the next merge comes
   * only after directoryMembers has returned (directories are archived one at a time). The native path
   * for unchanged directories uses the same match array within its one synchronous call.
   */
  private readonly mergeBuffers = new MergeBuffers();
  private readonly unchangedDirs: UnchangedDirArchiver;
  private readonly saver: ChildSaver;
  /** `"a":"<backup id>"`, the archive member of every manifest line this backup writes. */
  private readonly archiveMember: Buffer;
  /** Unchanged names of hardlinked files a directory rename split, stored again (split-links.ts); mostly none. */
  private split: SplitLinks | undefined;
  /** Directories archived since the event loop last turned. */
  private sinceTurn = 0;

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
    this.unchangedDirs = new UnchangedDirArchiver(writer, manifest, this.archiveMember, this.mergeBuffers);
    const pass: ArchivePass = {
      stats: this.stats,
      warnings: this.warnings,
      unreadable: this.unreadable,
      unreadableEntry: (rel, e) => this.unreadableEntry(rel, e),
      checkSignal: () => this.checkSignal(),
    };
    this.saver = new ChildSaver(pass, writer, manifest, opts.backupId, this.archiveMember, opts.liveSource);
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
    if (rel.length === 0 && previous) this.split = SplitLinks.find(this.previous!.reader, (dir) => this.walker.openDir(dir));
    const scan = this.nextListing(rel);
    if (!scan) {
      if (previous) return this.keepUnlisted(rel, abs, st ?? self!.st, previous);
      await this.directoryMembers(rel, abs, st ?? self!.st, previous, null);
      return;
    }
    let dirs: ArrayLike<number>;
    try {
      dirs =
        (self && previous && this.unchangedDirectory(rel, self, scan, previous)) ||
        (await this.directoryMembers(rel, abs, st ?? self!.st, previous, this.keptChildren(rel, scan)));
    } finally {
      // Closed before recursing: open directories never pile up with the depth of the tree.
      scan.close();
    }
    // Unchanged directories write only headers and never wait otherwise: without this, their segments
    // would pile up in memory, since compression's completions run only when the pass yields.
    if (this.writer.backlogged) await this.writer.drain();
    // The listings' native memory is freed by finalizers that run only when the event loop turns, and a
    // walk of unchanged directories never waits: without a turn now and then it held every listing of a
    // million-file tree (290 MB). Without a collection, V8 let ~80 MB of such garbage pile up at times.
    if (++this.sinceTurn >= DIRS_PER_TURN) {
      this.sinceTurn = 0;
      // Not in a full: its file data passes through such buffers too, and a collection per 8 MB of it cost time.
      if (this.previous) collectGarbageAbove(GC_STEP);
      await new Promise((resolve) => setImmediate(resolve));
    }
    for (let k = 0; k < dirs.length; k++) {
      // One Child at a time: it caches its paths and stat, and a directory of 200,000 subdirectories held them all.
      const i = dirs[k]!;
      const d = new Child(rel, abs, scan, i, scan.name(i), 'dir');
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
   * call (engines/tar/unchanged-dir.ts); its subdirectories' indices in `scan`, or undefined when it declines
   * (then directoryMembers).
   */
  private unchangedDirectory(rel: Buffer, self: Child, scan: DirScan, previous: PreviousBlock): Int32Array | undefined {
    // Its own extended attributes, children left out by an exclude, and names stored again are the general path's work.
    if (!scan.dirWithoutXattrs || (this.split && this.split.namesIn(rel)) || (this.excludeParents.size > 0 && this.excludeParents.has(rel.toString('latin1')))) return undefined;
    this.checkSignal();
    const done = this.unchangedDirs.archive(rel, self.scan, self.index, scan, previous);
    if (!done) return undefined;
    const s = this.stats;
    s.stored++;
    s.entries += 1 + done.children;
    s.unchanged += done.children;
    s.sourceBytes += done.sourceBytes;
    s.deleted += done.deleted;
    this.opts.onProgress?.(this.stats, rel);
    return done.subdirs.slice(); // a copy: the view is reused by the next directory's call
  }

  /**
   * The directory's member and its changed non-directory children's; returns
   * the subdirectories' indices in the listing. The listing is joined with the previous manifest's
   * block in C (mergeBlock): per child, the matching line and whether its key
   * is the same, and the dumpdir. An unchanged child then costs a copy of its
   * old line, and no object.
   */
  private async directoryMembers(rel: Buffer, abs: Buffer, st: EntryStat, previous: PreviousBlock | undefined, listed: Listing | null): Promise<number[]> {
    const dirs: number[] = [];
    const scan = listed?.scan;
    const keep = listed?.keep ?? new Uint8Array(0);
    const merged = scan ? scan.merge(keep, previous, this.mergeBuffers) : { match: new Int32Array(0), dumpdir: Buffer.from([0]) };
    // Unchanged names of a hardlinked file a directory rename split: stored again, so listed as stored.
    const again = this.split?.namesIn(rel);
    if (again) markStored(merged.dumpdir, again);

    const self = this.baseEntry(rel, st, 'dir');
    const tarEntry = tarEntryOf(rel.length ? rel : ROOT_NAME, abs, st, 'dir', this.warnings, scan?.fd ?? -1, !scan?.dirWithoutXattrs);
    tarEntry.dumpdir = merged.dumpdir;
    self.offset = this.writer.offset;
    this.writer.writeHeader(tarEntry);
    this.stats.stored++;
    this.stats.entries++;
    this.manifest.beginDir(rel, self);

    const match = merged.match;
    let matched = 0;
    for (let i = 0; i < keep.length; i++) {
      if (!keep[i]) continue;
      const type = entryTypeOfMode(scan!.mode(i)) as ManifestType; // kept: one of the archived types
      if (type === 'dir') {
        dirs.push(i);
        continue;
      }
      this.checkSignal();
      this.stats.entries++;
      if (type === 'file') this.stats.sourceBytes += scan!.size(i);
      const m = match[i]!;
      if (m >= 0) matched++;
      if (m >= 0 && (m & 1) === 1 && !(again && again.has(scan!.name(i).toString('latin1')))) {
        this.stats.unchanged++;
        this.manifest.copyPrevious(previous!, m >> 1);
        continue;
      }
      const child = new Child(rel, abs, scan!, i, scan!.name(i), type);
      if (type === 'file' && this.saver.storePrefetched(child)) {
        // Waits too: a directory of 100,000 tiny read-ahead files fills segments faster than they compress.
        if (this.writer.backlogged) await this.writer.drain();
        continue;
      }
      const stored = await this.saver.store(child);
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
    const tarEntry = tarEntryOf(d.rel, d.abs, d.st, 'dir', this.warnings);
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
    const tarEntry = tarEntryOf(rel.length ? rel : ROOT_NAME, abs, st, 'dir', this.warnings);
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

  private unreadableEntry(rel: Buffer, e: unknown): void {
    const msg = `cannot read ${showPath(rel) || '/'}: ${(e as Error).message}`;
    this.unreadable.push(msg);
    this.opts.logger.error(msg);
  }
}

/** Turns the dumpdir's 'N' (unchanged) into 'Y' (stored here) for the names (latin1) in `names`, in place. */
function markStored(dumpdir: Buffer, names: Set<string>): void {
  for (let i = 0; i < dumpdir.length && dumpdir[i] !== 0; ) {
    const end = dumpdir.indexOf(0, i);
    if (end < 0) return;
    if (dumpdir[i] === 0x4e && names.has(dumpdir.toString('latin1', i + 1, end))) dumpdir[i] = 0x59;
    i = end + 1;
  }
}
