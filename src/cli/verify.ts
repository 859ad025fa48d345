/**
 * `xenbackup verify`: proves the backups on the medium are intact (quick:
 * checksums and complete chains) and readable to the last byte (default:
 * every archive decompressed and parsed, every member checked against its
 * manifest). The work is engines/verify.ts; this file picks the volumes,
 * prints one line per problem and maps the outcome to the exit code.
 * Without --medium, the medium and host come from the configuration
 * (BCKMNTP, HOSTN), as the nightly run uses them.
 */
import type { Command } from 'commander';
import { volumesOnMedium } from '../repo/medium-index.js';
import { parseVolumeName, VolumeStore } from '../repo/volume-store.js';
import { verifyVolume, VerifyUsageError, type VerifyDepth, type VerifyProblem, type VolumeVerification } from '../engines/verify.js';
import { LocalStorage } from '../storage/local-storage.js';
import type { Logger } from '../util/log.js';
import { addSshOptions, CliError, defaultHost, EXIT, openConsole, parseAt, type SshCliOptions } from './common.js';
import { requireMediumRoot, resolveMedium, type ResolvedMedium } from './medium-option.js';
import { requireMountedMedium } from './prune.js';
import { loadConfigOrExit } from './run.js';

interface VerifyOptions extends SshCliOptions {
  medium?: string;
  host?: string;
  config: string;
  at?: string;
  quick?: boolean;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

/**
 * The medium and host: from the options, else from the configuration. A
 * remote --medium takes RSYNC_SSH_* from the configuration only when -c was
 * given on the command line.
 */
async function whereFrom(o: VerifyOptions, configGiven: boolean, log: Logger): Promise<{ medium: ResolvedMedium; host: string }> {
  if (o.medium) {
    const medium = resolveMedium(o.medium, o, log);
    if (medium.storage.local || !configGiven) return { medium, host: o.host ?? defaultHost() };
    const cfg = loadConfigOrExit({ config: o.config });
    return { medium: resolveMedium(o.medium, o, log, cfg), host: o.host ?? cfg.hostname };
  }
  const cfg = loadConfigOrExit({ config: o.config });
  // verify does not mount the medium: BCKMNTP with nothing (or something else) mounted is exit 4, not "nothing to verify"
  const mountpoint = await requireMountedMedium(cfg, { writable: false });
  return { medium: { storage: new LocalStorage(mountpoint), shown: mountpoint, missing: 'it is not mounted' }, host: o.host ?? cfg.hostname };
}

/** Verifies the named (or every) volume of `host` on the medium. */
async function verifyVolumes(medium: ResolvedMedium, host: string, volumes: string[], depth: VerifyDepth, at: Date | undefined, log: Logger): Promise<VolumeVerification[]> {
  for (const v of volumes) {
    try {
      parseVolumeName(v);
    } catch (e) {
      throw new CliError((e as Error).message);
    }
  }
  const stores = volumes.length ? volumes.map((v) => new VolumeStore(medium.storage, host, v)) : await volumesOnMedium(medium.storage, host);
  if (stores.length === 0) {
    await requireMediumRoot(medium);
    throw new CliError(`nothing to verify: no backups on ${medium.shown} for host ${host}`);
  }
  for (const s of stores) {
    if (!(await s.exists())) {
      await requireMediumRoot(medium);
      throw new CliError(`unknown volume ${s.volume}: no backups of it on ${medium.shown} for host ${host}`);
    }
  }
  const results: VolumeVerification[] = [];
  for (const s of stores) {
    try {
      results.push(await verifyVolume({ medium: medium.storage, host, volume: s.volume, depth, at, logger: log }));
    } catch (e) {
      if (e instanceof VerifyUsageError) throw new CliError(e.message);
      throw e;
    }
  }
  return results;
}

export function registerVerify(program: Command): void {
  const cmd = program
    .command('verify')
    .description('check that backups are intact and restorable: checksums, complete chains, and (default) every member re-read')
    .argument('[domU/part...]', 'only these volumes (default: every volume on the medium)')
    .option('--medium <dir>', 'the backup medium: a directory (default: BCKMNTP from the configuration), or user@host:/path (RSYNC_TARGET) over ssh')
    .option('--host <name>', 'host folder on the medium (default: this host)')
    .option('-c, --config <file>', 'the configuration, read when --medium is not given (or, given here, for RSYNC_SSH_* of a remote --medium)', '/etc/xenbackup.conf')
    .option('--at <when>', 'only the chain of the restore point at or before this ISO date/time')
    .option('--quick', 'only checksums and chain completeness; do not decompress and parse the archives')
    .option('--json', 'machine-readable result')
    .option('-q, --quiet', 'only problems')
    .option('-v, --verbose', 'also debug lines');
  addSshOptions(cmd)
    .addHelpText('after', `
Examples:
  xenbackup verify --medium /backup/guests                 (everything, full)
  xenbackup verify web1/root --quick --medium /backup/guests
  xenbackup verify web1/root --at 2026-11-20 --medium /backup/guests
  xenbackup verify --quick --medium backup@store:/srv/xenbackup -c /etc/xenbackup.conf

quick: each archive's and manifest's xxh64 against its sidecar, each manifest's own
checksum, and that every incremental's chain reaches back to a full.
full (default): also decompresses every archive to its end, checks the tar
structure and each member's path, metadata and content xxh64 against the manifest.
Prints one line per damaged file: the file, what is wrong, the first bad member.

A remote medium (user@host:/path, the rsync engine's RSYNC_TARGET) has no
xenbackup on its side to hash files, so verify checks copies in a temp dir
(TMPDIR, default /tmp): quick copies the manifests and checks each tree is
listed there; full also copies each tree in turn (rsync -aHAX) and compares
every entry and every file's xxh64 with the manifest. That reads all the
remote host serves, and needs room for one tree while it runs; each copy is
removed after its check. Problems name the remote paths.
Exit codes: 0 all good; 1 damage found; 2 bad arguments, unknown volume, nothing to verify;
4 the medium is not there (a --medium folder that does not exist, BCKMNTP not mounted).`)
    .action(async (volumes: string[], o: VerifyOptions, cmd: Command) => {
      const { log } = openConsole({ quiet: !!o.quiet || !!o.json, verbose: !!o.verbose });
      const at = parseAt(o.at);
      const where = await whereFrom(o, cmd.getOptionValueSource('config') === 'cli', log);
      const host = where.host;
      const medium = where.medium.shown;
      const depth: VerifyDepth = o.quick ? 'quick' : 'full';
      const results = await verifyVolumes(where.medium, host, volumes, depth, at, log);
      const problems: VerifyProblem[] = results.flatMap((r) => r.problems);
      if (o.json) {
        process.stdout.write(JSON.stringify({ ok: problems.length === 0, depth, medium, host, volumes: results.map(({ lines: _lines, ...r }) => r) }, null, 2) + '\n');
      } else {
        for (const r of results) {
          // The summary goes to stdout; problems to stderr, one line each, so cron mail shows them.
          if (!o.quiet) process.stdout.write(r.lines[0] + '\n');
          for (const line of r.lines.slice(1)) process.stderr.write(`xenbackup: ${line}\n`);
        }
      }
      if (problems.length) process.exitCode = EXIT.failed;
    });
}
