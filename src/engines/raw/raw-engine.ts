/**
 * The raw engine (engines/engine.ts): a block device's image in changed
 * chunks, for volumes that are not mounted (fstype raw). Its backup is
 * raw-backup.ts, its restore raw-restore.ts (the whole image, to a file or a
 * block device), its checks raw-verify.ts; `ls` explains how to look inside
 * an image instead of listing it (raw-ls.ts).
 */
import { formatBytes, formatCount } from '../../util/human-format.js';
import { needsLocalFiles, type Engine, type PreparedVolumeBackup, type VolumeBackupRequest } from '../engine.js';
import { RestoreError } from '../restore-errors.js';
import { prepareRawBackup, refuseRawBase } from './raw-backup.js';
import { rawLsMessage } from './raw-ls.js';
import { restoreRawBackup } from './raw-restore.js';
import { checkRawBackup } from './raw-verify.js';

async function prepareRaw(req: VolumeBackupRequest): Promise<PreparedVolumeBackup> {
  const show = req.progress;
  const p = await prepareRawBackup({
    ...req,
    device: req.source,
    medium: req.storage,
    onProgress: show ? (q) => show(`${req.volume}: chunk ${q.chunk + 1} of ${q.chunks}, ${formatBytes(q.bytesRead)} read`) : undefined,
  });
  const i = p.info;
  return {
    kind: p.decision.kind,
    warnings: p.warnings,
    unreadable: [],
    archivePath: p.archivePath,
    commit: () => p.commit(),
    abort: () => p.abort(),
    sourceBytes: i.imageBytes,
    summary:
      `raw image of ${formatBytes(i.imageBytes)} in ${formatCount(i.chunks)} chunks of ${formatBytes(i.chunkSize)}: ` +
      `${formatCount(i.storedChunks)} stored, ${formatCount(i.zeroChunks)} zero, ${formatCount(i.unchangedChunks)} unchanged`,
  };
}

export const rawEngine: Engine = {
  name: 'raw',
  reads: 'device',
  chained: true,
  unsupported: needsLocalFiles('raw'),
  refusesBase: refuseRawBase,
  prepareBackup: prepareRaw,
  async restore(req, store, backup) {
    if (req.paths.length) {
      throw new RestoreError(
        `${req.volume}: the chosen backup is a raw image of a block device, not a file tree: it is restored whole (xenbackup restore ${req.volume} --to FILE_OR_DEVICE), without paths; see xenbackup ls ${req.volume}`,
      );
    }
    const r = await restoreRawBackup({ volume: req.volume, to: req.targetDir, force: req.force, logger: req.logger, signal: req.signal }, store, backup);
    return {
      backup: r.backup,
      entries: 1,
      files: 1,
      bytes: r.bytesWritten,
      errors: [],
      summary:
        `restored the raw image of backup ${r.backup.id} (${formatBytes(r.imageBytes)}, xxh64 ${r.imageXxh64} as recorded) to the ${r.targetKind} ${req.targetDir}: ` +
        `${r.chunksWritten} chunks written, ${r.zeroChunks} zero chunks${r.targetKind === 'file' ? ' left as holes' : ' written as zeros'}, ` +
        `${formatBytes(r.bytesWritten)} written, from ${r.containers.length} container(s): ${r.containers.join(', ')}`,
      warnings: r.warnings,
    };
  },
  async checkBackup(req) {
    const r = await checkRawBackup(req.store, req.backup, req.depth, { logger: req.logger, signal: req.signal });
    return { bytes: r.bytes, members: r.chunks, problems: r.problems, notes: [] };
  },
  lsInstead: (backup, volume) => (backup.engine === 'raw' ? rawLsMessage(backup, volume) : []),
};
