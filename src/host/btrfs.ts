/**
 * btrfs snapshots get their own filesystem id before they are mounted.
 *
 * An LVM snapshot of a btrfs volume is a block-for-block copy: same fsid,
 * same device id. The kernel keys btrfs filesystems by fsid, and kernels
 * before 6.7 (Debian bookworm's 6.1 among them) cannot hold two devices with
 * one fsid apart: on 6.1 the snapshot's mount fails beside a mounted origin
 * ("BTRFS warning: duplicate device", measured in the VM suite), and the
 * kernel's device list may point the fsid at whichever copy it scanned last.
 * `btrfstune -m` gives the snapshot a new random fsid in its superblocks only
 * (the metadata_uuid feature keeps the old id in the tree blocks, so nothing
 * else is rewritten): it takes milliseconds and touches only the snapshot,
 * which is writable copy-on-write space we throw away afterwards. The origin
 * is never opened. When the snapshot holds a log tree (what the guest
 * fsync()ed since btrfs's last commit), the same change is written to the
 * superblocks directly instead (btrfs-super.ts), so that the mount can still
 * replay the log.
 *
 * Only single-device btrfs volumes can be backed up this way (one LV = one
 * filesystem), as for every other fstype.
 */
import { run, CommandError } from './exec.js';
import { canRewriteSuper, readPrimarySuper, writeOwnFsid } from './btrfs-super.js';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';

export class BtrfsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BtrfsError';
  }
}

/** The btrfs fsid blkid reads from `device`'s superblock (what the kernel keys the filesystem by). */
export async function btrfsFsid(device: string, logger: Logger = silentLogger): Promise<string | undefined> {
  const r = await run('blkid', ['-p', '-o', 'value', '-s', 'UUID', device], { allowFailure: true, logger, quiet: true, timeoutMs: 60_000 });
  const uuid = r.stdout.trim();
  return r.exitCode === 0 && uuid !== '' ? uuid : undefined;
}

/**
 * Gives the unmounted btrfs on `device` (a snapshot: it is written to) a new
 * random fsid, with `btrfstune -m`, or in the superblocks only when there is
 * a log tree to keep replayable, and checks that the superblock now says so.
 * Returns the old and new fsid. Throws BtrfsError naming the device.
 */
export async function giveOwnFsid(device: string, logger: Logger = silentLogger): Promise<{ before: string; after: string }> {
  const before = await btrfsFsid(device, logger);
  if (before === undefined) throw new BtrfsError(`${device}: blkid finds no btrfs fsid on it`);
  let primary;
  try {
    primary = await readPrimarySuper(device);
  } catch (e) {
    throw new BtrfsError(`${device}: cannot read the btrfs superblock: ${(e as Error).message}`);
  }
  // A log tree (data fsynced since the last commit) must stay replayable: btrfs-super.ts says why
  // btrfstune cannot be used then.
  const keepLog = primary.logRoot !== 0n && canRewriteSuper(primary.csumType);
  const how = keepLog ? 'superblock only, keeping the log tree for the mount to replay' : 'btrfstune -m';
  if (primary.logRoot !== 0n && !keepLog) {
    logger.warn(
      `${device}: the snapshot holds a btrfs log tree (data fsynced since the last commit) and checksum type ${primary.csumType}, ` +
        'which xenbackup cannot rewrite: after btrfstune -m the log cannot be replayed, so the mount falls back to rescue=nologreplay',
    );
  }
  if (keepLog) {
    try {
      await writeOwnFsid(device);
    } catch (e) {
      throw new BtrfsError(`${device}: cannot give the snapshot its own fsid: ${(e as Error).message}`);
    }
  } else {
    try {
      await run('btrfstune', ['-m', device], { logger, timeoutMs: 120_000 });
    } catch (e) {
      if (e instanceof CommandError) throw new BtrfsError(`${device}: cannot give the snapshot its own fsid: ${e.message}`);
      throw e;
    }
  }
  const after = await btrfsFsid(device, logger);
  if (after === undefined || after === before) {
    throw new BtrfsError(`${device}: ${how} succeeded but the fsid is still ${before}`);
  }
  logger.info(`${device}: btrfs snapshot fsid ${before} -> ${after} (${how}; the origin keeps ${before})`);
  return { before, after };
}

/**
 * Drops the kernel's registration of `device` (made by udev's scan or by our
 * mount), so no stale entry for a removed snapshot stays in btrfs' device
 * list. Best effort: the snapshot is about to be removed anyway.
 */
export async function forgetBtrfsDevice(device: string, logger: Logger = silentLogger): Promise<void> {
  try {
    await run('btrfs', ['device', 'scan', '--forget', device], { allowFailure: true, logger, quiet: true, timeoutMs: 60_000 });
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    logger.debug(`btrfs device scan --forget ${device}: ${e.message}`);
  }
}
