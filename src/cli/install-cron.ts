/**
 * `xenbackup install-cron`: schedules the nightly `xenbackup run`, either as
 * /etc/cron.daily/xenbackup (what the old tool's admins know; run-parts runs
 * it once a day) or, with --systemd, as xenbackup.service + xenbackup.timer.
 * Both call this installation's bin/xenbackup by its absolute path with a
 * PATH that holds node and the sbin directories (lvcreate, mount), because
 * cron's and systemd's environments are minimal. Refuses to replace an
 * existing file without --force, and then writes nothing at all. --root
 * installs below another directory (image builds, tests).
 *
 * The file texts are pure functions (cronScript, systemdUnits) so tests and
 * the README can show exactly what gets installed.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync, chmodSync, realpathSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { quoteArg } from '../host/exec.js';
import { installRoot } from '../native/install-root.js';
import { CliError, EXIT } from './common.js';

export const DEFAULT_CONFIG = '/etc/xenbackup.conf';

export interface JobCommand {
  /** Absolute path of bin/xenbackup. */
  program: string;
  /** Absolute path of the node binary (its directory goes first in PATH). */
  node: string;
  /** Config passed with -c, when not the default. */
  config?: string;
}

export interface InstallFile {
  /** Absolute path as on the target system (without --root). */
  path: string;
  mode: number;
  text: string;
}

function jobArgs(job: JobCommand): string[] {
  return ['run', '-q', ...(job.config && job.config !== DEFAULT_CONFIG ? ['-c', job.config] : [])];
}

/** cron and systemd start jobs with a bare PATH; node may live in /usr/local/bin, LVM tools in /sbin. */
export function jobPath(job: JobCommand): string {
  const dirs = [path.dirname(job.node), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  return [...new Set(dirs)].join(':');
}

export function cronScript(job: JobCommand): InstallFile {
  const command = [job.program, ...jobArgs(job)].map(quoteArg).join(' ');
  const text = `#!/bin/sh
# xenbackup: the nightly backup, installed by \`xenbackup install-cron\`.
# run-parts starts this once a day. \`xenbackup run\` mails its own report;
# -q keeps its terminal output (which cron mails) to warnings and errors.
# Exit codes: 0 ok, 1 volumes failed, 2 config error, 3 locked, 4 no medium.
PATH=${quoteArg(jobPath(job))}
export PATH
exec ${command}
`;
  return { path: '/etc/cron.daily/xenbackup', mode: 0o755, text };
}

/** One ExecStart= word: systemd expands `%` and `$`, and splits at blanks unless quoted. */
export function systemdQuote(word: string): string {
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped) ? escaped : `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function systemdUnits(job: JobCommand): InstallFile[] {
  const exec = [job.program, ...jobArgs(job)].map(systemdQuote).join(' ');
  const service = `[Unit]
Description=xenbackup: nightly LVM snapshot backup of guest volumes and dom0
After=local-fs.target network-online.target
Wants=network-online.target

[Service]
Type=oneshot
Environment=${systemdQuote(`PATH=${jobPath(job)}`)}
ExecStart=${exec}
# Background work: the guests come first.
Nice=19
IOSchedulingClass=idle
# SIGTERM to xenbackup alone: it unmounts and removes its snapshots, then
# exits; its children are not killed mid-command. SIGKILL only after 10 min.
KillMode=mixed
TimeoutStopSec=10min
`;
  const timer = `[Unit]
Description=Daily xenbackup run

[Timer]
OnCalendar=daily
# A run missed while the host was off happens at the next boot.
Persistent=true
RandomizedDelaySec=1h

[Install]
WantedBy=timers.target
`;
  return [
    { path: '/etc/systemd/system/xenbackup.service', mode: 0o644, text: service },
    { path: '/etc/systemd/system/xenbackup.timer', mode: 0o644, text: timer },
  ];
}

/** This installation's bin/xenbackup. */
export function installedProgram(): string {
  const bin = path.join(installRoot(), 'bin', 'xenbackup');
  if (!existsSync(bin)) throw new CliError(`cannot find this installation's bin/xenbackup (looked at ${bin})`, EXIT.failed);
  return realpathSync(bin);
}

/** Writes `file` below `root`: a temporary name, then rename, so a reader never sees half a unit. */
function writeInstallFile(root: string, file: InstallFile): string {
  const target = path.join(root, file.path);
  mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
  const tmp = `${target}.xenbackup-tmp`;
  try {
    writeFileSync(tmp, file.text, { mode: file.mode });
    chmodSync(tmp, file.mode); // the umask must not decide
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new CliError(`cannot write ${target}: ${(e as Error).message}`, EXIT.failed);
  }
  return target;
}

export function registerInstallCron(program: Command): void {
  program
    .command('install-cron')
    .description('schedule the nightly `xenbackup run`: /etc/cron.daily/xenbackup, or a systemd service and timer')
    .option('--systemd', 'write /etc/systemd/system/xenbackup.service and xenbackup.timer instead of the cron.daily script')
    .option('--force', 'replace files that already exist')
    .option('--root <dir>', 'install below this directory instead of / (image builds, tests)', '/')
    .option('-c, --config <file>', 'the config the job uses', DEFAULT_CONFIG)
    .addHelpText('after', `
Examples:
  xenbackup install-cron                  # /etc/cron.daily/xenbackup
  xenbackup install-cron --systemd        # then: systemctl daemon-reload; systemctl enable --now xenbackup.timer
  xenbackup install-cron --root /srv/image --force

The job runs this installation's bin/xenbackup by its absolute path as
\`xenbackup run -q\`. Run \`xenbackup check\` first.
Exit codes: 0 written; 2 a file exists (nothing was written) or bad arguments.`)
    .action((o: { systemd?: boolean; force?: boolean; root: string; config: string }) => {
      const root = path.resolve(o.root);
      if (!existsSync(root)) throw new CliError(`--root ${o.root} does not exist`);
      const job: JobCommand = { program: installedProgram(), node: process.execPath, config: path.resolve(o.config) };
      const files = o.systemd ? systemdUnits(job) : [cronScript(job)];
      const existing = files.map((f) => path.join(root, f.path)).filter((p) => existsSync(p));
      if (existing.length > 0 && !o.force) {
        throw new CliError(`${existing.join(' and ')} already exist${existing.length === 1 ? 's' : ''}; nothing written (use --force to replace)`, EXIT.usage);
      }
      const out = (line: string): void => void process.stdout.write(`${line}\n`);
      const cronDirMissing = !o.systemd && !existsSync(path.join(root, 'etc/cron.daily'));
      for (const f of files) {
        const target = writeInstallFile(root, f);
        out(`wrote ${target} (mode ${f.mode.toString(8)})${existing.includes(target) ? ', replacing the old one' : ''}:`);
        for (const line of f.text.trimEnd().split('\n')) out(`  | ${line}`);
      }
      const onTarget = root === '/';
      out('');
      if (o.systemd) {
        out(onTarget ? 'To activate and test it:' : 'On the target system:');
        out('  systemctl daemon-reload && systemctl enable --now xenbackup.timer');
        out('  systemctl list-timers xenbackup.timer     # when it runs next');
        out('  systemctl start xenbackup.service          # one run now; then: journalctl -u xenbackup.service');
      } else {
        if (cronDirMissing && onTarget) out('note: /etc/cron.daily did not exist: is cron (or anacron) installed? Or use --systemd.');
        out(onTarget ? 'To test it:' : 'On the target system:');
        out('  run-parts --test /etc/cron.daily           # lists xenbackup if run-parts will run it');
        out('  /etc/cron.daily/xenbackup; echo "exit $?"   # one run now, as cron would start it');
      }
      out(`  ${job.program} check${job.config !== DEFAULT_CONFIG ? ` -c ${quoteArg(job.config!)}` : ''}   # the config and this host, first`);
    });
}
