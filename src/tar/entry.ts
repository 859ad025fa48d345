/**
 * What one tar member describes, independent of how it is encoded. Paths and
 * link targets are raw bytes (Buffer) end to end, because guests' file names
 * need not be valid UTF-8 and a string would turn them into U+FFFD.
 */
export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarEntry {
  /** Relative path inside the volume, no leading "./" or "/", no trailing "/" (also for directories). */
  path: Buffer;
  type: EntryType;
  /** Permission bits including setuid/setgid/sticky (st_mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Real (apparent) size of a regular file; 0 for everything else. */
  size: number;
  /** Modification time in nanoseconds since the epoch. */
  mtimeNs: bigint;
  /** Symlink target, or for a hardlink the path of the member it links to. */
  linkTarget?: Buffer;
  devMajor?: number;
  devMinor?: number;
  /**
   * Extended attributes other than POSIX ACLs (e.g. user.*, security.capability, trusted.*). Names are
   * byte strings (latin1: one char per byte, any byte but NUL), as native/xbfs.c lists and sets them:
   * a name need not be UTF-8, and a Map keyed by Buffer would not find equal names.
   */
  xattrs?: Map<string, Buffer>;
  /** POSIX ACLs in the short text form GNU tar and star store (SCHILY.acl.access / .default). */
  aclAccess?: string;
  aclDefault?: string;
  /**
   * For a sparse regular file: the data regions as [offset, length] pairs in
   * ascending order; everything else reads as zeros. The member's data is the
   * concatenation of these regions (pax GNU.sparse 1.0 layout).
   */
  sparseMap?: Array<[number, number]>;
  /** For a directory in an incremental-format archive: the GNU.dumpdir record (raw bytes). */
  dumpdir?: Buffer;
}
