/**
 * `xenbackup check`: is this host ready for `xenbackup run`? Validates the
 * config (a ConfigError is its `file:line:` message, exit 2), then the host
 * (run/preflight.ts: devices, LVM, volume group space, mountpoints, medium,
 * the programs a run starts, the mail transport tried for real), prints the plan a run would follow, and exits 2 listing every
 * problem found. Touches nothing: no mount, no lock, no LOGFILE line.
 */
import type { Command } from 'commander';
import { describePlan } from '../run/plan.js';
import { preflight } from '../run/preflight.js';
import { EXIT, openConsole } from './common.js';
import { loadConfigOrExit } from './run.js';

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('check the config and this host for `xenbackup run`, print the plan; touches nothing')
    .option('-c, --config <file>', 'the configuration', '/etc/xenbackup.conf')
    .option('--volumes <file>', 'the volume table (default: SBCONFIGFILE from the config, /etc/xenback_vols)')
    .option('--full', 'plan full backups for every volume, as `run --full` would')
    .option('-v, --verbose', 'also show every command run (lvs, vgs, findfs)')
    .addHelpText('after', `
Checks, and lists every problem found (not just the first):
  - the config and the volume table parse (errors name file and line)
  - every volume's device exists and is an LVM logical volume
  - every volume group has room for the snapshots it holds at once
    (with CONCURRENCY 1: its largest snapshot; with N: its N largest)
  - the snapshot mountpoints MNTSOURCEDIR/domU/part can be made
  - the medium BCKDEV exists, BCKMNTP exists, and whatever is mounted there is BCKDEV
  - every program the run will start is installed: lvs (the sweep), lvcreate and
    lvremove (guest volumes), mount and umount, findfs (BCKDEV=UUID=...), losetup
    and partx (partition=), rsync (engine=rsync, RSYNC_TARGET), ssh (RSYNC_TARGET),
    zstd (VERIFY_AFTER_RUN=full), ntfs-3g/ntfsinfo and btrfstune/btrfs (by fstype)
  - the report can be mailed: the SMTP_URL server answers EHLO within 10 s
    (nothing is sent), or BIN_SENDMAIL is an executable file
  - DOM0_ROOT, LOGFILE and LOCKFILE are usable
then prints the plan: volumes in order, full or incremental, snapshot sizes.

\`xenbackup run --dry-run\` runs the same checks and exits 2 on a problem too.

Examples:
  xenbackup check
  xenbackup check -c /etc/xenbackup.conf --volumes /etc/xenback_vols.new

Exit codes:
  0  ready: a run can start
  2  a config error, or problems on this host (each one listed on stderr)`)
    .action(async (o: { config: string; volumes?: string; full?: boolean; verbose?: boolean }) => {
      const cfg = loadConfigOrExit(o);
      const { log } = openConsole({ verbose: !!o.verbose });
      const out = (line: string): void => void process.stdout.write(`${line}\n`);
      out(`config: ${cfg.configPath}; volumes: ${cfg.volumesPath}${cfg.backupManagerConfigPath ? `; migrated from ${cfg.backupManagerConfigPath}` : ''}`);
      for (const w of cfg.warnings) out(`warning: ${w}`);
      const result = await preflight(cfg, { logger: log });
      for (const n of result.notes) out(`note: ${n}`);
      out('plan:');
      for (const l of await describePlan(cfg, { mediumMounted: result.mediumMounted, forceFull: !!o.full, now: new Date() })) out(`  ${l}`);
      if (result.problems.length > 0) {
        process.stderr.write(`xenbackup check: ${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}:\n`);
        for (const p of result.problems) process.stderr.write(`  - ${p}\n`);
        process.exitCode = EXIT.usage;
        return;
      }
      out('xenbackup check: no problems found');
    });
}
