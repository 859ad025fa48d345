/**
 * A manifest without an archive: walks a tree in walk order, carries over
 * the previous manifest's hash for entries whose stat is unchanged, hashes
 * the rest, and writes the new manifest. The rsync engine uses it, so that
 * its dated trees can be listed, verified and restored like archives.
 * Entries point at `archive` (the tree's backup id) with offset 0: the
 * content lives at the same relative path inside that tree.
 */
import fs from 'node:fs';
import { statUnchanged, type ManifestEntry, type ManifestType } from '../../core/manifest.js';
import { joinRel, showPath } from '../../core/path-order.js';
import type { ManifestCursor } from '../../medium/manifest-reader.js';
import type { ManifestWriter } from '../../medium/manifest-writer.js';
import type { Logger } from '../../util/log.js';
import { devMajor, devMinor, entryTypeOf, manifestEntryOf, type EntryStat } from '../metadata.js';
import { openAt } from '../../native/xbfs.js';
import { DirScan } from '../dir-scan.js';
import { dataRegions, worthAskingForHoles } from '../sparse-regions.js';
import { contentHashSync } from '../file-hash.js';

export interface ScanStats {
  entries: number;
  hashed: number;
  unchanged: number;
  bytesRead: number;
  sourceBytes: number;
}

const EMPTY = Buffer.alloc(0);
const CHUNK = 1 << 20;

export class TreeScanner {
  readonly stats: ScanStats = { entries: 0, hashed: 0, unchanged: 0, bytesRead: 0, sourceBytes: 0 };
  readonly unreadable: string[] = [];
  /** Directories of another filesystem kept empty (rsync -x does the same): printable paths, for the report. */
  readonly otherFilesystems: string[] = [];
  private readonly buf = Buffer.allocUnsafe(CHUNK);
  private rootDev = 0n;
  private rootFd = -1;

  constructor(
    private readonly root: string,
    private readonly backupId: string,
    private readonly manifest: ManifestWriter,
    private readonly previous: ManifestCursor | null,
    private readonly logger: Logger,
  ) {}

  run(): void {
    const st = fs.lstatSync(this.root, { bigint: true });
    this.rootDev = st.dev;
    // The root as given; every directory below it is opened beneath it with no symlink followed, so a
    // live source (dom0's root) whose directory is swapped for a symlink cannot take the scan elsewhere.
    // If it cannot be opened, its listing (by path) reports why, as before.
    try {
      this.rootFd = fs.openSync(this.root, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    } catch {
      this.rootFd = -1;
    }
    try {
      this.directory(EMPTY, st);
    } finally {
      if (this.rootFd >= 0) fs.closeSync(this.rootFd);
      this.rootFd = -1;
    }
  }

  private abs(rel: Buffer): Buffer {
    return rel.length ? Buffer.concat([Buffer.from(this.root.replace(/\/+$/, '') + '/'), rel]) : Buffer.from(this.root);
  }

  private entry(name: Buffer, st: EntryStat, type: ManifestType): ManifestEntry {
    return manifestEntryOf(name, st, type, this.backupId);
  }

  private directory(rel: Buffer, st: EntryStat): void {
    const prev = this.previous?.take(rel);
    const prevByName = new Map((prev?.entries ?? []).map((e) => [e.name.toString('latin1'), e.entry]));
    let scan: DirScan | undefined;
    try {
      // One native call: the children sorted in walk order, each with its lstat; the directory kept open
      // to open its files from.
      scan = DirScan.list(this.abs(rel), true, this.rootFd >= 0 ? { fd: this.rootFd, rel } : undefined);
    } catch (e) {
      this.unreadable.push(`cannot list ${showPath(rel) || '/'}: ${(e as Error).message}`);
    }
    let dirs: Array<[Buffer, EntryStat]>;
    try {
      dirs = this.members(rel, st, scan, prevByName);
    } finally {
      // Closed before recursing: open directories never pile up with the depth of the tree.
      scan?.close();
    }
    for (const [childRel, cst] of dirs) {
      if (cst.dev !== this.rootDev) {
        this.otherFilesystems.push(showPath(childRel));
        this.previous?.take(childRel);
        this.manifest.beginDir(childRel, this.entry(childRel, cst, 'dir'));
        this.stats.entries++;
      } else {
        this.directory(childRel, cst);
      }
    }
  }

  /** The directory's line and its children's but the subdirectories, which it returns. */
  private members(rel: Buffer, st: EntryStat, scan: DirScan | undefined, prevByName: Map<string, ManifestEntry>): Array<[Buffer, EntryStat]> {
    this.manifest.beginDir(rel, this.entry(rel, st, 'dir'));
    this.stats.entries++;
    const dirs: Array<[Buffer, EntryStat]> = [];
    for (let i = 0; i < (scan?.count ?? 0); i++) {
      if (scan!.errorCode(i) !== undefined) continue; // vanished, or lstat failed (as before: skipped)
      const name = scan!.name(i);
      const childRel = joinRel(rel, name);
      const cst = scan!.stat(i);
      const type = entryTypeOf(cst);
      if (type === undefined || type === 'socket' || type === 'hardlink') continue;
      if (type === 'dir') {
        // rsync -x (one filesystem) leaves other mounts as empty directories; so does the manifest.
        dirs.push([childRel, cst]);
        continue;
      }
      this.stats.entries++;
      const e = this.entry(name, cst, type);
      if (type === 'file') this.stats.sourceBytes += e.size;
      if (type === 'symlink') e.link = fs.readlinkSync(this.abs(childRel), { encoding: 'buffer' });
      if (type === 'char' || type === 'block') e.rdev = [devMajor(cst.rdev), devMinor(cst.rdev)];
      if (type === 'file') {
        const old = prevByName.get(name.toString('latin1'));
        if (old?.hash && statUnchanged(old, { type, size: e.size, mtimeNs: e.mtimeNs, ctimeNs: e.ctimeNs, ino: e.ino })) {
          e.hash = old.hash;
          if (old.sparse) e.sparse = true;
          this.stats.unchanged++;
        } else {
          this.hashFile(scan!, name, childRel, e);
        }
      }
      this.manifest.entry(e);
    }
    return dirs;
  }

  /**
   * Hashes content the way the tar engine does (sparse files region by region). The file is opened in
   * its listed directory (native openAt): a file of a live source swapped for a symlink since the
   * listing is not followed, and one swapped for a fifo is refused instead of blocking the run.
   */
  private hashFile(scan: DirScan, name: Buffer, rel: Buffer, e: ManifestEntry): void {
    let fd: number;
    try {
      fd = openAt(scan.fd, name);
    } catch (err) {
      this.unreadable.push(`cannot read ${showPath(rel)}: ${(err as Error).message}`);
      e.unread = true;
      return;
    }
    try {
      const st = fs.fstatSync(fd, { bigint: true });
      const map = worthAskingForHoles(e.size, st) ? dataRegions(fd, e.size) : undefined;
      const { hash, bytes } = contentHashSync(fd, e.size, map, this.buf);
      this.stats.bytesRead += bytes;
      e.hash = hash;
      if (map) e.sparse = true;
      this.stats.hashed++;
    } catch (err) {
      this.unreadable.push(`cannot read ${showPath(rel)}: ${(err as Error).message}`);
      e.unread = true;
    } finally {
      fs.closeSync(fd);
    }
  }
}
