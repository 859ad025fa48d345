/**
 * Fixed RunReports for the report tests: one per outcome the mail must tell
 * apart (ok, partial, failed, interrupted, medium unavailable, locked, config
 * error). Fixed dates and sizes so formatted text can be compared exactly.
 */
import type { RunReport, VolumeReport } from '../../src/report/run-report.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

export const START = new Date('2026-11-27T02:00:00Z');

function volume(v: Partial<VolumeReport> & Pick<VolumeReport, 'volume'>): VolumeReport {
  return {
    status: 'ok',
    kind: 'incremental',
    files: 0,
    bytes: 0,
    sourceBytes: 0,
    durationMs: 0,
    warnings: [],
    errors: [],
    ...v,
  };
}

function sixVolumes(): VolumeReport[] {
  return [
    volume({ volume: 'dom0/root', files: 1234, bytes: 310 * MiB, sourceBytes: 1.2 * GiB, durationMs: 3200 }),
    volume({ volume: 'web1/root', kind: 'full', files: 45678, bytes: 1.1 * GiB, sourceBytes: 3.4 * GiB, durationMs: 312_000 }),
    volume({ volume: 'web1/var', files: 87, bytes: 12 * MiB, sourceBytes: 40 * MiB, durationMs: 41_000 }),
    volume({ volume: 'mail/root', files: 512, bytes: 200 * MiB, sourceBytes: 600 * MiB, durationMs: 95_000 }),
    volume({ volume: 'mail/spool', files: 20_001, bytes: 480 * MiB, sourceBytes: 2 * GiB, durationMs: 320_000 }),
    volume({ volume: 'db/data', kind: 'mirror', files: 3, bytes: 3 * MiB, sourceBytes: 9 * GiB, durationMs: 60_500 }),
  ];
}

function base(volumes: VolumeReport[]): RunReport {
  return {
    host: 'host.example.org',
    startedAt: START,
    finishedAt: new Date(START.getTime() + 14 * 60_000 + 5_000),
    volumes,
    warnings: [],
    errors: [],
    medium: { path: '/backup/guests', device: '/dev/sdb2', freeBefore: 120 * GiB, freeAfter: 118 * GiB, total: 500 * GiB },
    interrupted: false,
    swept: [],
    logFile: '/var/log/xenbackup.log',
  };
}

export function okReport(): RunReport {
  return base(sixVolumes());
}

export function partialReport(): RunReport {
  const r = base(sixVolumes());
  r.volumes[2] = {
    ...r.volumes[2]!,
    status: 'partial',
    warnings: ['file changed as we read it: log/syslog'],
    errors: ['cannot read lib/app/cache.db: Input/output error'],
  };
  return r;
}

export function failedReport(): RunReport {
  const r = base(sixVolumes());
  r.volumes[4] = {
    ...r.volumes[4]!,
    status: 'failed',
    kind: null,
    files: 0,
    bytes: 0,
    sourceBytes: 0,
    durationMs: 14_000,
    errors: ['snapshot vgxen/mail-spool-xbsnap overflowed while archiving (snap_percent 100.00); archive discarded\nlvs reported: lv_snapshot_invalid=1'],
  };
  r.volumes[0]!.warnings.push('file changed as we read it: var/log/daemon.log');
  r.swept = ['unmounted /4backup/web1/root', 'removed snapshot vgxen/web1-root-xbsnap'];
  r.prune = ['web1/root: deleted 2 archives older than 5 days (1.3 GiB)'];
  return r;
}

export function interruptedReport(): RunReport {
  const r = base(sixVolumes());
  r.finishedAt = new Date(START.getTime() + 5 * 60_000);
  r.interrupted = true;
  r.interruptSignal = 'SIGTERM';
  r.volumes[3] = { ...r.volumes[3]!, status: 'interrupted', kind: null, files: 0, bytes: 0, sourceBytes: 0, durationMs: 8_000, errors: ['interrupted by SIGTERM while archiving; partial archive removed'] };
  r.volumes[4] = { ...r.volumes[4]!, status: 'interrupted', kind: null, files: 0, bytes: 0, sourceBytes: 0, durationMs: 0 };
  r.volumes[5] = { ...r.volumes[5]!, status: 'interrupted', kind: null, files: 0, bytes: 0, sourceBytes: 0, durationMs: 0 };
  return r;
}

export function mediumUnavailableReport(): RunReport {
  const r = base([]);
  r.finishedAt = new Date(START.getTime() + 2_300);
  r.aborted = { kind: 'medium', message: '/backup/guests is not a mountpoint of /dev/sdb2 (it is on /dev/sda1, the root filesystem)' };
  r.medium = null;
  r.errors = ['mount -t ext4 /dev/sdb2 /backup/guests: exit 32: mount: /backup/guests: special device /dev/sdb2 does not exist.'];
  return r;
}

export function lockedReport(): RunReport {
  const r = base([]);
  r.finishedAt = START;
  r.aborted = { kind: 'lock', message: 'another run holds /run/xenbackup.lock (pid 4242, since 2026-11-26 02:00:00 UTC)' };
  r.medium = null;
  return r;
}

export function configErrorReport(): RunReport {
  const r = base([]);
  r.finishedAt = START;
  r.aborted = { kind: 'usage', message: '/etc/xenback_vols:3: 6 fields, expected 5 (domU|part|device|fstype|mount options)' };
  r.medium = null;
  return r;
}
