/**
 * One guest volume, start to finish, with every resource in one visible
 * scope: snapshot -> read-only mount -> archive (uncommitted) -> check the
 * mount is still there and the snapshot still valid -> commit or abort ->
 * unmount -> lvremove. Releases run in reverse order on every path (error,
 * signal), and the backup counts only when every check passed: an overflowed
 * snapshot, a vanished mount or any read error fails the volume and leaves
 * its chain as it was. A raw volume (fstype raw) is not mounted: its
 * snapshot's block device is read in chunks (src/engines/raw/raw-backup.ts), with
 * the same snapshot check before commit.
 */
import path from 'node:path';
import type { Logger } from '../util/log.js';
import type { Volume } from '../config/settings.js';
import { attachPartition, type LoopDevice } from '../host/loop.js';
import { InterruptedError } from '../engines/interrupted.js';
import { createSnapshot, snapshotHealth, type Snapshot } from '../host/lvm.js';
import { isStillMounted, mountReadOnly, type MountHandle } from '../host/mount.js';
import type { Compression, EngineName } from '../medium/layout.js';
import type { Storage } from '../storage/storage.js';
import { archiveBytesOf } from '../medium/sidecar.js';
import type { VolumeReport } from '../report/run-report.js';
import type { PreparedVolumeBackup, VolumeBackupRequest } from '../engines/engine.js';
import { loadEngine } from '../engines/registry.js';
import { engineOf } from './run-storages.js';
import { debugPause } from './debug-pause.js';

export interface VolumeJobContext {
  /** Where a volume of this engine is kept (the local medium; RSYNC_TARGET's server for rsync volumes). */
  storageFor(engine: EngineName): Storage;
  host: string;
  snapshotMountDir: string;
  compression: Compression;
  fullIntervalDays: number;
  maxChainLength: number;
  fullWeekday?: number;
  fullMonthday?: number;
  forceFull: boolean;
  /** RSYNC_COMPRESS, for rsync volumes on a remote storage. */
  rsyncCompress?: boolean;
  logger: Logger;
  signal: AbortSignal;
  /** The terminal's status line (a no-op under cron): where the archiver is. */
  progress?: (text: string) => void;
}

/** The report's notes on a kept backup: the engine's summary, and the directories left empty because they were another filesystem. */
function notesOf(prepared: PreparedVolumeBackup, fstype: string): string[] {
  const notes = prepared.summary ? [prepared.summary] : [];
  const other = prepared.otherFilesystems ?? [];
  if (other.length) {
    const shown = other.slice(0, 5).map((p) => p || '/').join(', ') + (other.length > 5 ? `, ... (${other.length} in all)` : '');
    const hint = fstype === 'btrfs' ? ': nested btrfs subvolumes; a volume line of its own with subvol= backs one up' : '';
    notes.push(`kept ${other.length === 1 ? '1 directory' : `${other.length} directories`} of another filesystem empty (one filesystem per volume): ${shown}${hint}`);
  }
  return notes;
}

/** Prepares one volume's backup with its engine, on the storage that keeps it. */
async function prepareWith(
  engineName: EngineName,
  name: string,
  source: string,
  ctx: VolumeJobContext,
  tree: Pick<VolumeBackupRequest, 'oneFileSystem' | 'excludes' | 'liveSource'>,
): Promise<PreparedVolumeBackup> {
  const engine = await loadEngine(engineName);
  const storage = ctx.storageFor(engineName);
  const refused = engine.unsupported(storage);
  if (refused) throw new Error(refused);
  return engine.prepareBackup({
    source,
    storage,
    host: ctx.host,
    volume: name,
    compression: ctx.compression,
    forceFull: ctx.forceFull,
    fullIntervalDays: ctx.fullIntervalDays,
    maxChainLength: ctx.maxChainLength,
    fullWeekday: ctx.fullWeekday,
    fullMonthday: ctx.fullMonthday,
    ...tree,
    idlePriority: true,
    rsyncCompress: ctx.rsyncCompress,
    logger: ctx.logger,
    signal: ctx.signal,
    progress: ctx.progress,
  });
}

export async function backupGuestVolume(v: Volume, ctx: VolumeJobContext): Promise<VolumeReport> {
  const name = `${v.domU}/${v.part}`;
  const log = ctx.logger;
  const started = Date.now();
  const report: VolumeReport = { volume: name, status: 'failed', kind: null, files: 0, bytes: 0, sourceBytes: 0, durationMs: 0, warnings: [], errors: [] };
  let snapshot: Snapshot | undefined;
  let partition: LoopDevice | undefined;
  let mount: MountHandle | undefined;
  let prepared: PreparedVolumeBackup | undefined;
  try {
    snapshot = await createSnapshot(v.device, { size: v.snapshotSize, logger: log });
    await debugPause('after-lvcreate');
    let device = snapshot.path;
    if (v.partition !== undefined) {
      // A whole-disk LV (HVM guest): the partition inside the snapshot, as its own (writable: journal replay
      // goes to the snapshot's copy-on-write space, never to the origin) loop device.
      partition = await attachPartition(snapshot.path, v.partition, { logger: log });
      device = partition.device;
    }
    const engine = engineOf(v);
    if ((await loadEngine(engine)).reads === 'device') {
      prepared = await prepareWith(engine, name, device, ctx, { oneFileSystem: true, excludes: [], liveSource: false });
    } else {
      const mountpoint = path.join(ctx.snapshotMountDir, v.domU, v.part);
      mount = await mountReadOnly(device, mountpoint, v.fstype, v.mountOptions, log);
      if (mount.fallbackReason) report.warnings.push(`${name}: ${mount.fallbackReason}`);
      report.warnings.push(...mount.warnings.map((w) => `${name}: ${w}`));
      await debugPause('after-mount');
      prepared = await prepareWith(engine, name, mount.mountpoint, ctx, { oneFileSystem: true, excludes: [], liveSource: false });
    }
    report.kind = prepared.kind;
    report.warnings.push(...prepared.warnings);
    // A signal that came while the archive was being finished: the run is interrupted, and like a
    // signal during the walk nothing of this volume counts (one rule, whatever the moment).
    if (ctx.signal.aborted) throw new InterruptedError(String(ctx.signal.reason ?? 'aborted'));
    // The checks that make the archive trustworthy, before it may count.
    const problems: string[] = [];
    if (mount && !(await isStillMounted(mount))) problems.push(`the snapshot was unmounted during the backup (overflow?)`);
    const health = await snapshotHealth(snapshot.ref, { logger: log });
    if (!health.ok) problems.push(health.problem ?? 'snapshot invalid');
    if (prepared.unreadable.length) problems.push(`${prepared.unreadable.length} read error(s): ${prepared.unreadable.slice(0, 3).join('; ')}`);
    if (problems.length) {
      await prepared.abort();
      report.errors.push(...problems.map((p) => `${name}: ${p}; this backup was discarded`));
      return report;
    }
    const sidecar = await prepared.commit();
    report.status = 'ok';
    report.files = sidecar.stats.stored;
    report.bytes = archiveBytesOf(sidecar);
    report.sourceBytes = prepared.sourceBytes ?? sidecar.stats.bytesRead;
    report.archivePath = prepared.archivePath;
    report.notes = notesOf(prepared, v.fstype);
    for (const note of report.notes) log.info(`${name}: ${note}`);
    if (health.percentUsed !== undefined) log.info(`${name}: snapshot copy-on-write ${health.percentUsed.toFixed(1)}% used`);
    return report;
  } catch (e) {
    await prepared?.abort().catch(() => undefined);
    if (ctx.signal.aborted) {
      report.status = 'interrupted';
      report.errors.push(`${name}: interrupted by ${String(ctx.signal.reason)}; nothing of it was kept`);
    } else {
      report.errors.push(`${name}: ${(e as Error).message}`);
    }
    return report;
  } finally {
    // Reverse order of acquisition; each release is attempted even if the previous one failed.
    if (mount) await mount.release().catch((e: Error) => report.errors.push(`${name}: unmount failed: ${e.message}`));
    if (partition) await partition.release().catch((e: Error) => report.errors.push(`${name}: losetup -d failed: ${e.message}`));
    if (snapshot) await debugPause('before-lvremove');
    if (snapshot) await snapshot.release().catch((e: Error) => report.errors.push(`${name}: lvremove failed: ${e.message}`));
    report.durationMs = Date.now() - started;
    for (const w of report.warnings) log.warn(w);
    for (const err of report.errors) log.error(err);
    log.info(`${name}: ${report.status}${report.kind ? ` (${report.kind})` : ''} in ${(report.durationMs / 1000).toFixed(1)} s`);
  }
}

export interface Dom0Context extends VolumeJobContext {
  backupMountpoint: string;
  excludes: string[];
  /** DOM0_ROOT, normally "/". Excludes are absolute paths as seen from it. */
  root: string;
}

/** dom0's own root: no snapshot; one filesystem; changes while read are warnings. */
export async function backupDom0Root(ctx: Dom0Context): Promise<VolumeReport> {
  const name = 'dom0/root';
  const log = ctx.logger;
  const started = Date.now();
  const report: VolumeReport = { volume: name, status: 'failed', kind: null, files: 0, bytes: 0, sourceBytes: 0, durationMs: 0, warnings: [], errors: [] };
  // System paths are relative to dom0's root; BCKMNTP and MNTSOURCEDIR are host paths, excluded where they lie inside it.
  const system = ['proc', 'sys', 'dev', 'run', 'tmp', ...ctx.excludes.map((p) => p.replace(/^\/+/, ''))];
  const inside = [ctx.backupMountpoint, ctx.snapshotMountDir]
    .map((p) => path.relative(path.resolve(ctx.root), path.resolve(p)))
    .filter((r) => r && !r.startsWith('..') && !path.isAbsolute(r));
  const excludes = [...system, ...inside].map((p) => Buffer.from(p.replace(/\/+$/, ''))).filter((b) => b.length);
  let prepared: PreparedVolumeBackup | undefined;
  try {
    // dom0 always uses the tar engine: its excludes and live-source handling are the archiver's.
    prepared = await prepareWith('tar', name, ctx.root, ctx, { oneFileSystem: true, excludes, liveSource: true });
    report.kind = prepared.kind;
    report.warnings.push(...prepared.warnings);
    const sidecar = await prepared.commit();
    report.status = sidecar.status === 'partial' ? 'partial' : 'ok';
    if (sidecar.status === 'partial') report.errors.push(...sidecar.unreadable.map((u) => `${name}: ${u}`));
    report.files = sidecar.stats.stored;
    report.bytes = archiveBytesOf(sidecar);
    report.sourceBytes = sidecar.stats.bytesRead;
    report.archivePath = prepared.archivePath;
    report.notes = notesOf(prepared, '');
    for (const note of report.notes) log.info(`${name}: ${note}`);
  } catch (e) {
    await prepared?.abort().catch(() => undefined);
    report.status = ctx.signal.aborted ? 'interrupted' : 'failed';
    report.errors.push(`${name}: ${(e as Error).message}`);
  } finally {
    report.durationMs = Date.now() - started;
    // as for guest volumes: the log file must hold what the mail says
    for (const w of report.warnings) log.warn(w);
    for (const err of report.errors) log.error(err);
    log.info(`${name}: ${report.status}${report.kind ? ` (${report.kind})` : ''} in ${(report.durationMs / 1000).toFixed(1)} s`);
  }
  return report;
}
