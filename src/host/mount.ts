/**
 * Read-only mounts of snapshots (and of partitions inside them), confirmed.
 *
 * `mountReadOnly` mounts, then checks /proc/self/mountinfo that the
 * mountpoint now really is a mount of that device: the old tool ignored a
 * failed mount and archived the empty directory, which also reset its
 * incremental state. It returns a handle whose `release()` unmounts (retry,
 * then a reported lazy detach) and removes the directories it created;
 * `isStillMounted()` is the after-archive check, because dmeventd unmounts an
 * overflowed snapshot behind our back and leaves an empty directory.
 *
 * Options: `ro` is forced; xfs gets `nouuid` (a snapshot carries its
 * origin's UUID). The journal-skipping options (`noload` for ext3/4,
 * `norecovery` for xfs, `rescue=nologreplay` for btrfs) can show stale data, so they are only a fallback,
 * tried when the plain read-only mount fails, and reported as a warning.
 * ufs, NTFS and btrfs need more around the mount (guest-fs.ts): a required
 * ufstype=, ntfs-3g for `ntfs` and warnings for a dirty or hibernated
 * Windows volume, and a btrfs snapshot's own fsid (written to the snapshot,
 * as ext4's journal replay is) before it can be mounted beside its origin.
 */
import { mkdir, rmdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { run, CommandError } from './exec.js';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import { canonicalPath, describeMount, readMountinfo, topMountAt, type MountEntry } from './mountinfo.js';
import { inspectDevice, mountIsOfDevice, type DeviceInfo } from './device.js';
import { unmount, type UnmountResult } from './unmount.js';
import { guestFsMatchesBlkid, guestFsOptionProblem, inspectMountedGuestFs, mountTypeFor, prepareGuestFs, type GuestFsPreparation } from './guest-fs.js';

export class MountError extends Error {
  constructor(readonly device: string, readonly mountpoint: string, reason: string) {
    super(`cannot mount ${device} on ${mountpoint}: ${reason}`);
    this.name = 'MountError';
  }
}

/** One way to try mounting: the options, and why they are a fallback (undefined for the first choice). */
export interface MountAttempt {
  options: string[];
  fallbackReason?: string;
}

const EXT_JOURNALED = new Set(['ext3', 'ext4']);
const EXT_FAMILY = new Set(['ext2', 'ext3', 'ext4']);
const JOURNAL_SKIPPING = new Set(['noload', 'norecovery', 'nologreplay', 'rescue=nologreplay']);

export function splitOptions(options: string | readonly string[]): string[] {
  const list = typeof options === 'string' ? options.split(',') : [...options];
  return list.map((o) => o.trim()).filter((o) => o !== '');
}

/**
 * The options to try, in order, for a read-only mount of `fsType` with the
 * volume's own options. Pure: tested directly.
 */
export function mountOptionLadder(fsType: string, options: string | readonly string[]): MountAttempt[] {
  const own = splitOptions(options).filter((o) => o !== 'ro' && o !== 'rw' && !JOURNAL_SKIPPING.has(o));
  const first = ['ro', ...own];
  if (fsType === 'xfs') {
    if (!first.includes('nouuid')) first.splice(1, 0, 'nouuid');
    return [
      { options: first },
      { options: [...first, 'norecovery'], fallbackReason: 'norecovery skips the xfs log and can show stale data' },
    ];
  }
  if (fsType === 'btrfs') {
    // the log tree holds what was fsynced since the last commit (guest-fs.ts gets it replayed)
    return [
      { options: first },
      { options: [...first, 'rescue=nologreplay'], fallbackReason: 'rescue=nologreplay skips the btrfs log tree (data fsynced since the last commit) and can show stale data' },
    ];
  }
  if (EXT_JOURNALED.has(fsType)) {
    return [
      { options: first },
      { options: [...first, 'noload'], fallbackReason: 'noload skips the journal and can show stale data' },
    ];
  }
  return [{ options: first }];
}

export function mountArgs(device: string, mountpoint: string, fsType: string, options: readonly string[]): string[] {
  const typeArgs = fsType === '' || fsType === 'auto' ? [] : ['-t', mountTypeFor(fsType)];
  return [...typeArgs, '-o', options.join(','), device, mountpoint];
}

/**
 * The filesystem type blkid finds on `device`, or undefined when it can't
 * tell (no signature, ambiguous, blkid missing).
 */
export async function probeFsType(device: string, logger?: Logger): Promise<string | undefined> {
  try {
    const r = await run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', device], { allowFailure: true, logger, quiet: true, timeoutMs: 60_000 });
    const type = r.stdout.trim();
    return r.exitCode === 0 && type !== '' ? type : undefined;
  } catch (e) {
    if (e instanceof CommandError) return undefined;
    throw e;
  }
}

/** Whether a kernel driver for `wanted` mounts a filesystem blkid calls `found`. */
function typesCompatible(wanted: string, found: string): boolean {
  if (wanted === '' || wanted === 'auto' || wanted === found) return true;
  const guest = guestFsMatchesBlkid(wanted, found);
  if (guest !== undefined) return guest;
  // the ext4 driver mounts ext2 and ext3; blkid may say "jbd" for an external journal, let mount decide
  if (EXT_FAMILY.has(wanted) && (EXT_FAMILY.has(found) || found === 'jbd')) return wanted === 'ext4' || found !== 'ext4';
  return false;
}

export interface MountHandle {
  device: string;
  /** Canonical path of the mountpoint. */
  mountpoint: string;
  fsType: string;
  /** The options the successful mount used. */
  options: string[];
  /** Set when a journal-skipping fallback was needed: the data may be stale. */
  fallbackReason?: string;
  /** The mount as mountinfo showed it right after mounting. */
  entry: MountEntry;
  /** For the volume's report: what the filesystem's state means for this backup (a dirty or hibernated NTFS). */
  warnings: string[];
  /** Unmounts (if still mounted) and removes the directories this mount created. Safe to call twice. */
  release(): Promise<UnmountResult>;
}

export interface MountReadOnlyOptions {
  timeoutMs?: number;
  /** Passed to unmount on release (tests shorten the busy-retry delay). */
  unmountRetryDelayMs?: number;
}

async function createDirs(path: string): Promise<string | undefined> {
  return mkdir(path, { recursive: true, mode: 0o700 });
}

/**
 * Removes `path` and its parents up to `firstCreated` (what mkdir -p made),
 * only while empty. Both are the same non-canonical absolute spelling, so a
 * symlinked parent can't make the walk climb past what we created.
 */
async function removeCreatedDirs(path: string, firstCreated: string | undefined): Promise<void> {
  if (firstCreated === undefined) return;
  let dir = path;
  for (;;) {
    try {
      await rmdir(dir);
    } catch {
      return; // not empty or already gone: leave it
    }
    if (dir === firstCreated || dir === '/') return;
    dir = resolve(dir, '..');
  }
}

/**
 * Mounts `device` read-only on `mountpoint` (created if missing) and
 * confirms it; see the module comment. Throws MountError, leaving the
 * mountpoint unmounted and removing what it created.
 */
export async function mountReadOnly(
  device: string,
  mountpoint: string,
  fsType: string,
  options: string | readonly string[],
  logger: Logger = silentLogger,
  opts: MountReadOnlyOptions = {},
): Promise<MountHandle> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const dev = await inspectDevice(device);
  if (dev.kind === 'missing') throw new MountError(device, mountpoint, `${device} does not exist`);
  if (dev.kind !== 'block') throw new MountError(device, mountpoint, `${device} is not a block device`);

  const already = await canonicalPath(mountpoint);
  if (already !== undefined) {
    const top = topMountAt(await readMountinfo(), already);
    // refusing here keeps the after-mount confirmation meaningful: it must see OUR mount
    if (top) throw new MountError(device, mountpoint, `${already} is already a mountpoint (${describeMount(top)})`);
  }
  const absolute = resolve(mountpoint);
  const firstCreated = await createDirs(absolute);
  const canonical = (await canonicalPath(absolute))!;

  let prepared: GuestFsPreparation | undefined;
  const cleanupDirs = () => removeCreatedDirs(absolute, firstCreated);
  try {
    const found = await probeFsType(device, logger);
    if (found !== undefined && !typesCompatible(fsType, found)) {
      throw new MountError(device, canonical, `${device} holds a filesystem of type ${found} (blkid), not ${fsType}`);
    }
    const optionProblem = guestFsOptionProblem(fsType, splitOptions(options));
    if (optionProblem !== undefined) throw new MountError(device, canonical, optionProblem);
    try {
      prepared = await prepareGuestFs(device, fsType, logger);
    } catch (e) {
      throw new MountError(device, canonical, (e as Error).message);
    }
    const ladder = mountOptionLadder(fsType, options);
    const requested = splitOptions(options).filter((o) => JOURNAL_SKIPPING.has(o));
    if (requested.length) {
      logger.info(`${device}: trying without ${requested.join(',')} first: skipping the journal can show stale data`);
    }
    const failures: string[] = [];
    for (const attempt of ladder) {
      if (attempt.fallbackReason) {
        logger.info(`mount of ${device} with ${ladder[0]!.options.join(',')} failed; retrying with ${attempt.options.join(',')}`);
      }
      try {
        await run('mount', mountArgs(device, canonical, fsType, attempt.options), { logger, timeoutMs });
      } catch (e) {
        if (!(e instanceof CommandError)) throw e;
        failures.push(`-o ${attempt.options.join(',')}: ${e.reason}`);
        continue;
      }
      const entry = await confirmMount(device, dev, canonical, logger);
      if (attempt.fallbackReason) {
        logger.warn(`mounted ${device} on ${canonical} only with ${attempt.options.join(',')}: ${attempt.fallbackReason}`);
      }
      const warnings = [...prepared.warnings, ...(await inspectMountedGuestFs(fsType, canonical))];
      const release = prepared.release;
      return makeHandle(device, canonical, fsType, attempt, entry, warnings, logger, async () => { await release(); await cleanupDirs(); }, opts);
    }
    const hint = found === undefined ? ' (blkid recognises no filesystem on it)' : '';
    throw new MountError(device, canonical, `mount -t ${fsType || 'auto'} failed${hint}: ${failures.join('; ')}`);
  } catch (e) {
    await prepared?.release();
    await cleanupDirs();
    throw e;
  }
}

/** After `mount` said yes: is the mountpoint now a read-only mount of that device? If not, undo and throw. */
async function confirmMount(device: string, dev: DeviceInfo, canonical: string, logger: Logger): Promise<MountEntry> {
  const entry = topMountAt(await readMountinfo(), canonical);
  if (entry === undefined) {
    throw new MountError(device, canonical, 'mount reported success but mountinfo shows nothing mounted there');
  }
  const match = await mountIsOfDevice(entry, dev);
  const problem = !match.ok ? match.reason : !entry.mountOptions.includes('ro') ? `mounted read-write (${entry.mountOptions.join(',')})` : undefined;
  if (problem !== undefined) {
    await unmount(canonical, { logger, expect: entry, retryDelayMs: 200 });
    throw new MountError(device, canonical, `not confirmed: ${problem}`);
  }
  return entry;
}

function makeHandle(
  device: string,
  canonical: string,
  fsType: string,
  attempt: MountAttempt,
  entry: MountEntry,
  warnings: string[],
  logger: Logger,
  cleanupDirs: () => Promise<void>,
  opts: MountReadOnlyOptions,
): MountHandle {
  let released: Promise<UnmountResult> | undefined;
  return {
    device,
    mountpoint: canonical,
    fsType,
    options: attempt.options,
    fallbackReason: attempt.fallbackReason,
    entry,
    warnings,
    release() {
      released ??= (async () => {
        const result = await unmount(canonical, { logger, expect: entry, retryDelayMs: opts.unmountRetryDelayMs });
        if (!result.lazy) await cleanupDirs();
        return result;
      })().catch((e: unknown) => {
        released = undefined; // let the caller (or the sweep) try again
        throw e;
      });
      return released;
    },
  };
}

/**
 * The after-archive check: is the handle's mount still the one visible at
 * its mountpoint? False after dmeventd dropped an overflowed snapshot.
 */
export async function isStillMounted(handle: Pick<MountHandle, 'mountpoint' | 'entry'>): Promise<boolean> {
  const top = topMountAt(await readMountinfo(), handle.mountpoint);
  return top !== undefined && top.mountId === handle.entry.mountId && top.major === handle.entry.major && top.minor === handle.entry.minor;
}
