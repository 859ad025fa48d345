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
  /** Peak resident set of the largest process in the command's tree, in KiB (GNU time's %M). */
  maxRssKiB?: number;
  stdout: string;
}

export interface RunOptions {
  cwd?: string;
  /** Also measure peak RSS with /usr/bin/time. */
  rss?: boolean;
}

/** Quotes one word for sh. */
export function sh(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

function describe(file: string, args: string[]): string {
  const line = [file, ...args].join(' ');
  return line.length > 200 ? line.slice(0, 197) + '...' : line;
}

/** Runs a command to completion; throws a one-line error when it fails. */
export function runTimed(file: string, args: string[], opts: RunOptions = {}): Sample {
  let rssFile: string | undefined;
  let spawnFile = file;
  let spawnArgs = args;
  if (opts.rss) {
    rssFile = path.join(os.tmpdir(), `xenbackup-bench-rss-${process.pid}`);
    spawnFile = '/usr/bin/time';
    spawnArgs = ['-f', '%M', '-o', rssFile, file, ...args];
  }
  const start = process.hrtime.bigint();
  const r = spawnSync(spawnFile, spawnArgs, { cwd: opts.cwd, encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.error) throw new Error(`${describe(file, args)}: ${r.error.message}`);
  if (r.status !== 0) {
    const why = (r.stderr || '').trim().split('\n').filter(Boolean).pop() ?? '';
    throw new Error(`${describe(file, args)} exited with ${r.status ?? r.signal}${why ? `: ${why}` : ''}`);
  }
  const sample: Sample = { seconds, stdout: r.stdout };
  if (rssFile) {
    const text = fs.readFileSync(rssFile, 'utf8').trim().split('\n').pop() ?? '';
    fs.rmSync(rssFile, { force: true });
    sample.maxRssKiB = Number(text);
    if (!Number.isFinite(sample.maxRssKiB)) throw new Error(`/usr/bin/time wrote "${text}" instead of a peak RSS`);
  }
  return sample;
}

/** A shell pipeline (e.g. `tar -cf - . | zstd > out`), timed as one command; pipefail so a failing tar is not hidden by zstd. */
export function runShell(script: string, opts: RunOptions = {}): Sample {
  return runTimed('bash', ['-c', `set -eo pipefail; ${script}`], opts);
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
