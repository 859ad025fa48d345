/**
 * Hardlinked files whose names a directory rename (or move) puts in
 * different archives (issue 14 item 12). Renaming a directory leaves the
 * ctime of the files inside alone, so a file with one name in the renamed
 * directory and one outside it is unchanged under the outside name and new
 * under the renamed one: the incremental would store only the new name, as
 * a file of its own, and GNU tar restoring the chain (`tar -x -G`) would make
 * two files of it. (xenbackup's restore links them by inode anyway.)
 *
 * So before the walk, the previous manifest's hardlinked files whose names
 * lie in more than one directory are grouped by inode, and each of their
 * directories is looked up again (opened beneath the root, no symlink
 * followed, as the walker does): a directory that is gone, or is another
 * one now, marks its group as split. The names of a split group in the
 * directories still there are then stored again, although unchanged: the
 * first name in walk order carries the data and the others, the moved name
 * included, become hardlink members to it, each listed 'Y' in its
 * directory's dumpdir and placed in this archive by the manifest, in walk
 * order. Any other change to a name (link, unlink, rename of the file itself)
 * moves the inode's ctime, and then every name is stored anyway.
 *
 * The cost is one pass over the previous manifest's blocks that may hold
 * such files (a version 2 manifest marks its frames and references that do;
 * in each, a look at the two bytes after each line's change key, where
 * `,"k":` marks more than one link) and one open per directory of a
 * hardlinked file whose names span directories; nothing per unchanged file
 * in the walk.
 */
import fs from 'node:fs';
import { sliceEntryLine } from '../../core/manifest.js';
import { INDEX_STRIDE, type PreviousBlock } from '../../medium/manifest-file.js';
import type { ManifestReader } from '../../medium/manifest-reader.js';
import { closeFd } from '../../native/xbfs.js';

interface GroupName {
  /** The block of the name's directory. */
  block: PreviousBlock;
  name: Buffer;
}

export class SplitLinks {
  /** Per directory (latin1 key of its path): the names (latin1) to store again. */
  private readonly byDir = new Map<string, Set<string>>();

  /** Names to store again in directory `rel`, or undefined (almost always). */
  namesIn(rel: Buffer): Set<string> | undefined {
    return this.byDir.get(rel.toString('latin1'));
  }

  get size(): number {
    return this.byDir.size;
  }

  /**
   * The split groups of the previous manifest (`reader`'s blocks that may
   * hold files of several links). `openDir` opens a directory of the tree
   * beneath the root without following symlinks (it throws when that
   * fails); undefined when no group is split.
   */
  static find(reader: ManifestReader, openDir: (rel: Buffer) => number): SplitLinks | undefined {
    const groups = new Map<string, GroupName[]>();
    for (const block of reader.storedBlocks(undefined, true)) {
      const { data, index } = block;
      for (let line = block.first; line < block.end; line++) {
        const r = line * INDEX_STRIDE;
        // `,"k":` right after the key ("t":... through the inode) marks more than one link; "t":"f" a file.
        const keyEnd = index[r + 6]!;
        if (data[keyEnd + 2] !== 0x6b || data[keyEnd + 3] !== 0x22 || data[index[r + 5]! + 5] !== 0x66) continue;
        const e = sliceEntryLine(data, index[r]!, index[r + 1]!)?.entry;
        if (!e || e.type !== 'file' || e.nlink < 2) continue;
        const list = groups.get(e.ino) ?? [];
        list.push({ block, name: e.name });
        groups.set(e.ino, list);
      }
    }
    if (groups.size === 0) return undefined;

    const dirs = new Map<PreviousBlock, { dir: Buffer; present: boolean }>();
    const dirAt = (block: PreviousBlock): { dir: Buffer; present: boolean } => {
      let d = dirs.get(block);
      if (!d) {
        d = { dir: block.dir, present: sameDirectory(openDir, block.dir, block.self.ino) };
        dirs.set(block, d);
      }
      return d;
    };
    const split = new SplitLinks();
    for (const names of groups.values()) {
      if (names.length < 2 || names.every((n) => n.block === names[0]!.block)) continue;
      const where = names.map((n) => dirAt(n.block));
      if (where.every((d) => d.present)) continue;
      names.forEach((n, i) => {
        const d = where[i]!;
        if (!d.present) return;
        const key = d.dir.toString('latin1');
        const set = split.byDir.get(key) ?? new Set<string>();
        set.add(n.name.toString('latin1'));
        split.byDir.set(key, set);
      });
    }
    return split.byDir.size > 0 ? split : undefined;
  }
}

/** Is `dir` still the directory with inode `ino`? Gone, unreadable or another one: no. */
function sameDirectory(openDir: (rel: Buffer) => number, dir: Buffer, ino: string): boolean {
  let fd: number;
  try {
    fd = openDir(dir);
  } catch {
    return false;
  }
  try {
    return fs.fstatSync(fd, { bigint: true }).ino.toString() === ino;
  } finally {
    closeFd(fd);
  }
}
