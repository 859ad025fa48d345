/**
 * Snapshot sizes as an admin writes them: SNAPSIZE in xenbackup.conf and
 * `snapsize=` in the volume table. Two forms, both lvcreate's own syntax:
 *
 *   - an absolute size for `lvcreate -L`: a number (decimals allowed) with an
 *     optional unit b, s (512-byte sectors), k, m, g, t, p, e in either case,
 *     all powers of 1024, and MiB when no unit is given: 512M, 7G, 1.5t, 100.
 *     The old tool passed SNAPSIZE to `lvcreate -L`, so these mean what they did.
 *   - a share of the origin volume for `lvcreate -l`: N%ORIGIN, 1 <= N <= 100.
 *
 * Parsing is pure; lvm.ts turns the result into lvcreate arguments
 * (lvcreateSizeArgs) and `check` compares `bytes` with the VG's free space.
 * It lives in host/ beside lvm.ts because the syntax is lvcreate's: config
 * parsing (settings.ts, volume-table.ts) uses it, and host/ never imports
 * config/.
 */
export type LvmSize =
  | { kind: 'absolute'; /** as written */ text: string; bytes: number }
  | { kind: 'origin-percent'; text: string; percent: number };

const UNIT_BYTES: Record<string, number> = {
  b: 1,
  s: 512,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  p: 1024 ** 5,
  e: 1024 ** 6,
};

export const LVM_SIZE_SYNTAX = 'an LVM size such as 512M, 7G or 1.5T (no unit: MiB) or N%ORIGIN with N from 1 to 100';

/** The size, or undefined when `text` is neither form. */
export function parseLvmSize(text: string): LvmSize | undefined {
  const pct = /^(\d+)%ORIGIN$/i.exec(text);
  if (pct) {
    const percent = Number(pct[1]);
    return percent >= 1 && percent <= 100 ? { kind: 'origin-percent', text, percent } : undefined;
  }
  const abs = /^(\d+(?:\.\d+)?)([bBsSkKmMgGtTpPeE]?)$/.exec(text);
  if (!abs) return undefined;
  const bytes = Math.round(Number(abs[1]) * UNIT_BYTES[(abs[2] || 'm').toLowerCase()]!);
  return bytes > 0 && Number.isSafeInteger(bytes) ? { kind: 'absolute', text, bytes } : undefined;
}

/** The lvcreate options that request this size for a snapshot. */
export function lvcreateSizeArgs(size: LvmSize): string[] {
  return size.kind === 'absolute' ? ['-L', `${size.bytes}b`] : ['-l', `${size.percent}%ORIGIN`];
}
