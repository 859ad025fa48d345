/**
 * One xenbackup run at a time (`/run/xenbackup.lock`).
 *
 * Why this design: Node has no flock(2), and a plain pidfile has a classic
 * race when a lock is stale: two newcomers both see the dead holder, both
 * delete the file, and the second deletes the first one's fresh lock. So the
 * lock is a directory of numbered *generations* that are never reused:
 *
 *   - `gen-N` holds its holder's identity (pid, the process start time from
 *     /proc/PID/stat, the boot id). It is written to a temporary file and
 *     hard-linked into place, so it appears atomically and complete, and
 *     link(2) fails if it exists: exactly one process can create `gen-N`.
 *   - The lock belongs to the holder of the highest generation unless that
 *     one is marked `gen-N.released` or its holder is dead (no such pid, a
 *     zombie, a different start time = a reused pid, or an earlier boot).
 *   - To take a free or stale lock, create `gen-(N+1)`. Two racers for the
 *     same stale lock compete for the same name; one wins. A racer that
 *     looked long ago and creates a number that was already cleaned up sees
 *     a higher generation afterwards and withdraws. The winner deletes the
 *     older generations; the highest number never goes down.
 *
 * A dead holder's lock is taken over with a warning naming it (the earlier
 * run crashed or was killed: its snapshots and mounts are for the sweep).
 */
import { link, mkdir, readdir, readFile, unlink, open, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';

export const DEFAULT_LOCK_PATH = '/run/xenbackup.lock';

export interface LockHolder {
  pid: number;
  /** Field 22 of /proc/PID/stat: with the pid, identifies the process across pid reuse. */
  startTime: string;
  bootId: string;
  host: string;
  acquiredAt: string;
}

export class LockHeldError extends Error {
  constructor(readonly path: string, readonly holder: LockHolder, waitedSeconds?: number) {
    super(
      `another xenbackup run holds the lock ${path}: pid ${holder.pid} since ${holder.acquiredAt}` +
        (waitedSeconds !== undefined ? ` (waited ${waitedSeconds} s)` : ''),
    );
    this.name = 'LockHeldError';
  }
}

export class LockError extends Error {
  constructor(readonly path: string, reason: string) {
    super(`lock ${path}: ${reason}`);
    this.name = 'LockError';
  }
}

export interface LockHandle {
  path: string;
  generation: number;
  holder: LockHolder;
  /** Gives the lock up. Safe to call twice. */
  release(): Promise<void>;
}

export interface AcquireLockOptions {
  /** Wait up to this long for a live holder to finish; 0 (default) fails at once. */
  waitSeconds?: number;
  /** How often to look again while waiting. Default 500 ms. */
  pollMs?: number;
  logger?: Logger;
  /** Stops the wait (SIGTERM to a run waiting with --lock-wait): fails with LockHeldError at once. */
  signal?: AbortSignal;
}

const GEN = /^gen-(\d{12})$/;
const genName = (n: number) => `gen-${String(n).padStart(12, '0')}`;
const releasedName = (n: number) => `${genName(n)}.released`;

/** Start time (field 22) and state (field 3) of a process, or undefined when there is none. */
async function procStat(pid: number): Promise<{ startTime: string; state: string } | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // the command name (field 2) is in parentheses and may contain spaces or parentheses itself
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0] ?? '', startTime: rest[19] ?? '' };
}

let bootIdCache: string | undefined;
async function bootId(): Promise<string> {
  bootIdCache ??= (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
  return bootIdCache;
}

export async function currentHolder(): Promise<LockHolder> {
  const me = await procStat(process.pid);
  return { pid: process.pid, startTime: me?.startTime ?? '', bootId: await bootId(), host: hostname(), acquiredAt: new Date().toISOString() };
}

/** Whether the process that wrote `holder` is still running. */
export async function holderAlive(holder: LockHolder): Promise<boolean> {
  if (holder.bootId !== (await bootId())) return false;
  const st = await procStat(holder.pid);
  if (st === undefined || st.state === 'Z' || st.state === 'X') return false;
  return st.startTime === holder.startTime;
}

export function parseHolder(text: string): LockHolder | undefined {
  try {
    const h = JSON.parse(text) as Partial<LockHolder>;
    if (typeof h.pid === 'number' && typeof h.startTime === 'string' && typeof h.bootId === 'string') {
      return { pid: h.pid, startTime: h.startTime, bootId: h.bootId, host: String(h.host ?? ''), acquiredAt: String(h.acquiredAt ?? '?') };
    }
  } catch {
    // fall through
  }
  return undefined;
}

type State =
  | { kind: 'free'; top: number; stale?: string }
  | { kind: 'held'; top: number; holder: LockHolder }
  | { kind: 'changed' };

/** Looks at the lock directory: who, if anyone, holds the lock now. */
async function inspect(dir: string): Promise<State> {
  const names = await readdir(dir);
  const top = Math.max(0, ...names.map((n) => GEN.exec(n)).filter((m) => m !== null).map((m) => Number(m[1])));
  if (top === 0 || names.includes(releasedName(top))) return { kind: 'free', top };
  let text: string;
  try {
    text = await readFile(join(dir, genName(top)), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'changed' };
    throw e;
  }
  const holder = parseHolder(text);
  // files appear complete (written, then linked), so an unreadable one is damage, not a write in progress
  if (holder === undefined) return { kind: 'free', top, stale: `${genName(top)} is unreadable` };
  if (await holderAlive(holder)) return { kind: 'held', top, holder };
  return { kind: 'free', top, stale: `pid ${holder.pid} (since ${holder.acquiredAt}) is no longer running` };
}

async function highestGeneration(dir: string): Promise<number> {
  const names = await readdir(dir);
  return Math.max(0, ...names.map((n) => GEN.exec(n)).filter((m) => m !== null).map((m) => Number(m[1])));
}

/** Creates `gen-N` atomically with `holder` in it; false when it already exists. */
async function claim(dir: string, n: number, holder: LockHolder): Promise<boolean> {
  // crypto loaded here, not at the top: it is a dozen modules every command's start would load.
  const { randomBytes } = await import('node:crypto');
  const tmp = join(dir, `tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(`${JSON.stringify(holder)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, join(dir, genName(n)));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Removes generations below ours and temporary files of processes that are gone. */
async function tidy(dir: string, mine: number): Promise<void> {
  for (const name of await readdir(dir)) {
    const g = /^gen-(\d{12})(\.released)?$/.exec(name);
    const t = /^tmp-(\d+)-/.exec(name);
    const old = g !== null && Number(g[1]) < mine;
    const orphan = t !== null && Number(t[1]) !== process.pid && (await procStat(Number(t[1]))) === undefined;
    if (old || orphan) await unlink(join(dir, name)).catch(() => undefined);
  }
}

/** One attempt: the handle, or the live holder that has it. */
async function tryAcquire(dir: string, log: Logger): Promise<LockHandle | LockHolder> {
  for (let round = 0; round < 1000; round++) {
    const state = await inspect(dir);
    if (state.kind === 'changed') continue;
    if (state.kind === 'held') return state.holder;
    const mine = state.top + 1;
    const holder = await currentHolder();
    if (!(await claim(dir, mine, holder))) continue; // someone else took mine: look again
    if ((await highestGeneration(dir)) > mine) {
      // we acted on an old view and reused a number below the current one: withdraw
      await unlink(join(dir, genName(mine))).catch(() => undefined);
      continue;
    }
    await tidy(dir, mine);
    if (state.stale !== undefined) log.warn(`took over the stale lock ${dir}: ${state.stale}; the earlier run did not finish cleanly`);
    return makeHandle(dir, mine, holder);
  }
  throw new LockError(dir, 'kept changing under us for 1000 rounds');
}

function makeHandle(dir: string, generation: number, holder: LockHolder): LockHandle {
  let released: Promise<void> | undefined;
  return {
    path: dir,
    generation,
    holder,
    release() {
      released ??= writeFile(join(dir, releasedName(generation)), '', { flag: 'wx', mode: 0o600 }).catch((e: NodeJS.ErrnoException) => {
        // EEXIST: released already; ENOENT: the whole lock directory was removed, nothing left to give up
        if (e.code !== 'EEXIST' && e.code !== 'ENOENT') {
          released = undefined;
          throw e;
        }
      });
      return released;
    },
  };
}

/**
 * Takes the lock at `path` (a directory; created 0700 if missing). Fails at
 * once with LockHeldError naming the live holder, or waits up to
 * `waitSeconds` for it. A dead holder's lock is taken over with a warning.
 */
export async function acquireLock(path: string = DEFAULT_LOCK_PATH, opts: AcquireLockOptions = {}): Promise<LockHandle> {
  const log = opts.logger ?? silentLogger;
  const waitMs = Math.max(0, (opts.waitSeconds ?? 0) * 1000);
  const pollMs = opts.pollMs ?? 500;
  try {
    await mkdir(path, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new LockError(path, `cannot create the lock directory: ${(e as Error).message}`);
  }
  const started = Date.now();
  let announced = false;
  for (;;) {
    const got = await tryAcquire(path, log);
    if ('release' in got) return got;
    const waited = Date.now() - started;
    if (waited >= waitMs || opts.signal?.aborted) throw new LockHeldError(path, got, waitMs > 0 ? Math.round(waited / 100) / 10 : undefined);
    if (!announced) {
      log.info(`lock ${path} held by pid ${got.pid}; waiting up to ${opts.waitSeconds} s`);
      announced = true;
    }
    await new Promise<void>((r) => {
      const timer = setTimeout(done, Math.min(pollMs, waitMs - waited));
      function done(): void {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', done);
        r();
      }
      opts.signal?.addEventListener('abort', done, { once: true });
    });
  }
}

/** Who holds the lock at `path` now (for status output), or undefined when it is free. */
export async function lockHolder(path: string = DEFAULT_LOCK_PATH): Promise<LockHolder | undefined> {
  try {
    for (;;) {
      const s = await inspect(path);
      if (s.kind === 'changed') continue;
      return s.kind === 'held' ? s.holder : undefined;
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}
