/**
 * Cleans up after a crashed or killed earlier run, before this run starts:
 * mounts under MNTSOURCEDIR (deepest first), loop devices attached to our
 * snapshots (partitioned guest disks), and snapshot LVs tagged
 * `xenbackup-snapshot`. Each step is independent: one leftover that can't
 * be removed is reported and the rest are still tried. The result lists what
 * was removed and what wasn't, for the mailed report.
 *
 * Only things that are ours by construction are touched: mounts strictly
 * below MNTSOURCEDIR (never MNTSOURCEDIR itself), and snapshots carrying our
 * tag (removeSnapshot refuses anything else).
 */
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import { canonicalPath, mountsUnder, readMountinfo } from './mountinfo.js';
import { unmount } from './unmount.js';
import { listLoops, detachLoop } from './loop.js';
import { listOurSnapshots, removeSnapshot } from './lvm.js';
import type { LogicalVolume } from './lvm-report.js';

export interface SweepOptions {
  /** MNTSOURCEDIR: where snapshots are mounted. */
  mntSourceDir: string;
  logger?: Logger;
  /** Look for tagged snapshot LVs (and loops on them). Default true; false where LVM isn't installed. */
  snapshots?: boolean;
  /** Pause between busy-unmount retries. */
  retryDelayMs?: number;
}

export interface SweepResult {
  unmounted: { mountpoint: string; source: string; fsType: string; lazy: boolean }[];
  detachedLoops: { device: string; backingFile: string }[];
  removedSnapshots: { ref: string; origin: string }[];
  /** One line per leftover that could not be removed. */
  errors: string[];
}

export function sweepFoundNothing(r: SweepResult): boolean {
  return r.unmounted.length + r.detachedLoops.length + r.removedSnapshots.length + r.errors.length === 0;
}

/** Report lines: what the sweep removed and what it couldn't. */
export function describeSweep(r: SweepResult): string[] {
  return [
    ...r.unmounted.map((m) => `unmounted leftover ${m.source} (${m.fsType}) from ${m.mountpoint}${m.lazy ? ' (lazily: it was busy)' : ''}`),
    ...r.detachedLoops.map((l) => `detached leftover loop device ${l.device} on ${l.backingFile}`),
    ...r.removedSnapshots.map((s) => `removed leftover snapshot ${s.ref} of ${s.origin}`),
    ...r.errors.map((e) => `could not clean up: ${e}`),
  ];
}

export async function sweepLeftovers(opts: SweepOptions): Promise<SweepResult> {
  const log = opts.logger ?? silentLogger;
  const result: SweepResult = { unmounted: [], detachedLoops: [], removedSnapshots: [], errors: [] };

  const base = await canonicalPath(opts.mntSourceDir);
  if (base !== undefined) {
    for (const m of mountsUnder(await readMountinfo(), base)) {
      try {
        const r = await unmount(m.mountPoint, { logger: log, expect: m, retryDelayMs: opts.retryDelayMs });
        if (r.unmounted) result.unmounted.push({ mountpoint: m.mountPoint, source: m.source, fsType: m.fsType, lazy: r.lazy });
      } catch (e) {
        result.errors.push((e as Error).message);
      }
    }
  }

  if (opts.snapshots !== false) {
    let snapshots: LogicalVolume[] = [];
    try {
      snapshots = await listOurSnapshots({ logger: log });
    } catch (e) {
      result.errors.push(`listing snapshots tagged as ours: ${(e as Error).message}`);
    }
    await detachLoopsOn(snapshots, result, log);
    for (const s of snapshots) {
      const ref = `${s.vg}/${s.name}`;
      try {
        if (await removeSnapshot(ref, { logger: log, retryDelayMs: opts.retryDelayMs })) {
          result.removedSnapshots.push({ ref, origin: `${s.vg}/${s.origin}` });
        }
      } catch (e) {
        result.errors.push((e as Error).message);
      }
    }
  }

  for (const line of describeSweep(result)) {
    if (line.startsWith('could not')) log.error(`sweep: ${line}`);
    else log.warn(`sweep: ${line}`);
  }
  return result;
}

async function detachLoopsOn(snapshots: LogicalVolume[], result: SweepResult, log: Logger): Promise<void> {
  if (snapshots.length === 0) return;
  // losetup records the canonical path (/dev/dm-N) of a block device; accept every spelling
  const names = new Set<string>();
  for (const s of snapshots) {
    names.add(s.path).add(s.dmPath);
    const real = await canonicalPath(s.path);
    if (real) names.add(real);
  }
  for (const loop of await listLoops()) {
    if (!names.has(loop.backingFile)) continue;
    try {
      await detachLoop(loop.device, log);
      result.detachedLoops.push(loop);
    } catch (e) {
      result.errors.push((e as Error).message);
    }
  }
}
