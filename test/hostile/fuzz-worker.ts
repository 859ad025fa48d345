/**
 * The fuzzer's worker (run by fuzz.test.ts as a child process): for each
 * case it copies the golden volume folder, mutates it (fuzz-mutate.ts) and
 * runs the CLI's main() in this process (no node start per command) for
 * list, ls, verify (quick and full), restore (fresh and --force) and prune
 * (dry and real), with stdout and stderr captured. It checks each run (no
 * stack trace, a documented exit code, damage reported and naming the file)
 * and, after the case, the sentinel tree outside and that nothing appeared
 * beside --to or the volume's folder. It tells the parent when a case starts
 * and ends, so that a case which hangs is killed by the parent's watchdog.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main } from '../../src/cli/main.js';
import { statState } from './hostile-media.js';
import { caseRng, mutate } from './fuzz-mutate.js';

export interface WorkerJob {
  seed: number;
  cases: number[];
  /** The golden volume folder, the sentinel trees, and where cases go. */
  goldenVol: string;
  sentinels: string[];
  outside: string;
  work: string;
}

export type WorkerMessage =
  | { type: 'start'; caseNo: number }
  | { type: 'step'; caseNo: number; mutations: string[]; cmd: string }
  | { type: 'done'; caseNo: number; problems: string[]; mutations: string[]; ms: number; cmdMs: Record<string, number> }
  | { type: 'finished' };

const HOST = 'test-host';
const STACK_LINE = /^\s+at /m;
const LEAKED = /\b(TypeError|RangeError|ReferenceError|SyntaxError|AssertionError)\b|Cannot read propert|Cannot convert|is not a function|is not iterable|offset undefined|\[object Object\]/;
const ERROR_LINE = /^xenbackup: |\bERROR\b/;
/** A file of the volume's folder named in a message. */
const NAMES_FILE = /\d{8}T\d{6}Z\.(full|incr|tree)|\/medium\/test-host\/v\/p\b|\/medium\/test-host\b/;

interface Captured {
  code: number;
  out: string;
  err: string;
  crash?: string;
}

async function runMain(args: string[]): Promise<Captured> {
  let out = '';
  let err = '';
  const o = process.stdout.write;
  const e = process.stderr.write;
  const sink = (add: (s: string) => void) =>
    ((chunk: unknown, enc?: unknown, cb?: unknown): boolean => {
      add(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString());
      const done = typeof enc === 'function' ? enc : cb;
      if (typeof done === 'function') queueMicrotask(done as () => void);
      return true;
    }) as typeof process.stdout.write;
  process.stdout.write = sink((s) => { if (out.length < 65536) out += s; });
  process.stderr.write = sink((s) => { if (err.length < 65536) err += s; });
  process.exitCode = undefined;
  try {
    const code = await main(['node', 'xenbackup', ...args]);
    return { code, out, err };
  } catch (x) {
    return { code: -1, out, err, crash: String((x as Error).stack ?? x) };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
    process.exitCode = undefined;
  }
}

type Cmd = 'list' | 'ls' | 'verify-quick' | 'verify' | 'restore' | 'restore-force' | 'prune-dry' | 'prune';
const LS_PATHS = ['', 'd', 'etc', 'etc/passwd', 'd/e', 'hl'];

function argsFor(cmd: Cmd, medium: string, to: string, lsPath: string): string[] {
  const m = ['--medium', medium, '--host', HOST];
  switch (cmd) {
    case 'list': return ['list', ...m];
    case 'ls': return ['ls', 'v/p', lsPath, ...m, '-l'];
    case 'verify-quick': return ['verify', ...m, '--quick', '-q'];
    case 'verify': return ['verify', ...m, '-q'];
    case 'restore': return ['restore', 'v/p', ...(lsPath ? [lsPath] : []), ...m, '--to', to, '-q'];
    case 'restore-force': return ['restore', 'v/p', ...m, '--to', to, '--force', '-q'];
    case 'prune-dry': return ['prune', ...m, '--ttl', '0', '--keep-last', '1', '--dry-run', '--lock-file', `${path.dirname(medium)}.lock`];
    case 'prune': return ['prune', ...m, '--ttl', '0', '--keep-last', '1', '--lock-file', `${path.dirname(medium)}.lock`];
  }
}

/**
 * The exit codes the README allows on a damaged medium: done (0) or damage (1); ls of a path not in the
 * backup: 2, and so restore of one ("not in backup ..."): a manifest whose lines an attacker edited and
 * re-sealed may lack the path, and only the archive (which full verify reads) can tell.
 */
function allowed(cmd: Cmd, r: Captured): number[] {
  if (cmd === 'ls') return [0, 1, 2];
  if (cmd === 'restore' && /^xenbackup: not in backup \S+ of v\/p: /m.test(r.err)) return [0, 1, 2];
  return [0, 1];
}

function judge(cmd: Cmd, r: Captured, mustReport: boolean): string[] {
  const shown = `exit ${r.code}; stderr: ${r.err.trim().split('\n').slice(-3).join(' | ').slice(0, 400)}`;
  const out: string[] = [];
  if (r.crash) return [`${cmd}: main() threw: ${r.crash.split('\n').slice(0, 3).join(' | ')}`];
  if (STACK_LINE.test(r.err) || STACK_LINE.test(r.out)) out.push(`${cmd}: a stack trace instead of a one-line message; ${shown}`);
  else if (LEAKED.test(r.err)) out.push(`${cmd}: an internal error leaked into the message; ${shown}`);
  if (!allowed(cmd, r).includes(r.code)) out.push(`${cmd}: exit ${r.code}, documented for damage: ${allowed(cmd, r).join(' or ')}; ${shown}`);
  const errors = r.err.split('\n').filter((l) => ERROR_LINE.test(l));
  if (r.code !== 0 && errors.length === 0 && r.err.trim() === '') out.push(`${cmd}: failed without a message; ${shown}`);
  if (cmd.startsWith('verify')) {
    if (mustReport && r.code === 0) out.push(`${cmd}: the damage (a checksum no longer matches) was not reported; ${shown}`);
    for (const l of errors) if (!NAMES_FILE.test(l)) out.push(`${cmd}: a damage report that names no file: ${l.slice(0, 300)}`);
  }
  return out;
}

/** The case's commands: list, then a draw of the others, in an order where prune comes last. */
function commandsFor(rng: () => number): Cmd[] {
  const order: Cmd[] = ['list', 'ls', 'verify-quick', 'verify', 'restore', 'restore-force', 'prune-dry', 'prune'];
  // Full verify and restore start a zstd per archive they read (~100 ms a case): drawn less often, so that
  // 2,000 cases stay within the suite's time; over a run each still meets hundreds of media.
  const weight: Record<Cmd, number> = { list: 1, ls: 0.5, 'verify-quick': 0.45, verify: 0.1, restore: 0.2, 'restore-force': 0.06, 'prune-dry': 0.3, prune: 0.25 };
  const chosen = order.filter((c) => rng() < weight[c]);
  if (chosen.includes('restore-force') && !chosen.includes('restore')) chosen.splice(chosen.indexOf('restore-force'), 0, 'restore');
  return chosen;
}

type Send = (m: WorkerMessage) => Promise<void>;

async function runCase(job: WorkerJob, caseNo: number, baseline: string[], send: Send): Promise<{ problems: string[]; mutations: string[]; cmdMs: Record<string, number> }> {
  const cmdMs: Record<string, number> = {};
  const t0 = performance.now();
  const dir = path.join(job.work, `case-${caseNo}`);
  fs.rmSync(dir, { recursive: true, force: true });
  const medium = path.join(dir, 'medium');
  const vol = path.join(medium, HOST, 'v', 'p');
  const to = path.join(dir, 'to');
  fs.mkdirSync(path.dirname(vol), { recursive: true });
  // The golden folder is flat and holds only regular files (fs.cpSync took ~90 ms for its dozen files).
  fs.mkdirSync(vol);
  for (const n of fs.readdirSync(job.goldenVol)) fs.copyFileSync(path.join(job.goldenVol, n), path.join(vol, n));
  const rng = caseRng(job.seed, caseNo);
  const muts = mutate(rng, vol, job.outside);
  // Damage no attacker fixed: a manifest or archive shortened or with flipped bits, its checksum left as it was
  // (a sidecar that lost only its last newline is still the same JSON).
  // (Unless a later mutation rewrote that file with its checksums fixed, as an attacker would.)
  const mustReport = muts.some((m, i) =>
    /^(truncated \S+\.(manifest|tar\.zst) from|flipped bits at .* of .*\.(manifest|tar\.zst)$)/.test(m.what) &&
    !muts.slice(i + 1).some((later) => later.files.some((f) => m.files.includes(f))));
  const lsPath = LS_PATHS[Math.floor(rng() * LS_PATHS.length)]!;
  const problems: string[] = [];
  const shown = muts.map((m) => m.what);
  cmdMs.setup = performance.now() - t0;
  for (const cmd of commandsFor(rng)) {
    const args = argsFor(cmd, medium, to, lsPath);
    // The parent's watchdog names the mutations and the command of a case that hangs.
    await send({ type: 'step', caseNo, mutations: shown, cmd: args.join(' ') });
    const c0 = performance.now();
    const r = await runMain(args);
    cmdMs[cmd] = performance.now() - c0;
    problems.push(...judge(cmd, r, mustReport));
  }
  const s0 = performance.now();
  job.sentinels.forEach((s, i) => {
    if (statState(s) !== baseline[i]) {
      problems.push(`changed outside: ${s}`);
      baseline[i] = statState(s);
    }
  });
  const beside = fs.readdirSync(dir).filter((n) => n !== 'medium' && n !== 'to');
  if (beside.length) problems.push(`written beside --to and the medium: ${beside.join(', ')}`);
  const inMedium = [fs.readdirSync(medium).join(','), fs.readdirSync(path.join(medium, HOST)).join(','), fs.readdirSync(path.join(medium, HOST, 'v')).join(',')];
  if (inMedium.join('/') !== `${HOST}/v/p`) problems.push(`the medium outside the volume's folder changed: ${inMedium.join(' / ')}`);
  fs.rmSync(dir, { recursive: true, force: true });
  cmdMs.check = performance.now() - s0;
  return { problems, mutations: shown, cmdMs };
}

async function run(job: WorkerJob): Promise<void> {
  const send: Send = (m) => new Promise((resolve) => process.send!(m, () => resolve()));
  const baseline = job.sentinels.map(statState);
  for (const caseNo of job.cases) {
    await send({ type: 'start', caseNo });
    const t0 = Date.now();
    const { problems, mutations, cmdMs } = await runCase(job, caseNo, baseline, send);
    await send({ type: 'done', caseNo, problems, mutations, ms: Date.now() - t0, cmdMs });
  }
  await send({ type: 'finished' });
}

process.once('message', (job: WorkerJob) => {
  run(job).then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`fuzz worker: ${String((e as Error).stack ?? e)}\n`);
      process.exit(70);
    },
  );
});
