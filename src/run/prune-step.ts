/**
 * The prune step of `xenbackup run`: after the night's backups (never
 * before, so a failed night never leaves fewer restore points), every volume
 * of this host on the medium is pruned by the config's ARCHIVE_TTL_DAYS
 * (BM_ARCHIVE_TTL when migrating) and KEEP_* rules. Volumes that failed
 * tonight, or are no longer in the volume table, are pruned too; retention
 * keeps their newest complete restore point and its chain whatever the rules.
 *
 * With RSYNC_TARGET, the remote volumes of this host are pruned by the same
 * rules and the same code (repo/prune.ts over the ssh storage), after the
 * local ones.
 *
 * Returns lines for the report; the run job puts them in RunReport.prune
 * (and `errors` in the run's errors). It never throws for one volume's trouble.
 */
import type { Config } from '../config/settings.js';
import { checkRules, describeRules, RetentionRulesError, type RetentionRules } from '../core/retention.js';
import { volumesOnMedium } from '../repo/medium-index.js';
import { pruneVolumeLocked, type VolumePruneResult } from '../repo/prune.js';
import type { VolumeStore } from '../repo/volume-store.js';
import { acquireLock } from '../host/lock.js';
import { VolumeBusyError } from '../repo/volume-lock.js';
import { formatBytes } from '../report/format.js';
import { RunStorages } from './run-storages.js';
import type { Logger } from '../util/log.js';

export function rulesOfConfig(cfg: Pick<Config, 'archiveTtlDays' | 'keepLast' | 'keepDaily' | 'keepWeekly' | 'keepMonthly'>): RetentionRules {
  return { ttlDays: cfg.archiveTtlDays, keepLast: cfg.keepLast, keepDaily: cfg.keepDaily, keepWeekly: cfg.keepWeekly, keepMonthly: cfg.keepMonthly };
}

/** One line for a volume: what went, what stays. */
export function summarizeVolumePrune(r: VolumePruneResult): string {
  const kept = r.decision.keep.length;
  const points = r.decision.items.filter((i) => i.keep && i.restorable).length;
  const freed = r.deleted.reduce((n, d) => n + d.bytes, 0);
  const verb = r.dryRun ? 'would delete' : 'deleted';
  const ids = r.deleted.map((d) => d.id).reverse();
  const which = ids.length <= 3 ? ids.join(', ') : `${ids[0]} to ${ids[ids.length - 1]}`;
  const gone = r.deleted.length ? `${verb} ${r.deleted.length} backup${r.deleted.length === 1 ? '' : 's'} (${formatBytes(freed)}: ${which})` : 'nothing to delete';
  const oldest = r.decision.items.find((i) => i.keep && i.restorable)?.backup.id;
  const debris = r.debris.length ? `; ${r.dryRun ? 'would remove' : 'removed'} debris of an interrupted prune: ${r.debris.join(', ')}` : '';
  return `${r.volume}: ${gone}; kept ${kept} backup${kept === 1 ? '' : 's'}, ${points} restorable${oldest ? ` back to ${oldest}` : ''}${debris}`;
}

export interface PruneStepResult {
  lines: string[];
  warnings: string[];
  errors: string[];
}

/**
 * `mediumPath`: the mounted local medium; undefined when the run needed none
 * (every volume went to RSYNC_TARGET). With RSYNC_TARGET the remote
 * volumes of this host are pruned too, by the same rules.
 */
export async function pruneStep(cfg: Config, mediumPath: string | undefined, logger: Logger, now: Date = new Date()): Promise<PruneStepResult> {
  const rules = rulesOfConfig(cfg);
  const out: PruneStepResult = { lines: [], warnings: [], errors: [] };
  try {
    checkRules(rules);
  } catch (e) {
    if (!(e instanceof RetentionRulesError)) throw e;
    // ARCHIVE_TTL_DAYS=0 ("off") with no KEEP_* rule: nothing is pruned, and the report says why
    const msg = `prune skipped: ${e.message} (ARCHIVE_TTL_DAYS=${cfg.archiveTtlDays}, KEEP_LAST/DAILY/WEEKLY/MONTHLY=${cfg.keepLast}/${cfg.keepDaily}/${cfg.keepWeekly}/${cfg.keepMonthly} in ${cfg.configPath})`;
    logger.warn(msg);
    out.warnings.push(msg);
    out.lines.push(msg);
    return out;
  }
  let freed = 0;
  let deleted = 0;
  let volumes = 0;
  /** One volume's prune, whatever the medium: its lines, errors and totals go into `out`. */
  const pruneOne = async (volume: string, prune: () => Promise<VolumePruneResult>): Promise<void> => {
    volumes++;
    let r: VolumePruneResult;
    try {
      r = await prune();
    } catch (e) {
      if (e instanceof VolumeBusyError) {
        // a manual backup of it is running: prune it next time rather than pull its base away
        const msg = `prune ${e.message}; not pruned this time`;
        logger.warn(msg);
        out.warnings.push(msg);
        out.lines.push(msg);
        return;
      }
      const msg = `prune ${volume}: ${(e as Error).message}`;
      logger.error(msg);
      out.errors.push(msg);
      out.lines.push(`ERROR ${msg}`);
      return;
    }
    const line = `prune ${summarizeVolumePrune(r)}`;
    logger.info(line);
    out.lines.push(line);
    for (const err of r.errors) {
      logger.error(`prune ${err}`);
      out.errors.push(`prune ${err}`);
      out.lines.push(`ERROR prune ${err}`);
    }
    freed += r.deleted.reduce((n, d) => n + d.bytes, 0);
    deleted += r.deleted.length;
  };
  for (const { storage, label } of new RunStorages(cfg, mediumPath, logger).all()) {
    // An unreachable RSYNC_TARGET is one error line, and the local prune stands.
    let stores: Awaited<ReturnType<typeof volumesOnMedium>> = [];
    try {
      stores = await volumesOnMedium(storage, cfg.hostname);
    } catch (e) {
      const msg = `prune ${label ?? storage.root}: ${(e as Error).message}`;
      logger.error(msg);
      out.errors.push(msg);
      out.lines.push(`ERROR ${msg}`);
    }
    for (const store of stores) {
      const shown = label ? `${store.volume} on ${label}` : store.volume;
      await pruneOne(shown, async () => ({ ...(await pruneVolumeLocked(store, rules, { dryRun: false, now, logger })), volume: shown }));
    }
  }
  const total = `prune (${describeRules(rules)}): ${deleted} backup${deleted === 1 ? '' : 's'} deleted in ${volumes} volume${volumes === 1 ? '' : 's'}, ${formatBytes(freed)} freed`;
  logger.info(total);
  out.lines.unshift(total);
  return out;
}

/** What `run` calls after its backups: the report lines of the prune step (pruneStep also sorts out warnings and errors). */
export async function pruneAfterRun(cfg: Config, mediumPath: string | undefined, logger: Logger, now: Date = new Date()): Promise<string[]> {
  return (await pruneStep(cfg, mediumPath, logger, now)).lines;
}

/**
 * `xenbackup prune`: the volumes pruned one after the other under the run
 * lock (not for a dry run), so a prune never races a nightly run; a volume
 * whose backup is running is skipped with a line in `busy`. A run holding
 * the lock is LockHeldError, before anything is deleted.
 */
export async function pruneUnderRunLock(
  stores: VolumeStore[],
  rules: RetentionRules,
  opts: { dryRun: boolean; now: Date; lockPath: string; logger: Logger },
): Promise<{ results: VolumePruneResult[]; busy: string[] }> {
  const lock = opts.dryRun ? undefined : await acquireLock(opts.lockPath);
  const results: VolumePruneResult[] = [];
  const busy: string[] = [];
  try {
    for (const store of stores) {
      try {
        results.push(await pruneVolumeLocked(store, rules, opts));
      } catch (e) {
        if (!(e instanceof VolumeBusyError)) throw e;
        busy.push(`${e.message}; not pruned`);
      }
    }
  } finally {
    await lock?.release();
  }
  return { results, busy };
}
