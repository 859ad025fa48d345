/**
 * Restore's source for rsync backups: instead of tar members, the files of
 * the dated tree. Hands each planned item to the same RestoreWriter, with
 * its xattrs and ACLs read from the tree's copy. The tree is on the medium,
 * which may be hostile: it is opened without following its last name, and
 * everything in it beneath that fd without following any symlink
 * (native/beneath.c), so a symlink planted in a tree cannot make a restore
 * read, say, the host's /etc/shadow into --to.
 */
import fs from 'node:fs';
import type { PlannedItem } from '../../core/restore-plan.js';
import { showPath } from '../../core/path-order.js';
import type { TarEntry } from '../../tar/entry.js';
import type { Sidecar } from '../../medium/sidecar.js';
import type { VolumeStore } from '../../repo/volume-store.js';
import { beneathDir, openFileAt } from '../../native/beneath.js';
import { closeFd } from '../../native/xbfs.js';
import { readExtendedAttributes } from '../metadata.js';
import { DamagedBackupError } from '../restore-errors.js';
import type { RestoreWriter } from '../restore-writer.js';
import type { MemberSource } from '../restore-tree.js';
import { dataRegions } from '../sparse-regions.js';

const CHUNK = 1 << 20;
const SLASH = 0x2f;

/** The tree's directories, one open at a time (items come in walk order). */
class TreeDirs {
  private key: string | undefined;
  private fd = -1;
  constructor(
    readonly root: number,
    private readonly shown: string,
  ) {}

  /** The parent's fd and the name of rel; for the root, the root's fd and "." (through /proc only). */
  parentOf(rel: Buffer): { dirFd: number; name: Buffer } {
    const slash = rel.lastIndexOf(SLASH);
    const dir = slash < 0 ? Buffer.alloc(0) : rel.subarray(0, slash);
    const key = dir.toString('latin1');
    if (key !== this.key) {
      this.release();
      try {
        this.fd = dir.length ? beneathDir(this.root, dir) : -1;
      } catch (e) {
        throw new DamagedBackupError(`${this.shown}/${showPath(dir)}: not a directory of the tree (${(e as Error).message}); a symlink or a file on the medium where the manifest has a directory`);
      }
      this.key = key;
    }
    return { dirFd: this.fd >= 0 ? this.fd : this.root, name: rel.subarray(slash + 1) };
  }

  release(): void {
    if (this.fd >= 0) closeFd(this.fd);
    this.fd = -1;
    this.key = undefined;
  }
}

/** The rsync engine's MemberSource for restore-tree.ts: a tree has no member offsets, each path is its own. */
export const treeMembers: MemberSource = {
  positional: false,
  read: (store, backup, members, onBegin, writer) => readTreeMembers(store, backup, [...members.values()].flat(), onBegin, writer),
};

export async function readTreeMembers(
  store: VolumeStore,
  sc: Sidecar,
  items: PlannedItem[],
  onBegin: (item: PlannedItem, meta: TarEntry) => boolean,
  writer: RestoreWriter,
): Promise<void> {
  const shown = store.pathOf(sc.archive);
  let root: number;
  try {
    root = fs.openSync(shown, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
  } catch (e) {
    throw new DamagedBackupError(`${shown}: cannot open the backup's tree: ${(e as Error).message}`);
  }
  const dirs = new TreeDirs(root, shown);
  const buf = Buffer.allocUnsafe(CHUNK);
  try {
    for (const item of items) {
      const e = item.entry;
      const meta: TarEntry = { path: item.rel, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size, mtimeNs: e.mtimeNs, linkTarget: e.link };
      let fd: number | undefined;
      let regions: Array<[number, number]> = [[0, e.size]];
      const { dirFd, name } = item.rel.length ? dirs.parentOf(item.rel) : { dirFd: root, name: Buffer.from('.') };
      if (e.type === 'file') {
        try {
          fd = openFileAt(dirFd, name);
        } catch (err) {
          throw new DamagedBackupError(`${shown}/${showPath(item.rel)}: cannot read it from the tree (${(err as Error).message})`);
        }
        if (e.sparse) {
          // rsync --sparse may make holes of zero runs the source stored as data: the regions differ from the
          // source's, so the region-wise hash cannot be compared; the tree's content is written as it is.
          regions = dataRegions(fd, e.size) ?? regions;
          meta.sparseMap = regions;
          item.entry = { ...e, hash: undefined };
        }
      }
      // /proc/self/fd/<dir>/<name>: the pinned directory, and the l*xattr calls do not follow the name.
      readExtendedAttributes(Buffer.concat([Buffer.from(`/proc/self/fd/${dirFd}/`), name]), meta, fd);
      try {
        if (!onBegin(item, meta) || fd === undefined) continue;
        for (const [off, len] of regions) {
          let pos = off;
          while (pos < off + len) {
            const n = fs.readSync(fd, buf, 0, Math.min(CHUNK, off + len - pos), pos);
            if (n <= 0) break;
            writer.data(buf.subarray(0, n), pos);
            pos += n;
          }
        }
        writer.end();
      } finally {
        if (fd !== undefined) fs.closeSync(fd);
      }
    }
  } finally {
    dirs.release();
    fs.closeSync(root);
  }
}
