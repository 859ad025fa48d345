/**
 * Migration from backup-manager, which the old tool drove: if its config
 * (BM_CONFIGFILE, default /etc/backup-manager.conf) is present, the few
 * settings that have a counterpart here are taken from it, so a host keeps
 * its retention, full-backup day and compression after switching over. Keys
 * set in xenbackup.conf win (settings.ts applies that precedence).
 *
 *   BM_ARCHIVE_TTL                    -> ARCHIVE_TTL_DAYS
 *   BM_TARBALLINC_MASTERDATETYPE=weekly,  ..VALUE=N -> FULL_WEEKDAY=N  (0 = Sunday, as `date +%w`)
 *   BM_TARBALLINC_MASTERDATETYPE=monthly, ..VALUE=N -> FULL_MONTHDAY=N
 *                                        (an empty VALUE meant 1 to backup-manager)
 *   BM_TARBALL_FILETYPE  tar -> none, tar.gz -> gzip, tar.zst -> zstd,
 *                        tar.bz2 / tar.xz / tar.lzma / zip / dar -> zstd (noted)
 *
 * The file is a foreign, much larger shell file (arrays, `declare`, variables
 * from bash's environment such as $HOSTNAME): statements we cannot read are
 * skipped, unless they set one of the keys above. Nothing is reported unless
 * the value is actually used.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from './config-error.js';
import { parseShellAssignments, type Assignment, type ShellParseOptions } from './shell-assignments.js';

export type MigratedKey = 'ARCHIVE_TTL_DAYS' | 'FULL_WEEKDAY' | 'FULL_MONTHDAY' | 'COMPRESSION';

export interface MigratedValue {
  /** Our key this value stands in for. */
  key: MigratedKey;
  /** The value in our vocabulary (undefined when `problem` is set). */
  raw?: string;
  file: string;
  line: number;
  /** What backup-manager.conf said, for messages: `BM_ARCHIVE_TTL="5"`. */
  source: string;
  /** Something lost in translation; worth a warning when the value is used. */
  note?: string;
  /** The backup-manager value makes no sense here; an error when the value is used. */
  problem?: string;
}

export interface BackupManagerSettings {
  file: string;
  values: MigratedValue[];
}

const TTL = 'BM_ARCHIVE_TTL';
const DATETYPE = 'BM_TARBALLINC_MASTERDATETYPE';
const DATEVALUE = 'BM_TARBALLINC_MASTERDATEVALUE';
const FILETYPE = 'BM_TARBALL_FILETYPE';
const USED_KEYS = [TTL, DATETYPE, DATEVALUE, FILETYPE];

const FILETYPE_TO_COMPRESSION: Record<string, string> = { tar: 'none', 'tar.gz': 'gzip', 'tar.zst': 'zstd' };

const shown = (a: Assignment): string => `${a.key}="${a.value}"`;

export function migrateBackupManagerText(
  text: string,
  file: string,
  opts: Pick<ShellParseOptions, 'env' | 'host' | 'which'> = {},
): BackupManagerSettings {
  const parsed = parseShellAssignments(text, file, { ...opts, undefinedVariables: 'empty', onError: 'skip' });
  const values: MigratedValue[] = [];

  for (const skip of parsed.skipped) {
    if (skip.key === undefined || !USED_KEYS.includes(skip.key)) continue;
    const key: MigratedKey = skip.key === TTL ? 'ARCHIVE_TTL_DAYS' : skip.key === FILETYPE ? 'COMPRESSION' : 'FULL_WEEKDAY';
    values.push({ key, file, line: skip.line, source: skip.key, problem: skip.error.detail });
  }

  const ttl = parsed.get(TTL);
  if (ttl && ttl.value !== '') values.push({ key: 'ARCHIVE_TTL_DAYS', raw: ttl.value, file, line: ttl.line, source: shown(ttl) });

  const type = parsed.get(DATETYPE);
  if (type && type.value !== '') {
    const value = parsed.get(DATEVALUE);
    const at = value ?? type;
    const source = value ? `${shown(type)} with ${shown(value)}` : shown(type);
    const day = value && value.value !== '' ? value.value : '1';
    if (type.value === 'weekly') values.push({ key: 'FULL_WEEKDAY', raw: day, file, line: at.line, source });
    else if (type.value === 'monthly') values.push({ key: 'FULL_MONTHDAY', raw: day, file, line: at.line, source });
    else values.push({ key: 'FULL_WEEKDAY', file, line: type.line, source, problem: `found ${shown(type)}, expected weekly or monthly` });
  }

  const filetype = parsed.get(FILETYPE);
  if (filetype && filetype.value !== '') {
    const direct = FILETYPE_TO_COMPRESSION[filetype.value];
    values.push({
      key: 'COMPRESSION',
      raw: direct ?? 'zstd',
      file,
      line: filetype.line,
      source: shown(filetype),
      note: direct ? undefined : `${shown(filetype)} has no counterpart in xenbackup; archives are compressed with zstd`,
    });
  }
  return { file, values };
}

/** The migrated settings, or undefined when `file` does not exist (backup-manager gone or never installed). */
export function readBackupManagerConfig(
  file: string,
  opts: Pick<ShellParseOptions, 'env' | 'host' | 'which'> = {},
): BackupManagerSettings | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new ConfigError(file, undefined, `cannot read backup-manager's config: ${code ?? String(err)}`);
  }
  return migrateBackupManagerText(text, file, opts);
}
