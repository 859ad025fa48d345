/**
 * The backup medium (BCKDEV on BCKMNTP). The old tool ignored a failed mount
 * and wrote the backups onto the host's root disk; here nothing is written
 * until mountinfo confirms that the mountpoint is a writable mount of that
 * very device (major:minor against the device node's rdev, or, for a medium
 * that is an image file, a loop device backed by that file). Otherwise
 * `openMedium` throws MediumUnavailableError (exit 4 in the CLI) having
 * created nothing: it doesn't even make a missing mountpoint directory.
 *
 * A medium that is already mounted is used as it is and left mounted;
 * `release()` unmounts only what this run mounted.
 */
import { statfs } from 'node:fs/promises';
import { run, CommandError } from './exec.js';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import { canonicalPath, describeMount, readMountinfo, topMountAt, type MountEntry } from './mountinfo.js';
import { inspectDevice, mountIsOfDevice, type DeviceInfo } from './device.js';
import { unmount, type UnmountResult } from './unmount.js';

export class MediumUnavailableError extends Error {
  constructor(readonly device: string, readonly mountpoint: string, readonly reason: string) {
    super(`backup medium ${device} on ${mountpoint} unavailable: ${reason}`);
    this.name = 'MediumUnavailableError';
  }
}

export interface MediumSpec {
  /** BCKDEV: a block device path (or a UUID=/LABEL= spec, or an image file). */
  device: string;
  /** BCKDEV_FS; '' or 'auto' lets mount probe. */
  fsType: string;
  /** BCKMNTP */
  mountpoint: string;
  /** Extra mount options (comma separated). */
  options?: string;
}

export interface SpaceInfo {
  totalBytes: number;
  /** Available to us (root may use the reserved blocks too, but we don't count on them). */
  freeBytes: number;
}

export interface Medium {
  device: string;
  mountpoint: string;
  fsType: string;
  /** Whether this run mounted it (and so will unmount it). */
  mountedByUs: boolean;
  entry: MountEntry;
  spaceBefore: SpaceInfo;
  /** Current space on the medium. */
  space(): Promise<SpaceInfo>;
  /** Unmounts if we mounted it; otherwise nothing. Safe to call twice. */
  release(): Promise<UnmountResult | undefined>;
}

export interface OpenMediumOptions {
  logger?: Logger;
  timeoutMs?: number;
}

export async function spaceOf(path: string): Promise<SpaceInfo> {
  const s = await statfs(path);
  return { totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
}

/** UUID=... and LABEL=... as mount(8) and fstab know them, resolved with findfs; undefined when no device has it. */
export async function resolveDeviceSpec(device: string, log: Logger): Promise<string | undefined> {
  if (!/^(UUID|LABEL|PARTUUID|PARTLABEL)=/.test(device)) return device;
  try {
    const r = await run('findfs', [device], { logger: log, quiet: true, timeoutMs: 60_000 });
    return r.stdout.trim() || undefined;
  } catch (e) {
    if (e instanceof CommandError) return undefined;
    throw e;
  }
}

export async function openMedium(spec: MediumSpec, opts: OpenMediumOptions = {}): Promise<Medium> {
  const log = opts.logger ?? silentLogger;
  const unavailable = (reason: string) => new MediumUnavailableError(spec.device, spec.mountpoint, reason);

  const resolved = await resolveDeviceSpec(spec.device, log);
  if (resolved === undefined) throw unavailable(`no device has ${spec.device}`);
  const dev = await inspectDevice(resolved);
  if (dev.kind === 'missing') throw unavailable(`device ${resolved} does not exist`);
  if (dev.kind === 'other') throw unavailable(`${resolved} is neither a block device nor an image file`);

  const mountpoint = await canonicalPath(spec.mountpoint);
  if (mountpoint === undefined) throw unavailable(`mountpoint ${spec.mountpoint} does not exist (create it: mkdir -p ${spec.mountpoint})`);

  let mountedByUs = false;
  let entry = topMountAt(await readMountinfo(), mountpoint);
  if (entry !== undefined) {
    const match = await mountIsOfDevice(entry, dev);
    if (!match.ok) throw unavailable(`${match.reason}; refusing to write to it`);
    log.info(`backup medium ${resolved} already mounted on ${mountpoint}; using it and leaving it mounted`);
  } else {
    entry = await mountMedium(resolved, dev, mountpoint, spec, opts, log, unavailable);
    mountedByUs = true;
  }

  if (entry.mountOptions.includes('ro')) {
    if (mountedByUs) await unmount(mountpoint, { logger: log, expect: entry });
    throw unavailable(`${describeMount(entry)} is mounted read-only`);
  }
  const spaceBefore = await spaceOf(mountpoint);
  log.info(`backup medium ${describeMount(entry)}: ${gib(spaceBefore.freeBytes)} free of ${gib(spaceBefore.totalBytes)}`);

  const mounted = entry;
  let released: Promise<UnmountResult | undefined> | undefined;
  return {
    device: resolved,
    mountpoint,
    fsType: entry.fsType,
    mountedByUs,
    entry,
    spaceBefore,
    space: () => spaceOf(mountpoint),
    release() {
      if (!mountedByUs) return Promise.resolve(undefined);
      released ??= unmount(mountpoint, { logger: log, expect: mounted, timeoutMs: opts.timeoutMs }).catch((e: unknown) => {
        released = undefined;
        throw e;
      });
      return released;
    },
  };
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}

async function mountMedium(
  device: string,
  dev: DeviceInfo,
  mountpoint: string,
  spec: MediumSpec,
  opts: OpenMediumOptions,
  log: Logger,
  unavailable: (reason: string) => MediumUnavailableError,
): Promise<MountEntry> {
  const options = (spec.options ?? '').split(',').map((o) => o.trim()).filter((o) => o !== '');
  // an image file needs a loop device; mount's own `loop` option sets it up with autoclear, so umount frees it
  if (dev.kind === 'file' && !options.includes('loop')) options.push('loop');
  const args = [
    ...(spec.fsType === '' || spec.fsType === 'auto' ? [] : ['-t', spec.fsType]),
    ...(options.length ? ['-o', options.join(',')] : []),
    device,
    mountpoint,
  ];
  try {
    await run('mount', args, { logger: log, timeoutMs: opts.timeoutMs ?? 120_000 });
  } catch (e) {
    if (e instanceof CommandError) throw unavailable(`mount failed: ${e.message}`);
    throw e;
  }
  const entry = topMountAt(await readMountinfo(), mountpoint);
  if (entry === undefined) throw unavailable(`mount reported success but ${mountpoint} is not a mountpoint`);
  const match = await mountIsOfDevice(entry, dev);
  if (!match.ok) {
    await unmount(mountpoint, { logger: log, expect: entry });
    throw unavailable(`after mounting: ${match.reason}`);
  }
  return entry;
}

/** The medium a read command (list, prune, verify) needs is not mounted, or not BCKDEV. */
export class MediumNotMountedError extends Error {
  constructor(device: string, mountpoint: string, why: string) {
    super(`backup medium ${device} ${why}; xenbackup does not mount it for this command: mount it (mount ${device} ${mountpoint}) or give --medium DIR`);
    this.name = 'MediumNotMountedError';
  }
}

/**
 * BCKMNTP, once the mount table shows it is a mount of BCKDEV, by the same
 * proof openMedium uses: for the commands that do not mount the medium,
 * which without it would read (or delete in) the empty directory below the
 * mountpoint.
 */
export async function mountedMedium(spec: Pick<MediumSpec, 'device' | 'mountpoint'>, opts: { writable: boolean; logger?: Logger }): Promise<string> {
  const fail = (why: string): never => {
    throw new MediumNotMountedError(spec.device, spec.mountpoint, why);
  };
  const mountpoint = (await canonicalPath(spec.mountpoint)) ?? fail(`is not mounted: ${spec.mountpoint} does not exist`);
  const entry = topMountAt(await readMountinfo(), mountpoint) ?? fail(`is not mounted on ${mountpoint} (BCKMNTP)`);
  const device = (await resolveDeviceSpec(spec.device, opts.logger ?? silentLogger)) ?? fail(`names no device here (findfs found nothing)`);
  const match = await mountIsOfDevice(entry, await inspectDevice(device));
  if (!match.ok) fail(`is not what is mounted there: ${match.reason}`);
  if (opts.writable && entry.mountOptions.includes('ro')) fail(`is mounted read-only on ${mountpoint}`);
  return mountpoint;
}
