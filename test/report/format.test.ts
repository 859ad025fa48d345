/**
 * Exact text of the report mail's subject and body for each outcome, and the
 * human units they use. The text is what an admin reads at 7 in the morning,
 * so any change to it should be deliberate and show up here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBody, formatBytes, formatCount, formatDuration, formatSubject } from '../../src/report/format.js';
import {
  configErrorReport,
  failedReport,
  interruptedReport,
  lockedReport,
  mediumUnavailableReport,
  okReport,
  partialReport,
} from './sample-reports.js';

test('formatBytes uses binary units with one decimal below 100', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1024), '1.0 KiB');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(2.1 * 1024 ** 3), '2.1 GiB');
  assert.equal(formatBytes(143 * 1024 ** 3), '143 GiB');
  assert.equal(formatBytes(1024 * 1024 - 1), '1.0 MiB', 'rounding up to 1024 KiB moves to the next unit');
  assert.equal(formatBytes(3 * 1024 ** 4), '3.0 TiB');
  assert.equal(formatBytes(-1), '?');
});

test('formatDuration gets coarser as it grows', () => {
  assert.equal(formatDuration(0), '0.0 s');
  assert.equal(formatDuration(420), '0.4 s');
  assert.equal(formatDuration(3200), '3.2 s');
  assert.equal(formatDuration(9960), '10 s');
  assert.equal(formatDuration(42_000), '42 s');
  assert.equal(formatDuration(59_600), '1 min');
  assert.equal(formatDuration(185_000), '3 min 5 s');
  assert.equal(formatDuration(14 * 60_000 + 5_000), '14 min');
  assert.equal(formatDuration(2 * 3600_000 + 5 * 60_000), '2 h 5 min');
  assert.equal(formatDuration(3 * 3600_000), '3 h');
  assert.equal(formatDuration(-5), '0.0 s');
});

test('formatCount groups thousands independent of locale', () => {
  assert.equal(formatCount(0), '0');
  assert.equal(formatCount(999), '999');
  assert.equal(formatCount(1000), '1,000');
  assert.equal(formatCount(1234567), '1,234,567');
});

test('subject says the outcome for every kind of run', () => {
  assert.equal(formatSubject(okReport()), '[xenbackup] OK host.example.org: 6/6 volumes ok, 2.1 GiB, 14 min');
  assert.equal(formatSubject(partialReport()), '[xenbackup] PARTIAL host.example.org: 5/6 volumes ok, 2.1 GiB, 14 min, 1 warning, 1 error');
  assert.equal(formatSubject(failedReport()), '[xenbackup] FAILED host.example.org: 5/6 volumes ok, 1.6 GiB, 14 min, 1 warning, 1 error');
  assert.equal(formatSubject(interruptedReport()), '[xenbackup] INTERRUPTED host.example.org: 3/6 volumes ok, 1.4 GiB, 5 min, 1 error, SIGTERM');
  assert.equal(
    formatSubject(mediumUnavailableReport()),
    '[xenbackup] MEDIUM UNAVAILABLE host.example.org: /backup/guests is not a mountpoint of /dev/sdb2 (it is on /dev/sda1, the root filesystem)',
  );
  assert.equal(
    formatSubject(lockedReport()),
    '[xenbackup] LOCKED host.example.org: another run holds /run/xenbackup.lock (pid 4242, since 2026-11-26 02:00:00 UTC)',
  );
  assert.equal(
    formatSubject(configErrorReport()),
    '[xenbackup] CONFIG ERROR host.example.org: /etc/xenback_vols:3: 6 fields, expected 5 (domU|part|device|fstype|mount options)',
  );
});

test('subject stays one line and mentions skipped volumes and dry runs', () => {
  const r = okReport();
  r.host = 'evil\nBcc: x@y';
  r.volumes[5]!.status = 'skipped';
  r.dryRun = true;
  assert.equal(formatSubject(r), '[xenbackup] OK evil\\nBcc: x@y (dry run): 5/5 volumes ok, 2.1 GiB, 14 min, 1 skipped');
  const long = configErrorReport();
  long.aborted!.message = 'x'.repeat(300);
  assert.equal(formatSubject(long), `[xenbackup] CONFIG ERROR host.example.org: ${'x'.repeat(117)}...`);
});

const MEDIUM = `Backup medium: /dev/sdb2 on /backup/guests
  free before: 120 GiB of 500 GiB
  free after:  118 GiB of 500 GiB

Full log: /var/log/xenbackup.log
`;

test('body of a successful run', () => {
  assert.equal(
    formatBody(okReport()),
    `xenbackup on host.example.org: OK
All 6 volumes backed up; 2.1 GiB written.
Started  2026-11-27 02:00:00 UTC
Finished 2026-11-27 02:14:05 UTC (14 min)

Volume      Status  Kind          Files    Source   Written        Time
dom0/root   ok      incremental   1,234   1.2 GiB   310 MiB       3.2 s
web1/root   ok      full         45,678   3.4 GiB   1.1 GiB  5 min 12 s
web1/var    ok      incremental      87  40.0 MiB  12.0 MiB        41 s
mail/root   ok      incremental     512   600 MiB   200 MiB  1 min 35 s
mail/spool  ok      incremental  20,001   2.0 GiB   480 MiB  5 min 20 s
db/data     ok      mirror            3   9.0 GiB   3.0 MiB   1 min 1 s

${MEDIUM}`,
  );
});

test('body of a run with a partial volume', () => {
  assert.equal(
    formatBody(partialReport()),
    `xenbackup on host.example.org: PARTIAL
5 of 6 volumes backed up (1 partial); 2.1 GiB written.
Started  2026-11-27 02:00:00 UTC
Finished 2026-11-27 02:14:05 UTC (14 min)

Volume      Status   Kind          Files    Source   Written        Time
dom0/root   ok       incremental   1,234   1.2 GiB   310 MiB       3.2 s
web1/root   ok       full         45,678   3.4 GiB   1.1 GiB  5 min 12 s
web1/var    partial  incremental      87  40.0 MiB  12.0 MiB        41 s
mail/root   ok       incremental     512   600 MiB   200 MiB  1 min 35 s
mail/spool  ok       incremental  20,001   2.0 GiB   480 MiB  5 min 20 s
db/data     ok       mirror            3   9.0 GiB   3.0 MiB   1 min 1 s

Errors:
  web1/var:
    cannot read lib/app/cache.db: Input/output error

Warnings:
  web1/var:
    file changed as we read it: log/syslog

${MEDIUM}`,
  );
});

test('body of a run with a failed volume, swept leftovers and a prune summary', () => {
  assert.equal(
    formatBody(failedReport()),
    `xenbackup on host.example.org: FAILED
5 of 6 volumes backed up (1 failed); 1.6 GiB written.
Started  2026-11-27 02:00:00 UTC
Finished 2026-11-27 02:14:05 UTC (14 min)

Volume      Status  Kind          Files    Source   Written        Time
dom0/root   ok      incremental   1,234   1.2 GiB   310 MiB       3.2 s
web1/root   ok      full         45,678   3.4 GiB   1.1 GiB  5 min 12 s
web1/var    ok      incremental      87  40.0 MiB  12.0 MiB        41 s
mail/root   ok      incremental     512   600 MiB   200 MiB  1 min 35 s
mail/spool  failed  -                 0       0 B       0 B        14 s
db/data     ok      mirror            3   9.0 GiB   3.0 MiB   1 min 1 s

Errors:
  mail/spool:
    snapshot vgxen/mail-spool-xbsnap overflowed while archiving (snap_percent 100.00); archive discarded
      lvs reported: lv_snapshot_invalid=1

Warnings:
  dom0/root:
    file changed as we read it: var/log/daemon.log

Leftovers of an earlier run, removed before this one:
  unmounted /4backup/web1/root
  removed snapshot vgxen/web1-root-xbsnap

Prune:
  web1/root: deleted 2 archives older than 5 days (1.3 GiB)

${MEDIUM}`,
  );
});

test('body of an interrupted run', () => {
  assert.equal(
    formatBody(interruptedReport()),
    `xenbackup on host.example.org: INTERRUPTED
Interrupted by SIGTERM before the run finished.
3 of 6 volumes backed up (3 interrupted); 1.4 GiB written.
Started  2026-11-27 02:00:00 UTC
Finished 2026-11-27 02:05:00 UTC (5 min)

Volume      Status       Kind          Files    Source   Written        Time
dom0/root   ok           incremental   1,234   1.2 GiB   310 MiB       3.2 s
web1/root   ok           full         45,678   3.4 GiB   1.1 GiB  5 min 12 s
web1/var    ok           incremental      87  40.0 MiB  12.0 MiB        41 s
mail/root   interrupted  -                 0       0 B       0 B       8.0 s
mail/spool  interrupted  -                 0       0 B       0 B       0.0 s
db/data     interrupted  -                 0       0 B       0 B       0.0 s

Errors:
  mail/root:
    interrupted by SIGTERM while archiving; partial archive removed

${MEDIUM}`,
  );
});

test('body when the backup medium is unavailable', () => {
  assert.equal(
    formatBody(mediumUnavailableReport()),
    `xenbackup on host.example.org: MEDIUM UNAVAILABLE
Backup medium unavailable: /backup/guests is not a mountpoint of /dev/sdb2 (it is on /dev/sda1, the root filesystem)
Nothing was written anywhere.
Started  2026-11-27 02:00:00 UTC
Finished 2026-11-27 02:00:02 UTC (2.3 s)

Errors:
  run:
    mount -t ext4 /dev/sdb2 /backup/guests: exit 32: mount: /backup/guests: special device /dev/sdb2 does not exist.

Full log: /var/log/xenbackup.log
`,
  );
});

test('body when another run holds the lock, and on a config error', () => {
  assert.equal(
    formatBody(lockedReport()),
    `xenbackup on host.example.org: LOCKED
Not started: another run holds /run/xenbackup.lock (pid 4242, since 2026-11-26 02:00:00 UTC)
Nothing was backed up.
Started  2026-11-27 02:00:00 UTC
Finished 2026-11-27 02:00:00 UTC (0.0 s)

Full log: /var/log/xenbackup.log
`,
  );
  assert.match(formatBody(configErrorReport()), /^Configuration error: \/etc\/xenback_vols:3: 6 fields, expected 5 /m);
});

test('body shows unknown free space and run-level errors, and escapes control characters', () => {
  const r = okReport();
  r.medium!.freeAfter = null;
  r.errors = ['prune: cannot remove /backup/guests/x: Read-only file system'];
  r.volumes[0]!.warnings = ['odd name: etc/a\x1b[31mb'];
  const body = formatBody(r);
  assert.match(body, /^The run itself had 1 error \(see Errors\)\.$/m);
  assert.match(body, /^Errors:\n  run:\n    prune: cannot remove \/backup\/guests\/x: Read-only file system$/m);
  assert.match(body, /^    odd name: etc\/a\\x1b\[31mb$/m);
  assert.match(body, /^  free after:  unknown$/m);
  assert.doesNotMatch(body, /[\x00-\x09\x0b-\x1f]/);
});

test('body names where each kept backup went (a remote rsync target included), not failed ones', () => {
  const r = okReport();
  r.volumes[0]!.archivePath = '/media/backup/host/dom0/root/20261127T020000Z.incr.tar.zst';
  r.volumes[5]!.archivePath = 'backup@vault:/srv/xb/host/db/data/20261127T020100Z.tree';
  r.volumes[1]!.status = 'failed';
  r.volumes[1]!.archivePath = '/media/backup/host/web1/root/never.full.tar.zst';
  const body = formatBody(r);
  assert.match(body, /Stored at:\n {2}dom0\/root: \/media\/backup\/host\/dom0\/root\/20261127T020000Z\.incr\.tar\.zst\n {2}db\/data: backup@vault:\/srv\/xb\/host\/db\/data\/20261127T020100Z\.tree\n/);
  assert.doesNotMatch(body, /never\.full/);
});

test('body carries each kept backup\'s notes (a raw image\'s chunk counts) under Notes, printable', () => {
  const r = okReport();
  r.volumes[1]!.notes = ['raw image of 64.0 MiB in 16 chunks of 4.0 MiB: 3 stored, 12 zero, 1 unchanged'];
  r.volumes[2]!.notes = ['odd\x07note'];
  const body = formatBody(r);
  assert.match(body, new RegExp(`^Notes:\\n  ${r.volumes[1]!.volume}: raw image of 64\\.0 MiB in 16 chunks of 4\\.0 MiB: 3 stored, 12 zero, 1 unchanged\\n  ${r.volumes[2]!.volume}: odd\\\\x07note$`, 'm'));
  assert.doesNotMatch(formatBody(okReport()), /^Notes:/m);
});
