/**
 * The one owner of the names that become paths on the medium: the host
 * folder, a volume's domU and part folders, and backup ids. The rules are
 * those of the config (HOSTN) and the volume table, applied to every
 * command's arguments and to every name read back from the medium, so no
 * name can climb out of, or point beside, the folder it belongs in.
 */

/** A name the user gave or the medium holds that cannot be used as a path: exit 2 when typed, damage when read. */
export class NameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NameError';
  }
}

const HOST_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Why `name` is unusable as a host folder (HOSTN's rule), or undefined when it is fine. */
export function hostNameProblem(name: string): string | undefined {
  if (name.length > 253) return 'it is longer than 253 characters';
  if (!HOST_RE.test(name)) return 'expected a host name: a letter or digit, then letters, digits, `.`, `-`, `_`';
  return undefined;
}

export function checkHostName(name: string, what = 'host'): string {
  const problem = hostNameProblem(name);
  if (problem) throw new NameError(`${what} ${JSON.stringify(name)} is not usable: ${problem}`);
  return name;
}

/** Why `name` is unusable as one path component (a domU or part of the volume table), or undefined when it is fine. */
export function unsafePathComponent(name: string): string | undefined {
  if (name === '') return 'it is empty';
  if (name === '.' || name === '..') return `\`${name}\` would leave its directory`;
  if (name.includes('/')) return 'it contains `/`';
  if (/[\s\x00-\x1f\x7f]/.test(name)) return 'it contains a blank or control character';
  if (Buffer.byteLength(name) > 255) return 'it is longer than 255 bytes';
  return undefined;
}

/** DOMU/PART, each part a name the volume table accepts. */
export function parseVolumeName(v: string): { domU: string; part: string } {
  const slash = v.indexOf('/');
  const domU = slash < 0 ? v : v.slice(0, slash);
  const part = slash < 0 ? '' : v.slice(slash + 1);
  const problem = slash < 0 ? 'it has no `/`' : unsafePathComponent(domU) ?? unsafePathComponent(part);
  if (problem) throw new NameError(`volume ${JSON.stringify(v)} must be DOMU/PART, two names usable as directory names (${problem}), e.g. mydomu1/root`);
  return { domU, part };
}

/** A backup id: the backup's UTC start time to the second, e.g. 20261127T013600Z. */
export const BACKUP_ID_RE = /^\d{8}T\d{6}Z$/;

export function isBackupId(s: unknown): s is string {
  return typeof s === 'string' && BACKUP_ID_RE.test(s) && !Number.isNaN(timeOfIdOrNaN(s));
}

function timeOfIdOrNaN(id: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(id);
  if (!m) return NaN;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return NaN;
  return Date.UTC(y, mo - 1, d, h, mi, s);
}

/** The time a backup id names. */
export function timeOfId(id: string): Date {
  const t = timeOfIdOrNaN(id);
  if (Number.isNaN(t)) throw new NameError(`"${id}" is not a backup id (expected e.g. 20261127T013600Z)`);
  return new Date(t);
}

export function backupIdFor(time: Date): string {
  return time.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}
