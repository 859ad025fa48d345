/**
 * The tar engine (engines/engine.ts): a file tree in incremental tar
 * archives of independently compressed frames, which GNU tar reads. Its
 * backup is tar-backup.ts, its restore source tar-restore.ts, its checks
 * tar-check.ts.
 */
import { formatBytes, formatCount } from '../../util/human-format.js';
import type { Storage } from '../../storage/storage.js';
import type { Engine, PreparedVolumeBackup, VolumeBackupRequest } from '../engine.js';
import { restoreTree } from '../restore-tree.js';
import { GNU_TAR_FLAG } from '../compression.js';
import { prepareBackup, refuseTarBase } from './tar-backup.js';
import { checkTarBackup } from './tar-check.js';
import { tarMembers } from './tar-restore.js';

/** The archive and manifest writers write local files (an object store will take a streaming writer). */
function unsupported(storage: Storage): string | undefined {
  return storage.local ? undefined : `the tar engine writes to a local medium, not to ${storage.kind} storage (${storage.root})`;
}

async function prepareTar(req: VolumeBackupRequest): Promise<PreparedVolumeBackup> {
  const show = req.progress;
  const p = await prepareBackup({
    sourceDir: req.source,
    medium: req.storage,
    host: req.host,
    volume: req.volume,
    compression: req.compression,
    idlePriority: req.idlePriority,
    forceFull: req.forceFull,
    fullIntervalDays: req.fullIntervalDays,
    maxChainLength: req.maxChainLength,
    fullWeekday: req.fullWeekday,
    fullMonthday: req.fullMonthday,
    oneFileSystem: req.oneFileSystem,
    excludes: req.excludes,
    liveSource: req.liveSource,
    logger: req.logger,
    now: req.now,
    signal: req.signal,
    onProgress: show ? (stats, at) => show(`${req.volume}: ${formatCount(stats.entries)} entries, ${formatBytes(stats.bytesRead)} read: ${at.toString()}`) : undefined,
  });
  return {
    kind: p.decision.kind,
    warnings: p.warnings,
    unreadable: p.unreadable,
    otherFilesystems: p.otherFilesystems,
    archivePath: p.archivePath,
    commit: () => p.commit(),
    abort: () => p.abort(),
  };
}

export const tarEngine: Engine = {
  name: 'tar',
  reads: 'tree',
  chained: true,
  tools: ['zstd'],
  unsupported,
  refusesBase: refuseTarBase,
  prepareBackup: prepareTar,
  restore: (req, store, backup) => restoreTree(req, store, backup, tarMembers),
  checkBackup: checkTarBackup,
  describe(backup, store) {
    if (backup.engine !== 'tar') return { readWith: '' };
    const flag = GNU_TAR_FLAG[backup.compression];
    return { readWith: `tar ${flag ? flag + ' ' : ''}-xf ${store.show(backup.archive)}` };
  },
};
