/**
 * Typed access to native/beneath.c: restore's operations on the target,
 * each addressed as (directory fd, one name). `beneathDir` opens a
 * directory beneath the target's fd without following any symlink
 * (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS); the others never follow
 * the last name. Names are Buffers, so names that are not UTF-8 work.
 */
import os from 'node:os';
import { loadAddon, splitTimeNs } from './xbfs.js';

interface BeneathBinding {
  beneathDir(rootFd: number, rel: Buffer): number;
  statAt(dirFd: number, name: Buffer): number;
  mkdirAt(dirFd: number, name: Buffer, mode: number): void;
  createAt(dirFd: number, name: Buffer, mode: number): number;
  openFileAt(dirFd: number, name: Buffer): number;
  removeAt(dirFd: number, name: Buffer): void;
  renameAt(oldDirFd: number, oldName: Buffer, newDirFd: number, newName: Buffer): void;
  linkAt(oldDirFd: number, oldName: Buffer, newDirFd: number, newName: Buffer): void;
  symlinkAt(target: Buffer, dirFd: number, name: Buffer): void;
  mknodAt(dirFd: number, name: Buffer, kind: 'c' | 'b' | 'p', mode: number, major: number, minor: number): void;
  chownAt(dirFd: number, name: Buffer, uid: number, gid: number): void;
  chmodAt(dirFd: number, name: Buffer, mode: number): void;
  utimensAt(dirFd: number, name: Buffer, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void;
  setxattrAt(dirFd: number, name: Buffer, xattr: string, value: Buffer): void;
}

const binding = loadAddon<BeneathBinding>('xbfs');

const ERRNO_NAMES = new Map<number, string>(Object.entries(os.constants.errno).map(([k, v]) => [v, k]));

/** Node's fs wording ("EEXIST: mkdir: File exists"), with the code set from errno (the addon names only a few). */
function wrap<A extends unknown[], R>(f: (...a: A) => R): (...a: A) => R {
  return (...a: A): R => {
    try {
      return f(...a);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (typeof err.errno === 'number') {
        const code = ERRNO_NAMES.get(-err.errno) ?? err.code;
        if (code) {
          err.code = code;
          if (!err.message.startsWith(code)) err.message = `${code}: ${err.message}`;
        }
      }
      throw err;
    }
  };
}

/** An O_PATH fd of the directory `rel` ("" is the root itself) beneath rootFd; ELOOP where a symlink is on the way. */
export const beneathDir = wrap(binding.beneathDir);
/** st_mode of the name itself (lstat), 0 when nothing is there. */
export const statAt = wrap(binding.statAt);
export const mkdirAt = wrap(binding.mkdirAt);
/** A new regular file (O_CREAT | O_EXCL | O_NOFOLLOW), write only. */
export const createAt = wrap(binding.createAt);
/** An existing regular file for reading (O_NOFOLLOW). */
export const openFileAt = wrap(binding.openFileAt);
/** Removes whatever is at name, a directory with all it holds; never enters a symlink. */
export const removeAt = wrap(binding.removeAt);
export const renameAt = wrap(binding.renameAt);
/** A second name of the entry itself (a symlink is not followed). */
export const linkAt = wrap(binding.linkAt);
export const symlinkAt = wrap(binding.symlinkAt);
export const mknodAt = wrap(binding.mknodAt);
export const chownAt = wrap(binding.chownAt);
/** A symlink is left alone (Linux symlinks have no mode). */
export const chmodAt = wrap(binding.chmodAt);
export const setxattrAt = wrap(binding.setxattrAt);

/** Sets atime and mtime (ns since the epoch) of the name itself. */
export function utimesAt(dirFd: number, name: Buffer, atimeNs: bigint, mtimeNs: bigint): void {
  const [as, an] = splitTimeNs(atimeNs);
  const [ms, mn] = splitTimeNs(mtimeNs);
  wrap(binding.utimensAt)(dirFd, name, as, an, ms, mn);
}

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;
