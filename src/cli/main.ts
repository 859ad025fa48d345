/**
 * The command line: one commander program, one file per command. Errors
 * end here: every failure prints one line and exits with the documented code
 * (error-exit.ts maps each kind of error to its code).
 */
import { Command, CommanderError } from 'commander';
import { EXIT } from './common.js';
import { reportError } from './error-exit.js';
import { EXIT_CODES_HELP } from './exit-codes.js';

type Register = (program: Command) => void;

/**
 * Each command's module, loaded only when that command runs: importing all of
 * them (and what they import) cost every start ~0.15 CPU-s here and 20x that
 * in the VM suite's emulated guest. In the order --help lists them.
 */
const COMMANDS: Array<[names: string[], load: () => Promise<Register>]> = [
  [['run'], async () => (await import('./run.js')).registerRun],
  [['check'], async () => (await import('./check.js')).registerCheck],
  [['install-cron'], async () => (await import('./install-cron.js')).registerInstallCron],
  [['backup'], async () => (await import('./backup.js')).registerBackup],
  [['list'], async () => (await import('./list.js')).registerList],
  [['prune'], async () => (await import('./prune.js')).registerPrune],
  [['restore', 'ls'], async () => (await import('./restore.js')).registerRestore],
  [['verify'], async () => (await import('./verify.js')).registerVerify],
  [['demo'], async () => (await import('./demo.js')).registerDemo],
];

/** The program with the commands `argv` can reach: the one it names, or all of them (help, unknown words). */
export async function buildProgram(argv: string[] = []): Promise<Command> {
  const program = new Command();
  program
    .name('xenbackup')
    .description('LVM snapshot backups of Xen/KVM guest volumes and dom0, as incremental tar archives that stock GNU tar can restore')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride()
    .addHelpText('after', `
Examples:
  xenbackup demo
  xenbackup backup /mnt/snap --volume web1/root --medium /backup/guests
  xenbackup list --medium /backup/guests
  xenbackup restore web1/root etc/passwd --medium /backup/guests --to /tmp/r
${EXIT_CODES_HELP}`);
  const word = argv.slice(2).find((a) => !a.startsWith('-'));
  const named = COMMANDS.filter(([names]) => word !== undefined && names.includes(word));
  const versionOnly = word === undefined && argv.some((a) => a === '-V' || a === '--version');
  if (!versionOnly) for (const [, load] of named.length ? named : COMMANDS) (await load())(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  // An error thrown outside the awaited chain (a stream's 'error' event, a timer) is still one line, never node's trace.
  const last = (e: unknown): never => process.exit(reportError(e, argv, (s) => void process.stderr.write(s)));
  process.on('uncaughtException', last);
  process.on('unhandledRejection', last);
  try {
    const program = await buildProgram(argv);
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    return reportError(e, argv, (s) => void process.stderr.write(s));
  }
}
