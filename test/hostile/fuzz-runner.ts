/**
 * The fuzzer's parent side: hands the cases to a worker process
 * (fuzz-worker.ts, which runs the CLI in-process, many cases per process)
 * and keeps a watchdog on each case. A case that does not end in time is a
 * hang: the worker is killed with its process group (zstd children too), the
 * case is reported with its seed, and a new worker takes the rest. A worker
 * that dies mid-case is reported the same way.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WorkerJob, WorkerMessage } from './fuzz-worker.js';

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fuzz-worker.js');

export interface FuzzFailure {
  caseNo: number;
  problems: string[];
  mutations: string[];
}

export interface FuzzResult {
  ran: number;
  failures: FuzzFailure[];
  restarts: number;
  /** The run stopped early: too many hangs. */
  stoppedEarly: boolean;
  slowest: { caseNo: number; ms: number };
  /** Milliseconds spent per command (and in set-up and checks) over the run, and how often each ran. */
  time: Record<string, { ms: number; runs: number }>;
}

export interface FuzzOptions extends Omit<WorkerJob, 'cases'> {
  cases: number[];
  /** A case running longer than this is a hang. */
  caseTimeoutMs: number;
  /** After this many hangs the run stops (each costs caseTimeoutMs; the seeds say what to rerun). */
  maxHangs: number;
}

export async function runFuzz(opts: FuzzOptions): Promise<FuzzResult> {
  const result: FuzzResult = { ran: 0, failures: [], restarts: 0, stoppedEarly: false, slowest: { caseNo: -1, ms: 0 }, time: {} };
  let remaining = [...opts.cases];
  while (remaining.length) {
    const stopped = await runWorker({ ...opts, cases: remaining }, opts.caseTimeoutMs, result);
    if (stopped === undefined) break;
    if (result.restarts >= opts.maxHangs) {
      result.stoppedEarly = true;
      break;
    }
    result.restarts++;
    remaining = remaining.slice(remaining.indexOf(stopped) + 1);
  }
  return result;
}

/** Runs one worker over `job.cases`; returns the case it was stopped at (hang or crash), or undefined when it finished. */
function runWorker(job: WorkerJob, timeoutMs: number, result: FuzzResult): Promise<number | undefined> {
  return new Promise((resolve) => {
    const child: ChildProcess = fork(WORKER, [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], detached: true });
    let stderr = '';
    child.stdout!.resume();
    child.stderr!.on('data', (b: Buffer) => { stderr = (stderr + b.toString()).slice(-4000); });
    let current: number | undefined;
    let doneCount = 0;
    let step: { mutations: string[]; cmd: string } = { mutations: [], cmd: '' };
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const settle = (v: number | undefined): void => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* already gone */ }
      resolve(v);
    };
    child.on('message', (m: WorkerMessage) => {
      if (m.type === 'step') step = m;
      else if (m.type === 'start') {
        current = m.caseNo;
        step = { mutations: [], cmd: '' };
        timer = setTimeout(() => {
          result.ran++;
          result.failures.push({ caseNo: m.caseNo, problems: [`did not end within ${timeoutMs} ms (killed) in: xenbackup ${step.cmd}`], mutations: step.mutations });
          settle(m.caseNo);
        }, timeoutMs);
      } else if (m.type === 'done') {
        clearTimeout(timer);
        current = undefined;
        doneCount++;
        result.ran++;
        if (m.ms > result.slowest.ms) result.slowest = { caseNo: m.caseNo, ms: m.ms };
        for (const [k, ms] of Object.entries(m.cmdMs)) {
          const t = (result.time[k] ??= { ms: 0, runs: 0 });
          t.ms += ms;
          t.runs++;
        }
        if (m.problems.length) result.failures.push({ caseNo: m.caseNo, problems: m.problems, mutations: m.mutations });
      } else if (m.type === 'finished') {
        settle(undefined);
      }
    });
    child.on('exit', (code, signal) => {
      if (settled) return;
      // Died in a case, or between two: the case it was in (or about to start) is the failure.
      const at = current ?? job.cases[doneCount];
      if (at === undefined) return settle(undefined);
      result.ran++;
      result.failures.push({ caseNo: at, problems: [`the worker died (exit ${code}, ${signal}) in: xenbackup ${step.cmd}: ${stderr.trim().split('\n').slice(-6).join(' | ')}`], mutations: step.mutations });
      settle(at);
    });
    child.send(job);
  });
}
