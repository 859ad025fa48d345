/**
 * What a ChildSaver (child-saver.ts) reports to while tree-archiver.ts runs
 * a pass: the counts it adds to, the warning and unreadable lists, and the
 * pass's interruption. Its own module so that the saver does not import the
 * archiver that uses it (the import graph of engines/tar stays a tree).
 */

/**
 * The counts a saver adds to: a view of the pass's ArchiveStats (tree-archiver.ts),
 * the same object, written here by name so that this module needs nothing from the archiver.
 */
export interface SaverCounts {
  /** Members written to this archive. */
  stored: number;
  /** Regular files opened and read. */
  filesRead: number;
  bytesRead: number;
}

/** What the saver reports to: the pass's counts and lists, and its interruption. */
export interface ArchivePass {
  readonly stats: SaverCounts;
  readonly warnings: string[];
  /** Paths whose content could not be read (the backup is partial). */
  readonly unreadable: string[];
  /** Reports `rel` as unreadable, and logs it. */
  unreadableEntry(rel: Buffer, e: unknown): void;
  /** Throws once the pass is interrupted (SIGTERM, SIGINT). */
  checkSignal(): void;
}
