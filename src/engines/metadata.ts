/**
 * Turns what lstat and the xattr calls say about one path into a TarEntry
 * (type, mode, owner, times, device numbers, xattrs, ACLs). One lstat and
 * one llistxattr (or flistxattr on an open fd) per entry; xattr values only
 * when there are any.
 */
import fs from 'node:fs';
import type { EntryType, TarEntry } from '../tar/entry.js';
import type { ManifestEntry, ManifestType } from '../core/manifest.js';
import { fgetxattr, flistxattr, lgetxattr, llistxattr } from '../native/xbfs.js';
import { aclTextFromXattr } from '../tar/acl.js';
import { showPath } from '../core/path-order.js';

const S_IFMT = 0o170000;
const TYPE_OF: Record<number, EntryType | 'socket'> = {
  0o100000: 'file',
  0o040000: 'dir',
  0o120000: 'symlink',
  0o020000: 'char',
  0o060000: 'block',
  0o010000: 'fifo',
  0o140000: 'socket',
};

/** The lstat fields the engine reads: fs.BigIntStats has them, and so does a DirScan child (dir-scan.ts). */
export type EntryStat = Pick<fs.BigIntStats, 'mode' | 'uid' | 'gid' | 'nlink' | 'size' | 'mtimeNs' | 'ctimeNs' | 'ino' | 'dev' | 'rdev' | 'blocks'>;

export function entryTypeOf(st: Pick<EntryStat, 'mode'>): EntryType | 'socket' | undefined {
  return TYPE_OF[Number(st.mode) & S_IFMT];
}

/** entryTypeOf for a mode as a number (once per child listed): a switch, not a lookup in a sparse table. */
export function entryTypeOfMode(mode: number): EntryType | 'socket' | undefined {
  switch (mode & S_IFMT) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'dir';
    case 0o120000:
      return 'symlink';
    case 0o020000:
      return 'char';
    case 0o060000:
      return 'block';
    case 0o010000:
      return 'fifo';
    case 0o140000:
      return 'socket';
    default:
      return undefined;
  }
}

const ACL_ACCESS = 'system.posix_acl_access';
const ACL_DEFAULT = 'system.posix_acl_default';

/**
 * Reads xattrs and ACLs of `abs` into `e`; through `fd` instead when the
 * caller holds the file or directory open already (no path lookup).
 */
export function readExtendedAttributes(abs: Buffer, e: TarEntry, fd = -1): void {
  let names: string[];
  try {
    names = fd >= 0 ? flistxattr(fd) : llistxattr(abs);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOTSUP') return;
    throw err;
  }
  if (names.length === 0) return;
  for (const name of names.sort()) {
    let value: Buffer;
    try {
      value = fd >= 0 ? fgetxattr(fd, name) : lgetxattr(abs, name);
    } catch (err) {
      // Vanished between list and get: nothing to store.
      if ((err as NodeJS.ErrnoException).code === 'ENODATA') continue;
      throw err;
    }
    if (name.startsWith('trusted.SGI_ACL_')) continue; // xfs shows its ACLs again under these names; stored once, as ACLs
    if (name === ACL_ACCESS) e.aclAccess = aclTextFromXattr(value);
    else if (name === ACL_DEFAULT) e.aclDefault = aclTextFromXattr(value);
    else (e.xattrs ??= new Map()).set(name, value);
  }
}

/** Linux dev_t encoding (glibc's gnu_dev_major/minor). */
export function devMajor(rdev: bigint): number {
  return Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
}
export function devMinor(rdev: bigint): number {
  return Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
}

/** A manifest entry from lstat alone (content hash, link target and device numbers are the caller's). */
export function manifestEntryOf(name: Buffer, st: EntryStat, type: ManifestType, archive: string): ManifestEntry {
  return {
    name,
    type,
    mode: Number(st.mode) & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: type === 'file' ? Number(st.size) : 0,
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
    ino: st.ino.toString(),
    nlink: Number(st.nlink),
    archive,
    offset: 0,
  };
}

/**
 * The TarEntry of one path from its stat, its xattrs and ACLs read too (by `abs`, or through `fd` when
 * the entry is open already, -1 if not); `xattrs` false: known to have none. A failure to read them is
 * a warning in `warnings`, and the entry goes without.
 */
export function tarEntryOf(path: Buffer, abs: Buffer, st: EntryStat, type: TarEntry['type'], warnings: string[], fd = -1, xattrs = true): TarEntry {
  const e: TarEntry = {
    path,
    type,
    mode: Number(st.mode) & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: type === 'file' ? Number(st.size) : 0,
    mtimeNs: st.mtimeNs,
  };
  if (!xattrs) return e;
  try {
    readExtendedAttributes(abs, e, fd);
  } catch (err) {
    warnings.push(`could not read extended attributes of ${showPath(path)}: ${(err as Error).message}`);
  }
  return e;
}
