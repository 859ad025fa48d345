/**
 * The rsync engine (engines/engine.ts): each backup a browsable dated tree,
 * hardlinked to the previous one, on a local medium or an ssh server. Its
 * backup is rsync-backup.ts; a restore reads the tree beneath its fd where
 * it is local (tree-reader.ts) and has rsync copy the planned entries down
 * where it is not (rsync-copy-restore.ts); its checks are rsync-check.ts.
 */
import type { Storage } from '../../storage/storage.js';
import type { Engine, PreparedVolumeBackup, VolumeBackupRequest } from '../engine.js';
import { restoreTree } from '../restore-tree.js';
import { prepareMirror } from './rsync-backup.js';
import { checkRsyncBackup } from './rsync-check.js';
import { restoreByRsync } from './rsync-copy-restore.js';
import { treeMembers } from './tree-reader.js';

function unsupported(storage: Storage): string | undefined {
  return storage.rsync ? undefined : `the rsync engine needs a local medium or an ssh server, not ${storage.kind} storage (${storage.root})`;
}

async function prepareRsync(req: VolumeBackupRequest): Promise<PreparedVolumeBackup> {
  const m = await prepareMirror({
    sourceDir: req.source,
    medium: req.storage,
    host: req.host,
    volume: req.volume,
    logger: req.logger,
    now: req.now,
    signal: req.signal,
    compress: req.rsyncCompress,
  });
  return { kind: 'mirror', warnings: [], unreadable: m.unreadable, otherFilesystems: m.otherFilesystems, archivePath: m.treePath, commit: () => m.commit(), abort: () => m.abort() };
}

export const rsyncEngine: Engine = {
  name: 'rsync',
  reads: 'tree',
  chained: false,
  unsupported,
  // A tree is always a full: it builds on nothing.
  refusesBase: (base) => `an rsync tree is always a full (the previous backup ${base.id} is not built on)`,
  prepareBackup: prepareRsync,
  restore: (req, store, backup) => (store.storage.local ? restoreTree(req, store, backup, treeMembers) : restoreByRsync(req, store, backup)),
  checkBackup: checkRsyncBackup,
};
