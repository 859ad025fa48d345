/**
 * The one place where xenbackup runs external commands (lvcreate, mount,
 * zstd, rsync, ...). Every command is logged, bounded by a timeout, and a
 * failure becomes a CommandError whose message names the command, its exit
 * status and the last line it printed on stderr: what an admin needs in a
 * mailed report to know what went wrong without rerunning anything.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import { CommandError } from './command-error.js';

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
  /** Aborting it (SIGTERM/SIGINT of the run) terminates the command, which then fails as "interrupted". */
  signal?: AbortSignal;
}

export interface ExecResult {
  command: string;
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export { CommandError } from './command-error.js';

/**
 * Always set: LVM tools warn about every inherited fd otherwise; C locale so
 * messages parse; and the sbin directories, which a user crontab's PATH lacks
 * (lvcreate, losetup, blkid live there).
 */
function withSbin(p: string | undefined): string {
  const dirs = (p ?? '').split(':').filter(Boolean);
  for (const d of ['/usr/local/sbin', '/usr/sbin', '/sbin']) if (!dirs.includes(d)) dirs.push(d);
  return dirs.join(':');
}
const BASE_ENV = { LVM_SUPPRESS_FD_WARNINGS: '1', LC_ALL: 'C', PATH: withSbin(process.env.PATH) };

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
  // Loaded on first use: importing execa costs ~0.1 s of CPU, which `--version`, `list` and cron's quiet runs need not pay.
  const { execa } = await import('execa');
  const result = await execa(f, a, {
    reject: false,
    timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    forceKillAfterDelay: 5000,
    input: opts.input,
    env: { ...BASE_ENV, ...opts.env },
    cwd: opts.cwd,
    stripFinalNewline: false,
    ...(opts.signal ? { cancelSignal: opts.signal } : {}),
  });
  const durationMs = Date.now() - started;
  const stdout = String(result.stdout ?? '');
  const stderr = String(result.stderr ?? '');
  const exitCode = result.exitCode ?? -1;
  if (result.isCanceled) {
    throw new CommandError(command, result.exitCode, stderr, `interrupted (${String(opts.signal?.reason ?? 'aborted')})`);
  }
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
 * Starts a long-running command whose stdin/stdout the caller streams (zstd
 * -d, rsync). The caller awaits `done`; failures reject with a CommandError
 * just like `run`. Plain child_process, so that the caller gets its streams
 * synchronously.
 */
export function spawnStreaming(
  file: string,
  args: string[],
  opts: ExecOptions & { stdin?: 'pipe' | 'ignore'; stdout?: 'pipe' | 'ignore' } = {},
): { child: ChildProcess; done: Promise<ExecResult> } {
  const log = opts.logger ?? silentLogger;
  const command = describeCommand(file, args);
  const [f, a] = opts.idle ? idleWrap(file, args) : [file, args];
  (opts.quiet ? log.debug : log.info)(`exec: ${command}`);
  const started = Date.now();
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const child = spawn(f, a, {
    stdio: [opts.stdin ?? 'pipe', opts.stdout ?? 'pipe', 'pipe'],
    env: { ...process.env, ...BASE_ENV, ...opts.env },
    cwd: opts.cwd,
  });
  const err: Buffer[] = [];
  let errBytes = 0;
  child.stderr!.on('data', (c: Buffer) => {
    // Keep the first MiB: enough for any message, bounded for a chatty tool.
    if (errBytes < 1 << 20) err.push(c);
    errBytes += c.length;
  });
  let timedOut = false;
  let canceled = false;
  let killer: NodeJS.Timeout | undefined;
  const stop = (): void => {
    child.kill('SIGTERM');
    killer ??= setTimeout(() => child.kill('SIGKILL'), 5000);
  };
  const timer = setTimeout(() => {
    timedOut = true;
    stop();
  }, timeoutMs);
  const onAbort = (): void => {
    canceled = true;
    stop();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();
  const done = new Promise<ExecResult>((resolve, reject) => {
    let startError: Error | undefined;
    child.on('error', (e) => {
      startError = e;
      // A command that could not be started may not emit 'close'.
      if (child.pid === undefined) finish(null, null);
    });
    let settled = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killer);
      opts.signal?.removeEventListener('abort', onAbort);
      const stderr = Buffer.concat(err).toString();
      if (canceled) return reject(new CommandError(command, code ?? undefined, stderr, `interrupted (${String(opts.signal?.reason ?? 'aborted')})`));
      if (timedOut) return reject(new CommandError(command, code ?? undefined, stderr, `timed out after ${Math.round(timeoutMs / 1000)} s`));
      if (code === null) {
        const why = signal ? `killed by ${signal}` : `could not be started${startError ? `: ${startError.message}` : ''}`;
        return reject(new CommandError(command, undefined, stderr, why));
      }
      if (code !== 0 && !opts.allowFailure) {
        return reject(new CommandError(command, code, stderr, `exit ${code}${lastLine(stderr) ? `: ${lastLine(stderr)}` : ''}`));
      }
      resolve({ command, exitCode: code, stdout: '', stderr, durationMs: Date.now() - started });
    };
    child.on('close', finish);
  });
  return { child, done };
}

/**
 * Synchronous form for instant commands in a synchronous loop (mknod and
 * mkfifo while restoring): same logging and error shape, 10 s timeout.
 */
export function runSync(file: string, args: string[], opts: Pick<ExecOptions, 'logger' | 'timeoutMs'> = {}): void {
  const command = describeCommand(file, args);
  (opts.logger ?? silentLogger).debug(`exec: ${command}`);
  const r = spawnSync(file, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: opts.timeoutMs ?? 10_000, env: { ...process.env, ...BASE_ENV } });
  const stderr = r.stderr?.toString() ?? '';
  if (r.error) throw new CommandError(command, undefined, stderr, `could not be run: ${r.error.message}`);
  if (r.status !== 0) throw new CommandError(command, r.status ?? undefined, stderr, r.signal ? `killed by ${r.signal}` : `exit ${r.status}${lastLine(stderr) ? `: ${lastLine(stderr)}` : ''}`);
}
