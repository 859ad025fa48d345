/**
 * The command line: one commander program, one file per command. Errors
 * end here: a CliError or any other failure prints one line and exits with
 * the documented code.
 */
import { Command, CommanderError } from 'commander';
import { CommandError } from '../host/exec.js';
import { registerBackup } from './backup.js';
import { registerCheck } from './check.js';
import { registerDemo } from './demo.js';
import { registerInstallCron } from './install-cron.js';
import { registerList } from './list.js';
import { registerPrune } from './prune.js';
import { registerRestore } from './restore.js';
import { CliError, EXIT } from './common.js';
import { EXIT_CODES_HELP } from './exit-codes.js';
import { registerRun } from './run.js';
import { registerVerify } from './verify.js';

export function buildProgram(): Command {
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
  registerRun(program);
  registerCheck(program);
  registerInstallCron(program);
  registerBackup(program);
  registerList(program);
  registerPrune(program);
  registerRestore(program);
  registerVerify(program);
  registerDemo(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (e instanceof CliError) {
      process.stderr.write(`xenbackup: ${e.message}\n`);
      return e.code;
    }
    const err = e as NodeJS.ErrnoException;
    const msg = e instanceof CommandError ? e.message : err.code ? `${err.message}` : String(err.stack ?? err);
    process.stderr.write(`xenbackup: ${msg}\n`);
    return EXIT.failed;
  }
}
