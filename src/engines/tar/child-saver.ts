/**
 * Saves one changed child of a directory that is not a directory itself (a
 * regular file, symlink, device or fifo) for tree-archiver.ts: its member(s)
 * in the archive and its new manifest entry. A regular file is opened
 * relative to its listed directory, read once straight into the archive's
 * segment and hashed there; sparse files region by region; a second name of
 * a file already in this archive becomes a hardlink member; a small file the
 * walker read ahead is written from the listing's bytes. What cannot be read
 * is reported to the pass and the backup is partial.
 */
import fs from 'node:fs';
import { createXxh64, xxh64, type StreamingHash } from '../../native/xxh.js';
import { encodeSparseMap, padding, storedSize } from '../../tar/write.js';
import type { ManifestEntry } from '../../core/manifest.js';
import { showPath } from '../../core/path-order.js';
import type { ManifestWriter } from '../../medium/manifest-writer.js';
import { closeFd, openAt } from '../../native/xbfs.js';
import type { ArchiveWriter } from './archive-writer.js';
import type { Child } from './child.js';
import { devMajor, devMinor, manifestEntryOf, tarEntryOf } from '../metadata.js';
import { dataRegions, worthAskingForHoles } from '../sparse-regions.js';
import { hashRegionHeader } from '../file-hash.js';
import type { ArchivePass } from './archive-pass.js';

const EMPTY = Buffer.alloc(0);

export class ChildSaver {
  /** dev:ino of hardlinked files already stored in this archive -> the member holding the data. */
  private readonly links = new Map<string, { path: Buffer; offset: number; hash: string }>();

  constructor(
    private readonly pass: ArchivePass,
    private readonly writer: ArchiveWriter,
    private readonly manifest: ManifestWriter,
    private readonly backupId: string,
    /** `"a":"<backup id>"`, the archive member of every manifest line this backup writes. */
    private readonly archiveMember: Buffer,
    /** The source is live (dom0's root): a file changing while read is a warning, not an error. */
    private readonly liveSource: boolean,
  ) {}

  /**
   * A file the walker read and hashed ahead (no xattrs, one link, unchanged
   * while read): its member from the listing's bytes and its manifest line
   * from the listing's change key. False when it was not read ahead.
   */
  storePrefetched(c: Child): boolean {
    const ahead = c.prefetched;
    if (!ahead) return false;
    const t = tarEntryOf(c.rel, EMPTY, c.st, 'file', this.pass.warnings, -1, false);
    const offset = this.writer.offset;
    this.writer.writeHeader(t);
    this.writer.write(ahead.content);
    this.writer.zeros(padding(storedSize(t)));
    this.pass.stats.stored++;
    this.pass.stats.filesRead++;
    this.pass.stats.bytesRead += ahead.content.length;
    if (!this.manifest.plainFileLine(c.name, c.key, ahead.hash, this.archiveMember, offset)) {
      const entry = manifestEntryOf(c.name, c.st, 'file', this.backupId);
      entry.offset = offset;
      entry.hash = ahead.hash;
      this.manifest.entry(entry);
    }
    return true;
  }

  /** Writes the member(s) of one changed non-directory child; returns its new manifest entry (or none if unreadable). */
  async store(c: Child): Promise<ManifestEntry | undefined> {
    const entry = manifestEntryOf(c.name, c.st, c.type, this.backupId);
    if (c.type === 'file') return this.storeFile(c, entry);
    const t = tarEntryOf(c.rel, c.abs, c.st, c.type, this.pass.warnings);
    if (c.type === 'symlink') {
      try {
        t.linkTarget = fs.readlinkSync(c.abs, { encoding: 'buffer' });
      } catch (e) {
        this.pass.unreadableEntry(c.rel, e);
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
    this.pass.stats.stored++;
    return entry;
  }

  private async storeFile(c: Child, entry: ManifestEntry): Promise<ManifestEntry | undefined> {
    const linkKey = c.st.nlink > 1n ? `${c.st.dev}:${c.st.ino}` : undefined;
    const first = linkKey ? this.links.get(linkKey) : undefined;
    if (first) {
      // A second name of a file already in this archive: a hardlink member, no data.
      const t = tarEntryOf(c.rel, c.abs, c.st, 'hardlink', this.pass.warnings);
      t.size = 0;
      t.linkTarget = first.path;
      entry.offset = this.writer.offset;
      entry.dataOffset = first.offset;
      entry.hash = first.hash;
      this.writer.writeHeader(t);
      this.pass.stats.stored++;
      return entry;
    }
    let fd: number;
    try {
      fd = openAt(c.dirFd, c.name);
    } catch (e) {
      this.pass.unreadableEntry(c.rel, e);
      return undefined;
    }
    try {
      const size = Number(c.st.size);
      const t = tarEntryOf(c.rel, EMPTY /* read through fd */, c.st, 'file', this.pass.warnings, fd);
      if (worthAskingForHoles(size, c.st)) {
        const map = dataRegions(fd, size);
        if (map) t.sparseMap = map;
      }
      entry.offset = this.writer.offset;
      this.writer.writeHeader(t);
      this.pass.stats.stored++;
      this.pass.stats.filesRead++;
      let hash: string;
      let complete: boolean;
      if (t.sparseMap) {
        this.writer.write(encodeSparseMap(t.sparseMap, size));
        const h = createXxh64();
        complete = true;
        for (const [off, len] of t.sparseMap) {
          // The content rule is file-hash.ts's; the data is read into the segment and hashed there (copy).
          hashRegionHeader(h, off, len);
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
      if (this.liveSource && complete) {
        const after = fs.fstatSync(fd, { bigint: true });
        if (after.mtimeNs !== c.st.mtimeNs || after.size !== c.st.size) {
          this.pass.warnings.push(`${showPath(c.rel)} changed while it was read; the next run stores it again`);
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
        this.pass.unreadableEntry(rel, e);
        return { hash: 'unreadable', complete: false };
      }
      const n = view.length;
      if (n === 0) {
        this.writer.zeros(remaining);
        const msg = `${showPath(rel)} shrank while it was read (${length - remaining} of ${length} bytes)`;
        if (this.liveSource) this.pass.warnings.push(msg);
        else this.pass.unreadable.push(msg);
        return { hash: 'incomplete', complete: false };
      }
      this.pass.stats.bytesRead += n;
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
        this.pass.checkSignal();
      }
    }
    if (!into && h) hash = h.digest();
    if (!into && !h && length === 0) hash = xxh64(EMPTY);
    return { hash, complete: true };
  }
}
