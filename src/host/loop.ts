/**
 * Loop devices: an image file (tests, a loop-file backup medium) or a
 * partitioned snapshot (an HVM guest's whole-disk LV) attached as a block
 * device, with a `release()` that detaches it. Attached state is read back
 * from /sys/block/loop* rather than parsed from losetup's output.
 *
 * A partition inside a disk can be reached two ways: `-P` (the kernel scans
 * the table and makes /dev/loopNpM) or `attachPartition`, which reads the
 * table in user space with partx and attaches just that byte range with
 * --offset/--sizelimit. The second works on kernels built without partition
 * table parsers (as on this project's test machines) and gives one device
 * per partition with nothing else exposed.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { run, CommandError } from './exec.js';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import { canonicalPath } from './mountinfo.js';

export interface LoopDevice {
  /** /dev/loopN */
  device: string;
  /** The canonical path of what it is backed by. */
  file: string;
  readOnly: boolean;
  /** Detaches it (losetup -d). Safe to call twice. */
  release(): Promise<void>;
}

export interface AttachLoopOptions {
  readOnly?: boolean;
  /** Scan the partition table so partitions appear as /dev/loopNpM (needs kernel support). */
  partscan?: boolean;
  /** Start of the attached range in bytes. */
  offset?: number;
  /** Length of the attached range in bytes. */
  sizeLimit?: number;
  logger?: Logger;
}

export class LoopError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoopError';
  }
}

export function losetupAttachArgs(file: string, opts: Omit<AttachLoopOptions, 'logger'>): string[] {
  return [
    '--find',
    '--show',
    ...(opts.readOnly ? ['-r'] : []),
    ...(opts.partscan ? ['-P'] : []),
    ...(opts.offset !== undefined ? ['--offset', String(opts.offset)] : []),
    ...(opts.sizeLimit !== undefined ? ['--sizelimit', String(opts.sizeLimit)] : []),
    file,
  ];
}

export async function attachLoop(file: string, opts: AttachLoopOptions = {}): Promise<LoopDevice> {
  const log = opts.logger ?? silentLogger;
  const canonical = await canonicalPath(file);
  if (canonical === undefined) throw new LoopError(`cannot attach ${file} to a loop device: it does not exist`);
  const r = await run('losetup', losetupAttachArgs(canonical, opts), { logger: log, timeoutMs: 60_000 });
  const device = r.stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(device)) throw new LoopError(`${r.command}: expected a /dev/loopN path, got ${JSON.stringify(device)}`);
  let released: Promise<void> | undefined;
  return {
    device,
    file: canonical,
    readOnly: opts.readOnly ?? false,
    release() {
      released ??= detachLoop(device, log).catch((e: unknown) => {
        released = undefined;
        throw e;
      });
      return released;
    },
  };
}

/** Detaches `device`; a device that is no longer attached is fine. */
export async function detachLoop(device: string, logger: Logger = silentLogger): Promise<void> {
  const name = device.replace(/^\/dev\//, '');
  if ((await backingFile(name)) === undefined) return;
  try {
    await run('losetup', ['-d', device], { logger, timeoutMs: 60_000 });
  } catch (e) {
    // detached by someone else between our look and losetup: that is what we wanted
    if (e instanceof CommandError && (await backingFile(name)) === undefined) return;
    throw e;
  }
}

async function backingFile(name: string): Promise<string | undefined> {
  try {
    return (await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

export interface AttachedLoop {
  device: string;
  /** As the kernel recorded it (the path given to losetup; " (deleted)" when the file was removed). */
  backingFile: string;
}

/** Every attached loop device and its backing file. */
export async function listLoops(): Promise<AttachedLoop[]> {
  let names: string[];
  try {
    names = await readdir('/sys/block');
  } catch {
    return [];
  }
  const loops: AttachedLoop[] = [];
  for (const name of names.filter((n) => /^loop\d+$/.test(n)).sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)))) {
    const backing = await backingFile(name);
    if (backing !== undefined) loops.push({ device: `/dev/${name}`, backingFile: backing });
  }
  return loops;
}

/** The partition devices of an attached loop device (/dev/loopNp1 ...), in order. */
export async function loopPartitions(device: string): Promise<string[]> {
  const name = device.replace(/^\/dev\//, '');
  let entries: string[];
  try {
    entries = await readdir(`/sys/block/${name}`);
  } catch {
    return [];
  }
  const parts = entries
    .filter((e) => new RegExp(`^${name}p\\d+$`).test(e))
    .sort((a, b) => Number(a.slice(name.length + 1)) - Number(b.slice(name.length + 1)));
  const devices: string[] = [];
  for (const p of parts) {
    // devtmpfs creates the node; make sure it's there before handing it out
    const path = `/dev/${p}`;
    if (await stat(path).then((s) => s.isBlockDevice(), () => false)) devices.push(path);
  }
  return devices;
}

export interface Partition {
  /** As the kernel would number it (1-4 primary, 5+ logical; GPT entries in order). */
  number: number;
  startBytes: number;
  sizeBytes: number;
  /** MBR type (0x83) or GPT type GUID. */
  type: string;
}

/** Parses `partx --bytes --raw --noheadings -o NR,START,SECTORS,TYPE` (START and SECTORS in 512-byte sectors). */
export function parsePartx(text: string): Partition[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((l) => {
      const [nr, start, sectors, type] = l.split(/\s+/);
      return { number: Number(nr), startBytes: Number(start) * 512, sizeBytes: Number(sectors) * 512, type: type ?? '' };
    });
}

/** The partition table of a disk image or block device, read in user space; [] when it has none. */
export async function listPartitions(disk: string, logger: Logger = silentLogger): Promise<Partition[]> {
  if ((await canonicalPath(disk)) === undefined) throw new LoopError(`cannot read the partition table of ${disk}: it does not exist`);
  const r = await run('partx', ['--bytes', '--raw', '--noheadings', '-o', 'NR,START,SECTORS,TYPE', disk], { logger, quiet: true, allowFailure: true, timeoutMs: 60_000 });
  if (r.exitCode !== 0) {
    if (/failed to read partition table/.test(r.stderr)) return [];
    throw new LoopError(`${r.command}: exit ${r.exitCode}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
  }
  return parsePartx(r.stdout);
}

/**
 * Partition `number` of `disk` as its own loop device (byte range via
 * --offset/--sizelimit, no kernel partition support needed).
 */
export async function attachPartition(disk: string, number: number, opts: Pick<AttachLoopOptions, 'readOnly' | 'logger'> = {}): Promise<LoopDevice & { partition: Partition }> {
  const parts = await listPartitions(disk, opts.logger);
  const partition = parts.find((p) => p.number === number);
  if (!partition) {
    const have = parts.length ? `it has ${parts.map((p) => p.number).join(', ')}` : 'it has no partition table';
    throw new LoopError(`${disk} has no partition ${number} (${have})`);
  }
  const loop = await attachLoop(disk, { ...opts, offset: partition.startBytes, sizeLimit: partition.sizeBytes });
  return { ...loop, partition };
}
