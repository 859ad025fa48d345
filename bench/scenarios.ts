/**
 * The benchmark's five kinds of work, each xenbackup (through its CLI, as a
 * user runs it) side by side with what users would run instead (ANCHORS.md):
 * full backup, no-change incremental, 1%-change incremental, one-file
 * restore, and the full backup's peak memory. Contenders take turns within
 * each repetition (the order rotates), every repetition starts from the same
 * state, what the command reads is read into the page cache just before it
 * (measure.ts warm), and dirty pages are flushed before each timed command.
 *
 * State shared between the works lives in fixed places under `ctx.work`:
 * the full backup's medium (the base of the incrementals and the source of
 * the restore) and GNU tar's full archive.
 */
import fs from 'node:fs';
import path from 'node:path';
import { applyChange, revertChange, type DatasetPlan } from './dataset.js';
import { flushWrites, median, runShell, runTimed, sh, warm, warmMetadata, type Sample } from './measure.js';
import { newestProfile, summariseCpuProfile, type ProfileSummary } from './cpuprofile.js';

export interface BenchContext {
  /** The data set's tree. */
  root: string;
  /** Scratch folder for media, archives and restores (emptied by the caller). */
  work: string;
  reps: number;
  projectRoot: string;
  plan: DatasetPlan;
  dirtyMarker: string;
  say: (line: string) => void;
  /** When set: one more, profiled xenbackup run per work, its .cpuprofile written below this folder. */
  profileDir?: string;
}

export interface Measured {
  tool: string;
  command: string;
  /** Wall seconds, in the order measured. */
  samples: number[];
  median: number;
  /** CPU seconds (user + system, children included), in the same order. */
  cpuSamples: number[];
  cpuMedian: number;
  /** Largest peak RSS over the repetitions, KiB. */
  maxRssKiB: number;
}

export interface WorkResult {
  work: string;
  xenbackup: Measured;
  references: Measured[];
  /** What the runs produced (archive sizes, counts, the file restored), for the JSON. */
  facts: Record<string, unknown>;
  profile?: ProfileSummary;
}

export interface Contender {
  tool: string;
  command: string;
  run: () => Sample;
  before?: () => void;
  after?: (s: Sample) => void;
}

const VOLUME = 'bench/t';
const HOST = 'bench';

const xbMedium = (ctx: BenchContext): string => path.join(ctx.work, 'xb-medium');
const gnuFullArchive = (ctx: BenchContext): string => path.join(ctx.work, 'gnu-full.tar.zst');
const volumeDir = (medium: string): string => path.join(medium, HOST, 'bench', 't');

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Backup ids are UTC seconds; xenbackup waits for the next second rather than reuse one, which must not be timed. */
export function waitPastId(id: string): void {
  const idNow = (): string => new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  while (idNow() <= id) sleepMs(50);
}

interface SidecarView {
  id: string;
  kind: string;
  archive: string;
  manifest: string;
  archiveBytes: number;
  tarBytes: number;
  status: string;
  stats: Record<string, number>;
}

function sidecars(medium: string): SidecarView[] {
  const dir = volumeDir(medium);
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.json'))
    .sort()
    .map((n) => JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')) as SidecarView);
}

/** Removes one backup's files, so the next incremental measures the same step again. */
function dropBackup(medium: string, id: string): void {
  const dir = volumeDir(medium);
  for (const n of fs.readdirSync(dir)) if (n.startsWith(`${id}.`)) fs.rmSync(path.join(dir, n), { force: true });
}

/** What a xenbackup run loads: node, the build, the dependencies, the native helper. */
export function xbCode(ctx: Pick<BenchContext, 'projectRoot'>): string[] {
  return [process.execPath, ...['dist/src', 'node_modules', 'build'].map((d) => path.join(ctx.projectRoot, d))].filter((p) => fs.existsSync(p));
}

function xenbackup(ctx: BenchContext, args: string[]): Sample {
  return runTimed(process.execPath, [path.join(ctx.projectRoot, 'bin', 'xenbackup'), ...args], { cwd: ctx.projectRoot });
}

/** The same command once more under `node --cpu-prof`, summarised (not part of the timings). */
function profiled(ctx: BenchContext, name: string, args: string[]): ProfileSummary | undefined {
  if (!ctx.profileDir) return undefined;
  const dir = path.join(ctx.profileDir, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  warm(xbCode(ctx));
  flushWrites();
  runTimed(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, path.join(ctx.projectRoot, 'bin', 'xenbackup'), ...args], { cwd: ctx.projectRoot });
  return summariseCpuProfile(newestProfile(dir), ctx.projectRoot);
}

const showXb = (args: string[]): string => `xenbackup ${args.map((a) => (a.includes('/') && a.length > 20 ? path.basename(a) : a)).join(' ')}`;

export function measureRounds(ctx: Pick<BenchContext, 'reps'>, contenders: Contender[], round?: { before?: () => void; after?: () => void }): Measured[] {
  const samples: Sample[][] = contenders.map(() => []);
  for (let r = 0; r < ctx.reps; r++) {
    round?.before?.();
    try {
      for (let k = 0; k < contenders.length; k++) {
        const i = (k + r) % contenders.length;
        const c = contenders[i]!;
        c.before?.();
        flushWrites();
        const s = c.run();
        c.after?.(s);
        samples[i]!.push(s);
      }
    } finally {
      round?.after?.();
    }
  }
  return contenders.map((c, i) => {
    const secs = samples[i]!.map((s) => s.seconds);
    const cpu = samples[i]!.map((s) => s.cpuSeconds);
    return {
      tool: c.tool,
      command: c.command,
      samples: secs,
      median: median(secs),
      cpuSamples: cpu,
      cpuMedian: median(cpu),
      maxRssKiB: Math.max(...samples[i]!.map((s) => s.maxRssKiB)),
    };
  });
}

/** Full backup: xenbackup into a fresh medium each time vs `tar | zstd -1 -T0`. Leaves the last full for the others. */
export function benchFull(ctx: BenchContext): WorkResult {
  const medium = xbMedium(ctx);
  const gnuOut = gnuFullArchive(ctx);
  const args = ['backup', ctx.root, '--volume', VOLUME, '--medium', medium, '--host', HOST, '--full', '-q'];
  const fresh = (): void => {
    fs.rmSync(medium, { recursive: true, force: true });
    fs.mkdirSync(medium, { recursive: true });
  };
  let last: SidecarView | undefined;
  const [xb, gnu] = measureRounds(ctx, [
    {
      tool: 'xenbackup',
      command: showXb(args),
      before: () => {
        fresh();
        warm([ctx.root, ...xbCode(ctx)]);
      },
      run: () => xenbackup(ctx, args),
      after: () => {
        const s = sidecars(medium);
        if (s.length !== 1 || s[0]!.kind !== 'full') throw new Error(`xenbackup --full left ${s.map((x) => x.kind).join(', ') || 'nothing'} in ${volumeDir(medium)}`);
        last = s[0];
      },
    },
    {
      tool: 'GNU tar + zstd -1 -T0',
      command: 'tar -cf - -C T . | zstd -1 -T0 > out.tar.zst',
      before: () => {
        fs.rmSync(gnuOut, { force: true });
        warm([ctx.root]);
      },
      run: () => runShell(`tar -cf - -C ${sh(ctx.root)} . | zstd -1 -T0 -q > ${sh(gnuOut)}`),
    },
  ]);
  let profile: ProfileSummary | undefined;
  if (ctx.profileDir) {
    fresh();
    profile = profiled(ctx, 'full', args);
    last = sidecars(medium)[0];
  }
  return {
    work: 'full backup',
    xenbackup: xb!,
    references: [gnu!],
    facts: {
      xenbackupArchiveBytes: last?.archiveBytes,
      xenbackupTarBytes: last?.tarBytes,
      xenbackupStats: last?.stats,
      gnuArchiveBytes: fs.statSync(gnuOut).size,
    },
    profile,
  };
}

/** GNU tar's level 0 of the unchanged tree: the snapshot file every level-1 run starts from (a fresh copy each time). */
function gnuLevel0(ctx: BenchContext): string {
  const snar0 = path.join(ctx.work, 'gnu-level0.snar');
  const out = path.join(ctx.work, 'gnu-level0.tar.zst');
  if (!fs.existsSync(snar0)) {
    ctx.say('  preparing GNU tar level 0');
    runShell(`tar --listed-incremental=${sh(snar0)} -cf - -C ${sh(ctx.root)} . | zstd -1 -T0 -q > ${sh(out)}`);
    fs.rmSync(out, { force: true });
  }
  return snar0;
}

/** An incremental on the full, measured then removed, so every repetition makes the same step. */
function xbIncremental(ctx: BenchContext, facts: Record<string, unknown>): Contender {
  const medium = xbMedium(ctx);
  const args = ['backup', ctx.root, '--volume', VOLUME, '--medium', medium, '--host', HOST, '-q'];
  return {
    tool: 'xenbackup',
    command: showXb(args),
    before: () => {
      const s = sidecars(medium);
      if (s.length !== 1 || s[0]!.kind !== 'full') throw new Error(`expected only the full backup in ${volumeDir(medium)}, found ${s.map((x) => `${x.id} ${x.kind}`).join(', ')}`);
      waitPastId(s[0]!.id);
      warm([...[s[0]!.manifest, `${s[0]!.id}.full.json`].map((n) => path.join(volumeDir(medium), n)), ...xbCode(ctx)]);
      warmMetadata(ctx.root);
    },
    run: () => xenbackup(ctx, args),
    after: () => {
      const newest = sidecars(medium).pop()!;
      if (newest.kind !== 'incremental') throw new Error(`xenbackup made a ${newest.kind} backup (${newest.id}) where an incremental was expected`);
      Object.assign(facts, { xenbackupArchiveBytes: newest.archiveBytes, xenbackupTarBytes: newest.tarBytes, xenbackupStats: newest.stats });
      dropBackup(medium, newest.id);
    },
  };
}

function gnuIncremental(ctx: BenchContext, snar0: string, name: string, facts: Record<string, unknown>): Contender {
  const snar = path.join(ctx.work, `${name}.snar`);
  const out = path.join(ctx.work, `${name}.tar.zst`);
  return {
    tool: 'GNU tar --listed-incremental',
    command: 'tar --listed-incremental=copy-of-level0.snar -cf - -C T . | zstd -1 -T0 > out.tar.zst',
    before: () => {
      fs.copyFileSync(snar0, snar);
      fs.rmSync(out, { force: true });
      warmMetadata(ctx.root);
    },
    run: () => runShell(`tar --listed-incremental=${sh(snar)} -cf - -C ${sh(ctx.root)} . | zstd -1 -T0 -q > ${sh(out)}`),
    after: () => {
      facts.gnuArchiveBytes = fs.statSync(out).size;
    },
  };
}

function profiledIncremental(ctx: BenchContext, name: string): ProfileSummary | undefined {
  if (!ctx.profileDir) return undefined;
  const medium = xbMedium(ctx);
  waitPastId(sidecars(medium)[0]!.id);
  const summary = profiled(ctx, name, ['backup', ctx.root, '--volume', VOLUME, '--medium', medium, '--host', HOST, '-q']);
  dropBackup(medium, sidecars(medium).pop()!.id);
  return summary;
}

/** Nothing changed since the full: xenbackup vs GNU tar's level 1 vs the bare stat walk. */
export function benchNoChange(ctx: BenchContext): WorkResult {
  const snar0 = gnuLevel0(ctx);
  const facts: Record<string, unknown> = {};
  const [xb, gnu, walk] = measureRounds(ctx, [
    xbIncremental(ctx, facts),
    gnuIncremental(ctx, snar0, 'gnu-nochange', facts),
    {
      tool: 'stat walk (find)',
      command: "find T -printf '%s %T@ %i\\n' > /dev/null",
      before: () => warmMetadata(ctx.root),
      run: () => runShell(`find ${sh(ctx.root)} -printf '%s %T@ %i\\n' > /dev/null`),
    },
  ]);
  return { work: 'no-change incremental', xenbackup: xb!, references: [gnu!, walk!], facts, profile: profiledIncremental(ctx, 'nochange') };
}

/** 1% changed (rewritten and deleted files, the same ones each time; written back after each round). */
export function benchOnePercent(ctx: BenchContext): WorkResult {
  const snar0 = gnuLevel0(ctx);
  const facts: Record<string, unknown> = { changedFiles: ctx.plan.changed.length, deletedFiles: ctx.plan.deleted.length };
  const change = { before: () => applyChange(ctx.plan, ctx.root, ctx.dirtyMarker), after: () => revertChange(ctx.plan, ctx.root, ctx.dirtyMarker) };
  const [xb, gnu] = measureRounds(ctx, [xbIncremental(ctx, facts), gnuIncremental(ctx, snar0, 'gnu-1pct', facts)], change);
  let profile: ProfileSummary | undefined;
  if (ctx.profileDir) {
    change.before();
    try {
      profile = profiledIncremental(ctx, 'onepercent');
    } finally {
      change.after();
    }
  }
  return { work: '1%-change incremental', xenbackup: xb!, references: [gnu!], facts, profile };
}

/** Where each member (not directories, no "./") starts, as a fraction of a .tar.zst's tar stream. */
function memberPositions(archive: string): Map<string, number> {
  const listing = runShell(`zstd -dcq ${sh(archive)} | tar -tR -f -`).stdout;
  const starts: Array<[string, number]> = [];
  let end = 1;
  for (const line of listing.split('\n')) {
    const m = /^block (\d+): (.*)$/.exec(line);
    if (!m) continue;
    end = Math.max(end, Number(m[1]));
    if (!m[2]!.endsWith('/') && !m[2]!.startsWith('** ')) starts.push([m[2]!.replace(/^\.\//, ''), Number(m[1])]);
  }
  return new Map(starts.map(([name, block]) => [name, block / end]));
}

/**
 * A small file near the end of both archives (their orders differ: xenbackup
 * sorts by name, GNU tar follows readdir): the one whose earlier start, as a
 * fraction of its tar stream, is latest.
 */
function pickLateFile(ctx: BenchContext, xbArchive: string, gnuArchive: string): { rel: string; xbPosition: number; gnuPosition: number } {
  const xb = memberPositions(xbArchive);
  const gnu = memberPositions(gnuArchive);
  let best = { rel: '', xbPosition: -1, gnuPosition: -1 };
  for (const f of ctx.plan.small) {
    const x = xb.get(f.rel);
    const g = gnu.get(f.rel);
    if (x === undefined || g === undefined) continue;
    if (Math.min(x, g) > Math.min(best.xbPosition, best.gnuPosition)) best = { rel: f.rel, xbPosition: x, gnuPosition: g };
  }
  if (!best.rel) throw new Error(`no small file found in both ${xbArchive} and ${gnuArchive}`);
  return best;
}

function checkRestored(file: string, source: string, tool: string): void {
  if (!fs.existsSync(file)) throw new Error(`${tool} did not restore ${file}`);
  if (!fs.readFileSync(file).equals(fs.readFileSync(source))) throw new Error(`${tool} restored ${file} with content that differs from ${source}`);
}

/** One file near the end: xenbackup's restore vs GNU tar extracting that member (it must decompress the whole stream). */
export function benchRestore(ctx: BenchContext): WorkResult {
  const medium = xbMedium(ctx);
  const full = sidecars(medium);
  if (full.length !== 1 || full[0]!.kind !== 'full') throw new Error(`expected only the full backup in ${volumeDir(medium)}`);
  const xbArchive = path.join(volumeDir(medium), full[0]!.archive);
  const gnuArchive = gnuFullArchive(ctx);
  const target = pickLateFile(ctx, xbArchive, gnuArchive);
  const source = path.join(ctx.root, target.rel);
  const xbTo = path.join(ctx.work, 'restore-xb');
  const gnuTo = path.join(ctx.work, 'restore-gnu');
  const args = ['restore', VOLUME, target.rel, '--medium', medium, '--host', HOST, '--to', xbTo, '-q'];
  const [xb, gnu] = measureRounds(ctx, [
    {
      tool: 'xenbackup',
      command: showXb(args),
      before: () => {
        fs.rmSync(xbTo, { recursive: true, force: true });
        warm([volumeDir(medium), ...xbCode(ctx)]);
      },
      run: () => xenbackup(ctx, args),
      after: () => checkRestored(path.join(xbTo, target.rel), source, 'xenbackup restore'),
    },
    {
      tool: 'GNU tar --zstd -x member',
      command: 'tar --zstd -xf full.tar.zst -C D ./MEMBER',
      before: () => {
        fs.rmSync(gnuTo, { recursive: true, force: true });
        fs.mkdirSync(gnuTo);
        warm([gnuArchive]);
      },
      run: () => runTimed('tar', ['--zstd', '-xf', gnuArchive, '-C', gnuTo, `./${target.rel}`]),
      after: () => checkRestored(path.join(gnuTo, target.rel), source, 'GNU tar'),
    },
  ]);
  let profile: ProfileSummary | undefined;
  if (ctx.profileDir) {
    fs.rmSync(xbTo, { recursive: true, force: true });
    profile = profiled(ctx, 'restore', args);
  }
  return { work: 'one-file restore', xenbackup: xb!, references: [gnu!], facts: target, profile };
}
