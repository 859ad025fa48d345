/**
 * The typed, validated configuration of a run: /etc/xenbackup.conf (read by
 * shell-assignments.ts, in the old tool's syntax), the volume table it names
 * (volume-table.ts), and what backup-manager.conf still has to say
 * (backup-manager.ts). loadConfig() validates everything before anything is
 * touched and throws ConfigError (`file:line: ...`, exit 2) on the first problem.
 *
 * Precedence: a key in xenbackup.conf > its backup-manager.conf counterpart > the default.
 *
 * | Key                | Default                  | Meaning                                                                     |
 * |--------------------|--------------------------|-----------------------------------------------------------------------------|
 * | BCKDEV             | (required)               | backup medium: /dev/... path or UUID=/LABEL=; mounted on BCKMNTP for the run |
 * | BCKDEV_FS          | ext4                     | filesystem type of the medium                                               |
 * | BCKMNTP            | /backup/guests           | mountpoint of the medium; archives go below it                              |
 * | MNTSOURCEDIR       | /4backup                 | snapshots are mounted read-only at MNTSOURCEDIR/domU/part                   |
 * | SBCONFIGFILE       | /etc/xenback_vols        | the volume table (domU|part|device|fstype|mount options)                    |
 * | SNAPMOUNTDELAY     | 10                       | seconds to wait between volumes                                             |
 * | LOGFILE            | /var/log/xenbackup.log   | the run's log                                                               |
 * | HOSTN              | `hostname`               | host name in the report and on the medium                                   |
 * | DOMAINN            | `hostname -d`            | DNS domain, completes HOSTN in the report                                   |
 * | SNAPSIZE           | 7G                       | snapshot size: LVM size (no unit: MiB) or N%ORIGIN; per volume: snapsize=   |
 * | EMAIL_FROM         | root@HOSTN.DOMAINN       | sender of the report                                                        |
 * | EMAIL_TO           | root                     | recipients, separated by blanks or commas                                   |
 * | BIN_SENDMAIL       | /usr/sbin/sendmail       | sendmail program for the report (unless SMTP_URL)                           |
 * | BM_CONFIGFILE      | /etc/backup-manager.conf | backup-manager config, read if present for migration only                   |
 * | COMPRESSION        | zstd                     | zstd, gzip or none                                                          |
 * | FULL_INTERVAL_DAYS | 7 (31 with FULL_MONTHDAY)| a full backup when the last one is this many days old; 0: no age limit      |
 * | FULL_WEEKDAY       | (none)                   | also a full backup on this weekday: 0-7 (0, 7 = Sunday) or sun..sat         |
 * | FULL_MONTHDAY      | (none)                   | also a full backup on this day of the month, 1-31 (short months: last day)  |
 * | MAX_CHAIN_LENGTH   | 14 (31 with FULL_MONTHDAY)| most incrementals on one full; then a full. 0: every backup is full       |
 * | ARCHIVE_TTL_DAYS   | 5                        | archives older than this may be pruned (never one a kept one needs); 0: off |
 * | KEEP_LAST          | 0                        | also keep the newest N restore points                                       |
 * | KEEP_DAILY         | 0                        | also keep the last restore point of each of the last N days                 |
 * | KEEP_WEEKLY        | 0                        | ... of each of the last N weeks                                             |
 * | KEEP_MONTHLY       | 0                        | ... of each of the last N months                                            |
 * | REPORT_WHEN        | always                   | mail the report: always, failure or never                                   |
 * | SMTP_URL           | (empty: sendmail)        | smtp://host:port or smtps://user:pass@host: send the report by SMTP         |
 * | CONCURRENCY        | 1                        | volumes backed up at the same time, 1-16                                    |
 * | BACKUP_DOM0        | yes                      | also back up dom0's own root filesystem as volume dom0/root                 |
 * | DOM0_EXCLUDES      | (empty)                  | more absolute paths, blank-separated, left out of dom0/root                 |
 * | DOM0_ROOT          | /                        | the tree backed up as dom0/root (a chroot's or a test's root)               |
 * | ENGINE             | tar                      | tar or rsync; per volume: engine=                                           |
 * | VERIFY_AFTER_RUN   | no                       | no, quick (archives readable) or full (re-read and compare hashes)          |
 * | LOCKFILE           | /run/xenbackup.lock      | one run at a time                                                           |
 * | RSYNC_TARGET       | (empty: local medium)    | user@host:/path: rsync volumes go there over ssh; tar volumes stay on BCKDEV |
 * | RSYNC_SSH_KEY      | (ssh's default)          | private key for RSYNC_TARGET (no passphrase: the run is unattended)         |
 * | RSYNC_SSH_PORT     | (ssh's default, 22)      | ssh port of RSYNC_TARGET                                                    |
 * | RSYNC_SSH_KNOWN_HOSTS | (ssh's default)       | known_hosts file holding RSYNC_TARGET's host key                            |
 * | RSYNC_SSH_HOSTKEY_CHECK | yes                 | yes: the host key must be known; accept-new: record it at first contact     |
 * | RSYNC_COMPRESS     | no                       | rsync --compress to RSYNC_TARGET (slow links)                               |
 *
 * BCKDEV is required only when something goes to the local medium: always
 * without RSYNC_TARGET; with it, when a volume uses the tar engine or
 * BACKUP_DOM0=yes (dom0/root is always tar). When every volume goes to
 * RSYNC_TARGET, the run neither needs nor mounts BCKDEV.
 *
 * Accepted and ignored (the old tool's helpers): CONFIGURED, TARGETDIR, SNAPBACKUPMNT,
 * SNAPBACKUPUMNT, SNAPBACKUPALLGUEST, XENBACK_CONF, every BIN_* but BIN_SENDMAIL,
 * every BM_* but BM_CONFIGFILE. Any other key is a warning (probably a typo), not an error.
 * The same table is exported as SETTINGS (for --help and the README) and IGNORED_KEYS.
 */
import { ConfigError, location } from './config-error.js';
import { readBackupManagerConfig, type MigratedValue } from './backup-manager.js';
import { hostIdentity, type HostIdentity } from './host-identity.js';
import { LVM_SIZE_SYNTAX, parseLvmSize, type LvmSize } from '../host/lvm-size.js';
import { readShellAssignments } from './shell-assignments.js';
import {
  InvalidValue,
  parseAbsolutePath,
  parseChoice,
  parseDeviceSpec,
  parseDomainName,
  parseFsType,
  parseHostName,
  parseMailAddress,
  parseMailList,
  parsePathList,
  parseSmtpUrl,
  parseWeekday,
  parseWholeNumber,
  parseYesNo,
} from './value-parsers.js';
import { parseRemoteTarget, RemoteTargetError, type RemoteTarget, type SshOptions } from '../host/remote-target.js';
import { ENGINES, readVolumeTable, type Engine, type VolumeEntry } from './volume-table.js';

export { ConfigError } from './config-error.js';
export type { LvmSize } from '../host/lvm-size.js';
export type { Engine, VolumeEntry } from './volume-table.js';

export type Compression = 'zstd' | 'gzip' | 'none';
export type ReportWhen = 'always' | 'failure' | 'never';
export type VerifyMode = 'no' | 'quick' | 'full';

export const COMPRESSIONS: readonly Compression[] = ['zstd', 'gzip', 'none'];
export const REPORT_WHEN: readonly ReportWhen[] = ['always', 'failure', 'never'];
export const VERIFY_MODES: readonly VerifyMode[] = ['no', 'quick', 'full'];

export interface SettingInfo {
  key: string;
  /** The default as shown to users. */
  default: string;
  description: string;
  /** 'old': the shell tool's key, same meaning; 'new': ours. */
  origin: 'old' | 'new';
}

export const SETTINGS: readonly SettingInfo[] = [
  { key: 'BCKDEV', default: '(required)', origin: 'old', description: 'backup medium: /dev/... path or UUID=/LABEL=; mounted on BCKMNTP for the run' },
  { key: 'BCKDEV_FS', default: 'ext4', origin: 'old', description: 'filesystem type of the medium' },
  { key: 'BCKMNTP', default: '/backup/guests', origin: 'old', description: 'mountpoint of the medium; archives go below it' },
  { key: 'MNTSOURCEDIR', default: '/4backup', origin: 'old', description: 'snapshots are mounted read-only at MNTSOURCEDIR/domU/part' },
  { key: 'SBCONFIGFILE', default: '/etc/xenback_vols', origin: 'old', description: 'the volume table (domU|part|device|fstype|mount options)' },
  { key: 'SNAPMOUNTDELAY', default: '10', origin: 'old', description: 'seconds to wait between volumes' },
  { key: 'LOGFILE', default: '/var/log/xenbackup.log', origin: 'old', description: "the run's log" },
  { key: 'HOSTN', default: '`hostname`', origin: 'old', description: 'host name in the report and on the medium' },
  { key: 'DOMAINN', default: '`hostname -d`', origin: 'old', description: 'DNS domain, completes HOSTN in the report' },
  { key: 'SNAPSIZE', default: '7G', origin: 'old', description: 'snapshot size: LVM size (no unit: MiB) or N%ORIGIN; per volume: snapsize=' },
  { key: 'EMAIL_FROM', default: 'root@HOSTN.DOMAINN', origin: 'old', description: 'sender of the report' },
  { key: 'EMAIL_TO', default: 'root', origin: 'old', description: 'recipients, separated by blanks or commas' },
  { key: 'BIN_SENDMAIL', default: '/usr/sbin/sendmail', origin: 'old', description: 'sendmail program for the report (unless SMTP_URL)' },
  { key: 'BM_CONFIGFILE', default: '/etc/backup-manager.conf', origin: 'old', description: 'backup-manager config, read if present for migration only' },
  { key: 'COMPRESSION', default: 'zstd', origin: 'new', description: 'zstd, gzip or none' },
  { key: 'FULL_INTERVAL_DAYS', default: '7 (31 with FULL_MONTHDAY)', origin: 'new', description: 'a full backup when the last one is this many days old; 0: no age limit' },
  { key: 'FULL_WEEKDAY', default: '(none)', origin: 'new', description: 'also a full backup on this weekday: 0-7 (0, 7 = Sunday) or sun..sat' },
  { key: 'FULL_MONTHDAY', default: '(none)', origin: 'new', description: 'also a full backup on this day of the month, 1-31 (short months: last day)' },
  { key: 'MAX_CHAIN_LENGTH', default: '14 (31 with FULL_MONTHDAY)', origin: 'new', description: 'most incrementals on one full; then a full. 0: every backup is full' },
  { key: 'ARCHIVE_TTL_DAYS', default: '5', origin: 'new', description: 'archives older than this may be pruned (never one a kept one needs); 0: off' },
  { key: 'KEEP_LAST', default: '0', origin: 'new', description: 'also keep the newest N restore points' },
  { key: 'KEEP_DAILY', default: '0', origin: 'new', description: 'also keep the last restore point of each of the last N days' },
  { key: 'KEEP_WEEKLY', default: '0', origin: 'new', description: '... of each of the last N weeks' },
  { key: 'KEEP_MONTHLY', default: '0', origin: 'new', description: '... of each of the last N months' },
  { key: 'REPORT_WHEN', default: 'always', origin: 'new', description: 'mail the report: always, failure or never' },
  { key: 'SMTP_URL', default: '(empty: sendmail)', origin: 'new', description: 'smtp://host:port or smtps://user:pass@host: send the report by SMTP' },
  { key: 'CONCURRENCY', default: '1', origin: 'new', description: 'volumes backed up at the same time, 1-16' },
  { key: 'BACKUP_DOM0', default: 'yes', origin: 'new', description: "also back up dom0's own root filesystem as volume dom0/root" },
  { key: 'DOM0_EXCLUDES', default: '(empty)', origin: 'new', description: 'more absolute paths, blank-separated, left out of dom0/root' },
  { key: 'DOM0_ROOT', default: '/', origin: 'new', description: "the tree backed up as dom0/root (a chroot's or a test's root)" },
  { key: 'ENGINE', default: 'tar', origin: 'new', description: 'tar or rsync; per volume: engine=' },
  { key: 'VERIFY_AFTER_RUN', default: 'no', origin: 'new', description: 'no, quick (archives readable) or full (re-read and compare hashes)' },
  { key: 'LOCKFILE', default: '/run/xenbackup.lock', origin: 'new', description: 'one run at a time' },
  { key: 'RSYNC_TARGET', default: '(empty: local medium)', origin: 'new', description: 'user@host:/path: rsync volumes go there over ssh; tar volumes stay on BCKDEV' },
  { key: 'RSYNC_SSH_KEY', default: "(ssh's default)", origin: 'new', description: 'private key for RSYNC_TARGET (no passphrase: the run is unattended)' },
  { key: 'RSYNC_SSH_PORT', default: "(ssh's default, 22)", origin: 'new', description: 'ssh port of RSYNC_TARGET' },
  { key: 'RSYNC_SSH_KNOWN_HOSTS', default: "(ssh's default)", origin: 'new', description: "known_hosts file holding RSYNC_TARGET's host key" },
  { key: 'RSYNC_SSH_HOSTKEY_CHECK', default: 'yes', origin: 'new', description: 'yes: the host key must be known; accept-new: record it at first contact' },
  { key: 'RSYNC_COMPRESS', default: 'no', origin: 'new', description: 'rsync --compress to RSYNC_TARGET (slow links)' },
];

/** Old keys accepted without a warning and without effect; see also isIgnoredKey for the BIN_* and BM_* families. */
export const IGNORED_KEYS: readonly string[] = [
  'CONFIGURED', 'TARGETDIR', 'XENBACK_CONF', 'SNAPBACKUPMNT', 'SNAPBACKUPUMNT', 'SNAPBACKUPALLGUEST',
  'BIN_BACKUPMAN', 'BIN_ECHO', 'BIN_MOUNT', 'BIN_UMOUNT', 'BIN_CUT', 'BIN_LS', 'BIN_DATE', 'BIN_DF',
  'BIN_LVCREATE', 'BIN_LVREMOVE', 'BIN_TAIL', 'BIN_SLEEP', 'BIN_CAT', 'BIN_MKDIR',
];

const KNOWN_KEYS = new Set(SETTINGS.map((s) => s.key));

export function isIgnoredKey(key: string): boolean {
  return !KNOWN_KEYS.has(key) && (IGNORED_KEYS.includes(key) || /^(BIN|BM)_[A-Z0-9_]+$/.test(key));
}

/** RSYNC_TARGET and how to reach it: where every rsync volume goes when it is set. */
export interface RsyncRemoteTarget {
  target: RemoteTarget;
  ssh: SshOptions;
  /** RSYNC_COMPRESS */
  compress: boolean;
  /** RSYNC_TARGET as written, for messages. */
  spec: string;
}

/** One volume to back up, with the table's optional fields resolved against the global settings. */
export interface Volume extends Omit<VolumeEntry, 'snapshotSize' | 'engine'> {
  snapshotSize: LvmSize;
  engine: Engine;
}

export interface Config {
  configPath: string;
  /** The volume table that was read. */
  volumesPath: string;
  /** The backup-manager config that was read for migration, if any. */
  backupManagerConfigPath: string | undefined;
  backupDevice: string;
  backupDeviceFs: string;
  backupMountpoint: string;
  snapshotMountDir: string;
  snapMountDelaySeconds: number;
  logFile: string;
  hostname: string;
  domain: string;
  snapshotSize: LvmSize;
  emailFrom: string;
  emailTo: string[];
  sendmailPath: string;
  compression: Compression;
  /** Days after which a chain starts over with a full; FULL_INTERVAL_DAYS=0 (no age limit) is Infinity here. */
  fullIntervalDays: number;
  /** 0-6, 0 = Sunday. */
  fullWeekday: number | undefined;
  fullMonthday: number | undefined;
  maxChainLength: number;
  archiveTtlDays: number;
  keepLast: number;
  keepDaily: number;
  keepWeekly: number;
  keepMonthly: number;
  reportWhen: ReportWhen;
  /** Undefined: send with sendmailPath. */
  smtpUrl: string | undefined;
  concurrency: number;
  backupDom0: boolean;
  dom0Excludes: string[];
  /** DOM0_ROOT: the tree backed up as dom0/root. */
  dom0Root: string;
  engine: Engine;
  verifyAfterRun: VerifyMode;
  lockFile: string;
  /** RSYNC_TARGET; undefined: rsync volumes go to the local medium like tar ones. */
  rsyncTarget: RsyncRemoteTarget | undefined;
  /**
   * Whether the run writes to BCKDEV at all: false only when RSYNC_TARGET is
   * set, every volume uses rsync and BACKUP_DOM0=no. Then BCKDEV may be unset
   * (backupDevice is '') and the run does not mount it.
   */
  needsLocalMedium: boolean;
  volumes: Volume[];
  /** For each key of SETTINGS: `file:line` it was set at, or `default`. */
  sources: Record<string, string>;
  /** `file:line: ...` notes for the report: unknown keys, skipped volumes, lossy migrations. */
  warnings: string[];
}

export interface LoadConfigOptions {
  /** Default /etc/xenbackup.conf. */
  configPath?: string;
  /** Overrides SBCONFIGFILE (e.g. a --volumes option). */
  volumesPath?: string;
  /** Environment for `$VAR` and PATH (`which`). Default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Overrides BM_CONFIGFILE; null: do not read backup-manager's config at all. */
  backupManagerConfigPath?: string | null;
  /** Answers for `hostname` and `hostname -d`. Default: hostIdentity(). */
  host?: HostIdentity;
}


const SCHEDULE_KEYS = new Set(['FULL_WEEKDAY', 'FULL_MONTHDAY']);
/** Keys whose empty value means "use the default", e.g. BIN_SENDMAIL after `$(which sendmail)` found nothing. */
const EMPTY_IS_DEFAULT = new Set([
  'BIN_SENDMAIL', 'BM_CONFIGFILE', 'SMTP_URL', 'DOM0_EXCLUDES', 'FULL_WEEKDAY', 'FULL_MONTHDAY',
  'RSYNC_TARGET', 'RSYNC_SSH_KEY', 'RSYNC_SSH_PORT', 'RSYNC_SSH_KNOWN_HOSTS',
]);

interface Picked {
  raw: string;
  file: string;
  line: number;
  /** How the admin wrote it, for messages: `KEY="value"`. */
  label: string;
}

/** Reads, validates and resolves the whole configuration, or throws ConfigError naming file and line. */
export function loadConfig(opts: LoadConfigOptions = {}): Config {
  const configPath = opts.configPath ?? '/etc/xenbackup.conf';
  const env = opts.env ?? process.env;
  const host = opts.host ?? hostIdentity();
  const conf = readShellAssignments(configPath, { env, host });
  const warnings: string[] = [];
  const sources: Record<string, string> = {};

  for (const a of conf.assignments) {
    if (KNOWN_KEYS.has(a.key) || isIgnoredKey(a.key)) continue;
    const near = closestKey(a.key);
    warnings.push(`${location(configPath, a.line)}: unknown key ${a.key} is ignored${near ? ` (did you mean ${near}?)` : ''}`);
  }

  const own = (key: string): Picked | undefined => {
    const a = conf.get(key);
    return a && { raw: a.value, file: configPath, line: a.line, label: `${key}="${a.value}"` };
  };
  const parseAt = <T>(p: Picked, parse: (raw: string) => T): T => {
    try {
      return parse(p.raw);
    } catch (err) {
      if (err instanceof InvalidValue) throw new ConfigError(p.file, p.line, `found ${p.label}, expected ${err.expected}`);
      throw err;
    }
  };

  // backup-manager.conf: only consulted for keys xenbackup.conf leaves unset.
  const bmNamed = own('BM_CONFIGFILE');
  const bmPath =
    opts.backupManagerConfigPath === null
      ? undefined
      : (opts.backupManagerConfigPath ??
        (bmNamed && bmNamed.raw !== '' ? parseAt(bmNamed, parseAbsolutePath) : '/etc/backup-manager.conf'));
  const bm = bmPath === undefined ? undefined : readBackupManagerConfig(bmPath, { env, host });
  const migrated = new Map<string, MigratedValue>();
  for (const m of bm?.values ?? []) {
    const prev = migrated.get(m.key);
    if (!prev || prev.line <= m.line) migrated.set(m.key, m);
  }
  const ownSchedule = own('FULL_WEEKDAY') !== undefined || own('FULL_MONTHDAY') !== undefined;

  const pick = (key: string): Picked | undefined => {
    const mine = own(key);
    if (mine) return mine;
    if (SCHEDULE_KEYS.has(key) && ownSchedule) return undefined; // our schedule replaces backup-manager's as a whole
    const m = migrated.get(key);
    if (!m) return undefined;
    if (m.problem) {
      const ours = SCHEDULE_KEYS.has(key) ? 'FULL_WEEKDAY or FULL_MONTHDAY' : key;
      throw new ConfigError(m.file, m.line, `${m.problem} (or set ${ours} in ${configPath}, which takes precedence)`);
    }
    if (m.note) warnings.push(`${location(m.file, m.line)}: ${m.note}`);
    return { raw: m.raw!, file: m.file, line: m.line, label: m.source };
  };
  const get = <T>(key: string, parse: (raw: string) => T, fallback: () => T): T => {
    const p = pick(key);
    if (!p || (p.raw === '' && EMPTY_IS_DEFAULT.has(key))) {
      sources[key] = 'default';
      try {
        return fallback();
      } catch (err) {
        // e.g. a node name that cannot serve as HOSTN
        if (err instanceof InvalidValue) throw new ConfigError(configPath, undefined, `found no ${key} and an unusable default, expected ${err.expected}: set ${key}`);
        throw err;
      }
    }
    sources[key] = location(p.file, p.line);
    return parseAt(p, parse);
  };
  const required = (key: string, example: string): never => {
    throw new ConfigError(configPath, undefined, `found no ${key}, expected e.g. ${example}`);
  };
  const count = (key: string, fallback: number, min = 0, max = 1000): number =>
    get(key, (v) => parseWholeNumber(v, min, max), () => fallback);

  // Required only when something goes to the local medium; decided once the volume table is read.
  const backupDevice = get('BCKDEV', parseDeviceSpec, () => '');
  const backupDeviceFs = get('BCKDEV_FS', parseFsType, () => 'ext4');
  const backupMountpoint = get('BCKMNTP', parseAbsolutePath, () => '/backup/guests');
  const snapshotMountDir = get('MNTSOURCEDIR', parseAbsolutePath, () => '/4backup');
  checkSeparateTrees(configPath, sources, backupMountpoint, snapshotMountDir);
  const tablePath = get('SBCONFIGFILE', parseAbsolutePath, () => '/etc/xenback_vols');
  const snapMountDelaySeconds = get('SNAPMOUNTDELAY', (v) => parseWholeNumber(v, 0, 3600, 'seconds'), () => 10);
  const logFile = get('LOGFILE', parseAbsolutePath, () => '/var/log/xenbackup.log');
  const hostname = get('HOSTN', parseHostName, () => parseHostName(host.hostname));
  const domain = get('DOMAINN', parseDomainName, () => parseDomainName(host.domain));
  const snapshotSize = get('SNAPSIZE', (v) => requireSize(v), () => requireSize('7G'));
  const smtpUrl = get<string | undefined>('SMTP_URL', parseSmtpUrl, () => undefined);
  const local = smtpUrl === undefined; // sendmail delivers to local users; SMTP needs user@domain
  const fqdn = hostname.includes('.') || domain === '' ? hostname : `${hostname}.${domain}`;
  const emailFrom = get('EMAIL_FROM', (v) => parseMailAddress(v, { local, displayName: true }), () => `root@${fqdn}`);
  const emailTo = get('EMAIL_TO', (v) => parseMailList(v, { local }), () =>
    local ? ['root'] : required('EMAIL_TO', 'EMAIL_TO="admin@example.org" (the default, root, needs sendmail, and SMTP_URL is set)'),
  );
  const sendmailPath = get('BIN_SENDMAIL', parseAbsolutePath, () => '/usr/sbin/sendmail');
  sources['BM_CONFIGFILE'] = bmNamed ? location(configPath, bmNamed.line) : 'default';

  const compression = get('COMPRESSION', (v) => parseChoice(v, COMPRESSIONS), () => 'zstd' as Compression);
  const fullWeekday = get<number | undefined>('FULL_WEEKDAY', parseWeekday, () => undefined);
  const fullMonthday = get<number | undefined>('FULL_MONTHDAY', (v) => parseWholeNumber(v, 1, 31), () => undefined);
  const monthly = fullMonthday !== undefined;
  const intervalDays = count('FULL_INTERVAL_DAYS', monthly ? 31 : 7, 0, 366);
  // The chain rule is "age >= limit": no limit has to be Infinity, not 0.
  const fullIntervalDays = intervalDays === 0 ? Infinity : intervalDays;
  const maxChainLength = count('MAX_CHAIN_LENGTH', monthly ? 31 : 14);
  const archiveTtlDays = count('ARCHIVE_TTL_DAYS', 5, 0, 3650);
  const keepLast = count('KEEP_LAST', 0);
  const keepDaily = count('KEEP_DAILY', 0);
  const keepWeekly = count('KEEP_WEEKLY', 0);
  const keepMonthly = count('KEEP_MONTHLY', 0);
  const reportWhen = get('REPORT_WHEN', (v) => parseChoice(v, REPORT_WHEN), () => 'always' as ReportWhen);
  const concurrency = count('CONCURRENCY', 1, 1, 16);
  const backupDom0 = get('BACKUP_DOM0', parseYesNo, () => true);
  const dom0Excludes = get('DOM0_EXCLUDES', parsePathList, () => []);
  const dom0Root = get('DOM0_ROOT', parseAbsolutePath, () => '/');
  const engine = get('ENGINE', (v) => parseChoice(v, ENGINES), () => 'tar' as Engine);
  const verifyAfterRun = get('VERIFY_AFTER_RUN', (v) => parseChoice(v, VERIFY_MODES), () => 'no' as VerifyMode);
  const lockFile = get('LOCKFILE', parseAbsolutePath, () => '/run/xenbackup.lock');
  const rsyncTarget = readRsyncTarget(get);

  const volumesPath = opts.volumesPath ?? tablePath;
  const table = readVolumeTable(volumesPath);
  warnings.push(...table.warnings);
  const volumes = table.volumes.map((v): Volume => {
    if (backupDom0 && v.domU === 'dom0' && v.part === 'root') {
      throw new ConfigError(v.file, v.line, "found volume dom0/root, expected another name (dom0/root is dom0's own root filesystem while BACKUP_DOM0=yes)");
    }
    const volumeEngine = v.engine ?? engine;
    if (v.fstype === 'raw' && volumeEngine === 'rsync') {
      throw new ConfigError(v.file, v.line, `found raw volume ${v.domU}/${v.part} with ENGINE=rsync (${sources['ENGINE']}), expected engine=tar on this line (rsync needs a mounted filesystem)`);
    }
    return { ...v, snapshotSize: v.snapshotSize ?? snapshotSize, engine: volumeEngine };
  });
  if (volumes.length === 0 && !backupDom0) warnings.push(`${volumesPath}: no volumes listed and BACKUP_DOM0=no: a run backs up nothing`);
  const needsLocalMedium = rsyncTarget === undefined || backupDom0 || volumes.some((v) => v.engine !== 'rsync');
  if (backupDevice === '' && needsLocalMedium) {
    required('BCKDEV', `BCKDEV="/dev/sdb3" (the backup medium${rsyncTarget ? ': tar volumes and dom0/root go there even with RSYNC_TARGET' : ''})`);
  }

  return {
    configPath, volumesPath, backupManagerConfigPath: bm?.file,
    backupDevice, backupDeviceFs, backupMountpoint, snapshotMountDir, snapMountDelaySeconds, logFile,
    hostname, domain, snapshotSize, emailFrom, emailTo, sendmailPath,
    compression, fullIntervalDays, fullWeekday, fullMonthday, maxChainLength, archiveTtlDays,
    keepLast, keepDaily, keepWeekly, keepMonthly, reportWhen, smtpUrl, concurrency,
    backupDom0, dom0Excludes, dom0Root, engine, verifyAfterRun, lockFile, rsyncTarget, needsLocalMedium, volumes, sources, warnings,
  };
}

type Getter = <T>(key: string, parse: (raw: string) => T, fallback: () => T) => T;

/** RSYNC_TARGET and its RSYNC_SSH_* / RSYNC_COMPRESS companions; undefined when RSYNC_TARGET is empty or unset. */
function readRsyncTarget(get: Getter): RsyncRemoteTarget | undefined {
  const spec = get<string | undefined>('RSYNC_TARGET', parseRsyncTargetSpec, () => undefined);
  const identityFile = get<string | undefined>('RSYNC_SSH_KEY', parseAbsolutePath, () => undefined);
  const port = get<number | undefined>('RSYNC_SSH_PORT', (v) => parseWholeNumber(v, 1, 65535), () => undefined);
  const knownHostsFile = get<string | undefined>('RSYNC_SSH_KNOWN_HOSTS', parseAbsolutePath, () => undefined);
  const strictHostKeyChecking = get('RSYNC_SSH_HOSTKEY_CHECK', (v) => parseChoice(v, HOSTKEY_CHECKS), () => 'yes' as const);
  const compress = get('RSYNC_COMPRESS', parseYesNo, () => false);
  if (spec === undefined) return undefined;
  return { spec, target: parseRemoteTarget(spec), ssh: { identityFile, port, knownHostsFile, strictHostKeyChecking }, compress };
}

const HOSTKEY_CHECKS = ['yes', 'accept-new'] as const;

function parseRsyncTargetSpec(raw: string): string {
  try {
    parseRemoteTarget(raw);
  } catch (e) {
    if (e instanceof RemoteTargetError) throw new InvalidValue(`user@host:/absolute/path (${e.message})`);
    throw e;
  }
  return raw;
}

function requireSize(raw: string): LvmSize {
  const size = parseLvmSize(raw);
  if (!size) throw new InvalidValue(LVM_SIZE_SYNTAX);
  return size;
}

/** The medium and the snapshot mounts must not contain each other, or one would be archived into (or hidden by) the other. */
function checkSeparateTrees(configPath: string, sources: Record<string, string>, medium: string, snapshots: string): void {
  const inside = (a: string, b: string): boolean => a === b || b === '/' || a.startsWith(b + '/');
  const lineOf = (key: string): number | undefined => {
    const m = /:(\d+)$/.exec(sources[key] ?? '');
    return m ? Number(m[1]) : undefined;
  };
  for (const [key, path] of [['BCKMNTP', medium], ['MNTSOURCEDIR', snapshots]] as const) {
    if (path === '/') throw new ConfigError(configPath, lineOf(key), `found ${key}="/", expected a directory of its own`);
  }
  if (inside(medium, snapshots) || inside(snapshots, medium)) {
    const key = sources['MNTSOURCEDIR'] === 'default' ? 'BCKMNTP' : 'MNTSOURCEDIR';
    throw new ConfigError(configPath, lineOf(key), `found BCKMNTP="${medium}" and MNTSOURCEDIR="${snapshots}" inside one another, expected two separate directories`);
  }
}

/** The known key within edit distance 2 of `key`, for "did you mean" hints. */
function closestKey(key: string): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const known of KNOWN_KEYS) {
    const d = editDistance(key.toUpperCase(), known);
    if (d < bestDistance) [best, bestDistance] = [known, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
