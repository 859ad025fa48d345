/**
 * The tar engine (engines/engine.ts): a file tree in incremental tar
 * archives of independently compressed frames, which GNU tar reads. Its
 * backup is tar-backup.ts, its restore source tar-restore.ts, its checks
 * tar-check.ts.
 */
import { formatBytes, formatCount } from '../../util/human-format.js';
import { needsLocalFiles, type Engine, type PreparedVolumeBackup, type VolumeBackupRequest } from '../engine.js';
import { restoreTree } from '../restore-tree.js';
import { prepareBackup, refuseTarBase } from './tar-backup.js';
import { checkTarBackup } from './tar-check.js';
import { tarMembers } from './tar-restore.js';

async function prepareTar(req: VolumeBackupRequest): Promise<PreparedVolumeBackup> {
  const show = req.progress;
  const p = await prepareBackup({
    ...req,
    sourceDir: req.source,
    medium: req.storage,
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
  unsupported: needsLocalFiles('tar'),
  refusesBase: refuseTarBase,
  prepareBackup: prepareTar,
  restore: (req, store, backup) => restoreTree(req, store, backup, tarMembers),
  checkBackup: checkTarBackup,
};
