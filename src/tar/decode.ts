/**
 * Decodes one member's main header block, together with what preceded it (pax
 * records, GNU long name/link), into a TarEntry. Used by the push parser in
 * read.ts, which owns the byte stream; this module owns the meaning of fields.
 *
 * Accepts what GNU tar 1.34 writes in pax, GNU and ustar format, and v7
 * headers: names from pax path > GNU 'L' > ustar prefix/name; numbers from
 * pax > octal/base-256 fields; sparse files in pax 1.0, 0.1, 0.0 and old GNU
 * 'S' form; dumpdirs from pax GNU.dumpdir or GNU 'D' members.
 *
 * Names are kept as stored except that trailing slashes are removed (the
 * TarEntry convention); "./" prefixes and absolute names are left for the
 * restore code to judge.
 */
import type { EntryType, TarEntry } from './entry.js';
import { TarFormatError } from './errors.js';
import { F, T, fieldLength } from './header.js';
import { readNumber } from './octal.js';
import { legacyXattrName, parseDecimal, parsePaxTime, RAW_XATTR_NAMES_KEYWORD, RAW_XATTR_NAMES_VALUE, unescapeXattrName, type PaxRecord } from './pax.js';
import type { SparseMap } from './sparse.js';

/** Which header dialect a block is written in, from its magic. */
export type HeaderFormat = 'ustar' | 'gnu' | 'v7';

export function headerFormat(block: Buffer, b: number): HeaderFormat {
  const m = F.magic;
  if (block[b + m] === 0x75 && block[b + m + 1] === 0x73 && block[b + m + 2] === 0x74 && block[b + m + 3] === 0x61 && block[b + m + 4] === 0x72) {
    if (block[b + m + 5] === 0) return 'ustar';
    if (block[b + m + 5] === 0x20) return 'gnu';
  }
  return 'v7';
}

/** What the parser collected for the member before its main header. */
export interface MemberContext {
  /** Records of the member's own 'x' header(s), in order. */
  local: PaxRecord[];
  /** Records of all 'g' headers so far, latest value per keyword. */
  global: Map<string, Buffer>;
  longName?: Buffer;
  longLink?: Buffer;
}

/** How the member's stored data is laid out. */
export type DataLayout =
  | { kind: 'plain' } // file data, e.size bytes
  | { kind: 'skip' } // data nobody wants (e.g. a hard link carrying data), skipped
  | { kind: 'none' } // directories: no data whatever the size says (as GNU tar)
  | { kind: 'dumpdir' } // GNU 'D': the data is the dumpdir
  | { kind: 'sparse'; regions: SparseMap } // regions known from the headers
  | { kind: 'sparse1' } // pax 1.0: the map starts the data
  | { kind: 'gnuSparse'; regions: SparseMap; extended: boolean }; // old GNU 'S', maybe with extension blocks

export interface DecodedMember {
  entry: TarEntry;
  /** Bytes of data following the header(s) in the stream (ustar/pax size). */
  storedSize: number;
  layout: DataLayout;
}

const NS_PER_S = 1_000_000_000n;

/** Decodes the main header at block[b..b+512), which was read at stream offset `at`. */
export function decodeMember(block: Buffer, b: number, at: number, ctx: MemberContext, source?: string): DecodedMember {
  const fail = (what: string): never => {
    throw new TarFormatError(what, at, source);
  };
  const format = headerFormat(block, b);
  const pax = new Map(ctx.global);
  for (const [keyword, value] of ctx.local) pax.set(keyword, value);
  // An empty value unsets a keyword (pax semantics), except for xattrs, which may be empty.
  for (const [keyword, value] of pax) if (value.length === 0 && !keyword.startsWith('SCHILY.xattr.')) pax.delete(keyword);

  const field = (off: number, width: number, name: string): number => {
    const n = readNumber(block, b + off, width);
    return Number.isNaN(n) ? fail(`bad ${name} field in tar header`) : n;
  };
  const paxNumber = (keyword: string): number | undefined => {
    const value = pax.get(keyword);
    if (value === undefined) return undefined;
    const n = parseDecimal(value);
    return Number.isNaN(n) ? fail(`bad pax ${keyword} value "${value.toString('latin1')}"`) : n;
  };

  const typeflag = block[b + F.typeflag]!;
  let path: Buffer;
  const paxPath = pax.get('GNU.sparse.name') ?? pax.get('path');
  if (paxPath) path = Buffer.from(paxPath);
  else if (ctx.longName) path = ctx.longName;
  else {
    const nameLength = fieldLength(block, b + F.name, F.nameLen);
    const prefixLength = format === 'ustar' ? fieldLength(block, b + F.prefix, F.prefixLen) : 0;
    if (prefixLength > 0) {
      path = Buffer.alloc(prefixLength + 1 + nameLength);
      block.copy(path, 0, b + F.prefix, b + F.prefix + prefixLength);
      path[prefixLength] = 0x2f;
      block.copy(path, prefixLength + 1, b + F.name, b + F.name + nameLength);
    } else {
      path = Buffer.from(block.subarray(b + F.name, b + F.name + nameLength));
    }
  }
  if (path.length === 0) fail('tar member with an empty name');
  const trailingSlash = path[path.length - 1] === 0x2f;
  let end = path.length;
  while (end > 1 && path[end - 1] === 0x2f) end--;
  if (end < path.length) path = path.subarray(0, end);

  let type: EntryType;
  let layout: DataLayout = { kind: 'skip' };
  switch (typeflag) {
    case T.file: case T.oldFile: case T.contiguous:
      // Old archives mark directories as regular files whose name ends in '/'.
      type = trailingSlash ? 'dir' : 'file';
      layout = trailingSlash ? { kind: 'none' } : { kind: 'plain' };
      break;
    case T.dir: type = 'dir'; layout = { kind: 'none' }; break;
    case T.gnuDumpdir: type = 'dir'; layout = { kind: 'dumpdir' }; break;
    case T.hardlink: type = 'hardlink'; break;
    case T.symlink: type = 'symlink'; break;
    case T.char: type = 'char'; break;
    case T.block: type = 'block'; break;
    case T.fifo: type = 'fifo'; break;
    case T.gnuSparse: type = 'file'; layout = { kind: 'gnuSparse', regions: [], extended: false }; break;
    default: {
      const shown = typeflag >= 0x20 && typeflag < 0x7f ? `'${String.fromCharCode(typeflag)}'` : `0x${typeflag.toString(16)}`;
      return fail(`unsupported tar member type ${shown}`);
    }
  }

  const mode = field(F.mode, F.idLen, 'mode') & 0o7777;
  const uid = paxNumber('uid') ?? field(F.uid, F.idLen, 'uid');
  const gid = paxNumber('gid') ?? field(F.gid, F.idLen, 'gid');
  const storedSize = paxNumber('size') ?? field(F.size, F.bigLen, 'size');
  let mtimeNs: bigint;
  const paxMtime = pax.get('mtime');
  if (paxMtime) {
    const ns = parsePaxTime(paxMtime);
    mtimeNs = ns ?? fail(`bad pax mtime value "${paxMtime.toString('latin1')}"`);
  } else {
    mtimeNs = BigInt(field(F.mtime, F.bigLen, 'mtime')) * NS_PER_S;
  }

  const entry: TarEntry = { path, type, mode, uid, gid, size: 0, mtimeNs };

  if (type === 'symlink' || type === 'hardlink') {
    const paxLink = pax.get('linkpath');
    if (paxLink) entry.linkTarget = Buffer.from(paxLink);
    else if (ctx.longLink) entry.linkTarget = ctx.longLink;
    else entry.linkTarget = Buffer.from(block.subarray(b + F.linkname, b + F.linkname + fieldLength(block, b + F.linkname, F.linknameLen)));
    if (entry.linkTarget.length === 0) fail(`${type} without a target`);
  }
  if (type === 'char' || type === 'block') {
    entry.devMajor = paxNumber('SCHILY.devmajor') ?? (format === 'v7' ? 0 : field(F.devmajor, F.devLen, 'devmajor'));
    entry.devMinor = paxNumber('SCHILY.devminor') ?? (format === 'v7' ? 0 : field(F.devminor, F.devLen, 'devminor'));
  }

  // Names as byte strings (keywords are decoded latin1); without the raw-names record, the old double encoding is undone.
  let rawNames: boolean | undefined;
  for (const [keyword, value] of pax) {
    if (keyword.startsWith('SCHILY.xattr.')) {
      rawNames ??= pax.get(RAW_XATTR_NAMES_KEYWORD)?.equals(RAW_XATTR_NAMES_VALUE) ?? false;
      const name = unescapeXattrName(keyword.slice(13));
      (entry.xattrs ??= new Map()).set(rawNames ? name : legacyXattrName(name), Buffer.from(value));
    }
  }
  // Red Hat's tar stores the SELinux label under its own keyword.
  const selinux = pax.get('RHT.security.selinux');
  if (selinux && !entry.xattrs?.has('security.selinux')) (entry.xattrs ??= new Map()).set('security.selinux', Buffer.from(selinux));
  const aclAccess = pax.get('SCHILY.acl.access');
  if (aclAccess) entry.aclAccess = aclAccess.toString('utf8');
  const aclDefault = pax.get('SCHILY.acl.default');
  if (aclDefault) entry.aclDefault = aclDefault.toString('utf8');
  const dumpdir = pax.get('GNU.dumpdir');
  if (dumpdir && type === 'dir') entry.dumpdir = Buffer.from(dumpdir);

  if (type === 'file' && layout.kind === 'plain') {
    entry.size = storedSize;
    const sparse = decodePaxSparse(ctx.local, pax, paxNumber, fail);
    if (sparse) {
      entry.size = sparse.realSize;
      layout = sparse.regions ? { kind: 'sparse', regions: sparse.regions } : { kind: 'sparse1' };
    }
  } else if (layout.kind === 'gnuSparse') {
    entry.size = field(F.gnuRealSize, F.bigLen, 'realsize');
    const regions: SparseMap = [];
    for (let i = 0; i < F.gnuSparseEntries; i++) {
      const off = F.gnuSparse + i * 24;
      if (block[b + off] === 0) break;
      regions.push([field(off, 12, 'sparse offset'), field(off + 12, 12, 'sparse numbytes')]);
    }
    layout = { kind: 'gnuSparse', regions, extended: block[b + F.gnuIsExtended] !== 0 };
  }
  return { entry, storedSize, layout };
}

/** The pax sparse formats: 1.0 (map in the data), 0.1 (GNU.sparse.map), 0.0 (offset/numbytes pairs). */
function decodePaxSparse(
  local: PaxRecord[],
  pax: Map<string, Buffer>,
  paxNumber: (keyword: string) => number | undefined,
  fail: (what: string) => never,
): { realSize: number; regions?: SparseMap } | undefined {
  const major = paxNumber('GNU.sparse.major');
  const minor = paxNumber('GNU.sparse.minor');
  if (major !== undefined) {
    if (major !== 1 || minor !== 0) fail(`unsupported GNU sparse format ${major}.${minor}`);
    const realSize = paxNumber('GNU.sparse.realsize') ?? paxNumber('GNU.sparse.size');
    if (realSize === undefined) fail('GNU sparse 1.0 member without GNU.sparse.realsize');
    return { realSize: realSize! };
  }
  const map = pax.get('GNU.sparse.map');
  if (map) {
    const numbers = map.toString('latin1').split(',').map((s) => (/^\d{1,16}$/.test(s) ? Number(s) : NaN));
    if (numbers.length % 2 !== 0 || numbers.some(Number.isNaN)) fail('bad GNU.sparse.map value');
    const regions: SparseMap = [];
    for (let i = 0; i < numbers.length; i += 2) regions.push([numbers[i]!, numbers[i + 1]!]);
    return { realSize: paxNumber('GNU.sparse.size') ?? fail('GNU sparse 0.1 member without GNU.sparse.size'), regions };
  }
  if (pax.has('GNU.sparse.offset') || pax.has('GNU.sparse.size')) {
    // 0.0 repeats offset/numbytes records; only their order pairs them.
    const regions: SparseMap = [];
    let offset: number | undefined;
    for (const [keyword, value] of local) {
      if (keyword === 'GNU.sparse.offset') offset = parseDecimal(value);
      else if (keyword === 'GNU.sparse.numbytes') {
        const length = parseDecimal(value);
        if (offset === undefined || Number.isNaN(offset) || Number.isNaN(length)) fail('bad GNU.sparse.offset/numbytes records');
        regions.push([offset!, length]);
        offset = undefined;
      }
    }
    return { realSize: paxNumber('GNU.sparse.size') ?? fail('GNU sparse 0.0 member without GNU.sparse.size'), regions };
  }
  return undefined;
}
