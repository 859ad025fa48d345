/**
 * `xenbackup run`, the nightly job. Resources nest in one visible scope:
 *
 *   lock -> medium (mounted and proven to be BCKDEV; skipped when every
 *           volume goes to RSYNC_TARGET) -> sweep of leftovers
 *     -> each volume: snapshot -> mount -> archive -> checks -> release
 *     -> dom0's root
 *   <- medium released <- lock released  -> report (log file, mail)
 *
 * SIGINT/SIGTERM abort the current volume's archiving; every finally still
 * runs, so the snapshot is unmounted and removed before the process exits.
 * Config errors never get here: they are found before anything is touched.
 */
import pLimit from 'p-limit';
import type { Config } from '../config/settings.js';
import { acquireLock, LockHeldError, type LockHandle } from '../host/lock.js';
import { MediumUnavailableError, openMedium, type Medium } from '../host/medium.js';
import { describeSweep, sweepLeftovers } from '../host/sweep.js';
import type { RunReport, VolumeReport } from '../report/run-report.js';
import type { Logger } from '../util/log.js';
import { backupDom0Root, backupGuestVolume, type VolumeJobContext } from './volume-backup.js';
import { pruneStep } from './prune-step.js';
import { verifyVolume, VerifyUsageError, type VerifyDepth } from '../engines/verify.js';
import type { Storage } from '../storage/storage.js';
import { engineOf, RunStorages } from './run-storages.js';

/** VERIFY_AFTER_RUN: checks tonight's volumes on the medium; damage is a run error (exit 1). */
async function verifyAfterRun(
  volumes: VolumeReport[],
  depth: VerifyDepth,
  storageOf: (volume: string) => Storage,
  host: string,
  log: Logger,
  signal: AbortSignal,
  errors: string[],
): Promise<string[]> {
  const lines: string[] = [];
  // Run-level errors go to the log as well as to the report.
  const fail = (msg: string): void => {
    errors.push(msg);
    log.error(msg);
  };
  for (const v of volumes) {
    if (v.status !== 'ok' && v.status !== 'partial') continue;
    try {
      const r = await verifyVolume({ medium: storageOf(v.volume), host, volume: v.volume, depth, logger: log, signal });
      lines.push(...r.lines);
      for (const p of r.problems) fail(`verify ${v.volume}: ${p.file}: ${p.what}${p.member ? ` (first bad member ${p.member})` : ''}`);
    } catch (e) {
      if (e instanceof VerifyUsageError) lines.push(`${v.volume}: ${e.message}`);
      else fail(`verify ${v.volume}: ${(e as Error).message}`);
    }
  }
  return lines;
}

export interface RunOptions {
  lockWaitSeconds: number;
  forceFull: boolean;
  logger: Logger;
  /** Aborted on SIGINT/SIGTERM (by the caller, who owns the signal handlers). */
  signal: AbortSignal;
  now?: () => Date;
  /** The terminal's status line, for per-file progress (ignored under cron). */
  progress?: (text: string) => void;
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

export async function runJob(cfg: Config, opts: RunOptions): Promise<RunReport> {
  const log = opts.logger;
  const now = opts.now ?? (() => new Date());
  const host = cfg.domain ? `${cfg.hostname}.${cfg.domain}` : cfg.hostname;
  const report: RunReport = {
    host,
    startedAt: now(),
    finishedAt: now(),
    volumes: [],
    warnings: [...cfg.warnings],
    errors: [],
    medium: null,
    interrupted: false,
    swept: [],
    logFile: cfg.logFile,
  };
  let lock: LockHandle | undefined;
  let medium: Medium | undefined;
  try {
    try {
      lock = await acquireLock(cfg.lockFile, { waitSeconds: opts.lockWaitSeconds, logger: log, signal: opts.signal });
    } catch (e) {
      if (e instanceof LockHeldError && opts.signal.aborted) {
        // interrupted while waiting (--lock-wait): an interrupted run, not a locked one
        report.errors.push(`interrupted by ${String(opts.signal.reason)} while waiting for the lock: ${e.message}; nothing was backed up`);
        log.error(report.errors[0]!);
        return report;
      }
      if (e instanceof LockHeldError) {
        report.aborted = { kind: 'lock', message: e.message };
        return report;
      }
      throw e;
    }
    if (opts.signal.aborted) {
      report.errors.push(`interrupted by ${String(opts.signal.reason)} before the medium was opened; nothing was backed up`);
      log.error(report.errors[0]!);
      return report;
    }
    try {
      // Not needed when every volume goes to RSYNC_TARGET (settings.ts needsLocalMedium): then BCKDEV is left alone.
      if (cfg.needsLocalMedium) medium = await openMedium({ device: cfg.backupDevice, fsType: cfg.backupDeviceFs, mountpoint: cfg.backupMountpoint }, { logger: log });
    } catch (e) {
      if (e instanceof MediumUnavailableError) {
        // the reason alone: the subject says "MEDIUM UNAVAILABLE" and is cut at 120 characters,
        // so "backup medium X on Y unavailable:" would push the why out of it; the body names X and Y
        report.aborted = { kind: 'medium', message: e.reason };
        report.medium = { path: cfg.backupMountpoint, device: cfg.backupDevice, freeBefore: null, freeAfter: null, total: null };
        return report;
      }
      throw e;
    }
    if (medium) {
      report.medium = {
        path: medium.mountpoint,
        device: cfg.backupDevice,
        freeBefore: medium.spaceBefore.freeBytes,
        freeAfter: null,
        total: medium.spaceBefore.totalBytes,
      };
      log.info(`medium ${cfg.backupDevice} on ${medium.mountpoint}${medium.mountedByUs ? ' (mounted by this run)' : ''}`);
    } else {
      log.info(`no local medium needed: every volume goes to ${cfg.rsyncTarget?.spec} (RSYNC_TARGET) and BACKUP_DOM0=no`);
    }
    if (cfg.rsyncTarget) log.info(`rsync volumes go to ${cfg.rsyncTarget.spec} (RSYNC_TARGET)`);

    const swept = await sweepLeftovers({ mntSourceDir: cfg.snapshotMountDir, logger: log });
    // sweepLeftovers has logged each line already. What it could not clean up (or not even list: lvs
    // missing or failing) is a failed step of the run, so it is a run error, never a line of "removed" leftovers.
    report.swept = describeSweep({ ...swept, errors: [] });
    report.errors.push(...swept.errors.map((e) => `sweep of leftovers: could not clean up: ${e}`));

    const storages = new RunStorages(cfg, medium?.mountpoint, log);
    const ctx: VolumeJobContext = {
      storageFor: (engine) => storages.forEngine(engine),
      rsyncCompress: cfg.rsyncTarget?.compress,
      host: cfg.hostname,
      snapshotMountDir: cfg.snapshotMountDir,
      compression: cfg.compression,
      fullIntervalDays: cfg.fullIntervalDays,
      maxChainLength: cfg.maxChainLength,
      fullWeekday: cfg.fullWeekday,
      fullMonthday: cfg.fullMonthday,
      forceFull: opts.forceFull,
      logger: log,
      signal: opts.signal,
      progress: opts.progress,
    };
    const limit = pLimit(Math.max(1, cfg.concurrency));
    let first = true;
    const results = await Promise.all(
      cfg.volumes.map((v) =>
        limit(async (): Promise<VolumeReport> => {
          if (!first && cfg.snapMountDelaySeconds > 0) await sleep(cfg.snapMountDelaySeconds * 1000, opts.signal);
          first = false;
          if (opts.signal.aborted) {
            return { volume: `${v.domU}/${v.part}`, status: 'interrupted', kind: null, files: 0, bytes: 0, sourceBytes: 0, durationMs: 0, warnings: [], errors: ['not started: the run was interrupted'] };
          }
          return backupGuestVolume(v, ctx);
        }),
      ),
    );
    report.volumes.push(...results);
    if (cfg.backupDom0) {
      if (opts.signal.aborted) {
        report.volumes.push({ volume: 'dom0/root', status: 'interrupted', kind: null, files: 0, bytes: 0, sourceBytes: 0, durationMs: 0, warnings: [], errors: ['not started: the run was interrupted'] });
      } else {
        report.volumes.push(await backupDom0Root({ ...ctx, backupMountpoint: cfg.backupMountpoint, excludes: cfg.dom0Excludes, root: cfg.dom0Root }));
      }
    }
    // After the backups, never before: a failed night must not leave fewer restore points.
    if (!opts.signal.aborted) {
      const pruned = await pruneStep(cfg, medium?.mountpoint, log, now());
      report.prune = pruned.lines;
      report.warnings.push(...pruned.warnings);
      report.errors.push(...pruned.errors);
    }
    if (cfg.verifyAfterRun !== 'no' && !opts.signal.aborted) {
      const engineOfVolume = new Map(cfg.volumes.map((v) => [`${v.domU}/${v.part}`, engineOf(v)]));
      const storageOf = (volume: string): Storage => storages.forEngine(engineOfVolume.get(volume) ?? 'tar'); // dom0/root: tar
      report.verify = await verifyAfterRun(report.volumes, cfg.verifyAfterRun, storageOf, cfg.hostname, log, opts.signal, report.errors);
    }
    const space = await medium?.space().catch(() => undefined);
    if (space && report.medium) report.medium.freeAfter = space.freeBytes;
    return report;
  } catch (e) {
    report.errors.push((e as Error).message);
    log.error((e as Error).message);
    return report;
  } finally {
    if (medium) {
      await medium.release().catch((e: Error) => {
        report.errors.push(`releasing the medium: ${e.message}`);
      });
    }
    // a lock left behind would stop the next night's run: a failed step, not a remark
    if (lock) await lock.release().catch((e: Error) => report.errors.push(`releasing the lock: ${e.message}`));
    report.interrupted = opts.signal.aborted;
    if (report.interrupted) report.interruptSignal = String(opts.signal.reason);
    report.finishedAt = now();
  }
}
