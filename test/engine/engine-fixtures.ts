/**
 * Shared parts of the engine tests (issue 2): running the real CLI
 * (`bin/xenbackup`, as root or as an unprivileged user through setpriv),
 * backing up through the engine API with a clock that moves a minute per
 * backup (so a chain of backups needs no real waiting), reading sidecars
 * back, and restoring a chain with stock GNU tar (`-x -G`) as a user
 * would without xenbackup.
 *
 * Test-only code: commands run through execFileSync/spawn directly, not
 * through src/host/exec.ts, so the set-up does not depend on the code under
 * test.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareBackup, type BackupRequest, type PreparedBackup } from '../../src/engines/tar/tar-backup.js';
import type { Compression } from '../../src/engines/compression.js';
import { parseSidecar, type Sidecar, type TarSidecar } from '../../src/medium/sidecar.js';
import { consistentChains, VolumeStore } from '../../src/repo/volume-store.js';
import { LocalStorage } from '../../src/storage/local-storage.js';
import { createLogger, MemorySink, type Logger } from '../../src/util/log.js';

/** The repository root (this file runs from dist/test/engine/). */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const CLI = path.join(REPO, 'bin/xenbackup');
/** Every test names its host folder, so nothing depends on the machine's hostname. */
export const HOST = 'test-host';
/** nobody:nogroup, for the runs that must not have root's powers. */
export const NOBODY = 65534;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Run as this uid/gid (setpriv, no supplementary groups) instead of root. */
  asUser?: number;
  timeoutMs?: number;
}

function cliCommand(args: string[], opts: CliOptions): [string, string[]] {
  const node = [process.execPath, CLI, ...args];
  if (opts.asUser === undefined) return [node[0]!, node.slice(1)];
  return ['setpriv', [`--reuid=${opts.asUser}`, `--regid=${opts.asUser}`, '--clear-groups', ...node]];
}

/** Runs `xenbackup ARGS` to completion. */
export function xenbackup(args: string[], opts: CliOptions = {}): CliResult {
  const [file, argv] = cliCommand(args, opts);
  const r = spawnSync(file, argv, {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 120_000,
    maxBuffer: 64 << 20,
    env: { ...process.env, LC_ALL: 'C.UTF-8' },
  });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Starts `xenbackup ARGS` without waiting (for the kill -9 test). */
export function xenbackupSpawn(args: string[], opts: CliOptions = {}): ChildProcess {
  const [file, argv] = cliCommand(args, opts);
  return spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C.UTF-8' } });
}

/** A compact account of a CLI run for assertion messages. */
export function show(r: CliResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
}

/** The stderr lines that are errors (the one-line message a user sees). */
export function errorLines(r: CliResult): string[] {
  return r.stderr.split('\n').filter((l) => /^xenbackup: /.test(l));
}

/**
 * A failure as the issue wants it: a non-zero exit, exactly one
 * "xenbackup: ..." line matching `pattern`, no stack trace.
 */
export function assertOneLineError(r: CliResult, pattern: RegExp, code?: number): void {
  if (code === undefined) assert.notEqual(r.code, 0, show(r));
  else assert.equal(r.code, code, show(r));
  const lines = errorLines(r);
  assert.equal(lines.length, 1, `one error line expected:\n${show(r)}`);
  assert.match(lines[0]!, pattern, show(r));
  assert.doesNotMatch(r.stderr, /^\s+at .*\(?(file|node):/m, `a stack trace is not an error message:\n${show(r)}`);
}

/** `xenbackup backup` with the test host; extra options appended. */
export function cliBackup(source: string, medium: string, volume: string, extra: string[] = [], opts: CliOptions = {}): CliResult {
  return xenbackup(['backup', source, '--volume', volume, '--medium', medium, '--host', HOST, ...extra], opts);
}

/** `xenbackup restore` with the test host. */
export function cliRestore(volume: string, medium: string, to: string, extra: string[] = [], opts: CliOptions = {}): CliResult {
  return xenbackup(['restore', volume, '--medium', medium, '--host', HOST, '--to', to, ...extra], opts);
}

/**
 * A clock for engine-API backups: each call is one minute after the last,
 * starting `startAgoMinutes` before the real now, so backup ids are distinct
 * without waiting and still in the past (the chain-age rule sees real ages).
 */
export class StepClock {
  private t: number;
  constructor(startAgoMinutes = 24 * 60, private readonly stepMs = 60_000) {
    this.t = Date.now() - startAgoMinutes * 60_000;
  }
  readonly now = (): Date => {
    const d = new Date(this.t);
    this.t += this.stepMs;
    return d;
  };
  /** Moves the clock on without making a backup. */
  advance(ms: number): void {
    this.t += ms;
  }
}

export interface ApiBackupOptions extends Partial<Omit<BackupRequest, 'sourceDir' | 'medium' | 'volume'>> {
  clock?: StepClock;
}

export interface ApiBackupResult {
  sidecar: TarSidecar;
  prepared: PreparedBackup;
  log: MemorySink;
}

export function memoryLogger(): { log: Logger; sink: MemorySink } {
  const sink = new MemorySink();
  return { log: createLogger([sink.sink], 'debug'), sink };
}

/** One committed backup through the engine API (prepareBackup + commit). */
export async function apiBackup(source: string, medium: string, volume: string, opts: ApiBackupOptions = {}): Promise<ApiBackupResult> {
  const { log, sink } = memoryLogger();
  const { clock, ...rest } = opts;
  const prepared = await prepareBackup({
    sourceDir: source,
    medium,
    host: HOST,
    volume,
    compression: 'zstd' as Compression,
    forceFull: false,
    fullIntervalDays: 7,
    maxChainLength: 14,
    oneFileSystem: false,
    excludes: [],
    liveSource: false,
    logger: log,
    now: clock?.now,
    ...rest,
  });
  const sidecar = await prepared.commit();
  return { sidecar, prepared, log: sink };
}

/**
 * The committed backups of a volume, oldest first, read synchronously from
 * the folder's sidecars (VolumeStore.list is async now; this stays sync for
 * the tests that call it inline). Damaged sidecars are skipped, as list does.
 */
export function backupsOf(medium: string, volume: string): Sidecar[] {
  const dir = volumeDir(medium, volume);
  if (!fs.existsSync(dir)) return [];
  const out: Sidecar[] = [];
  for (const name of fs.readdirSync(dir).sort()) {
    if (!name.endsWith('.json')) continue;
    try {
      out.push(parseSidecar(fs.readFileSync(path.join(dir, name), 'utf8'), path.join(dir, name), name));
    } catch {
      // a damaged sidecar is not a backup, as VolumeStore.list has it
    }
  }
  out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return consistentChains(out, () => {});
}

/** The same through the code under test: VolumeStore.list over a LocalStorage. */
export function backupsOfAsync(medium: string, volume: string): Promise<Sidecar[]> {
  return volumeStore(medium, volume).list();
}

/** The VolumeStore of a volume in a local medium folder. */
export function volumeStore(medium: string, volume: string): VolumeStore {
  return new VolumeStore(new LocalStorage(medium), HOST, volume);
}

export function volumeDir(medium: string, volume: string): string {
  return volumeStore(medium, volume).dir;
}

/** The archive files of the chain that ends at `upTo` (full first), as absolute paths. */
export function chainArchives(medium: string, volume: string, upTo: Sidecar): string[] {
  const all = backupsOf(medium, volume);
  const byId = new Map(all.map((s) => [s.id, s]));
  const out: string[] = [];
  for (let cur: Sidecar | undefined = upTo; cur; cur = cur.base ? byId.get(cur.base) : undefined) {
    out.unshift(path.join(volumeDir(medium, volume), cur.archive));
    if (cur.kind === 'full') return out;
  }
  throw new Error(`chain of ${upTo.id} is incomplete`);
}

const GNU_DECOMPRESS: Record<Compression, string[]> = { zstd: ['--zstd'], gzip: ['-z'], none: [] };

/**
 * Restores a chain with stock GNU tar, as the README tells a user to: the
 * full, then each incremental in order, with `-x -G` (dumpdirs delete what
 * is gone), xattrs, ACLs and numeric owners.
 */
export function gnuTarRestoreChain(archives: string[], to: string): void {
  fs.mkdirSync(to, { recursive: true });
  for (const a of archives) {
    const compression: Compression = a.endsWith('.zst') ? 'zstd' : a.endsWith('.gz') ? 'gzip' : 'none';
    execFileSync(
      'tar',
      [...GNU_DECOMPRESS[compression], '-x', '-G', '--xattrs', '--xattrs-include=*', '--acls', '--numeric-owner', '-f', a, '-C', to],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C.UTF-8' }, maxBuffer: 64 << 20 },
    );
  }
}

/** The names in a directory, sorted (for "nothing else was written" checks). */
export function listing(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

/** Every entry below `dir` with its mode, size and (files) mtime, to prove a failed command changed nothing. */
export function fingerprint(dir: string): string {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = fs.lstatSync(p, { bigint: true });
      // A directory's mtime moves when a failed run adds and removes its .partial files: not harm.
      out.push(`${path.relative(dir, p)} ${st.mode.toString(8)} ${st.size}${st.isDirectory() ? '' : ` ${st.mtimeNs}`}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.join('\n');
}

/** Writes a file, creating its parent directories. */
export function put(root: string, rel: string, content: string | Buffer): void {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
}
