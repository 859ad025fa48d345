/**
 * The works of `bench --scale` (issue 16) on the million-file tree
 * (scale-dataset.ts), xenbackup through its CLI side by side with GNU tar's
 * listed-incremental mode where there is a counterpart: full backup,
 * no-change and 1%-change incrementals (time, memory and the bytes each adds
 * to the medium), one-file restore, and the read-only commands that load a
 * volume's manifests (ls, verify --quick, prune --dry-run). Rounds, warming
 * and timing are the ordinary bench's (scenarios.ts measureRounds, measure.ts).
 *
 * State shared between the works lives in fixed places under `ctx.work`:
 * xenbackup's medium (a full, then the last no-change incremental kept on
 * it, so restore, ls, verify and prune read a chain of two), GNU tar's full
 * archive and its level-0 snapshot file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { runShell, runTimed, sh, warm, warmMetadata, type Sample } from './measure.js';
import { measureRounds, waitPastId, xbCode, type Contender, type Measured, type WorkResult } from './scenarios.js';
import { applyScaleChange, revertScaleChange, SCALE_FILES, scaleChanged, scaleRelOf, type ScalePaths } from './scale-dataset.js';

export interface ScaleContext {
  root: string;
  /** Scratch folder for the medium, archives and restores (emptied by the caller). */
  work: string;
  reps: number;
  projectRoot: string;
  paths: ScalePaths;
  say: (line: string) => void;
}

export const SCALE_VOLUME = 'scale/root';
const HOST = 'bench';
/** A directory of 99 files in the middle of the tree, for `ls`. */
export const LS_DIR = 't50/s50';
/** The last file in name order, two levels down: the one a name-ordered archive holds last. */
export const RESTORE_FILE = scaleRelOf(SCALE_FILES - 1);

const medium = (ctx: ScaleContext): string => path.join(ctx.work, 'xb-medium');
const volumeDir = (ctx: ScaleContext): string => path.join(medium(ctx), HOST, ...SCALE_VOLUME.split('/'));
const gnuFull = (ctx: ScaleContext): string => path.join(ctx.work, 'gnu-full.tar.zst');
const gnuSnar0 = (ctx: ScaleContext): string => path.join(ctx.work, 'gnu-level0.snar');

interface SidecarView {
  id: string;
  kind: string;
}

function sidecars(ctx: ScaleContext): SidecarView[] {
  const dir = volumeDir(ctx);
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.json'))
    .sort()
    .map((n) => JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')) as SidecarView);
}

/** What one backup put on the medium: its files' sizes on disk, by role. */
export interface AddedBytes {
  archive: number;
  manifest: number;
  sidecar: number;
  other: number;
  total: number;
}

function addedBytes(ctx: ScaleContext, id: string): AddedBytes {
  const out: AddedBytes = { archive: 0, manifest: 0, sidecar: 0, other: 0, total: 0 };
  for (const n of fs.readdirSync(volumeDir(ctx))) {
    if (!n.startsWith(`${id}.`)) continue;
    const size = fs.statSync(path.join(volumeDir(ctx), n)).size;
    const role = n.endsWith('.manifest') ? 'manifest' : n.endsWith('.json') ? 'sidecar' : /\.tar(\.\w+)?$/.test(n) ? 'archive' : 'other';
    out[role] += size;
    out.total += size;
  }
  return out;
}

function dropBackup(ctx: ScaleContext, id: string): void {
  for (const n of fs.readdirSync(volumeDir(ctx))) if (n.startsWith(`${id}.`)) fs.rmSync(path.join(volumeDir(ctx), n), { force: true });
}

/** What a xenbackup run reads: node, the build (bundle and modules), the dependencies, the native helper. */
function code(ctx: ScaleContext): string[] {
  const bundle = path.join(ctx.projectRoot, 'dist', 'bundle');
  return [...xbCode(ctx), ...(fs.existsSync(bundle) ? [bundle] : [])];
}

function xenbackup(ctx: ScaleContext, args: string[]): Sample {
  return runTimed(process.execPath, [path.join(ctx.projectRoot, 'bin', 'xenbackup'), ...args], { cwd: ctx.projectRoot });
}

const show = (args: string[]): string => `xenbackup ${args.map((a) => (path.isAbsolute(a) ? path.basename(a) : a)).join(' ')}`;
const mediumArgs = (ctx: ScaleContext): string[] => ['--medium', medium(ctx), '--host', HOST];

/** Warms what an incremental or a read of the chain reads: the medium's manifests and sidecars, and the code. */
function warmChain(ctx: ScaleContext): void {
  const dir = volumeDir(ctx);
  warm([...fs.readdirSync(dir).filter((n) => !/\.tar(\.\w+)?$/.test(n)).map((n) => path.join(dir, n)), ...code(ctx)]);
}

/** Full backup: xenbackup into a fresh medium vs `tar -g snar | zstd -1 -T0`; leaves both fulls (and tar's level-0 snapshot) for the rest. */
export function scaleFull(ctx: ScaleContext): WorkResult {
  const args = ['backup', ctx.root, '--volume', SCALE_VOLUME, ...mediumArgs(ctx), '--full', '--compress', 'zstd', '-q'];
  const facts: Record<string, unknown> = {};
  const [xb, gnu] = measureRounds(ctx, [
    {
      tool: 'xenbackup',
      command: show(args),
      before: () => {
        fs.rmSync(medium(ctx), { recursive: true, force: true });
        fs.mkdirSync(medium(ctx), { recursive: true });
        warm([ctx.root, ...code(ctx)]);
      },
      run: () => xenbackup(ctx, args),
      after: () => {
        const s = sidecars(ctx);
        if (s.length !== 1 || s[0]!.kind !== 'full') throw new Error(`xenbackup --full left ${s.map((x) => x.kind).join(', ') || 'nothing'} in ${volumeDir(ctx)}`);
        facts.xenbackup = addedBytes(ctx, s[0]!.id);
      },
    },
    {
      tool: 'GNU tar -g + zstd -1 -T0',
      command: 'tar -g level0.snar -cf - -C T . | zstd -1 -T0 > full.tar.zst',
      before: () => {
        fs.rmSync(gnuFull(ctx), { force: true });
        fs.rmSync(gnuSnar0(ctx), { force: true });
        warm([ctx.root]);
      },
      run: () => runShell(`tar -g ${sh(gnuSnar0(ctx))} -cf - -C ${sh(ctx.root)} . | zstd -1 -T0 -q > ${sh(gnuFull(ctx))}`),
      after: () => {
        facts.gnu = { archive: fs.statSync(gnuFull(ctx)).size, snapshot: fs.statSync(gnuSnar0(ctx)).size };
      },
    },
  ]);
  return { work: 'full backup', xenbackup: xb!, references: [gnu!], facts };
}

/**
 * xenbackup's incremental on the chain; what it added is recorded, then it
 * is removed so every repetition makes the same step, except where `keepLast`
 * (the last no-change one stays, so the reads below see a chain of two).
 */
function xbIncremental(ctx: ScaleContext, facts: Record<string, unknown>, keepLast: boolean): Contender {
  const args = ['backup', ctx.root, '--volume', SCALE_VOLUME, ...mediumArgs(ctx), '--compress', 'zstd', '-q'];
  let round = 0;
  return {
    tool: 'xenbackup',
    command: show(args),
    before: () => {
      waitPastId(sidecars(ctx).pop()!.id);
      warmChain(ctx);
      warmMetadata(ctx.root);
    },
    run: () => xenbackup(ctx, args),
    after: () => {
      const newest = sidecars(ctx).pop()!;
      if (newest.kind !== 'incremental') throw new Error(`xenbackup made a ${newest.kind} backup (${newest.id}) where an incremental was expected`);
      facts.xenbackup = addedBytes(ctx, newest.id);
      if (!keepLast || ++round < ctx.reps) dropBackup(ctx, newest.id);
    },
  };
}

/** GNU tar's level 1 from a copy of the level-0 snapshot file, compressed as the full was. */
function gnuIncremental(ctx: ScaleContext, name: string, facts: Record<string, unknown>): Contender {
  const snar = path.join(ctx.work, `${name}.snar`);
  const out = path.join(ctx.work, `${name}.tar.zst`);
  return {
    tool: 'GNU tar -g + zstd -1 -T0',
    command: 'tar -g copy-of-level0.snar -cf - -C T . | zstd -1 -T0 > level1.tar.zst',
    before: () => {
      fs.copyFileSync(gnuSnar0(ctx), snar);
      fs.rmSync(out, { force: true });
      warmMetadata(ctx.root);
    },
    run: () => runShell(`tar -g ${sh(snar)} -cf - -C ${sh(ctx.root)} . | zstd -1 -T0 -q > ${sh(out)}`),
    after: () => {
      facts.gnu = { archive: fs.statSync(out).size, snapshot: fs.statSync(snar).size };
    },
  };
}

/** Nothing changed since the full: xenbackup vs GNU tar's level 1 (and the bare stat walk, for the JSON). */
export function scaleNoChange(ctx: ScaleContext): WorkResult {
  const facts: Record<string, unknown> = {};
  const [xb, gnu, walk] = measureRounds(ctx, [
    xbIncremental(ctx, facts, true),
    gnuIncremental(ctx, 'gnu-nochange', facts),
    {
      tool: 'stat walk (find)',
      command: "find T -printf '%s %T@ %i\\n' > /dev/null",
      before: () => warmMetadata(ctx.root),
      run: () => runShell(`find ${sh(ctx.root)} -printf '%s %T@ %i\\n' > /dev/null`),
    },
  ]);
  return { work: 'no-change incremental', xenbackup: xb!, references: [gnu!, walk!], facts };
}

/** 10,000 files rewritten (the same ones each round, written back after it). */
export function scaleOnePercent(ctx: ScaleContext): WorkResult {
  const facts: Record<string, unknown> = { changedFiles: scaleChanged().length };
  const round = { before: () => applyScaleChange(ctx.paths), after: () => revertScaleChange(ctx.paths) };
  const [xb, gnu] = measureRounds(ctx, [xbIncremental(ctx, facts, false), gnuIncremental(ctx, 'gnu-1pct', facts)], round);
  return { work: '1%-change incremental', xenbackup: xb!, references: [gnu!], facts };
}

function checkRestored(file: string, source: string, tool: string): void {
  if (!fs.existsSync(file)) throw new Error(`${tool} did not restore ${file}`);
  if (!fs.readFileSync(file).equals(fs.readFileSync(source))) throw new Error(`${tool} restored ${file} with content that differs from ${source}`);
}

/** One file deep in the tree: xenbackup's restore from the chain vs GNU tar extracting that member from its full. */
export function scaleRestore(ctx: ScaleContext): WorkResult {
  const source = path.join(ctx.root, RESTORE_FILE);
  const xbTo = path.join(ctx.work, 'restore-xb');
  const gnuTo = path.join(ctx.work, 'restore-gnu');
  const args = ['restore', SCALE_VOLUME, RESTORE_FILE, ...mediumArgs(ctx), '--to', xbTo, '-q'];
  const [xb, gnu] = measureRounds(ctx, [
    {
      tool: 'xenbackup',
      command: show(args),
      before: () => {
        fs.rmSync(xbTo, { recursive: true, force: true });
        warm([volumeDir(ctx), ...code(ctx)]);
      },
      run: () => xenbackup(ctx, args),
      after: () => checkRestored(path.join(xbTo, RESTORE_FILE), source, 'xenbackup restore'),
    },
    {
      tool: 'GNU tar -I zstd -x member',
      command: `tar -I zstd -xf full.tar.zst -C D ./${RESTORE_FILE}`,
      before: () => {
        fs.rmSync(gnuTo, { recursive: true, force: true });
        fs.mkdirSync(gnuTo);
        warm([gnuFull(ctx)]);
      },
      run: () => runTimed('tar', ['-I', 'zstd', '-xf', gnuFull(ctx), '-C', gnuTo, `./${RESTORE_FILE}`]),
      after: () => checkRestored(path.join(gnuTo, RESTORE_FILE), source, 'GNU tar'),
    },
  ]);
  return { work: 'one-file restore', xenbackup: xb!, references: [gnu!], facts: { file: RESTORE_FILE } };
}

/** A read-only command on the chain, alone (GNU tar has no counterpart); `check` looks at its output. */
function readOnly(ctx: ScaleContext, work: string, args: string[], check: (s: Sample) => void): WorkResult {
  const [xb] = measureRounds(ctx, [{ tool: 'xenbackup', command: show(args), before: () => warmChain(ctx), run: () => xenbackup(ctx, args), after: check }]);
  return { work, xenbackup: xb!, references: [], facts: {} };
}

export function scaleLs(ctx: ScaleContext): WorkResult {
  return readOnly(ctx, 'ls of one directory', ['ls', SCALE_VOLUME, LS_DIR, ...mediumArgs(ctx)], (s) => {
    const entries = s.stdout.split('\n').filter(Boolean).length;
    if (entries !== 99) throw new Error(`xenbackup ls ${LS_DIR} listed ${entries} entries, not the 99 files the tree has there`);
  });
}

export function scaleVerify(ctx: ScaleContext): WorkResult {
  return readOnly(ctx, 'verify --quick', ['verify', '--quick', SCALE_VOLUME, ...mediumArgs(ctx), '-q'], () => undefined);
}

/** prune's planning reads every sidecar and chain; a TTL of ten years keeps everything, and --dry-run deletes nothing anyway. */
export function scalePrune(ctx: ScaleContext): WorkResult {
  const args = ['prune', SCALE_VOLUME, ...mediumArgs(ctx), '--ttl', '3650', '--dry-run', '--lock-file', path.join(ctx.work, 'prune.lock')];
  return readOnly(ctx, 'prune --dry-run', args, (s) => {
    if (!/would delete 0 backups/.test(s.stdout)) throw new Error(`xenbackup prune --dry-run would delete something: ${s.stdout.trim().split('\n').pop()}`);
  });
}

export type { Measured };
