/**
 * Reads the volume table, /etc/xenback_vols (SBCONFIGFILE): one LVM volume to
 * back up per line,
 *
 *     domU|part|device|fstype|mount options[|key=value...]
 *     mydomu1|root|/dev/vgxen/mydomu1-root|ext4|ro,noatime
 *
 * Compatibility with the old tool, which read each line with `while read`,
 * split it with `cut -d '|'` and passed the fields unquoted to its scripts:
 *   - blanks around a field were dropped by that unquoted expansion; so are they here;
 *   - a line with empty mount options was skipped without a word; it is still
 *     skipped (the usual way to switch a volume off), now with a warning;
 *   - fields after the fifth were ignored; they now carry our extensions, so
 *     anything there must be one of them (empty extra fields, e.g. a trailing
 *     `|`, are still fine);
 *   - a last line without a newline was lost by `read`; here it counts.
 * New: blank lines and `#` comment lines (the old tool would have tried to back
 * up a volume named "#..."), and errors for lines the old tool misread, such
 * as its README's `mydomu2|var|/dev/vgxen/mydomu1-var||ufs|ro,ufstype=44bsd`.
 *
 * Extensions (optional fields after the fifth, any order, each at most once):
 *   snapsize=SIZE   this volume's snapshot size instead of SNAPSIZE: 2G, 512M, 20%ORIGIN ...
 *   engine=tar|rsync  this volume's engine instead of ENGINE
 *   partition=N     the LV is a whole disk with a partition table, as HVM guests'
 *                   disks are; back up partition N of it (fstype and options are
 *                   that partition's). Without it the LV itself holds the filesystem.
 * and fstype `raw`: the volume is not mounted (e.g. a Windows or unknown disk);
 * its mount options may be empty and are not used.
 */
import { readFileSync } from 'node:fs';
import { unsafePathComponent } from '../core/names.js';
import { ConfigError, location } from './config-error.js';
import { LVM_SIZE_SYNTAX, parseLvmSize, type LvmSize } from '../host/lvm-size.js';

export type Engine = 'tar' | 'rsync';
export const ENGINES: readonly Engine[] = ['tar', 'rsync'];

export interface VolumeEntry {
  domU: string;
  part: string;
  /** The origin LV's device path, e.g. /dev/vgxen/mydomu1-root. */
  device: string;
  /** `mount -t` type, or 'raw' for a volume that is not mounted. */
  fstype: string;
  /** The fifth field split at commas, as written (empty for raw volumes). */
  mountOptions: string[];
  /** `snapsize=`: overrides SNAPSIZE. */
  snapshotSize?: LvmSize;
  /** `engine=`: overrides ENGINE. */
  engine?: Engine;
  /** `partition=`: back up this partition of a partitioned LV. */
  partition?: number;
  /** Where the line is, for messages. */
  file: string;
  line: number;
}

export interface VolumeTable {
  file: string;
  volumes: VolumeEntry[];
  /** `file:line: ...` notes about lines that were skipped or look odd. */
  warnings: string[];
}

const FIELD_NAMES = ['domU', 'part', 'device', 'fstype', 'mount options'];
const FORMAT = 'domU|part|device|fstype|mount options';
const EXTENSION_KEYS = ['snapsize', 'engine', 'partition'];
const FSTYPE_RE = /^[a-z0-9][a-z0-9._+-]*$/;

export { unsafePathComponent };

export function parseVolumeTable(text: string, file: string): VolumeTable {
  const volumes: VolumeEntry[] = [];
  const warnings: string[] = [];
  const byName = new Map<string, VolumeEntry>();
  const byDevice = new Map<string, VolumeEntry>();
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();

  lines.forEach((rawLine, index) => {
    const line = index + 1;
    const fail = (detail: string): never => {
      throw new ConfigError(file, line, detail);
    };
    const trimmed = rawLine.replace(/\r$/, '').trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    if (trimmed.includes('\\')) fail('found a `\\`, expected plain text (the old tool\'s `read` silently dropped backslashes)');

    const fields = trimmed.split('|').map((f) => f.trim());
    if (fields.length < 5) {
      fail(`found ${fields.length} field${fields.length === 1 ? '' : 's'}, expected 5: ${FORMAT}`);
    }
    const fieldError = (i: number, expected: string): never => {
      const value = fields[i]!;
      const shown = value === '' ? 'is empty' : `is \`${value}\``;
      const name = i < FIELD_NAMES.length ? `field ${i + 1} (${FIELD_NAMES[i]})` : `field ${i + 1}`;
      return fail(`${name} ${shown}, expected ${expected}`);
    };
    fields.forEach((value, i) => {
      if (/\s/.test(value)) fieldError(i, 'no blanks inside a field (the old tool split such a field into separate arguments)');
    });

    const [domU, part, device, fstype, options] = fields as [string, string, string, string, string];
    const nameProblem = (name: string): string => (name === '' ? '' : ` (${unsafePathComponent(name)})`);
    if (unsafePathComponent(domU)) fieldError(0, `a guest name usable as a directory name${nameProblem(domU)}`);
    if (unsafePathComponent(part)) fieldError(1, `a volume name usable as a directory name${nameProblem(part)}`);
    if (!device.startsWith('/') || device.split('/').some((seg) => seg === '..' || seg === '.')) {
      fieldError(2, 'an absolute device path such as /dev/vgxen/mydomu1-root');
    }
    if (!FSTYPE_RE.test(fstype)) {
      const hint = fstype === '' && fields.length > 5 ? ` (this line has ${fields.length} fields: is there a doubled \`|\`?)` : '';
      fieldError(3, `a filesystem type such as ext4, xfs or ufs, or raw for a volume that is not mounted${hint}`);
    }
    const isRaw = fstype === 'raw';
    if (options === '' && !isRaw) {
      warnings.push(`${location(file, line)}: volume ${domU}/${part} skipped: its mount options (field 5) are empty, and the old tool skipped such lines; write e.g. \`ro\` to back it up`);
      return;
    }
    const entry: VolumeEntry = {
      domU,
      part,
      device,
      fstype,
      mountOptions: options.split(',').filter((o) => o !== ''),
      file,
      line,
    };
    if (isRaw && entry.mountOptions.length > 0) {
      warnings.push(`${location(file, line)}: volume ${domU}/${part} is raw (not mounted): its mount options \`${options}\` are not used`);
    }

    const seen = new Set<string>();
    for (let i = 5; i < fields.length; i++) {
      const field = fields[i]!;
      if (field === '') continue;
      const eq = field.indexOf('=');
      const key = eq < 0 ? '' : field.slice(0, eq);
      const value = eq < 0 ? '' : field.slice(eq + 1);
      if (!EXTENSION_KEYS.includes(key)) fieldError(i, `key=value with key ${EXTENSION_KEYS.join(', ')} (fields after the fifth are options)`);
      if (seen.has(key)) fieldError(i, `each of ${EXTENSION_KEYS.join(', ')} at most once per line`);
      seen.add(key);
      if (key === 'snapsize') {
        const size = parseLvmSize(value);
        if (!size) fieldError(i, `snapsize= with ${LVM_SIZE_SYNTAX}`);
        entry.snapshotSize = size;
      } else if (key === 'engine') {
        if (!(ENGINES as readonly string[]).includes(value)) fieldError(i, `engine=${ENGINES.join(' or engine=')}`);
        if (isRaw && value === 'rsync') fieldError(i, 'engine=tar for a raw volume (rsync needs a mounted filesystem)');
        entry.engine = value as Engine;
      } else {
        if (!/^[1-9][0-9]{0,3}$/.test(value)) fieldError(i, 'partition=N with N a partition number from 1');
        entry.partition = Number(value);
      }
    }

    const name = `${domU}/${part}`;
    const first = byName.get(name);
    if (first) fail(`found volume ${name} a second time (first on line ${first.line}), expected each domU|part pair once`);
    byName.set(name, entry);
    const sameDevice = byDevice.get(device);
    if (sameDevice && sameDevice.partition === entry.partition) {
      warnings.push(`${location(file, line)}: device ${device} is also backed up as ${sameDevice.domU}/${sameDevice.part} (line ${sameDevice.line})`);
    } else if (!sameDevice) {
      byDevice.set(device, entry);
    }
    volumes.push(entry);
  });
  return { file, volumes, warnings };
}

/** Reads and parses the table at `file`; an unreadable file is a ConfigError naming it. */
export function readVolumeTable(file: string): VolumeTable {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, undefined, `cannot read the volume table: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return parseVolumeTable(text, file);
}
