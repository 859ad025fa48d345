/**
 * One child of a directory listing (dir-scan.ts) as the archiver and the
 * child saver see it: its name and type at once; its paths, stat, change key
 * and read-ahead content only when asked, since an unchanged child needs none.
 */
import { joinRel } from '../../core/path-order.js';
import type { ManifestType } from '../../core/manifest.js';
import type { DirScan } from '../dir-scan.js';
import type { EntryStat } from '../metadata.js';

/** A child of the directory being archived; path and stat are built only when something needs them. */
export class Child {
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
