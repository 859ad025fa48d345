/**
 * Windows volumes (NTFS): which driver mounts them, and the two states in
 * which Windows left a volume that a backup should warn about.
 *
 * Driver: fstype `ntfs` and `ntfs-3g` both mount through ntfs-3g (FUSE).
 * Debian bookworm's kernel has no NTFS driver at all (its 6.1 kernel package
 * ships neither ntfs.ko nor ntfs3.ko); ntfs-3g is in every Debian release,
 * reads every NTFS version, and mounts a dirty or hibernated volume
 * read-only without a word (checked with ntfs-3g 2022.10.3). Writing `ntfs3`
 * in the volume table gets the kernel's ntfs3 driver, read-only, on kernels
 * that have it.
 *
 * States, both backed up as they are on disk, with a warning:
 *   - dirty: the volume flag Windows sets while it runs and clears at a clean
 *     shutdown (also set by chkdsk scheduling and by ntfsfix); read with
 *     `ntfsinfo -f -m`, which opens the device read-only;
 *   - hibernated (hibernation or Windows 8+ "fast startup"): hiberfil.sys
 *     starts with "hibr"/"HIBR", the test ntfs-3g itself makes; the files
 *     on disk may lack what Windows still held in memory.
 * ntfs-3g's `remove_hiberfile` would delete hiberfil.sys, a write to a
 * volume we only read, so it is refused (see guest-fs.ts).
 */
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { run, CommandError } from './exec.js';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';

/** The NTFS drivers by volume-table fstype: what `mount -t` gets. */
export function ntfsMountType(fsType: string): string | undefined {
  if (fsType === 'ntfs' || fsType === 'ntfs-3g') return 'ntfs-3g';
  if (fsType === 'ntfs3') return 'ntfs3';
  return undefined;
}

export const VOLUME_IS_DIRTY = 0x0001;

/** The `Volume Flags:` value of `ntfsinfo -m` output, or undefined when it has none. */
export function parseNtfsVolumeFlags(ntfsinfoOutput: string): number | undefined {
  const m = /^\s*Volume Flags:\s*0x([0-9a-fA-F]+)/m.exec(ntfsinfoOutput);
  return m ? parseInt(m[1]!, 16) : undefined;
}

/**
 * Whether the NTFS on `device` has its dirty flag set; undefined when
 * ntfsinfo cannot tell (missing, or a volume it cannot open).
 * `-f` makes ntfsinfo open a dirty volume at all; it opens it read-only.
 */
export async function ntfsIsDirty(device: string, logger: Logger = silentLogger): Promise<boolean | undefined> {
  try {
    const r = await run('ntfsinfo', ['-f', '-m', device], { allowFailure: true, logger, quiet: true, timeoutMs: 120_000 });
    const flags = r.exitCode === 0 ? parseNtfsVolumeFlags(r.stdout) : undefined;
    if (flags === undefined) {
      logger.debug(`ntfsinfo -f -m ${device}: exit ${r.exitCode}, no volume flags`);
      return undefined;
    }
    return (flags & VOLUME_IS_DIRTY) !== 0;
  } catch (e) {
    if (e instanceof CommandError) return undefined;
    throw e;
  }
}

/** Whether the first bytes of a hiberfil.sys say Windows hibernated (or fast-started) on this volume. */
export function isHibernationHeader(head: Buffer): boolean {
  return head.length >= 4 && head.subarray(0, 4).toString('latin1').toLowerCase() === 'hibr';
}

/** Whether the NTFS mounted at `mountpoint` holds an active hibernation file. */
export async function ntfsIsHibernated(mountpoint: string): Promise<boolean> {
  let names: string[];
  try {
    names = await readdir(mountpoint);
  } catch {
    return false;
  }
  const name = names.find((n) => n.toLowerCase() === 'hiberfil.sys');
  if (name === undefined) return false;
  const file = await open(join(mountpoint, name), 'r');
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await file.read(head, 0, 4, 0);
    return isHibernationHeader(head.subarray(0, bytesRead));
  } finally {
    await file.close();
  }
}
