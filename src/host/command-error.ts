/**
 * The failure of an external command (host/exec.ts), in a module of its own:
 * the CLI's error handler needs the class for every command, and importing
 * exec.ts for it would load child_process (and net, streams, dgram) into
 * commands that never spawn anything.
 */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | undefined,
    readonly stderr: string,
    readonly reason: string,
  ) {
    super(`${command}: ${reason}`);
    this.name = 'CommandError';
  }
}
