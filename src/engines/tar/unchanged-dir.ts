/**
 * An unchanged directory of an incremental, archived by native code in one
 * call (native/unchanged-dir.c): its tar member, whose GNU.dumpdir says 'N'
 * for every child, and its manifest block, its children's previous lines
 * copied. The bytes are the ones tree-archiver.ts's general path writes;
 * anything else (a changed or new child, a socket, a name that needs JSON
 * escapes, no room left in the segment) is declined and that path takes the
 * directory. Most directories of a nightly incremental are unchanged, and the
 * general path's ~80 us each of main-thread and compiler time competed with
 * the walker's stat walk for the machine's cores.
 */
import { archiveUnchangedDirRaw } from '../../native/xbfs.js';
import { INDEX_STRIDE, type PreviousBlock } from '../../medium/manifest-file.js';
import type { ManifestWriter } from '../../medium/manifest-writer.js';
import type { ArchiveWriter } from './archive-writer.js';
import type { DirScan, MergeBuffers } from '../dir-scan.js';

/** What one unchanged directory added. */
export interface UnchangedDir {
  /** Its children that are not directories (all unchanged). */
  children: number;
  /** Their apparent bytes (regular files). */
  sourceBytes: number;
  /** Children of the previous backup that are gone (directories there are not children of a block). */
  deleted: number;
  /** Indices in its listing of its subdirectories, in walk order: a view valid until the next call. */
  subdirs: Int32Array;
}

/** Bytes of a directory line besides its path and archive member: the change key (at most 200, scandir.h KEY_MAX) and the rest. */
const DIR_LINE_MAX = 512;

export class UnchangedDirArchiver {
  private dirs = new Int32Array(1024);
  private readonly out = new Float64Array(7);

  constructor(
    private readonly writer: ArchiveWriter,
    private readonly manifest: ManifestWriter,
    /** `"a":"<backup id>"`. */
    private readonly archiveMember: Buffer,
    /** The archiver's join scratch (only its match array is used), shared with its general path. */
    private readonly scratch: MergeBuffers,
  ) {}

  /**
   * Archives directory `rel` (listed as `scan`; its own record is child `index` of `parent`) when it and
   * its children are as `previous` has them; returns undefined otherwise, with nothing counted as written
   * (the segment and the manifest buffer past their ends are scratch).
   */
  archive(rel: Buffer, parent: DirScan, index: number, scan: DirScan, previous: PreviousBlock): UnchangedDir | undefined {
    const count = scan.count;
    if (this.dirs.length < count) this.dirs = new Int32Array(Math.max(count, 2 * this.dirs.length));
    this.manifest.startBlock();
    const man = this.manifest.room(previous.childBytes + rel.length + this.archiveMember.length + DIR_LINE_MAX);
    const seg = this.writer.room();
    const ok = archiveUnchangedDirRaw(
      parent.records, parent.recordOffset(index), scan.records, count,
      previous.data, previous.index, previous.first, previous.end,
      rel, this.archiveMember, this.writer.offset, seg, man, this.scratch.matchFor(count), this.out, this.dirs,
    );
    if (!ok) return undefined;
    const out = this.out;
    this.writer.wrote(out[0]!);
    this.writeBlock(rel, man, out[1]!, out[2]!, previous);
    return { children: out[3]!, sourceBytes: out[4]!, deleted: out[5]!, subdirs: this.dirs.subarray(0, out[6]!) };
  }

  /**
   * Commits the block native code wrote into `man`: as it is, or, when its child lines are byte for byte
   * the previous block's (none changed, none gone), as its directory line and references to where those
   * lines are stored. The comparison, not the counts, decides: a reference must stand for these very bytes.
   */
  private writeBlock(rel: Buffer, man: Buffer, bytes: number, lines: number, previous: PreviousBlock): void {
    if (previous.segments?.length && lines - 1 === previous.childCount) {
      const dirLine = man.indexOf(0x0a) + 1;
      const start = previous.index[previous.first * INDEX_STRIDE]!;
      if (dirLine > 0 && bytes - dirLine === previous.childBytes && man.subarray(dirLine, bytes).equals(previous.data.subarray(start, start + previous.childBytes))) {
        this.manifest.wroteUnchangedBlock(rel, dirLine, previous);
        return;
      }
    }
    this.manifest.wroteBlock(rel, bytes, lines);
  }
}
