/**
 * The benchmark's data set, the same one ANCHORS.md measured the other tools
 * on: many small files (half text, half random) in a deep directory tree,
 * a few large random files, symlinks and hardlinks. Everything follows from
 * a seed, so the tree is generated once into a cache folder and reused; the
 * marker file `dataset.json` is written last and says the tree is complete.
 *
 * The 1% change of the incremental benchmark is part of the plan too:
 * applyChange() rewrites and deletes a fixed set of files, revertChange()
 * writes their original content back. A "dirty" marker spans the two, so a
 * run killed in between is repaired by the next one instead of silently
 * measuring a different tree.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Keystream, mixSeed, Prng } from './prng.js';

/** Bump when the layout or content rules change: cached trees of older versions are regenerated. */
const GENERATOR_VERSION = 2;

export interface DatasetSpec {
  name: string;
  seed: number;
  smallFiles: number;
  directories: number;
  maxDepth: number;
  smallMinBytes: number;
  smallMaxBytes: number;
  bigFiles: number;
  bigBytes: number;
  symlinks: number;
  hardlinks: number;
  /** The 1% change: small files rewritten, and small files deleted. */
  changedFiles: number;
  deletedFiles: number;
}

const MiB = 1 << 20;

export const FULL_SPEC: DatasetSpec = {
  name: 'full',
  seed: 20261127,
  smallFiles: 100_000,
  directories: 5_000,
  maxDepth: 6,
  smallMinBytes: 3 * 1024,
  smallMaxBytes: 5 * 1024,
  bigFiles: 12,
  bigBytes: 50 * MiB,
  symlinks: 20,
  hardlinks: 20,
  changedFiles: 1_000,
  deletedFiles: 100,
};

/** Ten times smaller, for a smoke run. */
export const QUICK_SPEC: DatasetSpec = {
  ...FULL_SPEC,
  name: 'quick',
  smallFiles: 10_000,
  directories: 500,
  bigBytes: 5 * MiB,
  changedFiles: 100,
  deletedFiles: 10,
};

export type FileKind = 'text' | 'random' | 'big';

export interface PlannedFile {
  index: number;
  kind: FileKind;
  /** Path relative to the tree's root, '/'-separated. */
  rel: string;
  size: number;
}

export interface DatasetPlan {
  spec: DatasetSpec;
  /** Directories, parents before children (the root itself is not listed). */
  dirs: string[];
  small: PlannedFile[];
  big: PlannedFile[];
  symlinks: Array<{ rel: string; target: string }>;
  hardlinks: Array<{ rel: string; of: string }>;
  changed: PlannedFile[];
  deleted: PlannedFile[];
  /** Bytes of regular file content (hardlinks counted once). */
  totalBytes: number;
  /** Word list for the text files. */
  vocabulary: Buffer[];
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** Lays the tree out from the seed; writes nothing. */
export function planDataset(spec: DatasetSpec): DatasetPlan {
  const rng = new Prng(mixSeed(spec.seed, 1));
  const dirs: string[] = [''];
  const depth: number[] = [0];
  for (let j = 1; j <= spec.directories; j++) {
    let parent: number;
    do parent = rng.below(j);
    while (depth[parent]! >= spec.maxDepth);
    const name = `d${pad(j, 4)}`;
    dirs.push(dirs[parent] ? `${dirs[parent]}/${name}` : name);
    depth.push(depth[parent]! + 1);
  }
  const inDir = (dir: string, name: string): string => (dir ? `${dir}/${name}` : name);
  const randomDir = (): string => dirs[rng.below(dirs.length)]!;

  const small: PlannedFile[] = [];
  for (let i = 0; i < spec.smallFiles; i++) {
    const kind: FileKind = i % 2 === 0 ? 'text' : 'random';
    const name = `f${pad(i, 6)}.${kind === 'text' ? 'txt' : 'bin'}`;
    small.push({ index: i, kind, rel: inDir(randomDir(), name), size: rng.between(spec.smallMinBytes, spec.smallMaxBytes) });
  }
  const big: PlannedFile[] = [];
  for (let k = 0; k < spec.bigFiles; k++) {
    big.push({ index: k, kind: 'big', rel: inDir(randomDir(), `big${pad(k, 2)}.img`), size: spec.bigBytes });
  }

  // Link targets stay out of the change set: the change is about plain files.
  const linked = new Set<number>();
  const symlinks: DatasetPlan['symlinks'] = [];
  for (let k = 0; k < spec.symlinks; k++) {
    const target = small[rng.below(small.length)]!;
    linked.add(target.index);
    const dir = randomDir();
    symlinks.push({ rel: inDir(dir, `link${pad(k, 2)}`), target: path.posix.relative(dir || '.', target.rel) });
  }
  const hardlinks: DatasetPlan['hardlinks'] = [];
  for (let k = 0; k < spec.hardlinks; k++) {
    const of = small[rng.below(small.length)]!;
    linked.add(of.index);
    hardlinks.push({ rel: inDir(randomDir(), `hard${pad(k, 2)}`), of: of.rel });
  }

  const chosen = new Set<number>(linked);
  const pick = (n: number): PlannedFile[] => {
    const out: PlannedFile[] = [];
    while (out.length < n) {
      const f = small[rng.below(small.length)]!;
      if (chosen.has(f.index)) continue;
      chosen.add(f.index);
      out.push(f);
    }
    return out;
  };
  const changed = pick(spec.changedFiles);
  const deleted = pick(spec.deletedFiles);

  const vrng = new Prng(mixSeed(spec.seed, 2));
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const vocabulary: Buffer[] = [];
  for (let w = 0; w < 4096; w++) {
    let word = '';
    for (let n = vrng.between(2, 10); n > 0; n--) word += letters[vrng.below(26)];
    vocabulary.push(Buffer.from(word));
  }

  let totalBytes = 0;
  for (const f of small) totalBytes += f.size;
  for (const f of big) totalBytes += f.size;
  return { spec, dirs: dirs.slice(1), small, big, symlinks, hardlinks, changed, deleted, totalBytes, vocabulary };
}

/** Lines of 3-12 words: compresses like prose or config files do. */
function textContent(plan: DatasetPlan, f: PlannedFile, version: number): Buffer {
  const rng = new Prng(mixSeed(plan.spec.seed, 3, f.index, version));
  const out = Buffer.allocUnsafe(f.size);
  let pos = 0;
  while (pos < f.size) {
    for (let n = rng.between(3, 12); n > 0 && pos < f.size; n--) {
      // Cubing skews the choice toward the list's head, as word frequencies in real text are.
      const word = plan.vocabulary[Math.floor(rng.next() ** 3 * plan.vocabulary.length)]!;
      pos += word.copy(out, pos);
      if (pos < f.size) out[pos++] = n > 1 ? 0x20 : 0x0a;
    }
  }
  return out;
}

const STREAM_SMALL = 1;
const STREAM_BIG = 2;

/** The content of a small file; version 0 is the generated tree, 1 the 1% change. */
export function smallContent(plan: DatasetPlan, f: PlannedFile, version: number): Buffer {
  if (f.kind === 'text') return textContent(plan, f, version);
  return new Keystream(plan.spec.seed, STREAM_SMALL, f.index, version).take(f.size);
}

function writeBig(root: string, plan: DatasetPlan, f: PlannedFile): void {
  const stream = new Keystream(plan.spec.seed, STREAM_BIG, f.index, 0);
  const fd = fs.openSync(path.join(root, f.rel), 'w');
  try {
    for (let left = f.size; left > 0; ) {
      const n = Math.min(left, 4 * MiB);
      fs.writeSync(fd, stream.take(n));
      left -= n;
    }
  } finally {
    fs.closeSync(fd);
  }
}

interface Marker {
  generator: number;
  spec: DatasetSpec;
  totalBytes: number;
  files: number;
  generatedAt: string;
}

export interface Dataset {
  plan: DatasetPlan;
  /** The tree's root. */
  root: string;
  /** True when this run generated it (false: reused from the cache). */
  generated: boolean;
}

/** Where a spec's tree and markers live below the cache folder. */
export function datasetPaths(cacheDir: string, spec: DatasetSpec): { base: string; root: string; marker: string; dirty: string } {
  const base = path.join(cacheDir, spec.name);
  return { base, root: path.join(base, 'tree'), marker: path.join(base, 'dataset.json'), dirty: path.join(base, 'dataset.dirty') };
}

function readMarker(file: string): Marker | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Marker;
  } catch {
    return undefined;
  }
}

/** Reuses the cached tree when its marker matches the spec; otherwise (re)generates it. */
export function ensureDataset(cacheDir: string, spec: DatasetSpec, say: (line: string) => void): Dataset {
  const plan = planDataset(spec);
  const p = datasetPaths(cacheDir, spec);
  const marker = readMarker(p.marker);
  if (marker && marker.generator === GENERATOR_VERSION && JSON.stringify(marker.spec) === JSON.stringify(spec) && fs.existsSync(p.root)) {
    if (fs.existsSync(p.dirty)) {
      say(`data set ${p.root}: an earlier run stopped inside the 1% change; writing the original files back`);
      revertChange(plan, p.root, p.dirty);
    }
    return { plan, root: p.root, generated: false };
  }

  say(`generating the data set in ${p.root} (${spec.smallFiles} small files, ${spec.bigFiles} x ${spec.bigBytes / MiB} MiB)`);
  fs.rmSync(p.marker, { force: true });
  fs.rmSync(p.dirty, { force: true });
  fs.rmSync(p.root, { recursive: true, force: true });
  fs.mkdirSync(p.root, { recursive: true });
  for (const d of plan.dirs) fs.mkdirSync(path.join(p.root, d));
  plan.small.forEach((f, i) => {
    fs.writeFileSync(path.join(p.root, f.rel), smallContent(plan, f, 0));
    if ((i + 1) % 20_000 === 0) say(`  ${i + 1} of ${plan.small.length} small files`);
  });
  for (const f of plan.big) writeBig(p.root, plan, f);
  for (const s of plan.symlinks) fs.symlinkSync(s.target, path.join(p.root, s.rel));
  for (const h of plan.hardlinks) fs.linkSync(path.join(p.root, h.of), path.join(p.root, h.rel));
  const done: Marker = {
    generator: GENERATOR_VERSION,
    spec,
    totalBytes: plan.totalBytes,
    files: plan.small.length + plan.big.length,
    generatedAt: new Date().toISOString(),
  };
  fs.writeFileSync(p.marker, JSON.stringify(done, null, 1) + '\n');
  return { plan, root: p.root, generated: true };
}

/** The 1% change: rewrite `changed` in place (same inode, new content and mtime) and delete `deleted`. */
export function applyChange(plan: DatasetPlan, root: string, dirtyMarker: string): void {
  fs.writeFileSync(dirtyMarker, `the 1% change is applied to ${root}\n`);
  for (const f of plan.changed) fs.writeFileSync(path.join(root, f.rel), smallContent(plan, f, 1));
  for (const f of plan.deleted) fs.unlinkSync(path.join(root, f.rel));
}

/** Writes the original content back (mtimes and ctimes stay new: each repetition then changes the same files again). */
export function revertChange(plan: DatasetPlan, root: string, dirtyMarker: string): void {
  for (const f of [...plan.changed, ...plan.deleted]) fs.writeFileSync(path.join(root, f.rel), smallContent(plan, f, 0));
  fs.rmSync(dirtyMarker, { force: true });
}
