/**
 * The tar writer: turns one TarEntry into the header bytes of one member, in
 * the layout GNU tar 1.34 writes with `--format=pax` (so stock `tar -x` restores
 * every detail), for the archiver in src/engines/tar/ which writes the data itself:
 *
 *   out.write(encodeHeader(e));
 *   // file: e.size bytes; sparse: encodeSparseMap(e.sparseMap, e.size), then each region's bytes
 *   out.write(file data);                      // storedSize(e) bytes in total
 *   out.write(Buffer.alloc(padding(storedSize(e))));
 *   ...
 *   out.write(END_OF_ARCHIVE);
 *
 * What goes where (all as observed from GNU tar 1.34):
 * - A pax 'x' header (ustar name "<dir>/PaxHeaders/<base>", mode 0644, owner 0)
 *   precedes the ustar block only when needed: names longer than 100 bytes or
 *   with bytes >= 0x80 ("path", raw bytes), link targets longer than 100 bytes
 *   ("linkpath"; shorter ones stay raw in the ustar field, as GNU does), uid/gid over
 *   2097151, size over 8 GiB, mtime with nanoseconds or before 1970 ("mtime"),
 *   ACLs, xattrs, sparse files, dumpdirs. The ustar fields then hold the value
 *   truncated to the field (names) or 0 (numbers).
 * - Directories are stored with a trailing '/' in the name.
 * - uname/gname stay empty: owners are numeric only, never looked up.
 * - GNU incremental directories: typeflag '5', size 0, pax "GNU.dumpdir" whose
 *   value is the dumpdir bytes (each entry NUL-terminated, list ending in an
 *   extra NUL), which `tar -x -G` uses to delete what the directory no longer holds.
 * - Sparse files: GNU.sparse 1.0, see sparse.ts.
 * - ACLs: "SCHILY.acl.access"/"SCHILY.acl.default" hold the caller's text as is
 *   (see acl.ts for the form to use); xattrs: "SCHILY.xattr.<name>" = raw value,
 *   the name's own bytes (as GNU tar); a member with a name byte >= 0x80 also
 *   carries pax.ts's raw-names "comment" record (older xenbackup wrote such
 *   names double-encoded), which GNU tar ignores.
 *
 * This runs once per file: encodeHeaderInto writes into the caller's staging
 * buffer without allocating; encodeHeader allocates just the result.
 */
import type { TarEntry } from './entry.js';
import { BLOCK_SIZE, F, MAGIC_USTAR, T, writeUstarChecksum } from './header.js';
import { octalLimit, writeOctal } from './octal.js';
import { formatPaxTimeParts, hasHighBytes, paxRecordLength, RAW_XATTR_NAMES_KEYWORD, RAW_XATTR_NAMES_VALUE, writePaxRecord, xattrKeyword } from './pax.js';
import { sparseDataSize, sparseMapSize } from './sparse.js';

export { alignSparseMap, encodeSparseMap, sparseDataSize } from './sparse.js';

/** GNU tar ends an archive with two zero blocks (then pads to its record size, which readers ignore). */
export const END_OF_ARCHIVE: Buffer = Buffer.alloc(2 * BLOCK_SIZE);

/** Zero bytes needed after n bytes of member data to reach the next 512 boundary. */
export function padding(n: number): number {
  const rest = n % BLOCK_SIZE;
  return rest === 0 ? 0 : BLOCK_SIZE - rest;
}

/**
 * Bytes of member data the caller writes after encodeHeader(e), before the
 * padding: e.size for a regular file; for a sparse file the map block(s) plus
 * the data regions (this is the ustar "size" of the member; the apparent size
 * e.size goes into GNU.sparse.realsize); 0 for everything else.
 */
export function storedSize(e: TarEntry): number {
  if (e.type !== 'file') return 0;
  if (e.sparseMap) return sparseMapSize(e.sparseMap, e.size) + sparseDataSize(e.sparseMap);
  return e.size;
}

const TYPEFLAG: Record<TarEntry['type'], number> = {
  file: T.file, dir: T.dir, symlink: T.symlink, hardlink: T.hardlink, char: T.char, block: T.block, fifo: T.fifo,
};

const NS_PER_S = 1_000_000_000n;
const MAX_ID = octalLimit(F.idLen);
const MAX_BIG = octalLimit(F.bigLen);
const SPARSE_DIR = Buffer.from('/GNUSparseFile.0/', 'latin1');
const PAX_DIR = Buffer.from('/PaxHeaders/', 'latin1');
const DOT = Buffer.from('.', 'latin1');

/** All header bytes of one member: [pax 'x' header + records] + ustar block. Length is a multiple of 512. */
export function encodeHeader(e: TarEntry): Buffer {
  encode(e, null, 0);
  return lastAllocated;
}

/**
 * encodeHeader without an allocation: writes the header bytes into out[off..]
 * and returns how many it wrote. If they do not fit, writes nothing and
 * returns minus the number needed, so the caller can flush its buffer and retry.
 */
export function encodeHeaderInto(e: TarEntry, out: Buffer, off: number): number {
  return encode(e, out, off);
}

let lastAllocated: Buffer = Buffer.alloc(0);

function encode(e: TarEntry, target: Buffer | null, base: number): number {
  const path = e.path;
  const typeflag = TYPEFLAG[e.type];
  if (typeflag === undefined) throw new Error(`tar: unknown entry type ${String(e.type)} for ${showBytes(path)}`);
  const pathAscii = checkName(path, 'path', path);
  const isDir = e.type === 'dir';
  const sparse = e.type === 'file' && e.sparseMap !== undefined;
  const nameLength = path.length + (isDir ? 1 : 0);

  let link: Buffer | undefined;
  if (e.type === 'symlink' || e.type === 'hardlink') {
    link = e.linkTarget;
    if (!link || link.length === 0) throw new Error(`tar: ${e.type} ${showBytes(path)} has no link target`);
    checkName(link, 'link target', path);
  }
  if (!Number.isInteger(e.mode) || e.mode < 0 || e.mode > 0o7777) {
    throw new Error(`tar: mode ${e.mode} of ${showBytes(path)} is not a permission value (0..0o7777)`);
  }
  checkCount(e.uid, 'uid', path);
  checkCount(e.gid, 'gid', path);
  if (e.type === 'file') checkCount(e.size, 'size', path);
  if (e.dumpdir && !isDir) throw new Error(`tar: ${showBytes(path)} has a dumpdir but is not a directory`);
  const isDevice = e.type === 'char' || e.type === 'block';
  if (isDevice && (!isDeviceNumber(e.devMajor) || !isDeviceNumber(e.devMinor))) {
    throw new Error(`tar: device ${showBytes(path)} needs device numbers 0..2097151 (got ${e.devMajor}, ${e.devMinor})`);
  }

  const size = storedSize(e);
  const mtimeNs = e.mtimeNs;
  const mtimeBig = mtimeNs / NS_PER_S; // toward zero: both parts carry the sign
  const mtimeS = Number(mtimeBig);
  const mtimeFrac = Number(mtimeNs - mtimeBig * NS_PER_S);
  const mtimeFits = mtimeNs >= 0n && mtimeS <= MAX_BIG;
  const mtimeField = mtimeFits ? mtimeS : 0;

  // Which pax records are needed, and their total length, before writing anything.
  const needPath = !sparse && (nameLength > F.nameLen || !pathAscii);
  // GNU tar 1.34 keeps a non-ASCII link target that fits in the ustar field
  // (only the path gets a pax record for that); tar -x uses the bytes as they are.
  const needLink = link !== undefined && link.length > F.linknameLen;
  const needUid = e.uid > MAX_ID;
  const needGid = e.gid > MAX_ID;
  const needSize = size > MAX_BIG;
  const mtimeText = !mtimeFits || mtimeFrac !== 0 ? formatPaxTimeParts(mtimeNs < 0n, Math.abs(mtimeS), Math.abs(mtimeFrac)) : undefined;
  let paxLength = 0;
  let realSizeText: string | undefined;
  if (sparse) {
    realSizeText = String(e.size);
    paxLength += 2 * paxRecordLength(16, 1) + paxRecordLength(15, path.length) + paxRecordLength(19, realSizeText.length);
  }
  if (needPath) paxLength += paxRecordLength(4, nameLength);
  if (needLink) paxLength += paxRecordLength(8, link!.length);
  if (needUid) paxLength += paxRecordLength(3, String(e.uid).length);
  if (needGid) paxLength += paxRecordLength(3, String(e.gid).length);
  if (needSize) paxLength += paxRecordLength(4, String(size).length);
  if (mtimeText !== undefined) paxLength += paxRecordLength(5, mtimeText.length);
  let aclAccess: Buffer | undefined;
  let aclDefault: Buffer | undefined;
  if (e.aclAccess !== undefined) {
    aclAccess = Buffer.from(e.aclAccess, 'utf8');
    paxLength += paxRecordLength(17, aclAccess.length);
  }
  if (e.aclDefault !== undefined) {
    aclDefault = Buffer.from(e.aclDefault, 'utf8');
    paxLength += paxRecordLength(18, aclDefault.length);
  }
  let xattrKeys: Buffer[] | undefined;
  let rawNamesRecord = false;
  if (e.xattrs && e.xattrs.size > 0) {
    xattrKeys = [];
    for (const [name, value] of e.xattrs) {
      const keyword = xattrKeyword(name);
      xattrKeys.push(keyword);
      paxLength += paxRecordLength(keyword.length, value.length);
      if (!rawNamesRecord && hasHighBytes(name)) {
        rawNamesRecord = true;
        paxLength += paxRecordLength(RAW_XATTR_NAMES_KEYWORD.length, RAW_XATTR_NAMES_VALUE.length);
      }
    }
  }
  if (e.dumpdir) paxLength += paxRecordLength(11, e.dumpdir.length);

  const paxBlocks = paxLength === 0 ? 0 : 1 + Math.ceil(paxLength / BLOCK_SIZE);
  const total = (paxBlocks + 1) * BLOCK_SIZE;
  let out: Buffer;
  if (target === null) {
    // From Node's buffer pool: cheaper than a fresh zeroed ArrayBuffer per file.
    out = lastAllocated = Buffer.allocUnsafe(total).fill(0);
    base = 0;
  } else {
    if (base + total > target.length) return -total;
    out = target;
    out.fill(0, base, base + total);
  }

  if (paxLength > 0) {
    // The 'x' member: "<dir>/PaxHeaders/<base>", as GNU tar names it.
    const slash = path.lastIndexOf(0x2f);
    let pos = base;
    pos = slash < 0 ? putTruncated(out, pos, DOT, 0, 1, base) : putTruncated(out, pos, path, 0, slash, base);
    pos = putTruncated(out, pos, PAX_DIR, 0, PAX_DIR.length, base);
    pos = putTruncated(out, pos, path, slash + 1, path.length, base);
    writeOctal(out, base + F.mode, F.idLen, 0o644);
    writeOctal(out, base + F.uid, F.idLen, 0);
    writeOctal(out, base + F.gid, F.idLen, 0);
    writeOctal(out, base + F.size, F.bigLen, paxLength);
    writeOctal(out, base + F.mtime, F.bigLen, mtimeField);
    out[base + F.typeflag] = T.paxLocal;
    putMagic(out, base + F.magic);
    writeUstarChecksum(out, base, pos - base, 0);

    let off = base + BLOCK_SIZE;
    if (sparse) {
      off = writePaxRecord(out, off, 'GNU.sparse.major', '1');
      off = writePaxRecord(out, off, 'GNU.sparse.minor', '0');
      off = writePaxRecord(out, off, 'GNU.sparse.name', path);
      off = writePaxRecord(out, off, 'GNU.sparse.realsize', realSizeText!);
    }
    if (needPath) off = writePaxRecord(out, off, 'path', path, isDir);
    if (needLink) off = writePaxRecord(out, off, 'linkpath', link!);
    if (needUid) off = writePaxRecord(out, off, 'uid', String(e.uid));
    if (needGid) off = writePaxRecord(out, off, 'gid', String(e.gid));
    if (needSize) off = writePaxRecord(out, off, 'size', String(size));
    if (mtimeText !== undefined) off = writePaxRecord(out, off, 'mtime', mtimeText);
    if (aclAccess) off = writePaxRecord(out, off, 'SCHILY.acl.access', aclAccess);
    if (aclDefault) off = writePaxRecord(out, off, 'SCHILY.acl.default', aclDefault);
    if (rawNamesRecord) off = writePaxRecord(out, off, RAW_XATTR_NAMES_KEYWORD, RAW_XATTR_NAMES_VALUE);
    if (xattrKeys) {
      let i = 0;
      for (const value of e.xattrs!.values()) off = writePaxRecord(out, off, xattrKeys[i++]!, value);
    }
    if (e.dumpdir) writePaxRecord(out, off, 'GNU.dumpdir', e.dumpdir);
  }

  const h = base + paxBlocks * BLOCK_SIZE;
  let pos: number;
  if (sparse) {
    // "<dir>/GNUSparseFile.0/<base>": what a reader without sparse support extracts.
    const slash = path.lastIndexOf(0x2f);
    pos = slash < 0 ? putTruncated(out, h, DOT, 0, 1, h) : putTruncated(out, h, path, 0, slash, h);
    pos = putTruncated(out, pos, SPARSE_DIR, 0, SPARSE_DIR.length, h);
    pos = putTruncated(out, pos, path, slash + 1, path.length, h);
  } else {
    pos = putTruncated(out, h, path, 0, path.length, h);
    if (isDir && pos < h + F.nameLen) out[pos++] = 0x2f;
  }
  writeOctal(out, h + F.mode, F.idLen, e.mode);
  writeOctal(out, h + F.uid, F.idLen, needUid ? 0 : e.uid);
  writeOctal(out, h + F.gid, F.idLen, needGid ? 0 : e.gid);
  writeOctal(out, h + F.size, F.bigLen, needSize ? 0 : size);
  writeOctal(out, h + F.mtime, F.bigLen, mtimeField);
  out[h + F.typeflag] = typeflag;
  const linkLength = link ? Math.min(link.length, F.linknameLen) : 0;
  if (link) link.copy(out, h + F.linkname, 0, linkLength);
  putMagic(out, h + F.magic);
  writeOctal(out, h + F.devmajor, F.devLen, isDevice ? e.devMajor! : 0);
  writeOctal(out, h + F.devminor, F.devLen, isDevice ? e.devMinor! : 0);
  writeUstarChecksum(out, h, pos - h, linkLength);
  return total;
}

function putMagic(out: Buffer, off: number): void {
  for (let i = 0; i < 8; i++) out[off + i] = MAGIC_USTAR[i]!;
}

/** Copies src[start..end) to out at pos, but not past the 100-byte name field at fieldStart. */
function putTruncated(out: Buffer, pos: number, src: Buffer, start: number, end: number, fieldStart: number): number {
  const room = fieldStart + F.nameLen - pos;
  if (room <= 0) return pos;
  const n = Math.min(end - start, room);
  // A byte loop beats Buffer#copy's native call for the short names typical here.
  for (let i = 0; i < n; i++) out[pos + i] = src[start + i]!;
  return pos + n;
}

/** Rejects names a tar member cannot carry; returns whether the name is plain ASCII. */
function checkName(name: Buffer, what: string, path: Buffer): boolean {
  if (name.length === 0) throw new Error(`tar: empty ${what}${what === 'path' ? '' : ` for ${showBytes(path)}`}`);
  let ascii = true;
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!;
    if (c === 0) throw new Error(`tar: ${what} ${showBytes(name)} contains a NUL byte`);
    if (c >= 0x80) ascii = false;
  }
  return ascii;
}

function checkCount(value: number, what: string, path: Buffer): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`tar: ${what} ${value} of ${showBytes(path)} is not a non-negative integer`);
}

function isDeviceNumber(n: number | undefined): boolean {
  return n !== undefined && Number.isInteger(n) && n >= 0 && n <= MAX_ID;
}

/** A name for error messages: printable ASCII as is, other bytes as \xNN. */
export function showBytes(name: Buffer): string {
  let text = '';
  for (const c of name) text += c >= 0x20 && c < 0x7f && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  return `"${text}"`;
}
