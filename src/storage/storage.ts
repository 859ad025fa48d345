/**
 * Where backups are kept, behind one interface: a local folder (the mounted
 * BCKDEV, local-storage.ts) and a folder on an ssh server (ssh-storage.ts);
 * memory-storage.ts is the fake the core's tests use. A volume's folder, its
 * lock, prune, restore and verify are written once against this interface
 * (src/repo/, src/engines/), never against one implementation.
 *
 * Designed so that an object store can be the third implementation: no
 * rename is required of it (a file being written is reached through
 * stagedName(), and publish() makes it visible; on a store without rename
 * the staged name is the final one and the sidecar, written last, is the
 * commit), no hardlinks, and reads of byte ranges.
 *
 * Everything below the root is untrusted: folders and names are plain
 * components (never a path, '.' or '..'); a folder on the way that is a
 * symlink or not a directory, or a file that is not a regular file, is
 * MediumDamage. An implementation never follows a symlink it finds there.
 */
import type { Readable } from 'node:stream';

/** A folder beneath the storage's root, one plain name per level: [host, domU, part]. */
export type Folder = readonly string[];

export interface StoredItem {
  name: string;
  type: 'file' | 'dir' | 'other';
  /** Bytes of a file (0 for anything else). */
  size: number;
}

/** What the lock file holds and says of its holder; the text is compared whole on release. */
export type LockAttempt = { taken: true } | { taken: false; holderText: string };

export interface Storage {
  /** 'local' | 'ssh' | 'memory' (and later 's3'): for messages and capability checks, never for branching on layout. */
  readonly kind: string;
  /** The root as an admin writes it: /mnt/backup, backup@nas:/srv/xenbackup. */
  readonly root: string;

  /** A folder or a file in it as shown in messages (the root's form, joined with '/'). */
  show(folder: Folder, name?: string): string;

  /** The folder's items, sorted by name; undefined when the folder does not exist. */
  list(folder: Folder): Promise<StoredItem[] | undefined>;

  /** The sub-folders of `folder` that are real directories, sorted; [] when it does not exist. */
  listFolders(folder: Folder): Promise<string[]>;

  /** Creates the folder and its parents where missing (mode 0700). */
  ensureFolder(folder: Folder): Promise<void>;

  /**
   * A whole file; MediumDamage when it is larger than `maxBytes` or not a
   * regular file. An absent file (of any read) rejects with code ENOENT.
   */
  read(folder: Folder, name: string, maxBytes: number): Promise<Buffer>;

  /** `length` bytes from `offset` (fewer only at the end of the file). */
  readRange(folder: Folder, name: string, offset: number, length: number): Promise<Buffer>;

  /** The file's bytes from `offset` on, as a stream (archives and manifests are large). */
  openRead(folder: Folder, name: string, offset?: number): Promise<Readable>;

  /**
   * Writes a whole file atomically and durably, mode 0600: when the promise
   * resolves the name holds all of `data`; when it rejects, the old content
   * or nothing. Used for sidecars. Like upload and tryLock, it makes the
   * folder where it is missing.
   */
  write(folder: Folder, name: string, data: Buffer): Promise<void>;

  /**
   * Copies a local file into the folder under `name` (mode 0600), streamed:
   * manifests are large. Not atomic by itself: write to stagedName(name)
   * and publish.
   */
  upload(folder: Folder, name: string, localFile: string): Promise<void>;

  /**
   * Removes a file or a whole tree (an rsync backup's folder), never
   * following a symlink; an absent name is not an error. Durable when it
   * resolves (prune removes a sidecar first and relies on that).
   */
  remove(folder: Folder, name: string): Promise<void>;

  /**
   * The name under which a file or tree is written until it is published:
   * `<name>.partial` where the storage can rename, `name` itself where it
   * cannot (a backup still counts only once its sidecar exists).
   */
  stagedName(name: string): string;

  /**
   * Makes staged names visible under their own, in the order given, each
   * durable before the next (tree, manifest, then sidecar). A published
   * tree is made private (mode 0700): rsync copies the source root's mode.
   */
  publish(folder: Folder, names: readonly string[]): Promise<void>;

  /**
   * Creates the lock file `name` holding `holderText` if no such file
   * exists (atomically: of two callers one wins); otherwise says what the
   * existing one holds ('' when it cannot be read).
   */
  tryLock(folder: Folder, name: string, holderText: string): Promise<LockAttempt>;

  /**
   * Removes the lock file `name` if it still holds exactly `holderText` (a
   * taken-over lock is left alone); '' removes an unreadable one (a planted
   * symlink or fifo), so that it can be taken over.
   */
  unlock(folder: Folder, name: string, holderText: string): Promise<void>;

  /**
   * The bytes removing these names would free: files with one link, a tree's
   * too (an rsync tree shares most of its files with its neighbours by
   * hardlinks, which stay). 0 for an absent name.
   */
  bytesHeld(folder: Folder, names: readonly string[]): Promise<number>;

  /** Free bytes where the root is; undefined when the storage cannot say. */
  freeBytes(): Promise<number | undefined>;

  /** Present on storages whose files are local: the path, for the native writers and readers. */
  readonly local?: LocalAccess;

  /** Present on storages rsync can copy to and from (local and ssh; not an object store). */
  readonly rsync?: RsyncAccess;
}

export interface LocalAccess {
  /** The local path of a folder, or of a file in it (plain names only). */
  path(folder: Folder, name?: string): string;
}

export interface RsyncAccess {
  /** The folder or file as rsync's argument: /mnt/backup/h/d/p/x or user@host:/srv/h/d/p/x. */
  location(folder: Folder, name?: string): string;
  /** Options rsync needs to reach it (`-e 'ssh ...'`), [] when local. */
  args: readonly string[];
}
