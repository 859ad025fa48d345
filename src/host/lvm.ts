/**
 * LVM for the backup: which device paths are logical volumes, how much room
 * a volume group has, and the snapshot lifecycle (create with our tag, check
 * health after archiving, remove). Output parsing lives in lvm-report.ts;
 * this module builds the commands and runs them through exec.ts.
 *
 * Our snapshots are recognisable twice over: named `<origin>-xbsnap` and
 * tagged `xenbackup-snapshot`. The tag is what the sweep of a crashed run
 * looks for, and `removeSnapshot` refuses any LV that is not a snapshot
 * carrying it, so a wrong argument can never lvremove a guest's disk.
 */
import { readFile, stat } from 'node:fs/promises';
import { run, CommandError, type ExecResult } from './exec.js';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import {
  assessSnapshot,
  isSnapshotAttr,
  lvsArgs,
  parseLvsReport,
  parseVgsReport,
  vgsArgs,
  type LogicalVolume,
  type SnapshotHealth,
  type VolumeGroup,
} from './lvm-report.js';
import { splitDev } from './device.js';
import type { LvmSize } from './lvm-size.js';

export const SNAPSHOT_TAG = 'xenbackup-snapshot';
export const SNAPSHOT_SUFFIX = '-xbsnap';
/** LVM's limit on LV names. */
const MAX_LV_NAME = 127;
const LVM_TIMEOUT_MS = 5 * 60 * 1000;

export interface LvmOptions {
  logger?: Logger;
  timeoutMs?: number;
}

export class LvmError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LvmError';
  }
}

export class NotALogicalVolumeError extends LvmError {
  constructor(readonly path: string, reason: string) {
    super(`${path} is not an LVM logical volume: ${reason}`);
    this.name = 'NotALogicalVolumeError';
  }
}

export class InsufficientSpaceError extends LvmError {
  constructor(readonly vg: string, readonly neededBytes: number, readonly freeBytes: number, snapshot: string) {
    super(`volume group ${vg} has ${freeBytes} bytes (${gib(freeBytes)}) free, snapshot ${snapshot} needs ${neededBytes} bytes (${gib(neededBytes)})`);
    this.name = 'InsufficientSpaceError';
  }
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}

function execOpts(opts: LvmOptions, quiet = true) {
  return { logger: opts.logger ?? silentLogger, timeoutMs: opts.timeoutMs ?? LVM_TIMEOUT_MS, quiet };
}

// ---------------------------------------------------------------- names and sizes

/** `<origin>-xbsnap`, shortened to fit LVM's name limit. */
export function snapshotNameFor(originLv: string): string {
  return originLv.slice(0, MAX_LV_NAME - SNAPSHOT_SUFFIX.length) + SNAPSHOT_SUFFIX;
}

/** A snapshot's size as configured (SNAPSIZE, `snapsize=`): absolute, or a share of its origin; parsed by lvm-size.ts. */
export type SnapshotSize = LvmSize;

/** The extents (and bytes) a snapshot of this size takes, rounded up as LVM does. */
export function snapshotExtents(size: SnapshotSize, originSizeBytes: number, extentSizeBytes: number): { extents: number; bytes: number } {
  const wanted = size.kind === 'absolute' ? size.bytes : (originSizeBytes * size.percent) / 100;
  const extents = Math.max(1, Math.ceil(wanted / extentSizeBytes));
  return { extents, bytes: extents * extentSizeBytes };
}

/** `lvcreate` arguments for a tagged snapshot of `originRef` (VG/LV or /dev path). */
export function lvcreateSnapshotArgs(originRef: string, name: string, size: SnapshotSize, sizeBytes: number, tag = SNAPSHOT_TAG): string[] {
  const sizeArgs = size.kind === 'absolute' ? ['-L', `${sizeBytes}b`] : ['-l', `${size.percent}%ORIGIN`];
  return ['-s', '-n', name, ...sizeArgs, '--addtag', tag, originRef];
}

export function lvremoveArgs(ref: string): string[] {
  return ['-f', ref];
}

/**
 * VG and LV from a device path without asking LVM: `/dev/VG/LV` or
 * `/dev/mapper/VG-LV` (where a dash inside a name is doubled).
 */
export function parseLvDevicePath(path: string): { vg: string; lv: string } | undefined {
  const mapper = /^\/dev\/mapper\/(.+)$/.exec(path);
  if (mapper) {
    const dm = mapper[1]!;
    for (let i = 0; i < dm.length; i++) {
      if (dm[i] !== '-') continue;
      if (dm[i + 1] === '-') {
        i++;
        continue;
      }
      const vg = dm.slice(0, i).replace(/--/g, '-');
      const lv = dm.slice(i + 1).replace(/--/g, '-');
      return vg && lv ? { vg, lv } : undefined;
    }
    return undefined;
  }
  const plain = /^\/dev\/([^/]+)\/([^/]+)$/.exec(path);
  if (plain && !['mapper', 'disk', 'block', 'char', 'pts', 'shm', 'bus', 'input', 'net', 'snd'].includes(plain[1]!)) {
    return { vg: plain[1]!, lv: plain[2]! };
  }
  return undefined;
}

// ---------------------------------------------------------------- reports

async function lvsRaw(targets: string[], opts: LvmOptions, allowFailure: boolean): Promise<ExecResult> {
  return run('lvs', lvsArgs(targets), { ...execOpts(opts), allowFailure });
}

export async function listLogicalVolumes(targets: string[] = [], opts: LvmOptions = {}): Promise<LogicalVolume[]> {
  const r = await lvsRaw(targets, opts, false);
  return parseLvsReport(r.stdout, r.command);
}

/**
 * What went wrong, from LVM's stderr: its first line that isn't a warning
 * ("Volume group "x" not found" comes before "Cannot process volume group x").
 */
export function lvmProblem(stderr: string): string | undefined {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('WARNING:'));
}

export async function listVolumeGroups(names: string[] = [], opts: LvmOptions = {}): Promise<VolumeGroup[]> {
  const r = await run('vgs', vgsArgs(names), { ...execOpts(opts), allowFailure: true });
  if (r.exitCode !== 0) throw new LvmError(`${r.command}: exit ${r.exitCode}: ${lvmProblem(r.stderr) ?? 'no message'}`);
  return parseVgsReport(r.stdout, r.command);
}

/** Free bytes in volume group `vg`. */
export async function vgFree(vg: string, opts: LvmOptions = {}): Promise<number> {
  const [g] = await listVolumeGroups([vg], opts);
  if (!g) throw new LvmError(`vgs ${vg}: volume group ${vg} not reported`);
  return g.freeBytes;
}

/** A dm device under another name (/dev/dm-3, a /dev/disk/by-* link) as /dev/mapper/NAME, which lvs understands. */
async function mapperPathOf(path: string): Promise<string | undefined> {
  try {
    const st = await stat(path, { bigint: true });
    if (!st.isBlockDevice()) return undefined;
    const { major, minor } = splitDev(st.rdev);
    const name = (await readFile(`/sys/dev/block/${major}:${minor}/dm/name`, 'utf8')).trim();
    return name ? `/dev/mapper/${name}` : undefined;
  } catch {
    return undefined;
  }
}

/** The logical volume behind a device path (/dev/VG/LV, /dev/mapper/VG-LV, /dev/dm-N, a by-id link), asking lvs. */
export async function resolveLogicalVolume(path: string, opts: LvmOptions = {}): Promise<LogicalVolume> {
  const target = path.startsWith('/dev/') && parseLvDevicePath(path) === undefined ? ((await mapperPathOf(path)) ?? path) : path;
  const r = await lvsRaw([target], opts, true);
  if (r.exitCode !== 0) throw new NotALogicalVolumeError(path, lvmProblem(r.stderr) ?? `lvs exit ${r.exitCode}`);
  const lvs = parseLvsReport(r.stdout, r.command);
  if (lvs.length !== 1) throw new NotALogicalVolumeError(path, `lvs reported ${lvs.length} volumes for it`);
  return lvs[0]!;
}

export async function isLogicalVolume(path: string, opts: LvmOptions = {}): Promise<boolean> {
  try {
    await resolveLogicalVolume(path, opts);
    return true;
  } catch (e) {
    if (e instanceof NotALogicalVolumeError) return false;
    throw e;
  }
}

/** The volume `VG/LV`, or undefined when LVM doesn't know it. */
async function findLv(ref: string, opts: LvmOptions): Promise<LogicalVolume | undefined> {
  const r = await lvsRaw([ref], opts, true);
  if (r.exitCode !== 0) {
    if (/not found|Failed to find/i.test(r.stderr)) return undefined;
    throw new CommandError(r.command, r.exitCode, r.stderr, `exit ${r.exitCode}: ${lvmProblem(r.stderr) ?? 'no message'}`);
  }
  return parseLvsReport(r.stdout, r.command)[0];
}

/** Snapshot LVs carrying our tag (what a crashed run may have left). */
export async function listOurSnapshots(opts: LvmOptions = {}): Promise<LogicalVolume[]> {
  return (await listLogicalVolumes([`@${SNAPSHOT_TAG}`], opts)).filter((lv) => isSnapshotAttr(lv.attr));
}

// ---------------------------------------------------------------- snapshot lifecycle

export interface Snapshot {
  vg: string;
  name: string;
  /** `VG/LV`, what LVM commands take. */
  ref: string;
  /** /dev/VG/LV, what mount takes. */
  path: string;
  origin: LogicalVolume;
  sizeBytes: number;
  /** lvremove (only this snapshot; retried while in use). Safe to call twice. */
  release(): Promise<void>;
}

export interface CreateSnapshotOptions extends LvmOptions {
  size: SnapshotSize;
  /** Default `<origin>-xbsnap`. */
  name?: string;
  tag?: string;
}

/**
 * Creates a snapshot of the LV at `originPath` after checking its volume
 * group has room for it. If lvcreate fails but left the LV behind, removes
 * it before throwing.
 */
export async function createSnapshot(originPath: string, opts: CreateSnapshotOptions): Promise<Snapshot> {
  const log = opts.logger ?? silentLogger;
  const origin = await resolveLogicalVolume(originPath, opts);
  if (isSnapshotAttr(origin.attr)) throw new LvmError(`${originPath} (${origin.vg}/${origin.name}) is itself a snapshot; refusing to snapshot it`);
  const name = opts.name ?? snapshotNameFor(origin.name);
  const ref = `${origin.vg}/${name}`;
  const { bytes } = snapshotExtents(opts.size, origin.sizeBytes, origin.extentSizeBytes);
  const free = origin.vgFreeBytes ?? (await vgFree(origin.vg, opts));
  if (bytes > free) throw new InsufficientSpaceError(origin.vg, bytes, free, ref);

  const args = lvcreateSnapshotArgs(`${origin.vg}/${origin.name}`, name, opts.size, bytes, opts.tag ?? SNAPSHOT_TAG);
  try {
    await run('lvcreate', args, execOpts(opts, false));
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    // a failed suspend can leave the LV (and a *-real device) behind: never leave ours
    const left = await findLv(ref, opts).catch(() => undefined);
    if (left) {
      await removeSnapshot(ref, opts).catch((re: Error) => log.error(`after failed lvcreate: ${re.message}`));
    }
    throw new LvmError(`cannot snapshot ${origin.vg}/${origin.name}: ${e.message}${left ? ` (the half-made ${ref} was removed)` : ''}`);
  }
  const made = await findLv(ref, opts);
  if (!made) throw new LvmError(`lvcreate reported success but ${ref} does not exist`);
  let released: Promise<void> | undefined;
  return {
    vg: origin.vg,
    name,
    ref,
    path: made.path,
    origin,
    sizeBytes: made.sizeBytes,
    release() {
      released ??= removeSnapshot(ref, opts).then(
        () => undefined,
        (e: unknown) => {
          released = undefined;
          throw e;
        },
      );
      return released;
    },
  };
}

/** Whether snapshot `ref` (VG/LV) is still trustworthy: see assessSnapshot. A vanished snapshot is not. */
export async function snapshotHealth(ref: string, opts: LvmOptions = {}): Promise<SnapshotHealth> {
  const lv = await findLv(ref, opts);
  if (!lv) return { ok: false, problem: `snapshot ${ref} no longer exists` };
  return assessSnapshot(lv);
}

const IN_USE = /in use|open logical volume|device or resource busy/i;

export interface RemoveSnapshotOptions extends LvmOptions {
  /** lvremove attempts while the LV is in use. Default 5. */
  attempts?: number;
  retryDelayMs?: number;
}

/**
 * `lvremove -f` of our snapshot `ref` (VG/LV), retried while it is in use
 * (a lazily unmounted filesystem, udev still probing). Returns false when it
 * was already gone. Refuses an LV that is not a snapshot tagged as ours.
 */
export async function removeSnapshot(ref: string, opts: RemoveSnapshotOptions = {}): Promise<boolean> {
  const log = opts.logger ?? silentLogger;
  const attempts = opts.attempts ?? 5;
  const delay = opts.retryDelayMs ?? 2000;
  const lv = await findLv(ref, opts);
  if (!lv) return false;
  if (!isSnapshotAttr(lv.attr) || !lv.tags.includes(SNAPSHOT_TAG)) {
    throw new LvmError(`refusing to remove ${ref}: not a snapshot tagged ${SNAPSHOT_TAG} (attr ${lv.attr}, tags ${lv.tags.join(',') || 'none'})`);
  }
  for (let i = 1; ; i++) {
    try {
      await run('lvremove', lvremoveArgs(ref), execOpts(opts, false));
      return true;
    } catch (e) {
      if (!(e instanceof CommandError) || !IN_USE.test(e.stderr) || i >= attempts) throw e;
      log.info(`${ref} still in use (${e.reason}); retrying lvremove in ${delay} ms (${i}/${attempts})`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
