/**
 * The machine a bench ran on, for its output and JSON: cores, memory,
 * kernel, tool versions, the filesystem of the cache, the load, and what the
 * caller's environment would add to each node start.
 */
import fs from 'node:fs';
import os from 'node:os';
import { CRON_LIKE_ENV, firstLine, runTimed } from './measure.js';
import type { OtherLoad } from './other-load.js';

/**
 * What the caller's environment adds to each node start, as a line for the
 * output, when it sets NODE_* variables (e.g. NODE_EXTRA_CA_CERTS; the
 * cron-like one has none); undefined otherwise. Timed commands run with
 * CRON_LIKE_ENV either way.
 */
export function environmentNote(): string | undefined {
  const extra = Object.keys(process.env).filter((k) => k.startsWith('NODE_'));
  if (!extra.length) return undefined;
  const median = (env: NodeJS.ProcessEnv): number => {
    const s = Array.from({ length: 5 }, () => runTimed(process.execPath, ['-e', '0'], { env }).seconds).sort((a, b) => a - b);
    return s[2]!;
  };
  const cron = median(CRON_LIKE_ENV);
  const caller = median(process.env);
  return `Every command ran with a cron-like environment (${Object.keys(CRON_LIKE_ENV).join(', ')}), as the nightly job does. ` +
    `This shell also sets ${extra.join(', ')}: with it, an empty node start takes ${(caller * 1000).toFixed(0)} ms instead of ${(cron * 1000).toFixed(0)} ms.`;
}

export interface Machine {
  nproc: number;
  cpu?: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  tar?: string;
  zstd?: string;
  filesystem?: string;
  /** 1-minute load average when the bench started and when it ended: other work on the machine skews every number. */
  loadAtStart: number;
  loadAtEnd?: number;
  /** What other processes used while the bench ran (other-load.ts). */
  otherLoad?: OtherLoad;
}

export function machine(cacheDir: string): Machine {
  const cpus = os.cpus();
  return {
    nproc: os.availableParallelism(),
    cpu: cpus[0]?.model,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    tar: firstLine('tar', ['--version']),
    zstd: firstLine('zstd', ['--version'])?.replace(/.*\bv(\d[\d.]*).*/, '$1'),
    filesystem: firstLine('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '-T', cacheDir])?.replace(/\s+/g, ' '),
    loadAtStart: os.loadavg()[0]!,
  };
}
