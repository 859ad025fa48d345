/**
 * Numeric header fields of tar blocks: zero-padded octal as GNU tar writes it
 * (width-1 digits and a NUL), and on reading also the GNU base-256 form (first
 * byte 0x80 positive / 0xff negative) that GNU-format archives use for values
 * that do not fit, e.g. uid 3000000000 or mtimes before 1970.
 *
 * Written digit by digit into the caller's block, because the writer encodes
 * one header per file and must not allocate per field.
 */

const LIMITS = Array.from({ length: 13 }, (_, width) => (width === 0 ? 0 : 8 ** (width - 1) - 1));

/** Largest value that fits in an octal field of `width` bytes (width-1 digits; width <= 12). */
export function octalLimit(width: number): number {
  return LIMITS[width]!;
}

/**
 * Writes `value` as width-1 zero-padded octal digits plus NUL at buf[off..off+width).
 * Returns false (and writes nothing) when it does not fit; the caller then
 * uses a pax record and leaves the field as zeros.
 */
export function writeOctal(buf: Buffer, off: number, width: number, value: number): boolean {
  if (!(value >= 0 && value <= LIMITS[width]!) || !Number.isInteger(value)) return false;
  let i = off + width - 2;
  let v = value;
  // Division while the value exceeds 32 bits, then cheap shifts.
  while (v > 0x7fffffff) {
    const q = Math.floor(v / 8);
    buf[i--] = 48 + (v - q * 8);
    v = q;
  }
  for (; i >= off; i--) {
    buf[i] = 48 + (v & 7);
    v >>>= 3;
  }
  buf[off + width - 1] = 0;
  return true;
}

/**
 * Parses a numeric header field: octal digits surrounded by optional spaces
 * and terminated by NUL or space, or GNU base-256. An all-NUL/space field is 0.
 * Returns NaN when the field is malformed or the value exceeds 2^53; the
 * caller turns that into a TarFormatError naming the field.
 */
export function readNumber(buf: Buffer, off: number, width: number): number {
  const first = buf[off]!;
  if (first === 0x80 || first === 0xff) return readBase256(buf, off, width);
  let i = off;
  const end = off + width;
  while (i < end && buf[i] === 0x20) i++;
  let value = 0;
  let digits = 0;
  while (i < end) {
    const c = buf[i]!;
    if (c < 48 || c > 55) break;
    value = value * 8 + (c - 48);
    digits++;
    i++;
  }
  // Only terminators (NUL or space) may follow the digits.
  while (i < end) {
    const c = buf[i]!;
    if (c !== 0 && c !== 0x20) return NaN;
    i++;
  }
  if (digits === 0) return 0;
  return value <= Number.MAX_SAFE_INTEGER ? value : NaN;
}

function readBase256(buf: Buffer, off: number, width: number): number {
  const negative = buf[off] === 0xff;
  // Two's complement over the whole field; the marker byte's low bits belong to the number.
  let value = 0;
  for (let i = 0; i < width; i++) {
    let byte = i === 0 ? buf[off]! & 0x7f : buf[off + i]!;
    if (negative) byte = (i === 0 ? byte | 0x80 : byte) ^ 0xff;
    value = value * 256 + byte;
    if (value > Number.MAX_SAFE_INTEGER) return NaN;
  }
  return negative ? -(value + 1) : value;
}
