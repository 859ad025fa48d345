/**
 * The one place where xenbackup runs external commands (lvcreate, mount,
 * zstd, rsync, ...). Every command is logged, bounded by a timeout, and a
 * failure becomes a CommandError whose message names the command, its exit
 * status and the last line it printed on stderr: what an admin needs in a
 * mailed report to know what went wrong without rerunning anything.
 */
import { execa, type ResultPromise } from 'execa';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';

export interface ExecOptions {
  /** Milliseconds before the command is killed (SIGTERM, then SIGKILL 5 s later). Default 10 minutes. */
  timeoutMs?: number;
  /** Bytes or text written to the command's stdin. */
  input?: string | Buffer;
  /** Return the result instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
  /** Run at idle CPU and I/O priority (nice 19, ionice idle): for archivers on a busy dom0. */
  idle?: boolean;
  /** Extra environment variables. */
  env?: Record<string, string>;
  cwd?: string;
  logger?: Logger;
  /** Log at debug instead of info (for frequent, uninteresting commands). */
  quiet?: boolean;
}

export interface ExecResult {
  command: string;
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

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

/** Always set for LVM tools: they warn about every inherited fd otherwise. */
const BASE_ENV = { LVM_SUPPRESS_FD_WARNINGS: '1', LC_ALL: 'C' };

export const DEFAULT_TIMEOUT_MS = 10 * 60 * 1000;

export function quoteArg(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

export function describeCommand(file: string, args: readonly string[]): string {
  return [file, ...args].map(quoteArg).join(' ');
}

function idleWrap(file: string, args: string[]): [string, string[]] {
  return ['nice', ['-n', '19', 'ionice', '-c', '3', file, ...args]];
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n').filter((l) => l.trim() !== '');
  return lines.length ? lines[lines.length - 1]!.trim() : '';
}

/** Runs a command to completion, capturing its output as text. */
export async function run(file: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const log = opts.logger ?? silentLogger;
  const command = describeCommand(file, args);
  const [f, a] = opts.idle ? idleWrap(file, args) : [file, args];
  (opts.quiet ? log.debug : log.info)(`exec: ${command}`);
  const started = Date.now();
  const result = await execa(f, a, {
    reject: false,
    timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    forceKillAfterDelay: 5000,
    input: opts.input,
    env: { ...BASE_ENV, ...opts.env },
    cwd: opts.cwd,
    stripFinalNewline: false,
  });
  const durationMs = Date.now() - started;
  const stdout = String(result.stdout ?? '');
  const stderr = String(result.stderr ?? '');
  const exitCode = result.exitCode ?? -1;
  if (result.timedOut) {
    throw new CommandError(command, result.exitCode, stderr, `timed out after ${Math.round((opts.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000)} s`);
  }
  if (result.failed && result.exitCode === undefined) {
    const why = result.signal ? `killed by ${result.signal}` : lastLine(result.message ?? '') || 'could not be started';
    throw new CommandError(command, undefined, stderr, why);
  }
  if (exitCode !== 0 && !opts.allowFailure) {
    const detail = lastLine(stderr) || lastLine(stdout);
    throw new CommandError(command, exitCode, stderr, `exit ${exitCode}${detail ? `: ${detail}` : ''}`);
  }
  log.debug(`exec: ${file} finished in ${durationMs} ms (exit ${exitCode})`);
  return { command, exitCode, stdout, stderr, durationMs };
}

/**
 * Starts a long-running command whose stdin/stdout the caller streams (zstd,
 * rsync). The caller awaits the returned promise; failures reject with a
 * CommandError just like `run`.
 */
export function spawnStreaming(
  file: string,
  args: string[],
  opts: ExecOptions & { stdin?: 'pipe' | 'ignore'; stdout?: 'pipe' | 'ignore' } = {},
): { child: ResultPromise; done: Promise<ExecResult> } {
  const log = opts.logger ?? silentLogger;
  const command = describeCommand(file, args);
  const [f, a] = opts.idle ? idleWrap(file, args) : [file, args];
  (opts.quiet ? log.debug : log.info)(`exec: ${command}`);
  const started = Date.now();
  const child = execa(f, a, {
    reject: false,
    timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    forceKillAfterDelay: 5000,
    env: { ...BASE_ENV, ...opts.env },
    cwd: opts.cwd,
    stdin: opts.stdin ?? 'pipe',
    stdout: opts.stdout ?? 'pipe',
    stderr: 'pipe',
    encoding: 'buffer',
    buffer: { stdout: false, stderr: true },
  });
  const done = child.then((result) => {
    const stderr = Buffer.isBuffer(result.stderr) ? result.stderr.toString() : String(result.stderr ?? '');
    const exitCode = result.exitCode ?? -1;
    if (result.timedOut) throw new CommandError(command, result.exitCode, stderr, 'timed out');
    if (result.exitCode === undefined) {
      throw new CommandError(command, undefined, stderr, result.signal ? `killed by ${result.signal}` : 'could not be started');
    }
    if (exitCode !== 0 && !opts.allowFailure) {
      throw new CommandError(command, exitCode, stderr, `exit ${exitCode}${lastLine(stderr) ? `: ${lastLine(stderr)}` : ''}`);
    }
    return { command, exitCode, stdout: '', stderr, durationMs: Date.now() - started };
  });
  return { child, done };
}
