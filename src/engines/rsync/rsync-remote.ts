/**
 * The rsync engine with its trees on another host, reached over ssh
 * (host/ssh.ts runs commands there; host/remote-target.ts parses the target and holds ssh's options): `user@host:/path` holds the same layout as a local medium,
 *   <path>/<host>/<domU>/<part>/<id>.tree/  .tree.manifest  .tree.json
 * so a remote volume folder copied onto a disk reads with the local code.
 *
 * Same two phases as prepareMirror (rsync-mirror.ts). prepare: lock the
 * remote volume folder, remove what an interrupted run left and list its
 * sidecars (one connection, repo/remote-volume.ts); fetch the previous
 * manifest, so unchanged files are not hashed again; rsync the source into
 * "<id>.tree.partial" with --link-dest=../<previous>.tree, so unchanged
 * files become hardlinks on the remote side; scan the local source into a
 * manifest in a local temp dir and upload it as ".partial". commit: one
 * connection writes the sidecar as ".partial", then renames the tree, the
 * manifest and the sidecar in that order, each durable before the next: a
 * backup without its sidecar is only debris for the next run. abort: remote
 * `rm -rf` of the partials.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '../../host/exec.js';
import { rsyncSshArgs } from '../../host/remote-target.js';
import type { Logger } from '../../util/log.js';
import { PARTIAL_SUFFIX } from '../../storage/atomic-file.js';
import { ManifestCursor, ManifestWriter } from '../../medium/manifest-file.js';
import { RemoteVolume, type RemoteMedium } from '../../repo/remote-volume.js';
import type { Sidecar } from '../../medium/sidecar.js';
import { backupIdFor } from '../../repo/volume-store.js';
import { rsyncArgs, treeSidecar } from './rsync-mirror.js';
import { TreeScanner, type ScanStats } from './tree-scanner.js';

export interface RemoteMirrorRequest extends RemoteMedium {
  sourceDir: string;
  host: string;
  volume: string;
  logger: Logger;
  now?: () => Date;
  /** Kill rsync after this long (default 12 h). */
  timeoutMs?: number;
  /** Aborting it (SIGTERM of the run) stops rsync at once; the partial tree is then removed. */
  signal?: AbortSignal;
  /** Local directory for the manifests before upload and after download (default the system temp dir). */
  tempDir?: string;
  /** rsync --compress: worth it on a slow link, and for sparse files, whose holes rsync sends as zeros. */
  compress?: boolean;
}

export interface PreparedRemoteMirror {
  id: string;
  /** The tree once committed, as rsync names it: user@host:/path/<host>/<domU>/<part>/<id>.tree */
  treePath: string;
  unreadable: string[];
  /** Directories of another filesystem kept empty (rsync --one-file-system), e.g. nested btrfs subvolumes. */
  otherFilesystems: string[];
  stats: ScanStats;
  /** Network steps: asynchronous, unlike the local engine's commit. */
  commit(): Promise<Sidecar>;
  abort(): Promise<void>;
}

export async function prepareRemoteMirror(req: RemoteMirrorRequest): Promise<PreparedRemoteMirror> {
  const log = req.logger;
  const now = req.now ?? (() => new Date());
  if (!fs.statSync(req.sourceDir).isDirectory()) throw new Error(`source ${req.sourceDir} is not a directory`);
  const remote = new RemoteVolume(req, req.host, req.volume, log);
  const opened = await remote.open();
  for (const name of opened.removed) log.warn(`${req.volume}: removed ${remote.shown}/${name}, left by an interrupted run`);

  let id: string | undefined;
  let temp: string | undefined;
  let manifest: ManifestWriter | undefined;
  const cleanUp = async (): Promise<void> => {
    manifest?.abort();
    if (temp) fs.rmSync(temp, { recursive: true, force: true });
    try {
      await remote.abort(id);
    } catch (e) {
      // Host unreachable: the next run removes the partials and takes over this dead process's lock.
      log.warn(`${req.volume}: could not remove the partial tree on ${remote.shown}: ${(e as Error).message}`);
    }
  };

  try {
    const backups = opened.backups;
    const previous = [...backups].reverse().find((b) => b.engine === 'rsync');
    const started = now();
    let chosen = backupIdFor(started);
    const newest = backups[backups.length - 1];
    if (newest && newest.id > chosen) {
      throw new Error(`${req.volume}: the newest backup ${newest.id} in ${remote.shown} is later than the clock (${chosen}); is the clock wrong? Nothing was written`);
    }
    while (backups.some((b) => b.id >= chosen)) {
      await new Promise((r) => setTimeout(r, 250));
      chosen = backupIdFor(now());
    }
    id = chosen;
    const treeName = `${id}.tree`;
    const manifestName = `${treeName}.manifest`;

    temp = fs.mkdtempSync(path.join(req.tempDir ?? os.tmpdir(), 'xenbackup-remote-'));
    let cursor: ManifestCursor | null = null;
    if (previous) {
      const prevManifest = path.join(temp, 'previous.manifest');
      try {
        await remote.fetch(previous.manifest, prevManifest);
        cursor = new ManifestCursor(prevManifest); // checks it (checksum, count)
      } catch (e) {
        log.warn(`${req.volume}: the manifest of ${previous.id} is unusable (${(e as Error).message}); hashing every file`);
      }
    }
    log.info(`${req.volume}: rsync mirror ${id} of ${req.sourceDir} to ${remote.shown}${previous ? ` (unchanged files linked to ${previous.id})` : ' (first tree: full copy)'}`);
    // rsync makes the partial tree itself; its parent is private (mode 0700), and commit makes the tree so.
    // --link-dest is relative to the destination: the previous tree is its sibling.
    const linkDest = previous ? `../${previous.archive}` : undefined;
    await run('rsync', ['-s', ...rsyncSshArgs(req.ssh), ...(req.compress ? ['--compress'] : []), ...rsyncArgs(req.sourceDir, remote.rsyncPath(treeName + PARTIAL_SUFFIX), linkDest)], {
      logger: log,
      timeoutMs: req.timeoutMs ?? 12 * 3600_000,
      idle: true,
      signal: req.signal,
    });

    manifest = new ManifestWriter(path.join(temp, manifestName), { volume: req.volume, backup: id, base: null, createdAt: started.toISOString() });
    const scanner = new TreeScanner(req.sourceDir, id, manifest, cursor, log);
    scanner.run();
    const manifestXxh64 = manifest.commit();
    await remote.upload(path.join(temp, manifestName), manifestName + PARTIAL_SUFFIX);
    fs.rmSync(temp, { recursive: true, force: true });
    temp = undefined;

    let done = false;
    const backupId = id;
    return {
      id: backupId,
      treePath: remote.rsyncPath(treeName),
      unreadable: scanner.unreadable,
      otherFilesystems: scanner.otherFilesystems,
      stats: scanner.stats,
      async commit(): Promise<Sidecar> {
        if (done) throw new Error('mirror already committed or aborted');
        done = true;
        const sidecar = treeSidecar({
          volume: req.volume,
          host: req.host,
          id: backupId,
          treeName,
          manifestName,
          startedAt: started,
          finishedAt: now(),
          stats: scanner.stats,
          unreadable: scanner.unreadable,
          manifestXxh64,
        });
        try {
          await remote.commit(backupId, JSON.stringify(sidecar, null, 1) + '\n');
        } catch (e) {
          // Whatever was renamed before the failure has no sidecar: the next run removes it as debris.
          await cleanUp();
          throw e;
        }
        return sidecar;
      },
      async abort(): Promise<void> {
        if (done) return;
        done = true;
        await cleanUp();
      },
    };
  } catch (e) {
    await cleanUp();
    throw e;
  }
}
