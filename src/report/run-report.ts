/**
 * What one `xenbackup run` produced, as plain data: the orchestrator fills a
 * RunReport while it works, and everything downstream derives from it alone —
 * the mail subject and body (format.ts), whether a mail goes out (mail.ts) and
 * the process exit code (exitCodeFor). Keeping the verdict a pure function of
 * this data is what makes the exit code and the subject always agree.
 */

/**
 * ok: archived completely and the archive counts.
 * partial: archived, but some files could not be read; the archive counts, the gaps are in `warnings`/`errors`.
 * failed: no usable archive (snapshot, mount, overflow, write error ...); the manifest did not move.
 * skipped: deliberately not attempted (not selected, disabled); does not by itself make the run fail.
 * interrupted: stopped by a signal before it finished, or never reached because of one.
 */
export type VolumeStatus = 'ok' | 'partial' | 'failed' | 'skipped' | 'interrupted';

export type BackupKind = 'full' | 'incremental' | 'mirror';

export interface VolumeReport {
  /** `domU/part`, e.g. `web1/root`, or `dom0/root`. */
  volume: string;
  status: VolumeStatus;
  /** null when nothing was written (failed before archiving, skipped). */
  kind: BackupKind | null;
  /** Entries stored in this archive (for an incremental: the changed ones). */
  files: number;
  /** Archive bytes written to the medium (compressed). */
  bytes: number;
  /** Bytes read from the source for this archive. */
  sourceBytes: number;
  durationMs: number;
  archivePath?: string;
  /** What the table cannot show about a kept backup, one line each (e.g. a raw image's chunk counts). */
  notes?: string[];
  warnings: string[];
  errors: string[];
}

export interface MediumReport {
  /** Mountpoint (BCKMNTP). */
  path: string;
  /** Block device (BCKDEV). */
  device: string;
  /** Free bytes before the run; null when it could not be measured. */
  freeBefore: number | null;
  freeAfter: number | null;
  total: number | null;
}

/**
 * A run that stopped before backing anything up, and why. Each kind has its
 * own documented exit code: usage 2, lock 3, medium 4.
 */
export interface RunAbort {
  kind: 'usage' | 'lock' | 'medium';
  /** One line naming what was wrong, e.g. `/dev/sdb2 is not mounted on /backup/guests (found /dev/sda1)`. */
  message: string;
}

export interface RunReport {
  /** FQDN of the host, as the subject names it. */
  host: string;
  startedAt: Date;
  finishedAt: Date;
  volumes: VolumeReport[];
  /** Run-level warnings and errors (not tied to one volume): sweep, prune, unmount of the medium ... */
  warnings: string[];
  errors: string[];
  /** null when the medium was never reached (e.g. config error, or it was unavailable and nothing is known). */
  medium: MediumReport | null;
  /** Set when the run stopped before backing anything up. */
  aborted?: RunAbort | null;
  interrupted: boolean;
  /** The signal that interrupted the run, e.g. `SIGTERM`. */
  interruptSignal?: string | null;
  /** Leftovers of a crashed earlier run removed at start (snapshot LVs, mounts), one line each. */
  swept: string[];
  /** Free-form summary lines of the prune and verify steps, when they ran. */
  prune?: string[];
  verify?: string[];
  /** Where the full log of this run is (LOGFILE). */
  logFile?: string;
  /** True for `run --dry-run`: nothing was touched. */
  dryRun?: boolean;
}

/** The verdict on a run, in the order of precedence used to pick it. */
export type RunOutcome = 'usage-error' | 'locked' | 'medium-unavailable' | 'interrupted' | 'failed' | 'partial' | 'ok';

/** The documented exit codes (README, `--help`). */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_LOCKED = 3;
export const EXIT_MEDIUM = 4;

/** The part of a mail attempt the exit code depends on (mail.ts's MailResult fits). */
export interface MailStatus {
  status: 'sent' | 'skipped' | 'failed';
}

export function outcomeOf(report: RunReport): RunOutcome {
  if (report.aborted) {
    return { usage: 'usage-error', lock: 'locked', medium: 'medium-unavailable' }[report.aborted.kind] as RunOutcome;
  }
  if (report.interrupted || report.volumes.some((v) => v.status === 'interrupted')) return 'interrupted';
  // A run-level error (a failed sweep or prune, a medium that would not unmount) is as real as a failed volume,
  // and so is an error of a volume whose archive was kept (its snapshot would not unmount or lvremove):
  // a failed step is never an OK. A partial volume's errors are its unreadable files: that is PARTIAL.
  if (report.errors.length > 0 || report.volumes.some((v) => v.status === 'failed' || (v.status !== 'partial' && v.errors.length > 0))) return 'failed';
  if (report.volumes.some((v) => v.status === 'partial')) return 'partial';
  return 'ok';
}

/**
 * The process exit code: 0 all volumes backed up; 1 some failed, were partial
 * or the run was interrupted; 2 usage or config error; 3 lock held; 4 medium
 * unavailable. A report mail that could not be sent turns 0 into 1, so cron
 * still notices a run nobody was told about.
 */
export function exitCodeFor(report: RunReport, mail?: MailStatus): number {
  const code = EXIT_CODE_OF[outcomeOf(report)];
  if (code === EXIT_OK && mail?.status === 'failed') return EXIT_FAILED;
  return code;
}

const EXIT_CODE_OF: Record<RunOutcome, number> = {
  'usage-error': EXIT_USAGE,
  locked: EXIT_LOCKED,
  'medium-unavailable': EXIT_MEDIUM,
  interrupted: EXIT_FAILED,
  failed: EXIT_FAILED,
  partial: EXIT_FAILED,
  ok: EXIT_OK,
};

export interface VolumeCounts {
  /** Volumes that were meant to be backed up (all but skipped). */
  attempted: number;
  ok: number;
  partial: number;
  failed: number;
  interrupted: number;
  skipped: number;
}

export function volumeCounts(report: RunReport): VolumeCounts {
  const counts: VolumeCounts = { attempted: 0, ok: 0, partial: 0, failed: 0, interrupted: 0, skipped: 0 };
  for (const v of report.volumes) {
    counts[v.status] += 1;
    if (v.status !== 'skipped') counts.attempted += 1;
  }
  return counts;
}

/** Archive bytes written by the whole run. */
export function totalBytes(report: RunReport): number {
  return report.volumes.reduce((sum, v) => sum + v.bytes, 0);
}

/** Every warning of the run, volume ones included. */
export function warningCount(report: RunReport): number {
  return report.warnings.length + report.volumes.reduce((sum, v) => sum + v.warnings.length, 0);
}

export function errorCount(report: RunReport): number {
  return report.errors.length + report.volumes.reduce((sum, v) => sum + v.errors.length, 0);
}

export function runDurationMs(report: RunReport): number {
  return Math.max(0, report.finishedAt.getTime() - report.startedAt.getTime());
}
