/**
 * `xenbackup verify`: proves the backups on the medium are intact (quick:
 * checksums and complete chains) and readable to the last byte (default:
 * every archive decompressed and parsed, every member checked against its
 * manifest). The work is engine/verify.ts; this file picks the volumes,
 * prints one line per problem and maps the outcome to the exit code.
 * Without --medium, the medium and host come from the configuration
 * (BCKMNTP, HOSTN), as the nightly run uses them.
 */
import type { Command } from 'commander';
import { volumesOnMedium } from '../repo/medium-index.js';
import { parseVolumeName, VolumeStore } from '../repo/volume-store.js';
import { verifyVolume, VerifyUsageError, type VerifyProblem, type VolumeVerification } from '../engine/verify.js';
import { CliError, defaultHost, EXIT, openConsole, parseAt } from './common.js';
import { loadConfigOrExit } from './run.js';

interface VerifyOptions {
  medium?: string;
  host?: string;
  config: string;
  at?: string;
  quick?: boolean;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

/** The medium and host: from the options, else from the configuration. */
function whereFrom(o: VerifyOptions): { medium: string; host: string } {
  if (o.medium) return { medium: o.medium, host: o.host ?? defaultHost() };
  const cfg = loadConfigOrExit({ config: o.config });
  return { medium: cfg.backupMountpoint, host: o.host ?? cfg.hostname };
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('check that backups are intact and restorable: checksums, complete chains, and (default) every member re-read')
    .argument('[domU/part...]', 'only these volumes (default: every volume on the medium)')
    .option('--medium <dir>', 'the backup medium (default: BCKMNTP from the configuration)')
    .option('--host <name>', 'host folder on the medium (default: this host)')
    .option('-c, --config <file>', 'the configuration, read only when --medium is not given', '/etc/xenbackup.conf')
    .option('--at <when>', 'only the chain of the restore point at or before this ISO date/time')
    .option('--quick', 'only checksums and chain completeness; do not decompress and parse the archives')
    .option('--json', 'machine-readable result')
    .option('-q, --quiet', 'only problems')
    .option('-v, --verbose', 'also debug lines')
    .addHelpText('after', `
Examples:
  xenbackup verify --medium /backup/guests                 (everything, full)
  xenbackup verify web1/root --quick --medium /backup/guests
  xenbackup verify web1/root --at 2026-11-20 --medium /backup/guests

quick: each archive's and manifest's xxh64 against its sidecar, each manifest's own
checksum, and that every incremental's chain reaches back to a full.
full (default): also decompresses every archive to its end, checks the tar
structure and each member's path, metadata and content xxh64 against the manifest.
Prints one line per damaged file: the file, what is wrong, the first bad member.
Exit codes: 0 all good; 1 damage found; 2 bad arguments, unknown volume, nothing to verify.`)
    .action(async (volumes: string[], o: VerifyOptions) => {
      const { log } = openConsole({ quiet: !!o.quiet || !!o.json, verbose: !!o.verbose });
      const at = parseAt(o.at);
      const { medium, host } = whereFrom(o);
      for (const v of volumes) {
        try {
          parseVolumeName(v);
        } catch (e) {
          throw new CliError((e as Error).message);
        }
      }
      const stores = volumes.length ? volumes.map((v) => new VolumeStore(medium, host, v)) : volumesOnMedium(medium, host);
      if (stores.length === 0) throw new CliError(`nothing to verify: no backups on ${medium} for host ${host}`);
      for (const s of stores) {
        if (!s.exists()) throw new CliError(`unknown volume ${s.volume}: no backups of it on ${medium} for host ${host}`);
      }
      const depth = o.quick ? 'quick' : 'full';
      const results: VolumeVerification[] = [];
      for (const s of stores) {
        try {
          results.push(await verifyVolume({ medium, host, volume: s.volume, depth, at, logger: log }));
        } catch (e) {
          if (e instanceof VerifyUsageError) throw new CliError(e.message);
          throw e;
        }
      }
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
