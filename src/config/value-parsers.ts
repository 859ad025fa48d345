/**
 * Parsers for single configuration values (numbers, yes/no, paths, e-mail
 * addresses, ...). Each returns the typed value or throws InvalidValue whose
 * message says what was expected; settings.ts adds the file, line and key, so
 * the admin sees `file:line: found KEY="...", expected ...`.
 */
import { posix } from 'node:path';

export class InvalidValue extends Error {
  /** @param expected what a valid value looks like, e.g. "a whole number from 1 to 16" */
  constructor(readonly expected: string) {
    super(expected);
    this.name = 'InvalidValue';
  }
}

/** `mount -t` filesystem types: ext4, xfs, ufs, fuse.sshfs, ntfs-3g ... */
export const FSTYPE_RE = /^[a-z0-9][a-z0-9._+-]*$/;

export function parseWholeNumber(raw: string, min: number, max: number, unit = ''): number {
  const suffix = unit ? ` (${unit})` : '';
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new InvalidValue(`a whole number from ${min} to ${max}${suffix}`);
  }
  return Number(raw);
}

const YES = new Set(['yes', 'true', 'on', '1']);
const NO = new Set(['no', 'false', 'off', '0']);

export function parseYesNo(raw: string): boolean {
  const v = raw.toLowerCase();
  if (YES.has(v)) return true;
  if (NO.has(v)) return false;
  throw new InvalidValue('yes or no');
}

export function parseChoice<T extends string>(raw: string, choices: readonly T[]): T {
  if ((choices as readonly string[]).includes(raw)) return raw as T;
  throw new InvalidValue(`one of ${choices.join(', ')}`);
}

/** An absolute path, normalised (no trailing `/`, no `.`/`..` left), so it compares equal to /proc/self/mountinfo. */
export function parseAbsolutePath(raw: string): string {
  if (!raw.startsWith('/') || /[\x00-\x1f]/.test(raw)) throw new InvalidValue('an absolute path (starting with /)');
  const normal = posix.normalize(raw);
  return normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal;
}

/** A block device as `mount` takes it: an absolute path, or UUID=, LABEL=, PARTUUID=, PARTLABEL=. */
export function parseDeviceSpec(raw: string): string {
  if (/^(UUID|LABEL|PARTUUID|PARTLABEL)=[^\s]+$/.test(raw)) return raw;
  if (raw.startsWith('/') && !/\s/.test(raw)) return parseAbsolutePath(raw);
  throw new InvalidValue('a device path such as /dev/sdb3, or UUID=..., LABEL=...');
}

export function parseFsType(raw: string): string {
  if (!FSTYPE_RE.test(raw)) throw new InvalidValue('a filesystem type such as ext4 or xfs');
  return raw;
}

/** Paths separated by blanks; each absolute. */
export function parsePathList(raw: string): string[] {
  const items = raw.split(/\s+/).filter((s) => s !== '');
  return items.map((item) => {
    try {
      return parseAbsolutePath(item);
    } catch {
      throw new InvalidValue(`absolute paths separated by blanks (\`${item}\` is not absolute)`);
    }
  });
}

const ADDRESS_RE =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
const LOCAL_USER_RE = /^[a-z_][a-z0-9._-]*$/i;

/**
 * One mail address. `local` allows a bare local user such as `root`, which
 * sendmail delivers on the host (the old tool's transport) but SMTP cannot.
 */
export function parseMailAddress(raw: string, opts: { local: boolean; displayName?: boolean }): string {
  let address = raw;
  const display = /^(.*?)\s*<([^<>]+)>$/.exec(raw);
  if (display && opts.displayName) address = display[2]!;
  if (ADDRESS_RE.test(address) || (opts.local && LOCAL_USER_RE.test(address))) return raw;
  const forms = opts.local ? 'user@domain or a local user name' : 'user@domain';
  throw new InvalidValue(`a mail address (${forms}${opts.displayName ? ', optionally as "Name <user@domain>"' : ''})`);
}

/** Recipients separated by blanks or commas; the old tool handed them to sendmail as separate arguments. */
export function parseMailList(raw: string, opts: { local: boolean }): string[] {
  const items = raw.split(/[\s,]+/).filter((s) => s !== '');
  if (items.length === 0) throw new InvalidValue('at least one mail address');
  return items.map((item) => {
    try {
      return parseMailAddress(item, opts);
    } catch (err) {
      throw new InvalidValue(`${(err as InvalidValue).expected}, separated by blanks or commas (\`${item}\` is not)`);
    }
  });
}

const WEEKDAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];

/** 0-6 with 0 = Sunday (as `date +%w`, which backup-manager used); 7 and day names (sun, Monday...) are accepted too. */
export function parseWeekday(raw: string): number {
  const v = raw.toLowerCase();
  if (/^[0-7]$/.test(v)) return Number(v) % 7;
  const byName = WEEKDAYS.findIndex((day) => v === day || v === day.slice(0, 3));
  if (byName >= 0) return byName;
  throw new InvalidValue('a weekday: 0-7 (0 and 7 are Sunday) or sun, mon, tue, wed, thu, fri, sat');
}

export function parseSmtpUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new InvalidValue('an SMTP URL such as smtp://mail.example.org:25 or smtps://user:password@mail.example.org');
  }
  if ((url.protocol !== 'smtp:' && url.protocol !== 'smtps:') || url.hostname === '') {
    throw new InvalidValue('an SMTP URL such as smtp://mail.example.org:25 or smtps://user:password@mail.example.org');
  }
  return raw;
}

/** A name used in the report and on the medium as one directory: no `/`, no blanks. */
export function parseHostName(raw: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(raw)) throw new InvalidValue('a host name (letters, digits, `.`, `-`, `_`)');
  return raw;
}

export function parseDomainName(raw: string): string {
  if (!/^[A-Za-z0-9._-]*$/.test(raw)) throw new InvalidValue('a DNS domain name or nothing');
  return raw;
}
