/**
 * What list, ls, prune and verify share for a `--medium user@host:/path`
 * (the rsync engine's remote target; common.ts resolveMedium tells it from
 * a directory): the remote host's volumes, and a local copy of its index
 * (the sidecars, and for ls one manifest) in a temp dir, so the local code
 * (VolumeStore, list, ls) reads it unchanged. Paths of that copy are shown
 * as the remote ones.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fetchRemoteIndex } from '../engines/rsync/rsync-remote-restore.js';
import { CommandError } from '../host/exec.js';
import { runRemote } from '../host/ssh.js';
import { chooseBackup } from '../engines/restore.js';
import { RestoreError } from '../engines/restore-writer.js';
import { fileXxh64 } from '../medium/manifest-file.js';
import { listRemoteVolumes, RemoteVolume, type RemoteMedium } from '../repo/remote-volume.js';
import type { Sidecar } from '../medium/sidecar.js';
import { parseVolumeName, VolumeStore } from '../repo/volume-store.js';
import type { Logger } from '../util/log.js';
import { CliError, EXIT } from './common.js';

/** A copy of the remote index: the medium to read with the local code, and how to show its paths. */
export interface RemoteIndex {
  /** The temp dir laid out as a local medium: <dir>/<host>/<domU>/<part>/. */
  medium: string;
  /** A path or text with the copy's paths written as user@host:/path/... */
  show(text: string): string;
}

/**
 * Copies the sidecars of every volume of `host` (no trees, no manifests)
 * into a temp dir, runs `fn` on it, removes it.
 */
export async function withRemoteIndex<T>(m: RemoteMedium, shown: string, host: string, log: Logger, fn: (index: RemoteIndex) => Promise<T> | T): Promise<T> {
  const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'xenbackup-remote-index-'));
  try {
    try {
      await fetchRemoteIndex(m, host, temp, log, { manifests: false });
    } catch (e) {
      // No folder for this host there yet: no backups, not a failure (rsync's exit 23 names the missing source),
      // unless the medium's own folder is missing: then it is not available (exit 4).
      if (!(e instanceof CommandError && e.exitCode === 23 && /change_dir .* failed: No such file or directory/.test(e.stderr))) throw e;
      await requireRemoteMediumDir(m, shown, log);
    }
    const remoteRoot = shown.replace(/\/+$/, '');
    return await fn({ medium: temp, show: (text) => text.split(temp).join(remoteRoot) });
  } finally {
    fs.rmSync(temp, { recursive: true, force: true });
  }
}

/**
 * A remote medium whose folder does not exist on its host is not available
 * (exit 4, as a local one), not an empty medium. Asked only when nothing was
 * found there, so a medium with backups costs no extra connection.
 */
export async function requireRemoteMediumDir(m: RemoteMedium, shown: string, log: Logger): Promise<void> {
  try {
    await runRemote(m.target, m.ssh, ['test', '-d', m.target.path], { logger: log, timeoutMs: 60_000, quiet: true });
  } catch (e) {
    // test's exit 1: not there (ssh's own failures are 255 and stay what they are)
    if (e instanceof CommandError && e.exitCode === 1) throw new CliError(`the backup medium ${shown} is not available: ${m.target.path} is not a directory on ${m.target.host}`, EXIT.medium);
    throw e;
  }
}

/** The volumes to work on: those named (each must have a folder there), else every volume of `host` on the remote medium. */
export async function remoteVolumesFor(m: RemoteMedium, shown: string, host: string, volumes: string[], log: Logger): Promise<string[]> {
  for (const v of volumes) {
    try {
      parseVolumeName(v);
    } catch (e) {
      throw new CliError((e as Error).message);
    }
  }
  const there = await listRemoteVolumes(m, host, log);
  if (there.length === 0) await requireRemoteMediumDir(m, shown, log);
  if (volumes.length === 0) return there;
  const missing = volumes.filter((v) => !there.includes(v));
  if (missing.length) throw new CliError(`no backups of ${missing.join(', ')} on ${shown} for host ${host}`);
  return volumes;
}

/**
 * For ls: the backup at `at` (default the newest) of one remote volume and
 * its manifest, copied into `index` and checked against the sidecar's
 * xxh64, so the local ls reads it from a VolumeStore.
 */
export async function fetchRemoteManifest(m: RemoteMedium, index: RemoteIndex, host: string, volume: string, at: Date | undefined, log: Logger): Promise<{ store: VolumeStore; backup: Sidecar }> {
  const store = new VolumeStore(index.medium, host, volume);
  if (!store.exists() || store.list().length === 0) throw new CliError(`unknown volume ${volume}: no backups of it on ${index.show(index.medium)} for host ${host}`);
  let backup: Sidecar;
  try {
    backup = chooseBackup(store, at, log);
  } catch (e) {
    if (e instanceof RestoreError) throw new CliError(index.show(e.message));
    throw e;
  }
  const remote = new RemoteVolume(m, host, volume, log);
  const local = store.pathOf(backup.manifest);
  await remote.fetch(backup.manifest, local);
  const got = fileXxh64(local);
  if (got !== backup.manifestXxh64) {
    throw new CliError(`${remote.shown}/${backup.manifest}: xxh64 ${got} differs from its sidecar's ${backup.manifestXxh64} (damaged or replaced)`, EXIT.failed);
  }
  return { store, backup };
}
