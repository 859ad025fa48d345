/**
 * Reads the kernel's mount table (/proc/self/mountinfo) and answers the
 * questions the backup must never guess about: is this path a mountpoint,
 * of which device (major:minor and source), with which filesystem type, and
 * what is mounted below a directory. The old tool trusted `mount`'s exit
 * status and once archived an empty mountpoint; every mount we make or rely
 * on is confirmed here instead.
 *
 * Parsing is pure (`parseMountinfo`); only `readMountinfo` and the helpers
 * that take a path touch the filesystem.
 */
import { readFile, realpath } from 'node:fs/promises';
import { resolve } from 'node:path';

export const MOUNTINFO_PATH = '/proc/self/mountinfo';

/** One line of /proc/PID/mountinfo (see proc(5)), with escapes decoded. */
export interface MountEntry {
  mountId: number;
  parentId: number;
  major: number;
  minor: number;
  /** The directory of the filesystem that forms this mount's root ("/" unless a bind or subvolume mount). */
  root: string;
  mountPoint: string;
  /** Per-mount options (ro/rw, nosuid, relatime, ...). */
  mountOptions: string[];
  /** Propagation tags such as `shared:1` or `master:3`. */
  optionalFields: string[];
  fsType: string;
  /** The mount source: a device path for block filesystems, anything for others ("tmpfs", "none"). */
  source: string;
  /** Per-superblock options (errors=, nouuid, ...). */
  superOptions: string[];
}

export class MountinfoParseError extends Error {
  constructor(readonly file: string, readonly line: number, reason: string) {
    super(`${file}:${line}: ${reason}`);
    this.name = 'MountinfoParseError';
  }
}

/** Decodes the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash). */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

function splitOptions(field: string): string[] {
  return field === '' ? [] : unescapeMountField(field).split(',');
}

/** Parses the whole text of a mountinfo file; `file` only names it in errors. */
export function parseMountinfo(text: string, file: string = MOUNTINFO_PATH): MountEntry[] {
  const entries: MountEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    entries.push(parseMountinfoLine(line, file, i + 1));
  }
  return entries;
}

/** Parses one mountinfo line. Fields are separated by single spaces; empty fields (an empty source) are legal. */
export function parseMountinfoLine(line: string, file: string = MOUNTINFO_PATH, lineNo = 1): MountEntry {
  const f = line.split(' ');
  const sep = f.indexOf('-', 6);
  if (f.length < 10 || sep < 0 || f.length < sep + 4) {
    throw new MountinfoParseError(file, lineNo, `expected "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS", got: ${line}`);
  }
  const mountId = Number(f[0]);
  const parentId = Number(f[1]);
  const dev = /^(\d+):(\d+)$/.exec(f[2]!);
  if (!Number.isInteger(mountId) || !Number.isInteger(parentId) || !dev) {
    throw new MountinfoParseError(file, lineNo, `bad mount id, parent id or major:minor in: ${line}`);
  }
  return {
    mountId,
    parentId,
    major: Number(dev[1]),
    minor: Number(dev[2]),
    root: unescapeMountField(f[3]!),
    mountPoint: unescapeMountField(f[4]!),
    mountOptions: splitOptions(f[5]!),
    optionalFields: f.slice(6, sep).filter((x) => x !== ''),
    fsType: unescapeMountField(f[sep + 1]!),
    source: unescapeMountField(f[sep + 2]!),
    // a superblock option may itself contain an escaped space; anything after is still options
    superOptions: splitOptions(f.slice(sep + 3).join(' ')),
  };
}

export async function readMountinfo(file: string = MOUNTINFO_PATH): Promise<MountEntry[]> {
  return parseMountinfo(await readFile(file, 'utf8'), file);
}

/**
 * The absolute, symlink-free form of `path` as the kernel shows it in
 * mountinfo; undefined when the path does not exist (it can't be a mountpoint).
 */
export async function canonicalPath(path: string): Promise<string | undefined> {
  try {
    return await realpath(resolve(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw e;
  }
}

/**
 * The mount visible at exactly `canonical` (already canonical), or undefined.
 * When mounts are stacked on one directory the visible one is the mount that
 * no other mount at the same place sits on.
 */
export function topMountAt(entries: readonly MountEntry[], canonical: string): MountEntry | undefined {
  const here = entries.filter((e) => e.mountPoint === canonical);
  if (here.length <= 1) return here[0];
  const covered = new Set(here.map((e) => e.parentId));
  const tops = here.filter((e) => !covered.has(e.mountId));
  return tops[tops.length - 1] ?? here[here.length - 1];
}

/** The mount at `path` (resolving symlinks first), or undefined when `path` is not a mountpoint. */
export async function mountAt(path: string, entries?: readonly MountEntry[]): Promise<MountEntry | undefined> {
  const canonical = await canonicalPath(path);
  if (canonical === undefined) return undefined;
  return topMountAt(entries ?? (await readMountinfo()), canonical);
}

export async function isMountpoint(path: string, entries?: readonly MountEntry[]): Promise<boolean> {
  return (await mountAt(path, entries)) !== undefined;
}

function depth(p: string): number {
  return p === '/' ? 0 : p.split('/').length - 1;
}

/**
 * Mounts strictly below `canonicalPrefix` (not the prefix itself), deepest
 * first and, at one place, the most recent first: the order in which they can
 * be unmounted.
 */
export function mountsUnder(entries: readonly MountEntry[], canonicalPrefix: string): MountEntry[] {
  const base = canonicalPrefix.endsWith('/') ? canonicalPrefix : `${canonicalPrefix}/`;
  return entries
    .map((e, order) => ({ e, order }))
    .filter(({ e }) => e.mountPoint.startsWith(base))
    .sort((a, b) => depth(b.e.mountPoint) - depth(a.e.mountPoint) || b.order - a.order)
    .map(({ e }) => e);
}

/** `major:minor` as the kernel prints it. */
export function devString(e: { major: number; minor: number }): string {
  return `${e.major}:${e.minor}`;
}

/** A one-line description for messages: `/dev/loop3 (7:3, ext4) on /backup`. */
export function describeMount(e: MountEntry): string {
  return `${e.source || '(no source)'} (${devString(e)}, ${e.fsType}) on ${e.mountPoint}`;
}
