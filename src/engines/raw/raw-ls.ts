/**
 * What `xenbackup ls` says about a raw backup: it holds a block device's
 * image, not a file tree, so there is nothing to list; it says how to get
 * at the files instead: restore the image to a file, attach it read-only
 * to a loop device (with -P a partitioned disk's partitions appear as
 * /dev/loopNpK) and mount the filesystem read-only where Linux can read it.
 */
import type { RawSidecar } from '../../medium/sidecar.js';

export function rawLsMessage(s: RawSidecar, volume: string): string[] {
  const mib = (s.raw.imageBytes / 2 ** 20).toFixed(0);
  const img = `/var/tmp/${volume.replace('/', '-')}.img`;
  return [
    `${volume}: backup ${s.id} is a raw image of ${s.raw.device} (${mib} MiB, ${s.kind}), not a file tree: there is nothing to list.`,
    `To look inside, restore the image to a file (sparse: it takes only the space of the data) and loop-mount it read-only:`,
    `  xenbackup restore ${volume} --to ${img} --at ${s.id}`,
    `  losetup --find --show --read-only --partscan ${img}      # prints /dev/loopN; partitions appear as /dev/loopNp1, p2, ...`,
    `  mount -o ro /dev/loopN /mnt        # a whole-volume filesystem (ext4: -o ro,noload)`,
    `  mount -o ro /dev/loopNp1 /mnt      # or one partition of a partitioned disk (lsblk /dev/loopN shows them)`,
    `  umount /mnt; losetup --detach /dev/loopN`,
  ];
}
