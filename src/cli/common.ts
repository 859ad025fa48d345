/**
 * What every command shares: the terminal logger (progress on a TTY, plain
 * lines otherwise), --at parsing, the default host name, the ssh options of
 * a remote --medium, and the CliError of one clear line and an exit code.
 * What a --medium is: medium-option.ts.
 */
import os from 'node:os';
import type { Command } from 'commander';
import { createLogger, type Logger } from '../util/log.js';
import { createTerminalSink, minLevelFor, type TerminalSink, type Verbosity } from '../report/sinks.js';

export const EXIT = { ok: 0, failed: 1, usage: 2, locked: 3, medium: 4 } as const;

/** A failure the user can act on: printed as one line, exits with `code`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code: number = EXIT.usage,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export interface Console {
  log: Logger;
  terminal: TerminalSink;
}

export function openConsole(opts: { quiet?: boolean; verbose?: boolean }): Console {
  const verbosity: Verbosity = opts.quiet ? 'quiet' : opts.verbose ? 'verbose' : 'normal';
  const terminal = createTerminalSink({ verbosity });
  return { log: createLogger([terminal.sink], minLevelFor(verbosity)), terminal };
}

export function defaultHost(): string {
  return os.hostname().split('.')[0] || 'localhost';
}

/** --at: an ISO date or date-time; a date alone means the end of that day (UTC). */
export function parseAt(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(text);
  const d = new Date(dateOnly ? `${text}T23:59:59Z` : text);
  if (Number.isNaN(d.getTime())) throw new CliError(`--at "${text}" is not a date or time; expected ISO 8601, e.g. 2026-11-20 or 2026-11-20T03:00:00Z`);
  return d;
}

export function pathArg(p: string): Buffer {
  return Buffer.from(p);
}

/** --ssh-key, --ssh-port, --known-hosts: how to reach a `--medium user@host:/path`. */
export interface SshCliOptions {
  sshKey?: string;
  sshPort?: string;
  knownHosts?: string;
}

/** Adds the ssh options of a remote --medium to a command. */
export function addSshOptions(cmd: Command): Command {
  return cmd
    .option('--ssh-key <file>', 'with --medium user@host:/path: the private key to log in with (default: RSYNC_SSH_KEY of --config, else ssh\'s own)')
    .option('--ssh-port <n>', 'with --medium user@host:/path: the ssh port (default: RSYNC_SSH_PORT of --config, else 22)')
    .option('--known-hosts <file>', "with --medium user@host:/path: known_hosts holding the host's key (default: RSYNC_SSH_KNOWN_HOSTS of --config, else ssh's own)");
}
