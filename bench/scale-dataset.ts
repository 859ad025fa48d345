/**
 * The tree of `bench --scale` (issue 16): 1,000,000 small regular files
 * (20-300 bytes, a mail spool or a package cache) in 10,100 directories,
 * 100 top directories of 100 files each with 100 subdirectories of 99 files
 * each. Everything follows from a seed and a file's index, so the plan is
 * arithmetic, not a million objects held in memory; the tree is generated
 * once into the cache and reused. The marker `scale.json` is written last:
 * a tree without it (a run killed while generating) is removed and made again.
 *
 * The 1% change rewrites 10,000 files in place, chosen by a fixed stride;
 * revertScaleChange() writes their original content back. A "dirty" marker
 * spans the two, so a run killed in between is repaired by the next one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Keystream, mixSeed, Prng } from './prng.js';

/** Bump when the layout or content rules change: cached trees of older versions are regenerated. */
const GENERATOR_VERSION = 1;

export const SCALE_SPEC = {
  name: 'scale',
  seed: 20261216,
  topDirs: 100,
  subDirsPerTop: 100,
  filesPerTop: 100,
  filesPerSub: 99,
  minBytes: 20,
  maxBytes: 300,
  changedFiles: 10_000,
} as const;

export const SCALE_FILES = SCALE_SPEC.topDirs * (SCALE_SPEC.filesPerTop + SCALE_SPEC.subDirsPerTop * SCALE_SPEC.filesPerSub);
export const SCALE_DIRS = SCALE_SPEC.topDirs * (1 + SCALE_SPEC.subDirsPerTop);

const TOP_OWN = SCALE_SPEC.topDirs * SCALE_SPEC.filesPerTop;
const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/** The directory of file `i` ('/'-separated, relative to the root). */
export function scaleDirOf(i: number): string {
  if (i < TOP_OWN) return `t${pad(Math.floor(i / SCALE_SPEC.filesPerTop), 2)}`;
  const sub = Math.floor((i - TOP_OWN) / SCALE_SPEC.filesPerSub);
  return `t${pad(Math.floor(sub / SCALE_SPEC.subDirsPerTop), 2)}/s${pad(sub % SCALE_SPEC.subDirsPerTop, 2)}`;
}

/** File `i`'s path relative to the root. */
export function scaleRelOf(i: number): string {
  return `${scaleDirOf(i)}/f${pad(i, 7)}`;
}

/** Every directory, parents before children. */
export function scaleDirs(): string[] {
  const out: string[] = [];
  for (let t = 0; t < SCALE_SPEC.topDirs; t++) {
    out.push(`t${pad(t, 2)}`);
    for (let s = 0; s < SCALE_SPEC.subDirsPerTop; s++) out.push(`t${pad(t, 2)}/s${pad(s, 2)}`);
  }
  return out;
}

/** File `i`'s size: fixed per file, the same before and after the change. */
export function scaleSizeOf(i: number): number {
  return new Prng(mixSeed(SCALE_SPEC.seed, 1, i)).between(SCALE_SPEC.minBytes, SCALE_SPEC.maxBytes);
}

/** The files of the 1% change: every 100th, offset 37 (spread over every directory). */
export function scaleChanged(): number[] {
  const stride = Math.floor(SCALE_FILES / SCALE_SPEC.changedFiles);
  return Array.from({ length: SCALE_SPEC.changedFiles }, (_, k) => k * stride + 37);
}

/**
 * Content comes from two shared pools, each file taking a seeded slice: two
 * thirds text (lines of words, compresses like a mail header), one third
 * random bytes. A slice per file is cheaper than a cipher or a PRNG per file
 * at a million files. Each file starts with its own name and version, so no
 * two files are equal.
 */
class ContentPools {
  readonly text: Buffer;
  readonly random: Buffer;

  constructor() {
    const rng = new Prng(mixSeed(SCALE_SPEC.seed, 2));
    const letters = 'abcdefghijklmnopqrstuvwxyz';
    const words: string[] = [];
    for (let w = 0; w < 2048; w++) {
      let word = '';
      for (let n = rng.between(2, 10); n > 0; n--) word += letters[rng.below(26)];
      words.push(word);
    }
    let text = '';
    while (text.length < 1 << 20) {
      const line: string[] = [];
      for (let n = rng.between(3, 12); n > 0; n--) line.push(words[Math.floor(rng.next() ** 3 * words.length)]!);
      text += line.join(' ') + '\n';
    }
    this.text = Buffer.from(text);
    this.random = new Keystream(SCALE_SPEC.seed, 1).take(4 << 20);
  }
}

let pools: ContentPools | undefined;

/** File `i`'s content; version 0 is the generated tree, 1 the 1% change. */
export function scaleContent(i: number, version: number): Buffer {
  pools ??= new ContentPools();
  const size = scaleSizeOf(i);
  const out = Buffer.allocUnsafe(size);
  const head = out.write(`${scaleRelOf(i)} v${version}\n`.slice(0, size), 'latin1');
  const rng = new Prng(mixSeed(SCALE_SPEC.seed, 3, i, version));
  const pool = i % 3 === 2 ? pools.random : pools.text;
  const from = rng.below(pool.length - size);
  pool.copy(out, head, from, from + size - head);
  return out;
}

export interface ScalePaths {
  base: string;
  root: string;
  marker: string;
  dirty: string;
}

/** Where the tree and its markers live below the cache folder. */
export function scalePaths(cacheDir: string): ScalePaths {
  const base = path.join(cacheDir, SCALE_SPEC.name);
  return { base, root: path.join(base, 'tree'), marker: path.join(base, 'scale.json'), dirty: path.join(base, 'scale.dirty') };
}

interface Marker {
  generator: number;
  spec: typeof SCALE_SPEC;
  files: number;
  directories: number;
  bytes: number;
  generatedAt: string;
  generateSeconds: number;
}

export interface ScaleDataset {
  root: string;
  files: number;
  directories: number;
  bytes: number;
  /** Seconds this run spent generating the tree (undefined: reused from the cache). */
  generatedSeconds?: number;
}

function readMarker(file: string): Marker | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Marker;
  } catch {
    return undefined;
  }
}

/** Reuses the cached tree when its marker matches; otherwise removes what is there and generates it. */
export function ensureScaleDataset(cacheDir: string, say: (line: string) => void): ScaleDataset {
  const p = scalePaths(cacheDir);
  const marker = readMarker(p.marker);
  if (marker && marker.generator === GENERATOR_VERSION && JSON.stringify(marker.spec) === JSON.stringify(SCALE_SPEC) && fs.existsSync(p.root)) {
    if (fs.existsSync(p.dirty)) {
      say(`scale tree ${p.root}: an earlier run stopped inside the 1% change; writing the original files back`);
      revertScaleChange(p);
    }
    return { root: p.root, files: marker.files, directories: marker.directories, bytes: marker.bytes };
  }

  const started = Date.now();
  fs.rmSync(p.marker, { force: true });
  fs.rmSync(p.dirty, { force: true });
  if (fs.existsSync(p.root)) {
    say(`removing the incomplete scale tree ${p.root}`);
    fs.rmSync(p.root, { recursive: true, force: true });
  }
  say(`generating the scale tree in ${p.root} (${SCALE_FILES} files in ${SCALE_DIRS} directories; once, then cached)`);
  fs.mkdirSync(p.root, { recursive: true });
  const dirs = scaleDirs();
  for (const d of dirs) fs.mkdirSync(path.join(p.root, d));
  let bytes = 0;
  for (let i = 0; i < SCALE_FILES; i++) {
    const content = scaleContent(i, 0);
    fs.writeFileSync(path.join(p.root, scaleRelOf(i)), content);
    bytes += content.length;
    if ((i + 1) % 100_000 === 0) say(`  ${i + 1} of ${SCALE_FILES} files, ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
  const generateSeconds = (Date.now() - started) / 1000;
  const done: Marker = {
    generator: GENERATOR_VERSION,
    spec: SCALE_SPEC,
    files: SCALE_FILES,
    directories: dirs.length,
    bytes,
    generatedAt: new Date().toISOString(),
    generateSeconds,
  };
  fs.writeFileSync(p.marker, JSON.stringify(done, null, 1) + '\n');
  say(`generated the scale tree in ${generateSeconds.toFixed(0)} s`);
  return { root: p.root, files: SCALE_FILES, directories: dirs.length, bytes, generatedSeconds: generateSeconds };
}

/** The 1% change: rewrites the chosen files in place (same inode and size, new content and mtime). */
export function applyScaleChange(p: ScalePaths): void {
  fs.writeFileSync(p.dirty, `the 1% change is applied to ${p.root}\n`);
  for (const i of scaleChanged()) fs.writeFileSync(path.join(p.root, scaleRelOf(i)), scaleContent(i, 1));
}

/** Writes the original content back (mtimes stay new: each repetition changes the same files again). */
export function revertScaleChange(p: ScalePaths): void {
  for (const i of scaleChanged()) fs.writeFileSync(path.join(p.root, scaleRelOf(i)), scaleContent(i, 0));
  fs.rmSync(p.dirty, { force: true });
}
