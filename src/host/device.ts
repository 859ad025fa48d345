/**
 * Device identity: does the mount at a place really come from the device we
 * were told to use? Compares the kernel's major:minor of the mount with the
 * device node's rdev (so /dev/vg/lv, /dev/mapper/vg-lv, /dev/dm-3 and
 * by-uuid symlinks all match), follows loop devices back to their image file
 * for a medium that is a loop-mounted file, and handles filesystems such as
 * btrfs whose mounts carry an anonymous device number.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import type { MountEntry } from './mountinfo.js';
import { canonicalPath, devString } from './mountinfo.js';

export interface DevNumber {
  major: number;
  minor: number;
}

/** Splits a Linux dev_t (glibc's encoding: 12-bit major, 20-bit minor, split across 64 bits). */
export function splitDev(dev: bigint): DevNumber {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return { major, minor };
}

export type DeviceKind = 'block' | 'file' | 'missing' | 'other';

export interface DeviceInfo {
  /** The path as given. */
  path: string;
  kind: DeviceKind;
  /** The symlink-free path (when it exists). */
  canonical?: string;
  /** major:minor of a block device. */
  rdev?: DevNumber;
}

export async function inspectDevice(path: string): Promise<DeviceInfo> {
  let st;
  try {
    st = await stat(path, { bigint: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') {
      return { path, kind: 'missing' };
    }
    throw e;
  }
  const canonical = await canonicalPath(path);
  if (st.isBlockDevice()) return { path, kind: 'block', canonical, rdev: splitDev(st.rdev) };
  if (st.isFile()) return { path, kind: 'file', canonical };
  return { path, kind: 'other', canonical };
}

/** Loop devices (by /dev path) whose backing file is `canonicalFile`, from /sys/block/loop*. */
export async function loopDevicesBackedBy(canonicalFile: string): Promise<{ device: string; dev: DevNumber }[]> {
  const found: { device: string; dev: DevNumber }[] = [];
  let names: string[];
  try {
    names = (await readdir('/sys/block')).filter((n) => /^loop\d+$/.test(n));
  } catch {
    return found;
  }
  for (const name of names) {
    try {
      const backing = (await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8')).trim();
      if (backing !== canonicalFile) continue;
      const [maj, min] = (await readFile(`/sys/block/${name}/dev`, 'utf8')).trim().split(':');
      found.push({ device: `/dev/${name}`, dev: { major: Number(maj), minor: Number(min) } });
    } catch {
      // not attached (no loop/ directory) or detached while we looked
    }
  }
  return found;
}

export type MatchResult = { ok: true } | { ok: false; reason: string };

function sameDev(a: DevNumber, b: DevNumber): boolean {
  return a.major === b.major && a.minor === b.minor;
}

/**
 * Whether `entry` (a mount) is a mount of `device`. A block device matches by
 * major:minor; on a filesystem with anonymous device numbers (major 0, e.g.
 * btrfs) by the device node behind the mount's source; an image file matches
 * when the mount's device is a loop device backed by that very file.
 */
export async function mountIsOfDevice(entry: MountEntry, device: DeviceInfo): Promise<MatchResult> {
  const where = `${entry.mountPoint} is a mountpoint of ${entry.source || '(no source)'} (${devString(entry)}, ${entry.fsType})`;
  if (device.kind === 'block') {
    const want = device.rdev!;
    if (sameDev(entry, want)) return { ok: true };
    if (entry.major === 0 && entry.source.startsWith('/')) {
      const src = await inspectDevice(entry.source);
      if (src.kind === 'block' && sameDev(src.rdev!, want)) return { ok: true };
    }
    return { ok: false, reason: `${where}, not of ${device.path} (${devString(want)})` };
  }
  if (device.kind === 'file') {
    const loops = await loopDevicesBackedBy(device.canonical!);
    if (loops.some((l) => sameDev(l.dev, entry))) return { ok: true };
    if (entry.major === 0 && entry.source.startsWith('/')) {
      const src = await inspectDevice(entry.source);
      if (src.kind === 'block' && loops.some((l) => sameDev(l.dev, src.rdev!))) return { ok: true };
    }
    return { ok: false, reason: `${where}, not of a loop device backed by ${device.canonical}` };
  }
  if (device.kind === 'missing') return { ok: false, reason: `${device.path} does not exist` };
  return { ok: false, reason: `${device.path} is neither a block device nor an image file` };
}
