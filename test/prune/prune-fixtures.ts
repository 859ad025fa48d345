/**
 * Shared parts of the prune tests (issue 5): backups through the real engine
 * at a chosen time (prepareBackup's injectable clock), a cheap record of what
 * a tree holds (path -> type, mode, content or link target, mtime) to compare
 * a restore with the day it stands for, restores into fresh directories, and
 * a look at what a volume's folder holds.
 *
 * Test-only code; commands, if any, run with execFileSync directly.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { prepareBackup, type BackupRequest } from '../../src/engines/tar/tar-backup.js';
import { restore } from '../../src/engines/restore.js';
import type { Sidecar } from '../../src/medium/sidecar.js';
import { timeOfId, VolumeStore } from '../../src/repo/volume-store.js';
import { silentLogger } from '../../src/util/log.js';
import { LocalStorage } from '../../src/storage/local-storage.js';

export const HOST = 'prune-host';
export const DAY_MS = 86_400_000;

/**
 * A scratch directory in memory (/dev/shm, a real tmpfs) when there is one:
 * the simulation makes hundreds of fsynced backups and restores, which on a
 * busy shared disk take minutes instead of seconds. Removed after the test.
 */
export function memoryScratchDir(t: { after(fn: () => unknown): void }, prefix: string): string {
  const parent = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const dir = fs.mkdtempSync(path.join(parent, `xenbackup-${prefix}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** One committed backup of `source` made "at" `at`. */
export async function backupAt(
  source: string,
  medium: string,
  volume: string,
  at: Date,
  opts: Partial<Omit<BackupRequest, 'sourceDir' | 'medium' | 'volume' | 'now'>> = {},
): Promise<Sidecar> {
  const prepared = await prepareBackup({
    sourceDir: source,
    medium,
    host: HOST,
    volume,
    compression: 'none',
    forceFull: false,
    fullIntervalDays: 7,
    maxChainLength: 14,
    oneFileSystem: false,
    excludes: [],
    liveSource: false,
    logger: silentLogger,
    now: () => at,
    ...opts,
  });
  return prepared.commit();
}

/** What a tree holds: relative path -> "dir 755", "file 644 <mtime> <content>", "link <target>". */
export type TreeRecord = Map<string, string>;

export function recordTree(root: string): TreeRecord {
  const out: TreeRecord = new Map();
  const walk = (dir: string): void => {
    for (const name of fs.readdirSync(dir).sort()) {
      const abs = path.join(dir, name);
      const rel = path.relative(root, abs);
      const st = fs.lstatSync(abs, { bigint: true });
      const mode = (st.mode & 0o7777n).toString(8);
      if (st.isDirectory()) {
        out.set(rel, `dir ${mode}`);
        walk(abs);
      } else if (st.isSymbolicLink()) {
        out.set(rel, `link ${fs.readlinkSync(abs)}`);
      } else {
        out.set(rel, `file ${mode} ${st.mtimeNs} ${fs.readFileSync(abs, 'utf8')}`);
      }
    }
  };
  walk(root);
  return out;
}

/** The differences between two records, for assertion messages (first few). */
export function recordDiff(want: TreeRecord, got: TreeRecord): string[] {
  const out: string[] = [];
  for (const [k, v] of want) if (got.get(k) !== v) out.push(`${k}: want ${JSON.stringify(v)}, got ${JSON.stringify(got.get(k))}`);
  for (const k of got.keys()) if (!want.has(k)) out.push(`${k}: not expected, got ${JSON.stringify(got.get(k))}`);
  return out.slice(0, 10);
}

/** Restores the whole volume as of backup `id` into a fresh directory below `scratch`, records it, removes it. */
export async function restoredRecord(medium: string, volume: string, id: string, scratch: string): Promise<TreeRecord> {
  const to = fs.mkdtempSync(path.join(scratch, 'restore-'));
  try {
    const r = await restore({ medium, host: HOST, volume, paths: [], targetDir: to, at: timeOfId(id), force: false, logger: silentLogger });
    if (r.backup.id !== id) throw new Error(`restore as of ${id} used backup ${r.backup.id}`);
    if (r.errors.length) throw new Error(`restore of ${id}: ${r.errors.join('; ')}`);
    return recordTree(to);
  } finally {
    fs.rmSync(to, { recursive: true, force: true });
  }
}

export function storeOf(medium: string, volume: string): VolumeStore {
  return new VolumeStore(new LocalStorage(medium), HOST, volume);
}

/** Names in a volume's folder, sorted. */
export function folderNames(medium: string, volume: string): string[] {
  const dir = storeOf(medium, volume).dir;
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

/** Bytes of every file in a volume's folder. */
export function folderBytes(medium: string, volume: string): number {
  const dir = storeOf(medium, volume).dir;
  return folderNames(medium, volume).reduce((n, name) => n + fs.statSync(path.join(dir, name)).size, 0);
}

/** A small deterministic PRNG (mulberry32), so the simulated days are the same on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Writes a file, creating its parent directories. */
export function put(root: string, rel: string, content: string): void {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
}
