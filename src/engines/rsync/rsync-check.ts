/**
 * verify of one rsync tree (engines/verify.ts does the chains and the
 * manifests): quick, that the tree is there; full, every entry of the tree
 * against the manifest (verify-tree.ts). On a storage whose files are not
 * local (an ssh server, which runs no xenbackup) the tree is copied down
 * first (rsync -aHAX --numeric-ids, into the temp dir: it needs room for
 * one tree) and the problems name the remote paths.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '../../host/exec.js';
import { localCopy } from '../../repo/local-copy.js';
import type { BackupCheck, BackupCheckRequest } from '../engine.js';
import { checkTree } from './verify-tree.js';

export async function checkRsyncBackup(req: BackupCheckRequest): Promise<BackupCheck> {
  const { store, backup: sc } = req;
  const shown = store.show(sc.archive);
  const out: BackupCheck = { bytes: 0, members: 0, problems: [], notes: [] };
  const item = ((await store.storage.list(store.folder)) ?? []).find((i) => i.name === sc.archive);
  if (item?.type !== 'dir') {
    out.problems.push({ file: shown, what: 'missing (the rsync tree of this backup)' });
    return out;
  }
  if (req.depth !== 'full') return out;
  if (!req.manifestTrusted) {
    out.problems.push({ file: shown, what: 'content not checked (its manifest is damaged)' });
    return out;
  }
  if (store.storage.local) {
    const content = await checkTree(store.pathOf(sc.archive), store.pathOf(sc.manifest), req.signal);
    return { bytes: content.bytes ?? 0, members: content.members, problems: content.problems, notes: content.notes };
  }
  const rsync = store.storage.rsync!;
  const temp = fs.mkdtempSync(path.join(req.tempDir ?? os.tmpdir(), 'xenbackup-verify-tree-'));
  try {
    // Inside temp: the copy goes with it, whatever fails.
    const manifest = await localCopy(store, sc.manifest, temp);
    const tree = path.join(temp, sc.archive);
    await run('rsync', [...rsync.args, '-aHAX', '--numeric-ids', '--sparse', rsync.location(store.folder, sc.archive) + '/', tree + '/'], {
      logger: req.logger,
      timeoutMs: 12 * 3600_000,
      signal: req.signal,
    });
    const content = await checkTree(tree, manifest.path, req.signal);
    const remote = (s: string): string => s.split(tree).join(shown);
    return {
      bytes: content.bytes ?? 0,
      members: content.members,
      problems: content.problems.map((p) => ({ ...p, file: remote(p.file), what: remote(p.what) })),
      notes: content.notes.map(remote),
    };
  } finally {
    fs.rmSync(temp, { recursive: true, force: true });
  }
}
