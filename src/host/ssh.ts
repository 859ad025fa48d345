/**
 * Commands on the rsync engine's remote host, over ssh with the options of
 * remote-target.ts (BatchMode, strict host keys, timeouts), through exec.ts
 * `run` like every other command.
 */
import { run, type ExecOptions, type ExecResult } from './exec.js';
import { remoteShellQuote, RemoteTargetError, sshArgv, type RemoteTarget, type SshOptions } from './remote-target.js';

/**
 * Runs argv on the target's host. ssh hands the remote side one command
 * line for the login shell, so each argument is quoted for it: a path with
 * spaces, quotes or `$(...)` stays one literal argument.
 */
export function runRemote(t: RemoteTarget, o: SshOptions, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  if (argv.length === 0) throw new RemoteTargetError('runRemote: empty command');
  return run('ssh', sshArgv(t, o, argv.map(remoteShellQuote).join(' ')), opts);
}
