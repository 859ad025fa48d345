/**
 * Unmounting, shared by snapshot mounts, the backup medium and the sweep of
 * a crashed run's leftovers. A mount that stays busy (a shell sitting in it,
 * a slow reader) is retried a few times and then detached lazily, and the
 * lazy detach is reported: the filesystem stays alive until its last user
 * leaves, so a following lvremove may still find the snapshot in use.
 */
import { run, CommandError } from './exec.js';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import { canonicalPath, readMountinfo, topMountAt, type MountEntry } from './mountinfo.js';

export interface UnmountOptions {
  logger?: Logger;
  /** Plain `umount` attempts before giving up or going lazy. Default 4. */
  attempts?: number;
  /** Pause between attempts. Default 1000 ms. */
  retryDelayMs?: number;
  /** Fall back to `umount -l` when the mount stays busy. Default true. */
  lazyFallback?: boolean;
  /**
   * Unmount only while the visible mount at the place is this one (mount id
   * and device; the kernel reuses mount ids): never take down something
   * someone else mounted there meanwhile.
   */
  expect?: Pick<MountEntry, 'mountId' | 'major' | 'minor'>;
  timeoutMs?: number;
}

export interface UnmountResult {
  /** False when nothing (or not the expected mount) was mounted there. */
  unmounted: boolean;
  /** True when the mount was detached with `umount -l` and may linger until its users leave. */
  lazy: boolean;
}

export class UnmountError extends Error {
  constructor(readonly mountpoint: string, reason: string) {
    super(`cannot unmount ${mountpoint}: ${reason}`);
    this.name = 'UnmountError';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function currentMount(canonical: string): Promise<MountEntry | undefined> {
  return topMountAt(await readMountinfo(), canonical);
}

/** Unmounts the top mount at `mountpoint`, retrying while busy; see UnmountOptions. */
export async function unmount(mountpoint: string, opts: UnmountOptions = {}): Promise<UnmountResult> {
  const log = opts.logger ?? silentLogger;
  const attempts = opts.attempts ?? 4;
  const delay = opts.retryDelayMs ?? 1000;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const canonical = (await canonicalPath(mountpoint)) ?? mountpoint;
  const stillOurs = async (): Promise<boolean> => {
    const top = await currentMount(canonical);
    const want = opts.expect;
    return top !== undefined && (want === undefined || (top.mountId === want.mountId && top.major === want.major && top.minor === want.minor));
  };

  if (!(await stillOurs())) return { unmounted: false, lazy: false };
  let lastError = '';
  for (let i = 1; i <= attempts; i++) {
    try {
      await run('umount', [canonical], { logger: log, timeoutMs });
    } catch (e) {
      if (!(e instanceof CommandError)) throw e;
      lastError = e.message;
    }
    if (!(await stillOurs())) return { unmounted: true, lazy: false };
    if (i < attempts) {
      log.info(`${canonical} still mounted (${lastError || 'umount reported success'}); retrying in ${delay} ms (${i}/${attempts})`);
      await sleep(delay);
    }
  }
  if (opts.lazyFallback === false) throw new UnmountError(canonical, lastError || 'still mounted after umount');
  await run('umount', ['-l', canonical], { logger: log, timeoutMs });
  if (await stillOurs()) throw new UnmountError(canonical, `still mounted even after umount -l (${lastError})`);
  log.warn(`${canonical} was busy (${lastError}); detached lazily with umount -l: it stays in use until its last user leaves`);
  return { unmounted: true, lazy: true };
}
