/**
 * What each kind of guest filesystem needs around its read-only snapshot
 * mount, beyond `mount -t TYPE -o ro,...` (mount.ts calls these hooks):
 *
 *   - ufs (FreeBSD, NetBSD, OpenBSD): the kernel driver is read-only anyway,
 *     but without `ufstype=` it guesses the old SunOS layout and shows
 *     garbage, so the option is required (44bsd for UFS1, ufs2 for UFS2);
 *     none of the journal options (noload, norecovery) apply to it.
 *   - NTFS (Windows): `ntfs` means ntfs-3g (ntfs.ts says why); a volume that
 *     Windows left dirty or hibernated is backed up read-only as it is on
 *     disk, with a warning for the report; `remove_hiberfile` is refused.
 *   - btrfs: the snapshot gets its own fsid before the mount (btrfs.ts), and
 *     the kernel forgets the device after the unmount.
 * Every other type needs nothing here.
 */
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import { forgetBtrfsDevice, giveOwnFsid } from './btrfs.js';
import { ntfsIsDirty, ntfsIsHibernated, ntfsMountType } from './ntfs.js';

/** The type `mount -t` gets for a volume-table fstype. */
export function mountTypeFor(fsType: string): string {
  return ntfsMountType(fsType) ?? fsType;
}

/**
 * Whether blkid's `found` is what a guest fstype expects; undefined for
 * types this module does not know (mount.ts decides those).
 */
export function guestFsMatchesBlkid(fsType: string, found: string): boolean | undefined {
  if (ntfsMountType(fsType) !== undefined) return found === 'ntfs';
  if (fsType === 'ufs' || fsType === 'btrfs') return found === fsType;
  return undefined;
}

/** Why the volume's own mount options cannot work for `fsType` (a one-line reason), or undefined. */
export function guestFsOptionProblem(fsType: string, options: readonly string[]): string | undefined {
  if (fsType === 'ufs' && !options.some((o) => o.startsWith('ufstype='))) {
    return 'ufs needs ufstype= in the mount options (ufstype=44bsd for UFS1, ufstype=ufs2 for UFS2): without it the kernel assumes the old SunOS layout';
  }
  if (ntfsMountType(fsType) !== undefined && options.includes('remove_hiberfile')) {
    return 'remove_hiberfile would delete the hibernation file, a write; a snapshot is only read (a hibernated volume is backed up read-only with a warning)';
  }
  return undefined;
}

/** The programs a volume of `fsType` needs at backup time, with the Debian package that has them. */
export function toolsFor(fsType: string): Array<{ program: string; pkg: string }> {
  if (ntfsMountType(fsType) === 'ntfs-3g') return [{ program: 'ntfs-3g', pkg: 'ntfs-3g' }, { program: 'ntfsinfo', pkg: 'ntfs-3g' }];
  if (fsType === 'btrfs') return [{ program: 'btrfstune', pkg: 'btrfs-progs' }, { program: 'btrfs', pkg: 'btrfs-progs' }];
  return [];
}

/** What was done to the unmounted snapshot before its mount, and how to undo the rest after the unmount. */
export interface GuestFsPreparation {
  /** Lines for the volume's report. */
  warnings: string[];
  /** After the unmount (best effort, never throws). */
  release(): Promise<void>;
}

/**
 * Before mounting `device` (a writable snapshot, or a partition of one):
 * btrfs gets its own fsid; an NTFS volume's dirty flag is read.
 */
export async function prepareGuestFs(device: string, fsType: string, logger: Logger = silentLogger): Promise<GuestFsPreparation> {
  const warnings: string[] = [];
  if (fsType === 'btrfs') {
    await giveOwnFsid(device, logger);
    return { warnings, release: () => forgetBtrfsDevice(device, logger) };
  }
  if (ntfsMountType(fsType) !== undefined) {
    const dirty = await ntfsIsDirty(device, logger);
    if (dirty === true) {
      warnings.push('the NTFS volume is marked dirty (Windows did not shut down cleanly, or a disk check is scheduled); backed up read-only as it is on disk');
    } else if (dirty === undefined) {
      logger.info(`${device}: ntfsinfo could not read the NTFS volume flags; not checked for a dirty volume`);
    }
  }
  return { warnings, release: async () => undefined };
}

/** After the mount: warnings about what the mounted filesystem shows (a hibernated Windows). Never throws: the mount is up. */
export async function inspectMountedGuestFs(fsType: string, mountpoint: string): Promise<string[]> {
  if (ntfsMountType(fsType) === undefined) return [];
  let hibernated: boolean;
  try {
    hibernated = await ntfsIsHibernated(mountpoint);
  } catch (e) {
    return [`cannot read hiberfil.sys to tell whether Windows is hibernated: ${(e as Error).message}`];
  }
  if (hibernated) {
    return ['Windows is hibernated on this NTFS volume (hibernation or fast startup); backed up read-only as it is on disk, which may lack changes Windows still held in memory'];
  }
  return [];
}
