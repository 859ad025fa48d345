/**
 * An exact, byte-safe record of a directory tree for fidelity tests: take one
 * of the source, one of what a restore produced, and hand both to
 * `tree-compare.ts`.
 *
 * Every entry below the root (and the root itself, path '') is recorded with
 * its type, mode bits (setuid/setgid/sticky included), uid, gid, mtime in
 * nanoseconds, and, by type: the size and a content hash of regular files,
 * the link target bytes of symlinks, the major/minor of devices. Plus xattrs,
 * POSIX ACLs, how much is allocated (sparseness) and which paths share an
 * inode. Paths and link targets stay Buffers throughout; names that are not
 * valid UTF-8 are never decoded. atime and ctime are not recorded: no restore
 * can set ctime, and reading changes atime.
 *
 * How the hard parts are done:
 *  - xattrs and ACLs come from ONE `getfattr -R -P -h -d -m - -e hex` over the
 *    whole tree. Only the root path is an argument; getfattr prints each file
 *    name with its raw bytes (only control characters and backslash escaped as
 *    \ooo), which we decode back to exact bytes. ACLs are the
 *    system.posix_acl_access / _default xattrs, decoded from their binary form
 *    into getfacl's short text ("user::rw-,user:4242:r--,mask::r--,...").
 *    xfs's duplicate trusted.SGI_ACL_* xattrs are left out.
 *  - Content hash (sha256, independent of the product's xxh64 on purpose) is
 *    over the file's logical content in a layout-independent form: for each
 *    4 KiB block (aligned to file offsets) that is not all zeros, its offset
 *    and its bytes. Holes read as zeros, so a sparse and a dense copy of the
 *    same content hash alike; sparseness is compared separately. For a sparse
 *    file (allocated < size) only its data regions are read, found with
 *    SEEK_DATA/SEEK_HOLE through `xfs_io -c 'seek -r -a 0'` on
 *    /proc/<pid>/fd/<fd> (Node's fs has no SEEK_DATA), so a 1 TiB file with
 *    a few MiB of data hashes in milliseconds.
 * Test-only code: commands run through `execFileSync`/`spawnSync` directly.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export type SnapshotEntryType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

export interface SnapshotEntry {
  /** Path relative to the snapshot root, raw bytes; the root itself is an empty Buffer. */
  path: Buffer;
  /** The path for humans: valid UTF-8 shown as is, anything else escaped (see showPath). */
  display: string;
  type: SnapshotEntryType;
  /** st_mode & 0o7777. */
  mode: number;
  uid: number;
  gid: number;
  /** Apparent size; compared for regular files only. */
  size: number;
  mtimeNs: bigint;
  /** Regular files: sha256 (hex) of the non-zero 4 KiB blocks with their offsets. */
  contentHash?: string;
  /** Symlinks: the target's raw bytes. */
  linkTarget?: Buffer;
  devMajor?: number;
  devMinor?: number;
  /** Extended attributes except the POSIX ACL ones, name -> raw value. */
  xattrs: Map<string, Buffer>;
  /** Access ACL beyond the mode bits, getfacl short text; undefined when there is none. */
  aclAccess?: string;
  /** Default ACL of a directory, getfacl short text; undefined when there is none. */
  aclDefault?: string;
  /** st_blocks * 512. */
  allocatedBytes: number;
  /** Regular file with fewer bytes allocated than its size. */
  sparse: boolean;
  /** For diagnostics only; never compared (a copy has other inode numbers). */
  ino: bigint;
  nlink: number;
}

export interface TreeSnapshot {
  /** The absolute root the snapshot was taken of. */
  root: string;
  /** Entries keyed by the hex of their relative path, in byte order of the paths. */
  entries: Map<string, SnapshotEntry>;
  /** Paths (relative) sharing one inode, for every inode with two or more names in the tree; each group sorted. */
  hardlinkGroups: Buffer[][];
}

const BLOCK = 4096;
const ZERO_BLOCK = Buffer.alloc(BLOCK);
const READ_CHUNK = 1024 * 1024; // a multiple of BLOCK

/** Takes a snapshot of everything at and below `root` (never following symlinks). */
export async function snapshotTree(root: string): Promise<TreeSnapshot> {
  const absRoot = path.resolve(root);
  const rootBytes = Buffer.from(absRoot);
  const list: SnapshotEntry[] = [];
  const inodes = new Map<string, Buffer[]>();

  const visit = (rel: Buffer): void => {
    const abs = rel.length === 0 ? rootBytes : Buffer.concat([rootBytes, SLASH, rel]);
    const st = fs.lstatSync(abs, { bigint: true });
    const entry = describe(rel, abs, st);
    list.push(entry);
    if (entry.type !== 'dir' && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const group = inodes.get(key);
      if (group) group.push(rel);
      else inodes.set(key, [rel]);
    }
    if (entry.type === 'dir') {
      const names = fs.readdirSync(abs, { encoding: 'buffer' }).sort(Buffer.compare);
      for (const name of names) visit(rel.length === 0 ? name : Buffer.concat([rel, SLASH, name]));
    }
  };
  visit(Buffer.alloc(0));

  list.sort((a, b) => Buffer.compare(a.path, b.path));
  const entries = new Map(list.map((e) => [e.path.toString('hex'), e]));
  applyXattrs(absRoot, rootBytes, entries);

  const hardlinkGroups = [...inodes.values()]
    .filter((g) => g.length > 1)
    .map((g) => g.sort(Buffer.compare))
    .sort((a, b) => Buffer.compare(a[0], b[0]));
  return { root: absRoot, entries, hardlinkGroups };
}

const SLASH = Buffer.from('/');

function describe(rel: Buffer, abs: Buffer, st: fs.BigIntStats): SnapshotEntry {
  const type = typeOf(st);
  const size = Number(st.size);
  const allocatedBytes = Number(st.blocks) * 512;
  const entry: SnapshotEntry = {
    path: rel,
    display: rel.length === 0 ? '.' : showPath(rel),
    type,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size,
    mtimeNs: st.mtimeNs,
    xattrs: new Map(),
    allocatedBytes,
    sparse: type === 'file' && allocatedBytes < size,
    ino: st.ino,
    nlink: Number(st.nlink),
  };
  if (type === 'file') entry.contentHash = hashContent(abs, size, entry.sparse);
  if (type === 'symlink') entry.linkTarget = fs.readlinkSync(abs, { encoding: 'buffer' });
  if (type === 'char' || type === 'block') {
    const rdev = st.rdev;
    // glibc's gnu_dev_major/minor: 12+20 bits split across the 64-bit dev_t.
    entry.devMajor = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
    entry.devMinor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  }
  return entry;
}

function typeOf(st: fs.BigIntStats): SnapshotEntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

/** See the module comment: sha256 over (offset, bytes) of every non-zero 4 KiB block. */
function hashContent(abs: Buffer, size: number, sparse: boolean): string {
  const hash = createHash('sha256');
  const fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const regions = sparse ? dataRegions(fd, size, abs) : [[0, size] as [number, number]];
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    const offsetBytes = Buffer.alloc(8);
    for (const [start, end] of alignRegions(regions, size)) {
      for (let pos = start; pos < end; ) {
        const want = Math.min(READ_CHUNK, end - pos);
        const got = readFully(fd, buf, want, pos);
        for (let i = 0; i < got; i += BLOCK) {
          const block = buf.subarray(i, Math.min(i + BLOCK, got));
          if (block.equals(ZERO_BLOCK.subarray(0, block.length))) continue;
          offsetBytes.writeBigUInt64BE(BigInt(pos + i));
          hash.update(offsetBytes);
          hash.update(block);
        }
        if (got < want) break; // the file shrank under us; the size field tells
        pos += got;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

function readFully(fd: number, buf: Buffer, want: number, position: number): number {
  let got = 0;
  while (got < want) {
    const n = fs.readSync(fd, buf, got, want - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** Widens regions to 4 KiB boundaries (holes read as zeros, so this changes no hash) and merges overlaps. */
function alignRegions(regions: Array<[number, number]>, size: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [s, e] of regions) {
    const start = Math.floor(s / BLOCK) * BLOCK;
    const end = Math.min(size, Math.ceil(e / BLOCK) * BLOCK);
    if (end <= start) continue;
    const last = out[out.length - 1];
    if (last && start <= last[1]) last[1] = Math.max(last[1], end);
    else out.push([start, end]);
  }
  return out;
}

/** Data regions [start, end) of an open file, via SEEK_DATA/SEEK_HOLE as `xfs_io` reports them. */
function dataRegions(fd: number, size: number, abs: Buffer): Array<[number, number]> {
  const res = spawnSync('xfs_io', ['-r', '-c', 'seek -r -a 0', `/proc/${process.pid}/fd/${fd}`], { encoding: 'utf8' });
  if (res.error || res.status !== 0) {
    throw new Error(`xfs_io seek on ${showPath(abs)} failed: ${res.error?.message ?? res.stderr.trim()}`);
  }
  const regions: Array<[number, number]> = [];
  let dataStart: number | undefined;
  for (const line of res.stdout.split('\n')) {
    const m = /^(DATA|HOLE)\s+(\d+|EOF)$/.exec(line.trim());
    if (!m || m[2] === 'EOF') continue;
    const offset = Number(m[2]);
    if (m[1] === 'DATA') dataStart ??= offset;
    else if (dataStart !== undefined) {
      regions.push([dataStart, offset]);
      dataStart = undefined;
    }
  }
  if (dataStart !== undefined) regions.push([dataStart, size]);
  return regions;
}

/** Reads every entry's xattrs and ACLs with one recursive getfattr and puts them on the entries. */
function applyXattrs(absRoot: string, rootBytes: Buffer, entries: Map<string, SnapshotEntry>): void {
  const res = spawnSync('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', absRoot], {
    maxBuffer: 1024 * 1024 * 1024,
  });
  if (res.error || res.status !== 0) {
    throw new Error(`getfattr -R ${absRoot} failed: ${res.error?.message ?? res.stderr.toString().trim().split('\n').slice(-3).join(' | ')}`);
  }
  let current: SnapshotEntry | undefined;
  for (const line of splitLines(res.stdout)) {
    if (line.length === 0) continue;
    if (line.subarray(0, 8).toString('latin1') === '# file: ') {
      const abs = unquote(line.subarray(8));
      const rel = abs.equals(rootBytes) ? Buffer.alloc(0) : abs.subarray(rootBytes.length + 1);
      current = entries.get(rel.toString('hex'));
      if (!current) throw new Error(`getfattr reported ${showPath(abs)}, which the walk of ${absRoot} did not find`);
      continue;
    }
    if (!current) continue;
    const text = line.toString('latin1');
    const eq = text.indexOf('=');
    const name = unquote(line.subarray(0, eq < 0 ? line.length : eq)).toString('utf8');
    const hex = eq < 0 ? '' : text.slice(eq + 1);
    if (hex !== '' && !hex.startsWith('0x')) throw new Error(`getfattr printed an unexpected value for ${name} on ${current.display}: ${hex}`);
    const value = Buffer.from(hex.slice(2), 'hex');
    if (name === 'system.posix_acl_access') current.aclAccess = aclToText(value, current.display);
    else if (name === 'system.posix_acl_default') current.aclDefault = aclToText(value, current.display);
    else if (!XFS_ACL_XATTRS.has(name)) current.xattrs.set(name, value);
  }
}

/**
 * xfs shows root its ACLs a second time, in their IRIX on-disk form, as these
 * trusted.* xattrs. They duplicate system.posix_acl_*, and another filesystem
 * would store them as plain xattrs, so they are not part of what a tree is.
 */
const XFS_ACL_XATTRS = new Set(['trusted.SGI_ACL_FILE', 'trusted.SGI_ACL_DEFAULT']);

function splitLines(buf: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, start)) {
    lines.push(buf.subarray(start, i));
    start = i + 1;
  }
  if (start < buf.length) lines.push(buf.subarray(start));
  return lines;
}

/** Undoes the attr tools' quoting: `\ooo` is one byte, everything else is itself. */
function unquote(quoted: Buffer): Buffer {
  if (!quoted.includes(0x5c)) return quoted;
  const out: number[] = [];
  for (let i = 0; i < quoted.length; i++) {
    const c = quoted[i];
    if (c === 0x5c && isOctal(quoted[i + 1]) && isOctal(quoted[i + 2]) && isOctal(quoted[i + 3])) {
      out.push(((quoted[i + 1] - 48) << 6) | ((quoted[i + 2] - 48) << 3) | (quoted[i + 3] - 48));
      i += 3;
    } else out.push(c);
  }
  return Buffer.from(out);
}

function isOctal(c: number | undefined): boolean {
  return c !== undefined && c >= 48 && c <= 55;
}

const ACL_TAGS: Record<number, string> = { 0x01: 'user', 0x02: 'user', 0x04: 'group', 0x08: 'group', 0x10: 'mask', 0x20: 'other' };

/** Decodes the kernel's posix_acl xattr (version 2, 8-byte entries) into getfacl's numeric short text. */
function aclToText(value: Buffer, where: string): string {
  if (value.length < 4 || value.readUInt32LE(0) !== 2 || (value.length - 4) % 8 !== 0) {
    throw new Error(`unexpected POSIX ACL xattr on ${where}: 0x${value.toString('hex')}`);
  }
  const parts: string[] = [];
  for (let off = 4; off < value.length; off += 8) {
    const tag = value.readUInt16LE(off);
    const perm = value.readUInt16LE(off + 2);
    const id = value.readUInt32LE(off + 4);
    const name = ACL_TAGS[tag];
    if (!name) throw new Error(`unknown POSIX ACL tag 0x${tag.toString(16)} on ${where}`);
    const qualifier = tag === 0x02 || tag === 0x08 ? String(id) : '';
    const rwx = (perm & 4 ? 'r' : '-') + (perm & 2 ? 'w' : '-') + (perm & 1 ? 'x' : '-');
    parts.push(`${name}:${qualifier}:${rwx}`);
  }
  return parts.join(',');
}

/**
 * A path for messages: printable ASCII and valid multi-byte UTF-8 as they
 * are; backslash, newline, tab and every other byte escaped (\\, \n, \t,
 * \xHH), so two different byte strings never print alike.
 */
export function showPath(bytes: Buffer): string {
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const c = bytes[i];
    if (c === 0x5c) { out += '\\\\'; i++; continue; }
    if (c === 0x0a) { out += '\\n'; i++; continue; }
    if (c === 0x09) { out += '\\t'; i++; continue; }
    if (c >= 0x20 && c < 0x7f) { out += String.fromCharCode(c); i++; continue; }
    const len = utf8SequenceLength(bytes, i);
    if (len > 1) {
      out += bytes.subarray(i, i + len).toString('utf8');
      i += len;
    } else {
      out += '\\x' + c.toString(16).padStart(2, '0');
      i++;
    }
  }
  return out;
}

/** Length of the valid, shortest-form UTF-8 sequence of 2-4 bytes starting at i, or 0. */
function utf8SequenceLength(b: Buffer, i: number): number {
  const c = b[i];
  const len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (len === 0 || i + len > b.length) return 0;
  for (let k = 1; k < len; k++) if ((b[i + k] & 0xc0) !== 0x80) return 0;
  if (c === 0xe0 && b[i + 1] < 0xa0) return 0; // overlong
  if (c === 0xed && b[i + 1] >= 0xa0) return 0; // surrogates
  if (c === 0xf0 && b[i + 1] < 0x90) return 0; // overlong
  if (c === 0xf4 && b[i + 1] >= 0x90) return 0; // > U+10FFFF
  return len;
}

/** Finds an entry by its relative path (Buffer, or a string for UTF-8 paths). */
export function entryAt(snapshot: TreeSnapshot, rel: Buffer | string): SnapshotEntry | undefined {
  return snapshot.entries.get((typeof rel === 'string' ? Buffer.from(rel) : rel).toString('hex'));
}
