/**
 * Timing for the benchmark: runs one command (xenbackup's CLI, GNU tar, a
 * shell pipeline) and measures its wall time, optionally its peak RSS
 * through GNU time. Commands are spawned directly with spawnSync, not
 * through src/host/exec.ts: the bench is not product code, and the
 * gateway's logging and stream handling would add to what is timed.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Sample {
  seconds: number;
  /** User + system CPU seconds of the command and all its children (GNU time's %U + %S). */
  cpuSeconds: number;
  /** Peak resident set of the largest process in the command's tree, in KiB (GNU time's %M). */
  maxRssKiB: number;
  stdout: string;
}

export interface RunOptions {
  cwd?: string;
  /** Default: CRON_LIKE_ENV. */
  env?: NodeJS.ProcessEnv;
}

/**
 * The environment every timed command gets: what cron gives the nightly job
 * (PATH, HOME, SHELL, LOGNAME, LANG), not the caller's. A login shell or a
 * sandbox may carry variables that tax one tool only: NODE_EXTRA_CA_CERTS
 * makes every node process parse a CA bundle before its first line of
 * JavaScript (~85 ms here), which neither GNU tar nor cron's job pays.
 * bench.ts prints that difference when the caller's environment has it.
 */
export const CRON_LIKE_ENV: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries({
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    SHELL: '/bin/sh',
    LOGNAME: process.env.LOGNAME ?? process.env.USER,
    LANG: process.env.LANG,
  }).filter(([, v]) => v !== undefined),
);

/** Quotes one word for sh. */
export function sh(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

function describe(file: string, args: string[]): string {
  const line = [file, ...args].join(' ');
  return line.length > 200 ? line.slice(0, 197) + '...' : line;
}

/**
 * Runs a command to completion under /usr/bin/time (CPU time and peak RSS
 * too: on a busy machine CPU seconds still compare when wall times do not);
 * throws a one-line error when it fails.
 */
export function runTimed(file: string, args: string[], opts: RunOptions = {}): Sample {
  const usageFile = path.join(os.tmpdir(), `xenbackup-bench-usage-${process.pid}`);
  const start = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M %U %S', '-o', usageFile, file, ...args], {
    cwd: opts.cwd,
    env: opts.env ?? CRON_LIKE_ENV,
    encoding: 'utf8',
    maxBuffer: 256 << 20,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.error) throw new Error(`${describe(file, args)}: ${r.error.message}`);
  if (r.status !== 0) {
    fs.rmSync(usageFile, { force: true });
    const why = (r.stderr || '').trim().split('\n').filter(Boolean).pop() ?? '';
    throw new Error(`${describe(file, args)} exited with ${r.status ?? r.signal}${why ? `: ${why}` : ''}`);
  }
  // GNU time appends its line after anything the command wrote there; the last line is ours.
  const usage = fs.readFileSync(usageFile, 'utf8').trim().split('\n').pop() ?? '';
  fs.rmSync(usageFile, { force: true });
  const [rss, user, sys] = usage.split(' ').map(Number);
  if (![rss, user, sys].every((x) => Number.isFinite(x))) throw new Error(`/usr/bin/time wrote "${usage}" instead of "RSS USER SYS"`);
  return { seconds, cpuSeconds: user! + sys!, maxRssKiB: rss!, stdout: r.stdout };
}

/** A shell pipeline (e.g. `tar -cf - . | zstd > out`), timed as one command; pipefail so a failing tar is not hidden by zstd. */
export function runShell(script: string, opts: RunOptions = {}): Sample {
  return runTimed('bash', ['-c', `set -eo pipefail; ${script}`], opts);
}

/**
 * Reads files (or whole trees) into the page cache just before a timed run.
 * Once at the start is not enough where the kernel reclaims pages that sat
 * unused for a while (this machine's DAMON pageout drops page cache idle for
 * about a minute), and a cold archive would make GNU tar's whole-stream
 * restore look slower than it is.
 */
export function warm(paths: string[]): void {
  for (const p of paths) {
    const st = fs.statSync(p);
    if (st.isDirectory()) runShell(`tar -cf - -C ${sh(p)} . | cat > /dev/null`);
    else runShell(`cat ${sh(p)} > /dev/null`);
  }
}

/** Reads a tree's directories and inodes (not file content) back into the caches: the incrementals only stat. */
export function warmMetadata(dir: string): void {
  runShell(`find ${sh(dir)} -printf '%s %T@ %i\\n' > /dev/null`);
}

/** Writes dirty pages out, so one measurement does not pay for the previous one's writeback. */
export function flushWrites(): void {
  spawnSync('sync');
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** First line of a command's output (for versions), or undefined when it cannot run. */
export function firstLine(file: string, args: string[]): string | undefined {
  const r = spawnSync(file, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) return undefined;
  return (r.stdout || r.stderr).trim().split('\n')[0];
}
