/**
 * `xenbackup prune`: delete the backups the retention rules no longer keep,
 * never one a kept backup needs, never a volume's newest complete restore
 * point. With --config it takes the rules, the medium (BCKMNTP) and the host
 * (HOSTN) from the config, and insists that the medium is mounted, as the
 * mount table proves: prune never mounts it. It holds the run lock while it
 * deletes, so it never races a `run`. The rule options (--ttl, --keep-*)
 * are shared with `list`, which shows what prune would do next.
 */
import type { Command } from 'commander';
import { ConfigError, loadConfig, type Config } from '../config/settings.js';
import { checkRules, describeRules, RetentionRulesError, type RetentionRules } from '../core/retention.js';
import { DEFAULT_LOCK_PATH, LockHeldError } from '../host/lock.js';
import { isRemoteTarget } from '../host/remote-target.js';
import { mountedMedium, MediumNotMountedError } from '../host/medium.js';
import { archiveBytesOf } from '../medium/sidecar.js';
import { volumesOnMedium } from '../repo/medium-index.js';
import type { VolumePruneResult } from '../repo/prune.js';
import { VolumeStore } from '../repo/volume-store.js';
import { formatBytes } from '../report/format.js';
import { pruneUnderRunLock, rulesOfConfig, summarizeVolumePrune } from '../run/prune-step.js';
import { LocalStorage } from '../storage/local-storage.js';
import type { Logger } from '../util/log.js';
import { addSshOptions, CliError, defaultHost, EXIT, openConsole, type SshCliOptions } from './common.js';
import { requireMediumRoot, resolveMedium, type ResolvedMedium } from './medium-option.js';

/** The retention options, as on the command line (strings until parsed). */
export interface RuleOptions {
  ttl?: string;
  keepLast?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
}

/** Adds --ttl and --keep-* to a command (prune, list). */
export function addRuleOptions(cmd: Command): Command {
  return cmd
    .option('--ttl <days>', 'keep every backup at most this many days old (default: ARCHIVE_TTL_DAYS, 5)')
    .option('--keep-last <n>', 'also keep the newest N restore points (default: KEEP_LAST, 0)')
    .option('--keep-daily <n>', 'also keep the newest restore point of each of the newest N days that have one (default: KEEP_DAILY, 0)')
    .option('--keep-weekly <n>', '... of each of the newest N ISO weeks (default: KEEP_WEEKLY, 0)')
    .option('--keep-monthly <n>', '... of each of the newest N months (default: KEEP_MONTHLY, 0)');
}

/** The rules: each option if given, else the config's value, else the config's default. */
export function rulesFromOptions(o: RuleOptions, cfg?: Config): RetentionRules {
  const base: RetentionRules = cfg ? rulesOfConfig(cfg) : { ttlDays: 5, keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0 };
  const num = (text: string | undefined, option: string, fallback: number): number => {
    if (text === undefined) return fallback;
    if (!/^\d{1,6}$/.test(text.trim())) throw new CliError(`${option} must be a whole number >= 0, not "${text}"`);
    return Number(text);
  };
  return {
    ttlDays: num(o.ttl, '--ttl', base.ttlDays),
    keepLast: num(o.keepLast, '--keep-last', base.keepLast),
    keepDaily: num(o.keepDaily, '--keep-daily', base.keepDaily),
    keepWeekly: num(o.keepWeekly, '--keep-weekly', base.keepWeekly),
    keepMonthly: num(o.keepMonthly, '--keep-monthly', base.keepMonthly),
  };
}

export function loadConfigForCli(configPath: string): Config {
  try {
    return loadConfig({ configPath });
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message, EXIT.usage);
    throw e;
  }
}

/** BCKMNTP, proven BCKDEV's mount (host/medium.ts); exit 4 when it is not. */
export async function requireMountedMedium(cfg: Config, opts: { writable: boolean }): Promise<string> {
  try {
    return await mountedMedium({ device: cfg.backupDevice, mountpoint: cfg.backupMountpoint }, opts);
  } catch (e) {
    if (e instanceof MediumNotMountedError) throw new CliError(e.message, EXIT.medium);
    throw e;
  }
}

/** Where and what: the medium, the host folder, the rules, from --config and/or the options. */
export async function resolveTarget(
  o: RuleOptions & SshCliOptions & { medium?: string; config?: string; host?: string },
  writable: boolean,
  log: Logger,
): Promise<{ medium: ResolvedMedium; host: string; rules: RetentionRules; cfg?: Config }> {
  const remote = o.medium !== undefined && isRemoteTarget(o.medium);
  if (!remote && o.medium !== undefined && o.config !== undefined) throw new CliError('give either --medium DIR or --config FILE, not both (both only with --medium user@host:/path)');
  if (o.medium === undefined && o.config === undefined) throw new CliError('say where the backups are: --medium DIR or --config FILE (or --medium user@host:/path)');
  const cfg = o.config !== undefined ? loadConfigForCli(o.config) : undefined;
  const host = o.host ?? cfg?.hostname ?? defaultHost();
  const rules = rulesFromOptions(o, cfg);
  // A remote medium may come with --config: it gives HOSTN, the rules and RSYNC_SSH_*.
  if (remote || !cfg) return { medium: resolveMedium(o.medium!, o, log, cfg), host, rules, cfg };
  const mountpoint = await requireMountedMedium(cfg, { writable });
  return { medium: { storage: new LocalStorage(mountpoint), shown: mountpoint, missing: 'it is not mounted' }, host, rules, cfg };
}

/** The named volumes (each must have a folder there), else every volume of `host` on the medium. */
export async function storesFor(medium: ResolvedMedium, host: string, volumes: string[]): Promise<VolumeStore[]> {
  if (volumes.length === 0) {
    const all = await volumesOnMedium(medium.storage, host);
    if (all.length === 0) await requireMediumRoot(medium);
    return all;
  }
  const stores: VolumeStore[] = [];
  for (const v of volumes) {
    let store: VolumeStore;
    try {
      store = new VolumeStore(medium.storage, host, v);
    } catch (e) {
      throw new CliError((e as Error).message);
    }
    if (!(await store.exists())) {
      await requireMediumRoot(medium);
      throw new CliError(`no backups of ${v} on ${medium.shown} for host ${host}`);
    }
    stores.push(store);
  }
  return stores;
}

/** The JSON of one volume's prune (also what `list --json` shows as `prune`). */
export function pruneJson(r: VolumePruneResult): Record<string, unknown> {
  return {
    volume: r.volume,
    backups: r.decision.items.map((i) => ({
      id: i.backup.id,
      kind: i.backup.kind,
      action: i.keep ? 'keep' : 'delete',
      reasons: i.reasons,
      restorable: i.restorable,
      promised: i.promised,
      needs: i.needs,
      archiveBytes: archiveBytesOf(i.backup),
      ...(i.problem ? { problem: i.problem } : {}),
    })),
    delete: r.deleted.map((d) => ({ id: d.id, kind: d.kind, files: d.files, bytes: d.bytes })),
    freedBytes: r.deleted.reduce((n, d) => n + d.bytes, 0),
    debris: r.debris,
    errors: r.errors,
  };
}

function printVolume(r: VolumePruneResult, write: (s: string) => void): void {
  write(`${summarizeVolumePrune(r)}\n`);
  const bytesOf = new Map(r.deleted.map((d) => [d.id, d.bytes]));
  for (const i of r.decision.items) {
    const action = i.keep ? 'keep' : r.dryRun ? 'WOULD DELETE' : 'DELETED';
    const size = formatBytes(bytesOf.get(i.backup.id) ?? archiveBytesOf(i.backup));
    write(`  ${action.padEnd(12)} ${i.backup.id} ${i.backup.kind === 'full' ? 'full' : 'incr'} ${size.padStart(10)}  ${i.reasons.join('; ')}\n`);
  }
  for (const e of r.errors) write(`  ERROR ${e}\n`);
}

export function registerPrune(program: Command): void {
  const cmd = program
    .command('prune')
    .description('delete backups the retention rules no longer keep; never one a kept backup needs, never the newest complete restore point')
    .argument('[domU/part...]', 'only these volumes (default: every volume of the host on the medium)')
    .option('--medium <dir>', 'the backup medium: a mounted directory, or user@host:/path (RSYNC_TARGET) over ssh')
    .option('-c, --config <file>', 'take the rules, BCKMNTP and HOSTN from this config; the medium must already be mounted (with a remote --medium: also RSYNC_SSH_*)')
    .option('--host <name>', 'host folder on the medium (default: HOSTN of --config, else this machine\'s name)');
  addRuleOptions(addSshOptions(cmd))
    .option('--dry-run', 'print what would be deleted and why each backup stays; delete nothing')
    .option('--json', 'machine-readable output')
    .option('--lock-file <path>', `the run lock held while deleting (default: LOCKFILE of --config, else ${DEFAULT_LOCK_PATH})`)
    .addHelpText('after', `
A backup is kept when it is within the TTL or chosen by a keep rule, and so
is everything it needs to be restored (its full and the incrementals before
it). A volume's newest complete restore point is never deleted, so a volume
whose recent runs failed keeps its last good chain. Rules that would keep
nothing (--ttl 0 and no --keep-*) are refused. Without --config the rules
default to ARCHIVE_TTL_DAYS=5 and no KEEP_* rule.

Each backup goes newest first, its sidecar before its archive and manifest:
a crash mid-prune leaves no backup that looks complete but is not.

A remote medium (--medium user@host:/path, the rsync engine's RSYNC_TARGET) is
pruned the same way over ssh: the volume's lock is taken on the remote host,
then its dropped backups are deleted, each sidecar first.

Examples:
  xenbackup prune --config /etc/xenbackup.conf --dry-run
  xenbackup prune --medium /backup/guests --ttl 5
  xenbackup prune web1/root --medium /backup/guests --ttl 3 --keep-weekly 4 --keep-monthly 6
  xenbackup prune --medium /backup/guests --dry-run --json | jq '.volumes[].delete'
  xenbackup prune --medium backup@store:/srv/xenbackup --config /etc/xenbackup.conf --dry-run

Exit codes: 0 pruned (or nothing to prune); 1 a deletion failed; 2 bad arguments,
config error or rules that keep nothing; 3 a run holds the lock; 4 the --medium folder
does not exist, or the medium of --config is not mounted.`)
    .action(async (volumes: string[], o: RuleOptions & SshCliOptions & { medium?: string; config?: string; host?: string; dryRun?: boolean; json?: boolean; lockFile?: string }) => {
      const { log } = openConsole({ quiet: true });
      const target = await resolveTarget(o, !o.dryRun, log);
      try {
        checkRules(target.rules);
      } catch (e) {
        if (e instanceof RetentionRulesError) throw new CliError(e.message, EXIT.usage);
        throw e;
      }
      const now = new Date();
      const stores = await storesFor(target.medium, target.host, volumes);
      let results: VolumePruneResult[];
      let busy: string[];
      try {
        ({ results, busy } = await pruneUnderRunLock(stores, target.rules, { dryRun: !!o.dryRun, now, lockPath: o.lockFile ?? target.cfg?.lockFile ?? DEFAULT_LOCK_PATH, logger: log }));
      } catch (e) {
        if (e instanceof LockHeldError) throw new CliError(`${e.message}; not pruning while it runs`, EXIT.locked);
        throw e;
      }
      const write = (s: string): boolean => process.stdout.write(s);
      if (o.json) {
        write(
          JSON.stringify(
            { dryRun: !!o.dryRun, medium: target.medium.shown, host: target.host, now: now.toISOString(), rules: target.rules, volumes: results.map(pruneJson) },
            null,
            2,
          ) + '\n',
        );
      } else {
        write(`${o.dryRun ? 'dry run: nothing is deleted. ' : ''}prune ${target.medium.shown} host ${target.host} (${describeRules(target.rules)})\n`);
        if (results.length === 0) write(`no backups on ${target.medium.shown} for host ${target.host}\n`);
        for (const r of results) printVolume(r, write);
        const freed = results.reduce((n, r) => n + r.deleted.reduce((m, d) => m + d.bytes, 0), 0);
        const count = results.reduce((n, r) => n + r.deleted.length, 0);
        write(`${o.dryRun ? 'would delete' : 'deleted'} ${count} backup${count === 1 ? '' : 's'}, ${formatBytes(freed)}\n`);
      }
      const errors = [...results.flatMap((r) => r.errors), ...busy];
      for (const e of errors) process.stderr.write(`xenbackup: ${e}\n`);
      if (errors.length) process.exitCode = EXIT.failed;
    });
}
