/**
 * loadConfig: the old tool's files give the same settings they gave it, old
 * helper keys are ignored quietly, our keys have their documented defaults,
 * backup-manager.conf is migrated with xenbackup.conf taking precedence, and
 * the volume table is resolved against the global settings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, IGNORED_KEYS, SETTINGS, isIgnoredKey, loadConfig, type LoadConfigOptions } from '../../src/config/settings.js';
import { fixture, repoRoot, tempDir, testHost, writeExecutable, writeFile } from './fixtures.js';

const GOOD_VOLS = fixture('good.xenback_vols');

/** Loads `confText` (written to a temp dir) with a fixed host and PATH; no backup-manager.conf unless named. */
function load(t: Parameters<typeof tempDir>[0], confText: string, extra: Partial<LoadConfigOptions> = {}) {
  const dir = tempDir(t);
  const configPath = writeFile(dir, 'xenbackup.conf', confText);
  const config = loadConfig({
    configPath,
    volumesPath: GOOD_VOLS,
    backupManagerConfigPath: null,
    host: testHost,
    env: { PATH: dir },
    ...extra,
  });
  return { config, configPath, dir };
}

test("the old tool's shipped config and table load: same meaning, no warnings", (t) => {
  const bin = tempDir(t);
  writeExecutable(bin, 'ssmtp');
  const config = loadConfig({
    configPath: fixture('old-xenbackup.conf'),
    volumesPath: fixture('old-xenback_vols'),
    backupManagerConfigPath: null,
    host: testHost,
    env: { PATH: bin },
  });
  assert.equal(config.backupDevice, '/dev/sdb3');
  assert.equal(config.backupDeviceFs, 'ext4');
  assert.equal(config.backupMountpoint, '/backup/guests');
  assert.equal(config.snapshotMountDir, '/4backup');
  assert.equal(config.snapMountDelaySeconds, 10);
  assert.equal(config.logFile, '/var/log/xenbackup.log');
  assert.equal(config.hostname, 'testhost');
  assert.equal(config.domain, 'example.org');
  assert.deepEqual(config.snapshotSize, { kind: 'absolute', text: '7G', bytes: 7 * 1024 ** 3 });
  assert.equal(config.emailFrom, 'monitor@example.org');
  assert.deepEqual(config.emailTo, ['monitor@example.org']);
  assert.equal(config.sendmailPath, join(bin, 'ssmtp'), 'no sendmail on PATH: the ssmtp fallback');
  assert.deepEqual(config.warnings, [], 'BIN_CUT, SNAPBACKUPMNT, CONFIGURED ... are ignored without a word');
  assert.deepEqual(
    config.volumes.map((v) => [v.domU, v.part, v.device, v.fstype, v.mountOptions.join(','), v.snapshotSize.text, v.engine]),
    [
      ['mydomu1', 'root', '/dev/vgxen/mydomu1-root', 'ext4', 'ro,noatime', '7G', 'tar'],
      ['mynetbsd2', 'root', '/dev/vgxen/mynetbsd2-root', 'ufs', 'ro,ufstype=44bsd', '7G', 'tar'],
    ],
  );
  assert.equal(config.sources['SNAPSIZE'], `${fixture('old-xenbackup.conf')}:48`);
  assert.equal(config.sources['COMPRESSION'], 'default');
});

test('defaults: one key set, everything else as documented', (t) => {
  const { config } = load(t, 'BCKDEV=/dev/sdb3\n');
  assert.deepEqual(
    {
      fs: config.backupDeviceFs, medium: config.backupMountpoint, snaps: config.snapshotMountDir, delay: config.snapMountDelaySeconds,
      log: config.logFile, host: config.hostname, domain: config.domain, size: config.snapshotSize.text, from: config.emailFrom,
      to: config.emailTo, sendmail: config.sendmailPath, compression: config.compression, interval: config.fullIntervalDays,
      weekday: config.fullWeekday, monthday: config.fullMonthday, chain: config.maxChainLength, ttl: config.archiveTtlDays,
      keep: [config.keepLast, config.keepDaily, config.keepWeekly, config.keepMonthly], report: config.reportWhen,
      smtp: config.smtpUrl, concurrency: config.concurrency, dom0: config.backupDom0, excludes: config.dom0Excludes,
      engine: config.engine, verify: config.verifyAfterRun, lock: config.lockFile,
    },
    {
      fs: 'ext4', medium: '/backup/guests', snaps: '/4backup', delay: 10, log: '/var/log/xenbackup.log', host: 'testhost',
      domain: 'example.org', size: '7G', from: 'root@testhost.example.org', to: ['root'], sendmail: '/usr/sbin/sendmail',
      compression: 'zstd', interval: 7, weekday: undefined, monthday: undefined, chain: 14, ttl: 5, keep: [0, 0, 0, 0],
      report: 'always', smtp: undefined, concurrency: 1, dom0: true, excludes: [], engine: 'tar', verify: 'no',
      lock: '/run/xenbackup.lock',
    },
  );
  assert.deepEqual(Object.keys(config.sources).sort(), SETTINGS.map((s) => s.key).sort(), 'every documented key is resolved');
});

test('our keys, validated and normalised', (t) => {
  const { config } = load(
    t,
    [
      'BCKDEV=UUID=2f6c0b55-1c1e-4a5e-9d7a-0c8f1e2d3b4a',
      'BCKMNTP=/backup/guests/',
      'COMPRESSION=gzip',
      'FULL_WEEKDAY=Sat',
      'FULL_INTERVAL_DAYS=0',
      'MAX_CHAIN_LENGTH=6',
      'ARCHIVE_TTL_DAYS=10',
      'KEEP_LAST=3',
      'KEEP_MONTHLY=12',
      'REPORT_WHEN=failure',
      'SMTP_URL="smtps://backup:s3cret@mail.example.org:465"',
      'EMAIL_FROM="Backup <backup@example.org>"',
      'EMAIL_TO="admin@example.org, ops@example.org  oncall@example.net"',
      'CONCURRENCY=2',
      'BACKUP_DOM0=no',
      'DOM0_EXCLUDES="/srv/cache/  /var/tmp"',
      'ENGINE=rsync',
      'VERIFY_AFTER_RUN=quick',
      'LOCKFILE=/var/lock/xenbackup.lock',
    ].join('\n'),
  );
  assert.equal(config.backupDevice, 'UUID=2f6c0b55-1c1e-4a5e-9d7a-0c8f1e2d3b4a');
  assert.equal(config.backupMountpoint, '/backup/guests', 'trailing / dropped so it compares with mountinfo');
  assert.equal(config.compression, 'gzip');
  assert.equal(config.fullWeekday, 6);
  assert.equal(config.fullIntervalDays, Infinity, 'FULL_INTERVAL_DAYS=0: no age limit');
  assert.equal(config.maxChainLength, 6);
  assert.equal(config.archiveTtlDays, 10);
  assert.deepEqual([config.keepLast, config.keepDaily, config.keepWeekly, config.keepMonthly], [3, 0, 0, 12]);
  assert.equal(config.reportWhen, 'failure');
  assert.equal(config.smtpUrl, 'smtps://backup:s3cret@mail.example.org:465');
  assert.equal(config.emailFrom, 'Backup <backup@example.org>');
  assert.deepEqual(config.emailTo, ['admin@example.org', 'ops@example.org', 'oncall@example.net']);
  assert.equal(config.concurrency, 2);
  assert.equal(config.backupDom0, false);
  assert.deepEqual(config.dom0Excludes, ['/srv/cache', '/var/tmp']);
  assert.equal(config.engine, 'rsync');
  assert.equal(config.verifyAfterRun, 'quick');
  assert.equal(config.lockFile, '/var/lock/xenbackup.lock');
  assert.equal(config.volumes[0]!.engine, 'rsync', 'ENGINE applies to volumes without engine=');
});

test('weekdays: 0 and 7 are Sunday, names in any case', (t) => {
  for (const [raw, day] of [['0', 0], ['7', 0], ['6', 6], ['sunday', 0], ['MON', 1], ['Friday', 5]] as const) {
    assert.equal(load(t, `BCKDEV=/dev/sdb3\nFULL_WEEKDAY=${raw}\n`).config.fullWeekday, day, raw);
  }
});

test('a monthly full day lengthens the default interval and chain to a month', (t) => {
  const { config } = load(t, 'BCKDEV=/dev/sdb3\nFULL_MONTHDAY=1\n');
  assert.deepEqual([config.fullMonthday, config.fullIntervalDays, config.maxChainLength], [1, 31, 31]);
  const explicit = load(t, 'BCKDEV=/dev/sdb3\nFULL_MONTHDAY=15\nMAX_CHAIN_LENGTH=20\n').config;
  assert.deepEqual([explicit.fullIntervalDays, explicit.maxChainLength], [31, 20]);
});

test('ignored and unknown keys: old helpers pass quietly, a typo is a warning with a hint', (t) => {
  const { config, configPath } = load(t, 'BCKDEV=/dev/sdb3\nBIN_RSYNC=/usr/bin/rsync\nBM_ARCHIVE_PREFIX=x\nTARGETDIR=/x\nSNAPSIZ=5G\nWHATEVER=1\n');
  assert.deepEqual(config.warnings, [
    `${configPath}:5: unknown key SNAPSIZ is ignored (did you mean SNAPSIZE?)`,
    `${configPath}:6: unknown key WHATEVER is ignored`,
  ]);
  assert.equal(config.snapshotSize.text, '7G');
  for (const key of IGNORED_KEYS) assert.ok(isIgnoredKey(key), key);
  assert.equal(isIgnoredKey('BIN_SENDMAIL'), false);
  assert.equal(isIgnoredKey('BM_CONFIGFILE'), false);
});

test('BIN_SENDMAIL: empty after `$(which sendmail) || $(which ssmtp)` found neither means the default', (t) => {
  const { config } = load(t, 'BCKDEV=/dev/sdb3\nBIN_SENDMAIL=$(which sendmail) || $(which ssmtp)\n');
  assert.equal(config.sendmailPath, '/usr/sbin/sendmail');
  assert.equal(config.sources['BIN_SENDMAIL'], 'default');
});

test('SMTP needs full addresses; the local default recipient is refused with a hint', (t) => {
  assert.throws(() => load(t, 'BCKDEV=/dev/sdb3\nSMTP_URL=smtp://127.0.0.1:2525\n'), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /xenbackup\.conf: found no EMAIL_TO, expected e\.g\. EMAIL_TO="admin@example\.org" \(the default, root, needs sendmail, and SMTP_URL is set\)$/);
    return true;
  });
  const { config } = load(t, 'BCKDEV=/dev/sdb3\nSMTP_URL=smtp://127.0.0.1:2525\nEMAIL_TO=admin@example.org\n');
  assert.equal(config.emailFrom, 'root@testhost.example.org');
});

test('the volume table comes from SBCONFIGFILE unless the caller names one', (t) => {
  const dir = tempDir(t);
  const vols = writeFile(dir, 'vols', 'guest|root|/dev/vg/guest-root|ext4|ro\n');
  const configPath = writeFile(dir, 'xenbackup.conf', `BCKDEV=/dev/sdb3\nSBCONFIGFILE="${vols}"\n`);
  const config = loadConfig({ configPath, backupManagerConfigPath: null, host: testHost, env: {} });
  assert.equal(config.volumesPath, vols);
  assert.deepEqual(config.volumes.map((v) => v.domU), ['guest']);
});

test('volumes: own snapsize and engine win over SNAPSIZE and ENGINE', (t) => {
  const dir = tempDir(t);
  const volumesPath = writeFile(dir, 'vols', 'a|root|/dev/vg/a|ext4|ro|snapsize=2G\nb|root|/dev/vg/b|ext4|ro|engine=tar\nc|disk|/dev/vg/c|raw|\n');
  const { config } = load(t, 'BCKDEV=/dev/sdb3\nSNAPSIZE=20%ORIGIN\n', { volumesPath });
  assert.deepEqual(config.volumes.map((v) => [v.domU, v.snapshotSize.text, v.engine]), [
    ['a', '2G', 'tar'],
    ['b', '20%ORIGIN', 'tar'],
    ['c', '20%ORIGIN', 'tar'],
  ]);
  assert.throws(() => load(t, 'BCKDEV=/dev/sdb3\nENGINE=rsync\n', { volumesPath }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.file, volumesPath);
    assert.match(err.message, /:3: found raw volume c\/disk with ENGINE=rsync \(\S+xenbackup\.conf:2\), expected engine=tar on this line/);
    return true;
  });
});

test('dom0/root may be listed only when BACKUP_DOM0=no', (t) => {
  const dir = tempDir(t);
  const volumesPath = writeFile(dir, 'vols', 'dom0|root|/dev/vg0/root|ext4|ro\n');
  assert.throws(() => load(t, 'BCKDEV=/dev/sdb3\n', { volumesPath }), ConfigError);
  assert.equal(load(t, 'BCKDEV=/dev/sdb3\nBACKUP_DOM0=no\n', { volumesPath }).config.volumes.length, 1);
});

test('an empty table with BACKUP_DOM0=no is a warning: the run would do nothing', (t) => {
  const dir = tempDir(t);
  const volumesPath = writeFile(dir, 'vols', '# nothing yet\n');
  const { config } = load(t, 'BCKDEV=/dev/sdb3\nBACKUP_DOM0=no\n', { volumesPath });
  assert.deepEqual(config.warnings, [`${volumesPath}: no volumes listed and BACKUP_DOM0=no: a run backs up nothing`]);
});

test('backup-manager.conf named by BM_CONFIGFILE: TTL, master day and compression migrate', (t) => {
  const bm = fixture('backup-manager.conf');
  const { config } = load(t, `BCKDEV=/dev/sdb3\nBM_CONFIGFILE="${bm}"\n`, { backupManagerConfigPath: undefined });
  assert.equal(config.backupManagerConfigPath, bm);
  assert.equal(config.archiveTtlDays, 5);
  assert.equal(config.fullWeekday, 6, 'weekly, 6 = Saturday as date +%w counts');
  assert.equal(config.fullMonthday, undefined);
  assert.equal(config.compression, 'gzip', 'tar.gz');
  assert.equal(config.sources['ARCHIVE_TTL_DAYS'], `${bm}:15`);
  assert.equal(config.sources['FULL_WEEKDAY'], `${bm}:29`);
  assert.equal(config.sources['COMPRESSION'], `${bm}:23`);
  assert.deepEqual(config.warnings, [], "the lines it cannot read set nothing we use, so they are not worth a word");
});

test('backup-manager.conf: keys in xenbackup.conf win, and then its bad values do not matter', (t) => {
  const dir = tempDir(t);
  const bm = writeFile(dir, 'bm.conf', 'export BM_ARCHIVE_TTL="five"\nexport BM_TARBALL_FILETYPE="tar.bz2"\nexport BM_TARBALLINC_MASTERDATETYPE="daily"\n');
  const { config } = load(t, 'BCKDEV=/dev/sdb3\nARCHIVE_TTL_DAYS=3\nCOMPRESSION=none\nFULL_MONTHDAY=1\n', { backupManagerConfigPath: bm });
  assert.deepEqual([config.archiveTtlDays, config.compression, config.fullWeekday, config.fullMonthday], [3, 'none', undefined, 1]);
  assert.deepEqual(config.warnings, []);
});

test("backup-manager.conf: our FULL_WEEKDAY replaces its schedule as a whole, even a monthly one", (t) => {
  const dir = tempDir(t);
  const bm = writeFile(dir, 'bm.conf', 'BM_TARBALLINC_MASTERDATETYPE=monthly\nBM_TARBALLINC_MASTERDATEVALUE=15\n');
  const { config } = load(t, 'BCKDEV=/dev/sdb3\nFULL_WEEKDAY=1\n', { backupManagerConfigPath: bm });
  assert.deepEqual([config.fullWeekday, config.fullMonthday, config.fullIntervalDays], [1, undefined, 7]);
});

test('backup-manager.conf: monthly without a value meant the 1st; lossy file types are noted', (t) => {
  const dir = tempDir(t);
  const bm = writeFile(dir, 'bm.conf', 'export BM_TARBALLINC_MASTERDATETYPE="monthly"\nexport BM_TARBALLINC_MASTERDATEVALUE=""\nexport BM_TARBALL_FILETYPE="tar.bz2"\n');
  const { config } = load(t, 'BCKDEV=/dev/sdb3\n', { backupManagerConfigPath: bm });
  assert.deepEqual([config.fullMonthday, config.fullWeekday, config.fullIntervalDays, config.maxChainLength], [1, undefined, 31, 31]);
  assert.equal(config.compression, 'zstd');
  assert.deepEqual(config.warnings, [`${bm}:3: BM_TARBALL_FILETYPE="tar.bz2" has no counterpart in xenbackup; archives are compressed with zstd`]);
  const plainTar = writeFile(dir, 'bm2.conf', 'BM_TARBALL_FILETYPE=tar\n');
  assert.equal(load(t, 'BCKDEV=/dev/sdb3\n', { backupManagerConfigPath: plainTar }).config.compression, 'none');
});

test('backup-manager.conf that does not exist is simply not migrated', (t) => {
  const { config } = load(t, 'BCKDEV=/dev/sdb3\nBM_CONFIGFILE=/nonexistent/backup-manager.conf\n', { backupManagerConfigPath: undefined });
  assert.equal(config.backupManagerConfigPath, undefined);
  assert.equal(config.archiveTtlDays, 5);
});

test('the table at the top of settings.ts and the exported SETTINGS agree', () => {
  const source = readFileSync(join(repoRoot, 'src/config/settings.ts'), 'utf8');
  const header = source.slice(0, source.indexOf('*/'));
  const rows = new Map<string, string>();
  for (const m of header.matchAll(/^ \* \| ([A-Z0-9_]+) +\| ([^|]+)\|/gm)) rows.set(m[1]!, m[2]!.trim());
  assert.deepEqual([...rows.keys()], SETTINGS.map((s) => s.key));
  for (const s of SETTINGS) assert.equal(rows.get(s.key), s.default, s.key);
});

test('a default that cannot be used is a ConfigError asking for the key', (t) => {
  assert.throws(
    () => load(t, 'BCKDEV=/dev/sdb3\n', { host: { hostname: 'bad host', fqdn: 'bad host', domain: '' } }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /xenbackup\.conf: found no HOSTN and an unusable default, expected a host name \(letters, digits, `\.`, `-`, `_`\): set HOSTN$/);
      return true;
    },
  );
});
