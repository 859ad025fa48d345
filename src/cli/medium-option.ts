/**
 * The one place a --medium value is told local or remote (resolveMedium)
 * and made a storage, for the commands that read the medium (list, ls,
 * restore, verify, prune). Its own module: `backup` and `run` need none of
 * the ssh storage's code.
 */
import fs from 'node:fs';
import type { Config } from '../config/settings.js';
import { formatRemoteTarget, isRemoteTarget, parseRemoteTarget, RemoteTargetError } from '../host/remote-target.js';
import { LocalStorage } from '../storage/local-storage.js';
import { SshStorage } from '../storage/ssh-storage.js';
import type { Storage } from '../storage/storage.js';
import type { Logger } from '../util/log.js';
import { CliError, EXIT, type SshCliOptions } from './common.js';

/**
 * A local --medium that a command reads: a directory that is there. One that
 * is not (a typo, a backup disk not mounted on it) is exit 4, as for backup,
 * never "no backups": that would read as an empty medium. A directory that
 * holds no backups of the host is an answer (the commands say so).
 */
export function requireMediumDir(dir: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' || code === 'ENOTDIR' ? 'it does not exist' : `${(e as Error).message}`;
    throw new CliError(`the backup medium ${dir} is not available: ${why}`, EXIT.medium);
  }
  if (!st.isDirectory()) throw new CliError(`the backup medium ${dir} is not available: it is not a directory`, EXIT.medium);
  return dir;
}

/** A --medium: a directory here, or `user@host:/path` (the rsync engine's remote target) reached over ssh. */
export interface ResolvedMedium {
  storage: Storage;
  /** The medium as the user named it, for messages. */
  shown: string;
  /** Why it is not available when its folder is not there. */
  missing: string;
}

/**
 * Tells a --medium value local or remote, in one place for every command,
 * and gives its storage. A remote one takes its ssh settings from the
 * options, else from the config's RSYNC_SSH_* (when a config was given),
 * else ssh's defaults.
 */
export function resolveMedium(spec: string, o: SshCliOptions, log: Logger, cfg?: Config): ResolvedMedium {
  if (!isRemoteTarget(spec)) {
    if (o.sshKey !== undefined || o.sshPort !== undefined || o.knownHosts !== undefined) {
      throw new CliError(`--ssh-key, --ssh-port and --known-hosts apply to a remote --medium (user@host:/path), not to ${spec}`);
    }
    return { storage: new LocalStorage(requireMediumDir(spec)), shown: spec, missing: 'it does not exist' };
  }
  let target;
  try {
    target = parseRemoteTarget(spec);
  } catch (e) {
    if (e instanceof RemoteTargetError) throw new CliError(`--medium: ${e.message}`);
    throw e;
  }
  const fromConfig = cfg?.rsyncTarget?.ssh ?? {};
  let port = fromConfig.port;
  if (o.sshPort !== undefined) {
    if (!/^\d{1,5}$/.test(o.sshPort) || Number(o.sshPort) < 1 || Number(o.sshPort) > 65535) throw new CliError(`--ssh-port must be a port number (1-65535), not "${o.sshPort}"`);
    port = Number(o.sshPort);
  }
  const ssh = { ...fromConfig, port, identityFile: o.sshKey ?? fromConfig.identityFile, knownHostsFile: o.knownHosts ?? fromConfig.knownHostsFile };
  return { storage: new SshStorage(target, ssh, log), shown: formatRemoteTarget(target), missing: `${target.path} is not a directory on ${target.host}` };
}

/**
 * A medium whose folder is not there is not available (exit 4), not an
 * empty medium. Asked of a remote medium only when nothing was found there,
 * so a medium with backups costs no extra connection.
 */
export async function requireMediumRoot(medium: ResolvedMedium): Promise<void> {
  if ((await medium.storage.list([])) === undefined) {
    throw new CliError(`the backup medium ${medium.shown} is not available: ${medium.missing}`, EXIT.medium);
  }
}
