/**
 * The host half of `xenbackup check`: looks at everything a run will need
 * from this machine and lists every problem, not just the first, without
 * touching anything (no mount, no mkdir, no lock, no log line in LOGFILE).
 * Only reads: stat, access, /proc/self/mountinfo, `lvs`/`vgs` reports,
 * `findfs` and one `ssh ... true` through host/exec.ts, and an SMTP
 * connection to SMTP_URL's server that ends after EHLO.
 *
 * What is checked, and why it would make a run fail:
 *   - each volume's device exists, is a block device and an LVM logical
 *     volume that is not itself a snapshot (createSnapshot refuses otherwise);
 *   - each volume group has room for the snapshots it will hold at once
 *     (see peakSnapshotBytes);
 *   - each snapshot mountpoint MNTSOURCEDIR/domU/part can be made: what
 *     exists of it is a directory, on a writable filesystem;
 *   - the medium (BCKDEV) exists, BCKMNTP exists (openMedium refuses to
 *     create it), and if something is mounted there it is BCKDEV, writable
 *     (skipped when no volume needs the local medium);
 *   - with RSYNC_TARGET and an rsync volume: ssh logs in there (runs `true`,
 *     the only thing `check` does on another host);
 *   - every program the run will start is installed (run/tools.ts);
 *   - the mail can go out: the SMTP_URL server answers EHLO (within a
 *     bounded time; nothing is sent), or BIN_SENDMAIL is an executable file;
 *   - DOM0_ROOT is a readable directory, LOGFILE can be opened, LOCKFILE is
 *     not something else.
 */
import { access, constants, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Config, RsyncRemoteTarget, Volume } from '../config/settings.js';
import { resolveDeviceSpec } from '../host/medium.js';
import { guestFsOptionProblem, toolsFor } from '../host/guest-fs.js';
import { inspectDevice, mountIsOfDevice, type DeviceInfo } from '../host/device.js';
import { lockHolder } from '../host/lock.js';
import { isSnapshotAttr, type LogicalVolume } from '../host/lvm-report.js';
import { listOurSnapshots, listVolumeGroups, NotALogicalVolumeError, resolveLogicalVolume, snapshotExtents } from '../host/lvm.js';
import { SshStorage } from '../storage/ssh-storage.js';
import { canonicalPath, describeMount, readMountinfo, topMountAt, type MountEntry } from '../host/mountinfo.js';
import { formatBytes } from '../report/format.js';
import { redactUrl } from '../report/mail.js';
import { sendmailProblem, smtpProblem } from '../report/mail-probe.js';
import { missingTools, onRunPath } from './tools.js';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';

export interface PreflightResult {
  /** Each one would make a run fail (or a volume of it): `check` exits 2. */
  problems: string[];
  /** Worth knowing, not wrong: leftovers the sweep will remove, a run in progress ... */
  notes: string[];
  /** Whether BCKMNTP is mounted now and is BCKDEV (so the plan can read the chains). */
  mediumMounted: boolean;
}

/** One snapshot a run will create: its volume group and its size in bytes as LVM will allocate it. */
export interface SnapshotNeed {
  volume: string;
  vg: string;
  bytes: number;
}

export interface VgPeak {
  vg: string;
  /** The most this VG holds in snapshots at one moment. */
  bytes: number;
  /** The volumes whose snapshots make up that peak, largest first. */
  volumes: string[];
}

/**
 * The most snapshot space each volume group needs at one moment. A
 * volume's snapshot lives only while that volume is backed up (created,
 * archived, removed before the next one starts), and at most CONCURRENCY
 * volumes are backed up at once, in whatever combination their durations
 * produce. So the worst moment holds the CONCURRENCY largest snapshots of a
 * VG at once: with CONCURRENCY 1 only the largest one. The sum of all of a
 * VG's snapshots would be too pessimistic and reject a setup that works.
 * (LVM allocates a snapshot's full size at lvcreate, so sizes don't grow.)
 */
export function peakSnapshotBytes(needs: readonly SnapshotNeed[], concurrency: number): VgPeak[] {
  const byVg = new Map<string, SnapshotNeed[]>();
  for (const n of needs) byVg.set(n.vg, [...(byVg.get(n.vg) ?? []), n]);
  const n = Math.max(1, Math.floor(concurrency));
  return [...byVg.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([vg, list]) => {
      const largest = [...list].sort((a, b) => b.bytes - a.bytes).slice(0, n);
      return { vg, bytes: largest.reduce((s, x) => s + x.bytes, 0), volumes: largest.map((x) => x.volume) };
    });
}

const nameOf = (v: Volume): string => `${v.domU}/${v.part}`;
const where = (v: Volume): string => `${v.file}:${v.line}`;

async function statOrUndefined(p: string) {
  return stat(p).catch(() => undefined);
}

/** The mount a path lies on (the longest mountpoint that is a prefix of it). */
function mountContaining(entries: readonly MountEntry[], canonical: string): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const e of entries) {
    const inside = canonical === e.mountPoint || e.mountPoint === '/' || canonical.startsWith(`${e.mountPoint}/`);
    if (inside && (!best || e.mountPoint.length >= best.mountPoint.length)) best = e;
  }
  return best;
}

/**
 * Why `dir` (absolute) could not be made with mkdir -p, or undefined when it
 * could (or exists as a directory). Makes nothing.
 */
export async function whyNotCreatable(dir: string, entries: readonly MountEntry[]): Promise<string | undefined> {
  let existing = path.resolve(dir);
  for (;;) {
    const st = await statOrUndefined(existing);
    if (st) {
      if (!st.isDirectory()) return `${existing} exists and is not a directory`;
      break;
    }
    if (existing === '/') break;
    existing = path.dirname(existing);
  }
  if (existing === path.resolve(dir)) return undefined; // already there
  const canonical = (await canonicalPath(existing)) ?? existing;
  const on = mountContaining(entries, canonical);
  if (on?.mountOptions.includes('ro')) return `${canonical} is on a read-only filesystem (${describeMount(on)})`;
  const writable = await access(existing, constants.W_OK | constants.X_OK).then(() => true, () => false);
  return writable ? undefined : `${existing} is not writable`;
}

/** Whether a block device is a device-mapper device (every LVM logical volume is one). */
async function isDeviceMapper(dev: DeviceInfo): Promise<boolean> {
  if (!dev.rdev) return false;
  return stat(`/sys/dev/block/${dev.rdev.major}:${dev.rdev.minor}/dm`).then((s) => s.isDirectory(), () => false);
}


export async function preflight(cfg: Config, opts: { logger?: Logger; smtpTimeoutMs?: number } = {}): Promise<PreflightResult> {
  const log = opts.logger ?? silentLogger;
  const problems: string[] = [];
  const notes: string[] = [];
  const mounts = await readMountinfo();

  // ---- volumes: device, LVM, snapshot size, mountpoint
  const needs: SnapshotNeed[] = [];
  for (const v of cfg.volumes) {
    const name = nameOf(v);
    const dev = await inspectDevice(v.device);
    if (dev.kind === 'missing') {
      problems.push(`${name} (${where(v)}): device ${v.device} does not exist`);
    } else if (dev.kind !== 'block') {
      problems.push(`${name} (${where(v)}): ${v.device} is not a block device`);
    } else if (!(await isDeviceMapper(dev))) {
      // lvs would answer with a puzzling "Volume group ... not found"
      problems.push(`${name} (${where(v)}): ${v.device} is not an LVM logical volume (not a device-mapper device)`);
    } else {
      let lv: LogicalVolume | undefined;
      try {
        lv = await resolveLogicalVolume(v.device, { logger: log });
      } catch (e) {
        if (e instanceof NotALogicalVolumeError) problems.push(`${name} (${where(v)}): ${e.message}`);
        else problems.push(`${name} (${where(v)}): cannot ask LVM about ${v.device}: ${(e as Error).message}`);
      }
      if (lv && isSnapshotAttr(lv.attr)) {
        problems.push(`${name} (${where(v)}): ${v.device} (${lv.vg}/${lv.name}) is itself a snapshot`);
      } else if (lv) {
        needs.push({ volume: name, vg: lv.vg, bytes: snapshotExtents(v.snapshotSize, lv.sizeBytes, lv.extentSizeBytes).bytes });
      }
    }
    if (v.fstype !== 'raw') {
      // What would fail only at mount time, after lvcreate: a guest fstype's options and helper programs.
      const optionProblem = guestFsOptionProblem(v.fstype, v.mountOptions);
      if (optionProblem) problems.push(`${name} (${where(v)}): ${optionProblem}`);
      for (const tool of toolsFor(v.fstype)) {
        if (!(await onRunPath(tool.program))) problems.push(`${name} (${where(v)}): fstype ${v.fstype} needs ${tool.program}, which is not installed (apt-get install ${tool.pkg})`);
      }
      const mp = path.join(cfg.snapshotMountDir, v.domU, v.part);
      const why = await whyNotCreatable(mp, mounts);
      if (why) problems.push(`${name}: snapshot mountpoint ${mp} cannot be made: ${why}`);
      const canonical = await canonicalPath(mp);
      const there = canonical === undefined ? undefined : topMountAt(mounts, canonical);
      if (there) notes.push(`${describeMount(there)} is left over from an earlier run; the run's sweep will unmount it`);
    }
  }

  // ---- volume groups: room for the snapshots held at once
  if (needs.length > 0) await checkVgSpace(cfg, needs, problems, notes, log);

  // ---- the medium (not needed when every volume goes to RSYNC_TARGET and dom0 is not backed up)
  let mediumMounted = false;
  if (cfg.needsLocalMedium) mediumMounted = await checkMedium(cfg, mounts, problems, notes, log);
  else notes.push('every volume goes to RSYNC_TARGET and BACKUP_DOM0 is off: a run does not mount BCKDEV');

  // ---- RSYNC_TARGET: the ssh login a run's rsync volumes depend on
  if (cfg.rsyncTarget && cfg.volumes.some((v) => v.engine === 'rsync')) await checkRsyncTarget(cfg.rsyncTarget, problems, notes, log);

  // ---- the programs a run of this config starts
  problems.push(...(await missingTools(cfg)));

  // ---- the mail: the transport is tried, not only read (an SMTP_URL where nothing listens is a problem)
  if (cfg.reportWhen === 'never') {
    notes.push('REPORT_WHEN=never: no report mail is sent');
  } else if (cfg.smtpUrl !== undefined) {
    let ok = false;
    try {
      const u = new URL(cfg.smtpUrl);
      ok = (u.protocol === 'smtp:' || u.protocol === 'smtps:') && u.hostname !== '';
    } catch {
      ok = false;
    }
    if (!ok) problems.push(`SMTP_URL (${cfg.sources['SMTP_URL']}) is not an smtp:// or smtps:// URL`);
    else {
      const why = await smtpProblem(cfg.smtpUrl, opts.smtpTimeoutMs);
      if (why) problems.push(`SMTP_URL (${cfg.sources['SMTP_URL']}): ${why}`);
      else notes.push(`SMTP_URL ${redactUrl(cfg.smtpUrl)}: the server answered EHLO`);
    }
  } else {
    const src = cfg.sources['BIN_SENDMAIL'] === 'default' ? 'default' : `set at ${cfg.sources['BIN_SENDMAIL']}`;
    const why = await sendmailProblem(cfg.sendmailPath);
    if (why) problems.push(`BIN_SENDMAIL ${cfg.sendmailPath} (${src}) ${why}`);
  }

  // ---- dom0's root, the log file, the lock
  if (cfg.backupDom0) {
    const st = await statOrUndefined(cfg.dom0Root);
    if (!st) problems.push(`DOM0_ROOT ${cfg.dom0Root} does not exist`);
    else if (!st.isDirectory()) problems.push(`DOM0_ROOT ${cfg.dom0Root} is not a directory`);
    else if (!(await access(cfg.dom0Root, constants.R_OK | constants.X_OK).then(() => true, () => false))) problems.push(`DOM0_ROOT ${cfg.dom0Root} is not readable`);
  }
  const logSt = await statOrUndefined(cfg.logFile);
  if (logSt && !logSt.isFile()) problems.push(`LOGFILE ${cfg.logFile} exists and is not a file`);
  else if (logSt && !(await access(cfg.logFile, constants.W_OK).then(() => true, () => false))) problems.push(`LOGFILE ${cfg.logFile} is not writable`);
  else if (!logSt) {
    const dirSt = await statOrUndefined(path.dirname(cfg.logFile));
    if (!dirSt?.isDirectory()) problems.push(`LOGFILE ${cfg.logFile} cannot be created: ${path.dirname(cfg.logFile)} is not a directory`);
  }
  const lockSt = await statOrUndefined(cfg.lockFile);
  if (lockSt && !lockSt.isDirectory()) problems.push(`LOCKFILE ${cfg.lockFile} exists and is not the lock directory (a file left by another tool?)`);
  else if (lockSt) {
    const holder = await lockHolder(cfg.lockFile).catch(() => undefined);
    if (holder) notes.push(`a run is in progress: pid ${holder.pid} holds ${cfg.lockFile} since ${holder.acquiredAt}`);
  }
  return { problems, notes, mediumMounted };
}

/**
 * Whether BCKMNTP is mounted now and that mount is BCKDEV: only then may a
 * dry run read the chains there (another filesystem's would mislead).
 */
export async function mediumMountedNow(cfg: Config, log: Logger = silentLogger): Promise<boolean> {
  const resolved = await resolveDeviceSpec(cfg.backupDevice, log);
  const mountpoint = await canonicalPath(cfg.backupMountpoint);
  if (resolved === undefined || mountpoint === undefined) return false;
  const entry = topMountAt(await readMountinfo(), mountpoint);
  if (entry === undefined) return false;
  return (await mountIsOfDevice(entry, await inspectDevice(resolved))).ok;
}

async function checkVgSpace(cfg: Config, needs: SnapshotNeed[], problems: string[], notes: string[], log: Logger): Promise<void> {
  const peaks = peakSnapshotBytes(needs, cfg.concurrency);
  let leftovers: LogicalVolume[] = [];
  try {
    leftovers = await listOurSnapshots({ logger: log });
  } catch (e) {
    problems.push(`cannot list snapshots tagged as ours: ${(e as Error).message}`);
  }
  for (const s of leftovers) notes.push(`snapshot ${s.vg}/${s.name} (${formatBytes(s.sizeBytes)}) is left over from an earlier run; the run's sweep will remove it`);
  let free = new Map<string, number>();
  try {
    free = new Map((await listVolumeGroups(peaks.map((p) => p.vg), { logger: log })).map((g) => [g.name, g.freeBytes]));
  } catch (e) {
    problems.push(`cannot read the volume groups' free space: ${(e as Error).message}`);
    return;
  }
  for (const p of peaks) {
    const vgFree = free.get(p.vg);
    if (vgFree === undefined) {
      problems.push(`volume group ${p.vg}: not reported by vgs`);
      continue;
    }
    // the sweep removes our leftovers before the first snapshot is made
    const reclaimed = leftovers.filter((s) => s.vg === p.vg).reduce((sum, s) => sum + s.sizeBytes, 0);
    const available = vgFree + reclaimed;
    const what = `${cfg.concurrency === 1 ? 'the largest snapshot' : `the ${p.volumes.length} largest snapshots (CONCURRENCY ${cfg.concurrency})`}: ${p.volumes.join(', ')}`;
    if (p.bytes > available) {
      problems.push(
        `volume group ${p.vg} has ${formatBytes(available)} free${reclaimed ? ' (counting leftovers the sweep removes)' : ''}, ` +
          `but needs ${formatBytes(p.bytes)} at once for ${what}`,
      );
    } else {
      notes.push(`volume group ${p.vg}: ${formatBytes(available)} free, at most ${formatBytes(p.bytes)} needed at once for ${what}`);
    }
  }
}

async function checkMedium(cfg: Config, mounts: readonly MountEntry[], problems: string[], notes: string[], log: Logger): Promise<boolean> {
  const resolved = await resolveDeviceSpec(cfg.backupDevice, log);
  let dev: DeviceInfo | undefined;
  if (resolved === undefined) {
    problems.push(`BCKDEV ${cfg.backupDevice}: no device has it`);
  } else {
    dev = await inspectDevice(resolved);
    if (dev.kind === 'missing') problems.push(`BCKDEV ${resolved} does not exist (is the backup disk attached?)`);
    else if (dev.kind === 'other') problems.push(`BCKDEV ${resolved} is neither a block device nor an image file`);
  }
  const mountpoint = await canonicalPath(cfg.backupMountpoint);
  if (mountpoint === undefined) {
    problems.push(`BCKMNTP ${cfg.backupMountpoint} does not exist (create it: mkdir -p ${cfg.backupMountpoint})`);
    return false;
  }
  if (!(await stat(mountpoint)).isDirectory()) {
    problems.push(`BCKMNTP ${cfg.backupMountpoint} is not a directory`);
    return false;
  }
  const entry = topMountAt(mounts, mountpoint);
  if (entry === undefined) {
    notes.push(`the medium is not mounted now; a run mounts ${cfg.backupDevice} on ${mountpoint} and unmounts it afterwards`);
    return false;
  }
  if (dev === undefined || dev.kind === 'missing' || dev.kind === 'other') {
    problems.push(`${describeMount(entry)} is mounted where the medium belongs, and BCKDEV is unusable`);
    return false;
  }
  const match = await mountIsOfDevice(entry, dev);
  if (!match.ok) {
    problems.push(`BCKMNTP: ${match.reason}; a run would refuse to write to it (exit 4)`);
    return false;
  }
  if (entry.mountOptions.includes('ro')) {
    problems.push(`the medium ${describeMount(entry)} is mounted read-only`);
    return false;
  }
  notes.push(`the medium is mounted now (${describeMount(entry)}); a run uses it and leaves it mounted`);
  return true;
}

/** One look at RSYNC_TARGET's folder through its storage, as the run reaches it (same ssh options, BatchMode). */
async function checkRsyncTarget(r: RsyncRemoteTarget, problems: string[], notes: string[], log: Logger): Promise<void> {
  try {
    const there = (await new SshStorage(r.target, r.ssh, log).list([])) !== undefined;
    notes.push(`RSYNC_TARGET ${r.spec}: ssh login works${there ? '' : `; ${r.target.path} is not there yet (the first backup makes it)`}`);
  } catch (e) {
    problems.push(`RSYNC_TARGET ${r.spec}: ssh login failed: ${(e as Error).message}`);
  }
}
