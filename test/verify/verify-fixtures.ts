/**
 * Shared parts of the verify tests (issue 5 item 3): a small real tree with
 * every member kind verify treats specially (plain, hardlinked, sparse,
 * symlink, fifo, nested directories), a chain of real backups of it made
 * through the engine (prepareBackup + commit), damage helpers that always
 * put the original bytes back, and verifyVolume with a time bound so a
 * hanging case fails instead of stalling the suite.
 *
 * Test-only code: commands run through execFileSync directly.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Compression } from '../../src/engines/compression.js';
import { verifyVolume, type VerifyDepth, type VolumeVerification } from '../../src/engines/verify.js';
import type { Sidecar } from '../../src/medium/sidecar.js';
import { createXxh64, xxh64, type StreamingHash } from '../../src/native/xxh.js';
import { readTar } from '../../src/tar/read-tar.js';
import { makeScratchDir, type CleanupContext } from '../helpers/scratch.js';
import { manifestXxh64Of, rewriteManifest, type Json } from '../helpers/manifest-rewrite.js';
import { randomBytes } from '../helpers/torture-tree.js';
import { apiBackup, HOST, memoryLogger, put, StepClock, volumeDir } from '../engine/engine-fixtures.js';

export { HOST } from '../engine/engine-fixtures.js';
export type { Json } from '../helpers/manifest-rewrite.js';

export interface Chain {
  scratch: string;
  source: string;
  medium: string;
  volume: string;
  dir: string;
  /** The backups, oldest first: a full and two incrementals. */
  backups: Sidecar[];
}

/** The paths of the tree below, for assertions on "first bad member". */
export const TREE = {
  random: 'data/random.bin',
  hardlinkA: 'data/linked-a',
  hardlinkB: 'other/linked-b',
  sparse: 'data/sparse.img',
  changed: 'etc/conf3',
} as const;

/**
 * A small tree: text files (compressible), a 96 KiB file of seeded random
 * bytes (so compressed archives have data frames worth damaging), a
 * hardlinked pair across directories, a 2 MiB sparse file with two data
 * regions, a symlink, a fifo and an empty directory.
 */
export function buildTree(root: string): void {
  for (let i = 0; i < 12; i++) put(root, `etc/conf${i}`, `setting_${i}=${'x'.repeat(i * 40)}\n`);
  put(root, 'etc/deep/er/still/file', 'deep\n');
  put(root, TREE.random, randomBytes(96 << 10, 7));
  put(root, TREE.hardlinkA, randomBytes(5000, 11));
  fs.mkdirSync(path.join(root, 'other'), { recursive: true });
  fs.linkSync(path.join(root, TREE.hardlinkA), path.join(root, TREE.hardlinkB));
  const sparse = path.join(root, TREE.sparse);
  const fd = fs.openSync(sparse, 'w');
  fs.writeSync(fd, randomBytes(8192, 3), 0, 8192, 4096);
  fs.writeSync(fd, randomBytes(4096, 5), 0, 4096, 1 << 20);
  fs.ftruncateSync(fd, 2 << 20);
  fs.closeSync(fd);
  fs.symlinkSync('../etc/conf1', path.join(root, 'data/link'));
  execFileSync('mkfifo', [path.join(root, 'data/fifo')]);
  fs.mkdirSync(path.join(root, 'empty'));
}

/** A full and two incrementals (files changed, added and deleted in between) of buildTree's tree. */
export async function makeChain(t: CleanupContext, compression: Compression, volume = `vm1/${compression}`): Promise<Chain> {
  const scratch = makeScratchDir(t, `verify-${compression}`);
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  buildTree(source);
  const clock = new StepClock();
  const backups: Sidecar[] = [];
  backups.push((await apiBackup(source, medium, volume, { clock, compression })).sidecar);
  put(source, TREE.changed, 'changed\n'.repeat(50));
  put(source, 'etc/new-file', randomBytes(3000, 13));
  fs.rmSync(path.join(source, 'etc/conf5'));
  backups.push((await apiBackup(source, medium, volume, { clock, compression })).sidecar);
  put(source, 'etc/conf7', 'changed again\n');
  fs.appendFileSync(path.join(source, TREE.hardlinkA), 'more');
  backups.push((await apiBackup(source, medium, volume, { clock, compression })).sidecar);
  return { scratch, source, medium, volume, dir: volumeDir(medium, volume), backups };
}

export function archivePath(c: Chain, b: Sidecar): string {
  return path.join(c.dir, b.archive);
}

export function manifestPath(c: Chain, b: Sidecar): string {
  return path.join(c.dir, b.manifest);
}

export function sidecarPath(c: Chain, b: Sidecar): string {
  return path.join(c.dir, `${b.id}.${b.kind === 'full' ? 'full' : 'incr'}.json`);
}

const VERIFY_TIMEOUT_MS = 20_000;

/** verifyVolume, failing (not hanging) after 20 s. */
export async function verifyBounded(c: Chain, depth: VerifyDepth, at?: Date): Promise<VolumeVerification> {
  const { log } = memoryLogger();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`verify did not finish within ${VERIFY_TIMEOUT_MS} ms`)), VERIFY_TIMEOUT_MS);
  });
  try {
    return await Promise.race([verifyVolume({ medium: c.medium, host: HOST, volume: c.volume, depth, at, logger: log }), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `fn` with `file` replaced by `damaged` (and, when `fixSidecar` names a
 * sidecar, that sidecar's archiveXxh64/archiveBytes made to match, so only
 * the deeper checks can notice); puts the original bytes back afterwards.
 */
export async function withDamagedFile<T>(file: string, damaged: Buffer, fixSidecar: string | undefined, fn: () => Promise<T>): Promise<T> {
  const original = fs.readFileSync(file);
  const sidecarText = fixSidecar ? fs.readFileSync(fixSidecar, 'utf8') : undefined;
  try {
    fs.writeFileSync(file, damaged);
    if (fixSidecar) {
      const sc = JSON.parse(sidecarText!) as Sidecar;
      fs.writeFileSync(fixSidecar, JSON.stringify({ ...sc, archiveXxh64: xxh64(damaged), archiveBytes: damaged.length }));
    }
    return await fn();
  } finally {
    fs.writeFileSync(file, original);
    if (fixSidecar) fs.writeFileSync(fixSidecar, sidecarText!);
  }
}

/**
 * Rewrites b's manifest (version 2) after `edit` on its lines as JSON objects (index 0 the header, references
 * expanded; test/helpers/manifest-rewrite.ts), its frames, index and trailer right and the sidecar's
 * manifestXxh64 fixed, as an attacker with write access would; returns a function that puts both back.
 */
export function editManifest(c: Chain, b: Sidecar, edit: (objs: Json[]) => Json[] | void): () => void {
  const undo: Array<() => void> = [];
  const rewrite = (s: Sidecar, bytesOf: (file: string) => Buffer): void => {
    const file = manifestPath(c, s);
    const scFile = sidecarPath(c, s);
    const original = fs.readFileSync(file);
    const scText = fs.readFileSync(scFile, 'utf8');
    const bytes = bytesOf(file);
    fs.writeFileSync(file, bytes);
    fs.writeFileSync(scFile, JSON.stringify({ ...JSON.parse(scText), manifestXxh64: manifestXxh64Of(bytes) }));
    undo.push(() => {
      fs.writeFileSync(file, original);
      fs.writeFileSync(scFile, scText);
    });
  };
  // The later manifests that refer into b's first hold those lines themselves, as an attacker editing b would
  // also have to do: b's frames move when its lines change.
  for (const later of c.backups.filter((s) => s.chain === b.chain && s.id > b.id)) rewrite(later, (file) => rewriteManifest(file, () => undefined, { expand: b.id }));
  rewrite(b, (file) => rewriteManifest(file, edit));
  return () => {
    for (const u of undo.reverse()) u();
  };
}

/** A copy of `data` with one bit flipped. */
export function flipBit(data: Buffer, offset: number, bit = offset % 8): Buffer {
  const out = Buffer.from(data);
  out[offset]! ^= 1 << bit;
  return out;
}

/** `n` offsets spread evenly over [0, size), plus the first and last bytes. */
export function spreadOffsets(size: number, n: number): number[] {
  const set = new Set<number>([0, 1, size - 1, size - 2].filter((o) => o >= 0 && o < size));
  for (let i = 0; i < n; i++) set.add(Math.floor(((i + 0.5) * size) / n));
  return [...set].sort((a, b) => a - b);
}

/** The whole tar stream of an archive, decompressed with the stock tools. */
export function decompressWithStockTools(file: string, compression: Compression): Buffer {
  if (compression === 'none') return fs.readFileSync(file);
  return execFileSync(compression === 'zstd' ? 'zstd' : 'gzip', ['-d', '-c', '-q', file], { maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
}

/** A one-line account of a verification for assertion messages. */
export function showResult(r: VolumeVerification): string {
  return r.lines.join('\n');
}

/**
 * Everything a reader gets from a tar stream (every member's fields,
 * xattrs, ACLs, sparse map and a hash of its data), as text, to tell a
 * harmless byte change (e.g. in padding) from one a restore would see.
 */
export async function tarMeaning(tar: Buffer): Promise<string> {
  const out: string[] = [];
  let h: StreamingHash | undefined;
  const show = (v: unknown): string =>
    JSON.stringify(v, (_k, x: unknown) =>
      typeof x === 'bigint' ? x.toString() : x instanceof Map ? [...x] : x && typeof x === 'object' && 'type' in x && (x as { type: unknown }).type === 'Buffer' ? Buffer.from((x as unknown as { data: number[] }).data).toString('hex') : x,
    );
  try {
    for await (const ev of readTar((async function* () { yield tar; })())) {
      if (ev.kind === 'entry') {
        out.push(show({ ...ev.entry, offset: ev.info.offset }));
        h = createXxh64();
      } else if (ev.kind === 'data') {
        h!.update(Buffer.from(String(ev.fileOffset)));
        h!.update(ev.chunk);
      } else out.push(`data ${h!.digest()}`);
    }
  } catch (e) {
    out.push(`error ${(e as Error).message}`);
  }
  return out.join('\n');
}
