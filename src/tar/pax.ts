/**
 * pax extended header records ("<len> <keyword>=<value>\n", POSIX.1-2001):
 * encoding straight into the writer's result buffer, decoding into
 * (keyword, raw value) pairs for the reader, and the pax decimal time form.
 *
 * Values are raw bytes both ways. GNU tar 1.34 does the same for names that
 * are not valid UTF-8: it tries to convert to UTF-8, fails, and stores the
 * bytes as they are, without `hdrcharset` (which 1.34 does not know and warns
 * about). On extraction it again fails to convert and uses the bytes as they
 * are, in C and C.UTF-8 locales alike, so the exact bytes come back.
 */
import { TarFormatError } from './errors.js';

function decimalDigits(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

/** Total bytes of one record whose keyword and value have these byte lengths. */
export function paxRecordLength(keywordLength: number, valueLength: number): number {
  const payload = keywordLength + valueLength + 3; // ' ', '=', '\n'
  const d = decimalDigits(payload);
  const len = payload + d;
  // The length counts its own digits; adding them can add one more digit.
  return decimalDigits(len) > d ? len + 1 : len;
}

/**
 * Writes one record at buf[off..]; `keyword` and string values must be ASCII
 * (numbers, fixed keywords). `slash` appends a '/' to the value (directory
 * names, without copying the name). Returns the offset after the record.
 */
export function writePaxRecord(buf: Buffer, off: number, keyword: string | Buffer, value: string | Buffer, slash = false): number {
  const valueLength = value.length + (slash ? 1 : 0);
  const len = paxRecordLength(keyword.length, valueLength);
  off = putAscii(buf, off, String(len));
  buf[off++] = 0x20;
  off = typeof keyword === 'string' ? putAscii(buf, off, keyword) : putBytes(buf, off, keyword);
  buf[off++] = 0x3d;
  off = typeof value === 'string' ? putAscii(buf, off, value) : putBytes(buf, off, value);
  if (slash) buf[off++] = 0x2f;
  buf[off++] = 0x0a;
  return off;
}

// Byte loops rather than Buffer#write/#copy: for the few bytes of a typical
// record they are several times cheaper than the native call.
function putAscii(buf: Buffer, off: number, text: string): number {
  for (let i = 0; i < text.length; i++) buf[off++] = text.charCodeAt(i);
  return off;
}

function putBytes(buf: Buffer, off: number, bytes: Buffer): number {
  if (bytes.length > 64) return off + bytes.copy(buf, off);
  for (let i = 0; i < bytes.length; i++) buf[off++] = bytes[i]!;
  return off;
}

/**
 * One decoded record: keyword as a byte string (latin1: one char per byte, so
 * an xattr name in a `SCHILY.xattr.` keyword keeps its exact bytes; the
 * standard keywords are ASCII), value as the raw bytes.
 */
export type PaxRecord = [keyword: string, value: Buffer];

/**
 * Splits the data of an 'x' or 'g' member into records. `baseOffset` is the
 * stream offset of data[0], used in error messages. Trailing NUL padding (some
 * writers add it) ends the list.
 */
export function parsePaxRecords(data: Buffer, baseOffset: number, source?: string): PaxRecord[] {
  const records: PaxRecord[] = [];
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break;
    let len = 0;
    let i = pos;
    while (i < data.length && data[i]! >= 48 && data[i]! <= 57 && i - pos < 12) {
      len = len * 10 + (data[i]! - 48);
      i++;
    }
    if (i === pos || data[i] !== 0x20 || len < i - pos + 4 || pos + len > data.length) {
      throw new TarFormatError('bad pax record length', baseOffset + pos, source);
    }
    const end = pos + len - 1; // index of the closing '\n'
    if (data[end] !== 0x0a) throw new TarFormatError('pax record does not end in a newline', baseOffset + end, source);
    const eq = data.indexOf(0x3d, i + 1);
    if (eq < 0 || eq >= end || eq === i + 1) throw new TarFormatError('pax record without keyword=value', baseOffset + pos, source);
    records.push([data.toString('latin1', i + 1, eq), data.subarray(eq + 1, end)]);
    pos += len;
  }
  return records;
}

const NS_PER_S = 1_000_000_000n;

/**
 * pax time value for a time in ns since the epoch: "<s>" or "<s>.<fraction>"
 * with trailing zeros dropped, as GNU tar writes it ("1577836800.123456789",
 * "1795743686.78228907", "-315619200").
 */
export function formatPaxTime(ns: bigint): string {
  const seconds = ns / NS_PER_S; // truncates toward zero, so both parts carry the sign
  return formatPaxTimeParts(ns < 0n, Math.abs(Number(seconds)), Math.abs(Number(ns - seconds * NS_PER_S)));
}

/** formatPaxTime from already split parts (the writer has them at hand). */
export function formatPaxTimeParts(negative: boolean, absSeconds: number, absNanos: number): string {
  let text = negative ? '-' + absSeconds : String(absSeconds);
  if (absNanos !== 0) {
    let nanos = absNanos;
    let digits = 9;
    while (nanos % 10 === 0) {
      nanos /= 10;
      digits--;
    }
    text += '.' + String(nanos).padStart(digits, '0');
  }
  return text;
}

/** Parses a pax time value to ns; digits beyond ns are truncated. Null if malformed. */
export function parsePaxTime(value: Buffer): bigint | null {
  let i = 0;
  let negative = false;
  if (value[0] === 0x2d) {
    negative = true;
    i = 1;
  }
  const start = i;
  while (i < value.length && value[i]! >= 48 && value[i]! <= 57) i++;
  if (i === start || i - start > 15) return null;
  let ns = BigInt(value.toString('latin1', start, i)) * NS_PER_S;
  if (i < value.length) {
    if (value[i] !== 0x2e) return null;
    i++;
    let fraction = 0;
    let scale = 100_000_000;
    const fracStart = i;
    while (i < value.length && value[i]! >= 48 && value[i]! <= 57) {
      // Digits below 1 ns are checked but not added.
      if (scale >= 1) fraction += (value[i]! - 48) * scale;
      scale /= 10;
      i++;
    }
    if (i === fracStart || i !== value.length) return null;
    ns += BigInt(fraction);
  }
  return negative ? -ns : ns;
}

/** Parses a non-negative decimal integer value (sizes, ids, sparse numbers); NaN if malformed. */
export function parseDecimal(value: Buffer): number {
  if (value.length === 0 || value.length > 16) return NaN;
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c < 48 || c > 57) return NaN;
    n = n * 10 + (c - 48);
  }
  return n <= Number.MAX_SAFE_INTEGER ? n : NaN;
}

/**
 * Keyword for an xattr: "SCHILY.xattr." + the name's bytes with '%' and '='
 * escaped as "%25" and "%3D", as GNU tar 1.34 does ('=' would end the
 * keyword). Names are byte strings (latin1, one char per byte), as
 * native/xbfs.c lists them and takes them back: the keyword holds the name's
 * own bytes, UTF-8 or not, which GNU tar restores as they are.
 */
export function xattrKeyword(name: string): Buffer {
  const escaped = name.includes('%') || name.includes('=') ? name.replace(/%/g, '%25').replace(/=/g, '%3D') : name;
  return Buffer.from('SCHILY.xattr.' + escaped, 'latin1');
}

/** Inverse of xattrKeyword's escaping, for the part after "SCHILY.xattr.". */
export function unescapeXattrName(escaped: string): string {
  return escaped.includes('%') ? escaped.replace(/%3D/g, '=').replace(/%25/g, '%') : escaped;
}

/**
 * Versions of xenbackup before this one wrote an xattr name's bytes taken as
 * Latin-1 and encoded as UTF-8 (user.\xe9 became "user.é" in UTF-8, user.été
 * became "user.Ã©tÃ©"). Such a keyword cannot be told by its bytes from a
 * raw UTF-8 name whose characters are all below U+0100 (user.été written
 * raw), so a member whose xattr names hold bytes >= 0x80 now carries this
 * record: "comment" is a standard pax keyword that no reader acts on (GNU
 * tar 1.34 ignores it without a warning). Its absence marks the old form;
 * an archive of another writer with such a UTF-8 name (no record either)
 * would be read as the old form too, which only matters for archives
 * xenbackup did not write.
 */
export const RAW_XATTR_NAMES_KEYWORD = 'comment';
export const RAW_XATTR_NAMES_VALUE = Buffer.from('xenbackup: SCHILY.xattr names are raw bytes');

/** True when a name (byte string) has a byte >= 0x80: its member carries the raw-names record. */
export function hasHighBytes(name: string): boolean {
  for (let i = 0; i < name.length; i++) if (name.charCodeAt(i) >= 0x80) return true;
  return false;
}

/**
 * The xattr name (byte string) of the part after "SCHILY.xattr." of a
 * keyword, in a member without the raw-names record: the old double
 * encoding undone when the bytes are UTF-8 of characters below U+0100 only
 * (the only form the old writer produced); any other bytes as they are (an
 * archive of another writer).
 */
export function legacyXattrName(name: string): string {
  if (!hasHighBytes(name)) return name;
  const text = Buffer.from(name, 'latin1').toString('utf8');
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0xff) return name;
  return Buffer.byteLength(text, 'utf8') === name.length ? text : name;
}
