/**
 * The fuzzer's mutations of a real volume folder (issue 14): bit flips,
 * truncations, field swaps between sidecars, type changes of JSON fields,
 * duplicated, reordered and dropped manifest lines (a version 2 manifest's
 * data lines, its references as they are, written back as frames by
 * manifest-bytes.ts), its index records and trailer, hostile path strings, and
 * links planted in the folder. Half the manifest and archive edits are made
 * as an attacker would (checksums and the frame index fixed), half as a
 * damaged disk would (nothing fixed). Everything is drawn from one seeded
 * generator per case, so (seed, case) reproduces a case exactly.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { xxh64 } from '../../src/native/xxh.js';
import { encodeFrameRecord } from '../../src/core/manifest-v2.js';
import { framedManifestBytes, framedParts, isFramedFile, manifestBytes, manifestLinesOf, type FramedTamper } from './manifest-bytes.js';

export type Rng = () => number;

/** splitmix32 over (seed, case): independent streams per case, no state between cases. */
export function caseRng(seed: number, caseNo: number): Rng {
  let s = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(caseNo + 1, 0x85ebca77)) >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    return ((z ^ (z >>> 15)) >>> 0) / 4294967296;
  };
}

const int = (rng: Rng, n: number): number => Math.floor(rng() * n);
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[int(rng, xs.length)]!;

export interface Mutation {
  /** What was done, for the report of a failing case. */
  what: string;
  /** The files it changed (names in the volume's folder). */
  files: string[];
}

/** Hostile values a JSON field is replaced with. */
function hostileValues(outside: string, vol: string): unknown[] {
  const up = path.relative(vol, outside);
  return [
    null, true, 0, -1, 1.5, 2 ** 53 + 2, 1e308, '', 'zz', [], {}, [[0, 0]], { a: 1 },
    '20200101T000000Z', '20991231T235959Z', '../x', `${up}/victim`, `${up}/etc/passwd`, path.join(outside, 'victim'), '.', '..', 'a/b', 'x\ny',
  ];
}

function sidecars(vol: string): string[] {
  return fs.readdirSync(vol).filter((n) => n.endsWith('.json')).sort();
}

function manifests(vol: string): string[] {
  return fs.readdirSync(vol).filter((n) => n.endsWith('.manifest')).sort();
}

/** A file's bytes, only when it is a regular file (an earlier mutation may have left a fifo or a link to /dev/zero). */
function readPlain(file: string): Buffer {
  if (!fs.lstatSync(file).isFile()) throw new Error(`${file} is not a regular file`);
  return fs.readFileSync(file);
}

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    const o = JSON.parse(readPlain(file).toString('utf8')) as unknown;
    return typeof o === 'object' && o !== null && !Array.isArray(o) ? (o as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The sidecar that names `manifestName` (to fix its manifestXxh64 / archive fields as an attacker). */
function sidecarOf(vol: string, fileName: string): string | undefined {
  for (const s of sidecars(vol)) {
    const o = readJson(path.join(vol, s));
    if (o && (o.manifest === fileName || o.archive === fileName)) return s;
  }
  return undefined;
}

/** Sets the manifestXxh64 of the sidecar naming `name` to that of `bytes`, as an attacker would; the files changed. */
function fixSidecarHash(vol: string, name: string, bytes: Buffer): string[] {
  const s = sidecarOf(vol, name);
  if (!s) return [name];
  const o = readJson(path.join(vol, s))!;
  o.manifestXxh64 = xxh64(bytes);
  fs.writeFileSync(path.join(vol, s), JSON.stringify(o, null, 1) + '\n');
  return [name, s];
}

/** Rewrites a manifest for its (edited) lines in its version (manifest-bytes.ts), trailer and the sidecar's manifestXxh64 fixed. */
function writeManifestFixed(vol: string, name: string, m: ManifestParts): string[] {
  const bytes = manifestBytes(m.lines, m.framed);
  fs.writeFileSync(path.join(vol, name), bytes);
  return fixSidecarHash(vol, name, bytes);
}

/** Rewrites a manifest for its (edited) lines with the trailer's checksum it had (the sidecar's as well): what a damaged disk leaves. */
function writeManifestRaw(vol: string, name: string, m: ManifestParts): string[] {
  const bytes = m.framed
    ? manifestBytes(m.lines, true, { trailer: { xxh64: m.trailer } })
    : Buffer.from(m.lines.map((l) => l + '\n').join('') + m.trailer + '\n');
  fs.writeFileSync(path.join(vol, name), bytes);
  return [name];
}

interface ManifestParts {
  /** [header, ...entries]: version 2's shown as version 1's, its references kept as lines (manifest-bytes.ts). */
  lines: string[];
  /** Version 1's trailer line; version 2's trailer hash. */
  trailer: string;
  framed: boolean;
}

/** A manifest's lines, trailer aside; throws when an earlier mutation left a version 2 file that no longer reads. */
function manifestParts(vol: string, name: string): ManifestParts {
  const file = path.join(vol, name);
  if (isFramedFile(file)) {
    return { lines: manifestLinesOf(file, false), trailer: readPlain(file).subarray(-8).toString('hex'), framed: true };
  }
  const all = readPlain(file).toString('utf8').split('\n');
  if (all[all.length - 1] === '') all.pop();
  const trailer = all.pop() ?? '';
  return { lines: all, trailer, framed: false };
}

type Mutator = (rng: Rng, vol: string, outside: string) => Mutation | undefined;

const anyFile = (vol: string): string[] => fs.readdirSync(vol).filter((n) => fs.lstatSync(path.join(vol, n)).isFile()).sort();

const MUTATORS: Array<[weight: number, name: string, fn: Mutator]> = [
  [3, 'bit flips', (rng, vol) => {
    const name = pick(rng, anyFile(vol));
    const buf = readPlain(path.join(vol, name));
    if (buf.length === 0) return undefined;
    const n = 1 + int(rng, 8);
    const at: number[] = [];
    // Distinct bytes: a bit flipped twice would be no damage at all.
    for (let i = 0; i < n * 4 && at.length < Math.min(n, buf.length); i++) {
      const k = int(rng, buf.length);
      if (at.includes(k)) continue;
      buf[k]! ^= 1 << int(rng, 8);
      at.push(k);
    }
    fs.writeFileSync(path.join(vol, name), buf);
    return { what: `flipped bits at ${at.join(',')} of ${name}`, files: [name] };
  }],
  [2, 'truncation', (rng, vol) => {
    const name = pick(rng, anyFile(vol));
    const size = fs.statSync(path.join(vol, name)).size;
    const to = int(rng, size);
    fs.truncateSync(path.join(vol, name), to);
    return { what: `truncated ${name} from ${size} to ${to} bytes`, files: [name] };
  }],
  [2, 'sidecar field swap', (rng, vol) => {
    const list = sidecars(vol);
    if (list.length < 2) return undefined;
    const a = pick(rng, list);
    const b = pick(rng, list.filter((x) => x !== a));
    const oa = readJson(path.join(vol, a));
    const ob = readJson(path.join(vol, b));
    if (!oa || !ob) return undefined;
    const key = pick(rng, Object.keys(oa));
    [oa[key], ob[key]] = [ob[key], oa[key]];
    fs.writeFileSync(path.join(vol, a), JSON.stringify(oa, null, 1) + '\n');
    fs.writeFileSync(path.join(vol, b), JSON.stringify(ob, null, 1) + '\n');
    return { what: `swapped "${key}" between ${a} and ${b}`, files: [a, b] };
  }],
  [3, 'sidecar field type change', (rng, vol, outside) => {
    const name = pick(rng, sidecars(vol));
    const o = readJson(path.join(vol, name));
    if (!o) return undefined;
    const key = pick(rng, Object.keys(o));
    const v = pick(rng, hostileValues(outside, vol));
    if (key === 'stats' && rng() < 0.5 && typeof o.stats === 'object' && o.stats) {
      const k = pick(rng, Object.keys(o.stats));
      (o.stats as Record<string, unknown>)[k] = v;
    } else o[key] = v;
    fs.writeFileSync(path.join(vol, name), JSON.stringify(o, null, 1) + '\n');
    return { what: `set "${key}" of ${name} to ${JSON.stringify(v)}`, files: [name] };
  }],
  [3, 'manifest field change', (rng, vol, outside) => {
    const name = pick(rng, manifests(vol));
    const m = manifestParts(vol, name);
    const lines = m.lines;
    if (lines.length < 2) return undefined;
    const i = int(rng, lines.length);
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(lines[i]!) as Record<string, unknown>;
    } catch {
      return undefined;
    }
    if (typeof o !== 'object' || o === null) return undefined;
    const keys = [...Object.keys(o), 'n', 'd', 'l', 'do', 'r'];
    const key = pick(rng, keys);
    const v = pick(rng, hostileValues(outside, vol));
    o[key] = v;
    lines[i] = JSON.stringify(o);
    const fixed = rng() < 0.7;
    const files = fixed ? writeManifestFixed(vol, name, m) : writeManifestRaw(vol, name, m);
    return { what: `set "${key}" of line ${i} of ${name} to ${JSON.stringify(v)}${fixed ? ' (checksums fixed)' : ''}`, files };
  }],
  [2, 'manifest lines duplicated, reordered or dropped', (rng, vol) => {
    const name = pick(rng, manifests(vol));
    const m = manifestParts(vol, name);
    const lines = m.lines;
    if (lines.length < 3) return undefined;
    const i = 1 + int(rng, lines.length - 1);
    const j = 1 + int(rng, lines.length - 1);
    const how = pick(rng, ['duplicated', 'swapped', 'dropped'] as const);
    if (how === 'duplicated') lines.splice(j, 0, lines[i]!);
    else if (how === 'swapped') [lines[i], lines[j]] = [lines[j]!, lines[i]!];
    else lines.splice(i, 1);
    const fixed = rng() < 0.8;
    const files = fixed ? writeManifestFixed(vol, name, m) : writeManifestRaw(vol, name, m);
    return { what: `${how} line ${i}${how === 'dropped' ? '' : ` and ${j}`} of ${name}${fixed ? ' (checksums fixed)' : ''}`, files };
  }],
  [1, 'manifest index or trailer changed, checksums fixed', (rng, vol, outside) => {
    // Version 2's own parts: a frame record's field (at, len, raw, blocks, d, hl) or the trailer's, as an attacker would.
    const name = pick(rng, manifests(vol).filter((n) => isFramedFile(path.join(vol, n))));
    if (!name) return undefined;
    const { header, frames } = framedParts(path.join(vol, name), false);
    let what: string;
    let tamper: FramedTamper;
    if (rng() < 0.6) {
      const key = pick(rng, ['at', 'len', 'raw', 'blocks', 'd', 'db', 'hl']);
      const v = rng() < 0.5 ? pick(rng, hostileValues(outside, vol)) : int(rng, 4096);
      const i = int(rng, frames.length);
      what = `set "${key}" of index record ${i} of ${name} to ${JSON.stringify(v)}`;
      tamper = {
        records: (rs) => rs.map((r, k) => {
          const o = JSON.parse(encodeFrameRecord(r)) as Record<string, unknown>;
          if (k === i) o[key] = v;
          return JSON.stringify(o);
        }),
      };
    } else {
      const key = pick(rng, ['indexAt', 'indexLen', 'indexRaw'] as const);
      const big = rng() < 0.3;
      const delta = big ? int(rng, 2 ** 40) : int(rng, 64) - 32;
      what = `${big ? 'set' : 'moved'} the trailer's ${key} of ${name} ${big ? 'to' : 'by'} ${delta}`;
      tamper = { trailer: (t) => ({ [key]: Math.max(0, big ? delta : t[key] + delta) }) };
    }
    const bytes = framedManifestBytes(JSON.stringify(header), frames, tamper);
    fs.writeFileSync(path.join(vol, name), bytes);
    return { what: `${what} (checksums fixed)`, files: fixSidecarHash(vol, name, bytes) };
  }],
  [2, 'archive bytes changed, checksum fixed', (rng, vol) => {
    const name = pick(rng, fs.readdirSync(vol).filter((n) => /\.tar(\.zst|\.gz)?$/.test(n)).sort());
    if (!name) return undefined;
    const file = path.join(vol, name);
    const buf = readPlain(file);
    const cut = rng() < 0.3;
    const out = cut ? buf.subarray(0, int(rng, buf.length)) : buf;
    if (!cut) for (let k = 0; k < 1 + int(rng, 4); k++) out[int(rng, out.length)]! ^= 1 << int(rng, 8);
    fs.writeFileSync(file, out);
    const s = sidecarOf(vol, name);
    if (s) {
      const o = readJson(path.join(vol, s))!;
      o.archiveXxh64 = xxh64(out);
      o.archiveBytes = out.length;
      if (Array.isArray(o.frames)) o.frames = (o.frames as Array<[number, number]>).filter((f) => Array.isArray(f) && f[0] <= out.length);
      fs.writeFileSync(path.join(vol, s), JSON.stringify(o, null, 1) + '\n');
    }
    return { what: `${cut ? `cut ${name} to ${out.length} bytes` : `flipped bits in ${name}`} (archiveXxh64 fixed)`, files: s ? [name, s] : [name] };
  }],
  [2, 'link planted', (rng, vol, outside) => {
    const targets = [path.join(outside, 'victim'), path.join(outside, 'etc/passwd'), path.join(outside, 'sub'), path.join(outside, 'fakevol'), outside, path.relative(vol, path.join(outside, 'victim')), '/proc/self/fd/0', '/dev/zero'];
    const target = pick(rng, targets);
    const names = anyFile(vol);
    const replace = rng() < 0.7 && names.length > 0;
    const name = replace ? pick(rng, names) : `${pick(rng, names.map((n) => n.slice(0, 16)).concat(['20991231T235959Z']))}.full.${pick(rng, ['json', 'manifest', 'tar.zst'])}`;
    fs.rmSync(path.join(vol, name), { force: true, recursive: true });
    fs.symlinkSync(target, path.join(vol, name));
    return { what: `${replace ? 'replaced' : 'planted'} ${name} with a symlink to ${target}`, files: [name] };
  }],
  [1, 'fifo or directory planted', (rng, vol) => {
    const name = pick(rng, anyFile(vol));
    if (!name) return undefined;
    fs.rmSync(path.join(vol, name));
    // A fifo opened for reading without O_NONBLOCK would hang the command: the watchdog's case.
    const fifo = rng() < 0.5;
    if (fifo) execFileSync('mkfifo', [path.join(vol, name)]);
    else fs.mkdirSync(path.join(vol, name));
    return { what: `replaced ${name} with a ${fifo ? 'fifo' : 'directory'}`, files: [name] };
  }],
];

const TOTAL = MUTATORS.reduce((s, [w]) => s + w, 0);

/** Applies 1-3 mutations drawn from `rng` to the volume folder `vol`; returns what was done. */
export function mutate(rng: Rng, vol: string, outside: string): Mutation[] {
  const out: Mutation[] = [];
  const n = 1 + (rng() < 0.3 ? 1 + int(rng, 2) : 0);
  for (let tries = 0; out.length < n && tries < 10; tries++) {
    let r = rng() * TOTAL;
    const [, , fn] = MUTATORS.find(([w]) => (r -= w) < 0) ?? MUTATORS[0]!;
    try {
      const m = fn(rng, vol, outside);
      if (m) out.push(m);
    } catch {
      // a mutation that does not apply to what earlier ones left (a file already a symlink): draw another
    }
  }
  return out;
}
