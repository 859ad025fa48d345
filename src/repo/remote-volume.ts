/**
 * One volume's folder on a remote medium (`user@host:/path`, reached over
 * ssh by host/ssh.ts): <path>/<host>/<domU>/<part>/, laid out as on a local
 * medium (volume-store.ts). The remote counterpart of VolumeStore and
 * volume-lock.ts: list the sidecars, take and release the lock, remove what
 * an interrupted run left, commit and abort a backup, copy files in and out.
 *
 * Each step is one ssh connection running a short POSIX sh script (`sh -c
 * SCRIPT LABEL ARGS...`, every argument quoted by runRemote), so a step is
 * all-or-nothing on the remote side as far as the shell allows, and the
 * remote host needs nothing but sh, coreutils and rsync.
 *
 * The lock holds this host's pid, process start time and boot id, like the
 * local one: only this host writes below <path>/<host>/, so whether the
 * holder still runs is decided here, locally (a holder naming another host
 * is never taken over).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CommandError, run } from '../host/exec.js';
import { holderAlive, type LockHolder } from '../host/lock.js';
import { formatRemoteTarget, rsyncRemotePath, rsyncSshArgs, type RemoteTarget, type SshOptions } from '../host/remote-target.js';
import { runRemote } from '../host/ssh.js';
import type { Logger } from '../util/log.js';
import { checkHostName } from '../core/names.js';
import { parseSidecar, type Sidecar } from '../medium/sidecar.js';
import { RemoteStepError } from '../storage/remote-step-error.js';
import { VOLUME_LOCK_NAME, VolumeBusyError } from './volume-lock.js';
import { parseVolumeName } from './volume-store.js';

/** A remote medium: where, and how to reach it. */
export interface RemoteMedium {
  target: RemoteTarget;
  ssh: SshOptions;
}

export { RemoteStepError };

/** Steps that only look, lock or rename finish quickly; a slow link still gets a few minutes. */
const STEP_TIMEOUT_MS = 5 * 60_000;
const COPY_TIMEOUT_MS = 3600_000;
const LOCK = VOLUME_LOCK_NAME;

/** The remote volume folder: <path>/<host>/<domU>/<part>. */
export function remoteVolumeDir(target: RemoteTarget, host: string, volume: string): string {
  checkHostName(host);
  const { domU, part } = parseVolumeName(volume);
  return path.posix.join(target.path, host, domU, part);
}

// Prints each name (N) and each sidecar (J, then its text), NUL-separated: JSON holds no NUL.
const LIST = `
for f in * .[!.]* ..?*; do
  if [ -e "$f" ] || [ -L "$f" ]; then printf 'N%s\\0' "$f"; fi
done
for f in *.json; do
  if [ -f "$f" ]; then printf 'J%s\\0' "$f"; cat -- "$f" || exit 1; printf '\\0'; fi
done`;

/** $1 dir. */
const LIST_SCRIPT = `set -u
[ -d "$1" ] || exit 0
cd -- "$1" || exit 1
${LIST}`;

/**
 * $1 dir, $2 lock holder: make the folder, take the lock (L) or say who
 * holds it (B), remove debris (R: partials; trees and manifests whose
 * sidecar is absent; a damaged sidecar still keeps its tree), and list.
 */
const OPEN_SCRIPT = `set -u
umask 077
mkdir -p -- "$1" && cd -- "$1" || exit 1
tmp=${LOCK}.$$
printf '%s\\n' "$2" > "$tmp" || exit 1
if ln -- "$tmp" ${LOCK} 2>/dev/null; then
  rm -f -- "$tmp"; printf 'L\\0'
else
  rm -f -- "$tmp"; printf 'B%s\\0' "$(cat -- ${LOCK} 2>/dev/null)"; exit 0
fi
for f in *.partial; do
  if [ -e "$f" ] || [ -L "$f" ]; then rm -rf -- "$f" || exit 1; printf 'R%s\\0' "$f"; fi
done
for f in [0-9]*Z.tree [0-9]*Z.tree.manifest; do
  if [ -e "$f" ] && [ ! -e "\${f%%.tree*}.tree.json" ]; then rm -rf -- "$f" || exit 1; printf 'R%s\\0' "$f"; fi
done
${LIST}`;

/** $1 dir, $2 holder: remove the lock if it is still the one expected. */
const UNLOCK_SCRIPT = `set -u
cd -- "$1" || exit 1
if [ "$(cat -- ${LOCK} 2>/dev/null)" = "$2" ]; then rm -f -- ${LOCK}; fi
exit 0`;

/**
 * $1 dir, $2 id, $3 holder, $4 sidecar length; the sidecar on stdin. The
 * sidecar is written as .partial and its length checked (a dropped
 * connection ends stdin early, which cat takes for the end); then tree,
 * manifest and sidecar are renamed in that order, each durable before the
 * next, and the lock released.
 */
const COMMIT_SCRIPT = `set -u
cd -- "$1" || exit 1
t=$2.tree
durable() { sync -- "$@" 2>/dev/null || sync; }
if [ ! -d "$t.partial" ]; then echo "$1/$t.partial is missing" >&2; exit 1; fi
if [ ! -f "$t.manifest.partial" ]; then echo "$1/$t.manifest.partial is missing" >&2; exit 1; fi
if [ -e "$t" ] || [ -L "$t" ]; then echo "$1/$t already exists" >&2; exit 1; fi
umask 077
cat > "$t.json.partial" || exit 1
n=$(wc -c < "$t.json.partial") || exit 1
if [ $n -ne "$4" ]; then echo "$1/$t.json.partial: $n of $4 bytes arrived" >&2; rm -f -- "$t.json.partial"; exit 1; fi
chmod 700 -- "$t.partial" && mv -- "$t.partial" "$t" && durable . || exit 1
durable "$t.manifest.partial" && mv -- "$t.manifest.partial" "$t.manifest" && durable . || exit 1
durable "$t.json.partial" && mv -- "$t.json.partial" "$t.json" && durable . || exit 1
if [ "$(cat -- ${LOCK} 2>/dev/null)" = "$3" ]; then rm -f -- ${LOCK}; fi
exit 0`;

/** $1 dir, $2 id, $3 holder: remove this backup's partials and release the lock. */
const ABORT_SCRIPT = `set -u
cd -- "$1" 2>/dev/null || exit 0
t=$2.tree
rm -rf -- "$t.partial" "$t.manifest.partial" "$t.json.partial" || exit 1
if [ "$(cat -- ${LOCK} 2>/dev/null)" = "$3" ]; then rm -f -- ${LOCK}; fi
exit 0`;

/** $1 the host folder: its DOMU/PART folders. */
const VOLUMES_SCRIPT = `set -u
[ -d "$1" ] || exit 0
cd -- "$1" || exit 1
for v in */*/; do if [ -d "$v" ]; then printf '%s\\0' "\${v%/}"; fi; done`;

/** NUL-terminated records of a script's output. */
function records(stdout: string): string[] {
  const parts = stdout.split('\0');
  parts.pop();
  return parts;
}

export interface RemoteListing {
  /** Every name in the volume folder. */
  names: string[];
  /** Complete backups (a readable sidecar), oldest first. */
  backups: Sidecar[];
}

export interface OpenedVolume extends RemoteListing {
  /** Debris of interrupted runs that was removed. */
  removed: string[];
}

function lockHolder(): LockHolder {
  const stat = fs.readFileSync(`/proc/${process.pid}/stat`, 'utf8');
  const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  const bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  return { pid: process.pid, startTime, bootId, host: os.hostname(), acquiredAt: new Date().toISOString() };
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const h = JSON.parse(text) as LockHolder;
    return typeof h.pid === 'number' && typeof h.startTime === 'string' && typeof h.bootId === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

export class RemoteVolume {
  /** The folder's absolute path on the remote host. */
  readonly dir: string;
  /** The folder as user@host:/path, for messages. */
  readonly shown: string;
  /** This process's lock, as written into the lock file (remote-prune.ts releases it with its last step). */
  readonly holderText = JSON.stringify(lockHolder());

  constructor(
    readonly medium: RemoteMedium,
    readonly host: string,
    readonly volume: string,
    private readonly log: Logger,
  ) {
    this.dir = remoteVolumeDir(medium.target, host, volume);
    this.shown = formatRemoteTarget(medium.target, this.dir);
  }

  /** user@host:/path/<name> as rsync takes it. */
  rsyncPath(name: string): string {
    return rsyncRemotePath(this.medium.target, path.posix.join(this.dir, name));
  }

  private async script(label: string, script: string, args: string[], input?: string): Promise<{ stdout: string }> {
    try {
      // $0 is the label, so `ps` on the remote host says which step runs.
      return await runRemote(this.medium.target, this.medium.ssh, ['sh', '-c', script, label, ...args], { input, logger: this.log, timeoutMs: STEP_TIMEOUT_MS, quiet: true });
    } catch (e) {
      // The command line holds the whole script: one line naming the step and the reason reads better in a report.
      if (e instanceof CommandError) throw new RemoteStepError(`${label} on ${this.shown} failed: ${e.reason}`, e);
      throw e;
    }
  }

  private parseListing(recs: string[]): RemoteListing {
    const names: string[] = [];
    const backups: Sidecar[] = [];
    for (let i = 0; i < recs.length; i++) {
      const r = recs[i]!;
      if (r.startsWith('N')) names.push(r.slice(1));
      else if (r.startsWith('J')) {
        const text = recs[++i] ?? '';
        try {
          backups.push(parseSidecar(text, `${this.shown}/${r.slice(1)}`, r.slice(1)));
        } catch (e) {
          this.log.warn((e as Error).message);
        }
      }
    }
    backups.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { names, backups };
  }

  /** The folder's names and complete backups; empty when the folder does not exist. Takes no lock. */
  async list(): Promise<RemoteListing> {
    return this.parseListing(records((await this.script('xenbackup-list', LIST_SCRIPT, [this.dir])).stdout));
  }

  /**
   * Makes the folder, takes its lock, removes debris and lists it. A lock
   * whose holder no longer runs is taken over with a warning; a live one
   * is a VolumeBusyError.
   */
  async open(): Promise<OpenedVolume> {
    const lockFile = `${this.shown}/${LOCK}`;
    for (let attempt = 0; attempt < 3; attempt++) {
      const recs = records((await this.script('xenbackup-open', OPEN_SCRIPT, [this.dir, this.holderText])).stdout);
      const head = recs.shift() ?? '';
      if (head === 'L') {
        const removed: string[] = [];
        while (recs[0]?.startsWith('R')) removed.push(recs.shift()!.slice(1));
        return { ...this.parseListing(recs), removed };
      }
      if (!head.startsWith('B')) throw new Error(`${this.shown}: unexpected answer from the remote host (${JSON.stringify(head.slice(0, 80))})`);
      const text = head.slice(1);
      const holder = parseHolder(text);
      if (holder && holder.host && holder.host !== os.hostname()) {
        throw new Error(
          `${this.volume}: ${lockFile} is held by host ${holder.host} (pid ${holder.pid} since ${holder.acquiredAt}); do two hosts write into one host folder? Remove the lock by hand once that host no longer backs up there`,
        );
      }
      if (holder && (await holderAlive(holder))) throw new VolumeBusyError(this.volume, lockFile, holder);
      this.log.warn(`${this.volume}: taking over ${lockFile} from ${holder ? `pid ${holder.pid} (${holder.acquiredAt}), which is no longer running` : 'an unreadable lock'}`);
      await this.script('xenbackup-unlock', UNLOCK_SCRIPT, [this.dir, text]);
    }
    throw new Error(`${this.volume}: could not take ${lockFile} in 3 attempts`);
  }

  /** Writes the sidecar and renames tree, manifest and sidecar into place (see COMMIT_SCRIPT); releases the lock. */
  async commit(id: string, sidecarText: string): Promise<void> {
    await this.script('xenbackup-commit', COMMIT_SCRIPT, [this.dir, id, this.holderText, String(Buffer.byteLength(sidecarText))], sidecarText);
  }

  /** Removes the partials of backup `id` (if one was begun) and releases the lock. */
  async abort(id: string | undefined): Promise<void> {
    if (id === undefined) await this.script('xenbackup-unlock', UNLOCK_SCRIPT, [this.dir, this.holderText]);
    else await this.script('xenbackup-abort', ABORT_SCRIPT, [this.dir, id, this.holderText]);
  }

  /** Copies one file of the folder down (byte-exact and streamed: a manifest may be hundreds of MB). */
  async fetch(name: string, localPath: string): Promise<void> {
    await run('rsync', ['-s', ...rsyncSshArgs(this.medium.ssh), '-t', this.rsyncPath(name), localPath], { logger: this.log, timeoutMs: COPY_TIMEOUT_MS });
  }

  /** Uploads a local file into the folder under `name`, mode 0600 (a manifest lists every file of a guest). */
  async upload(localPath: string, name: string): Promise<void> {
    await run('rsync', ['-s', ...rsyncSshArgs(this.medium.ssh), '-tp', '--chmod=F600', localPath, this.rsyncPath(name)], { logger: this.log, timeoutMs: COPY_TIMEOUT_MS });
  }
}

/** The complete backups of one volume on the remote medium, oldest first (none when its folder does not exist). */
export async function listRemote(m: RemoteMedium, host: string, volume: string, log: Logger): Promise<Sidecar[]> {
  return (await new RemoteVolume(m, host, volume, log).list()).backups;
}

/** The volumes (DOMU/PART) that have a folder under <path>/<host>/ on the remote medium, sorted. */
export async function listRemoteVolumes(m: RemoteMedium, host: string, log: Logger): Promise<string[]> {
  remoteVolumeDir(m.target, host, 'a/b'); // checks the host folder name
  const dir = path.posix.join(m.target.path, host);
  const r = await runRemote(m.target, m.ssh, ['sh', '-c', VOLUMES_SCRIPT, 'xenbackup-volumes', dir], { logger: log, timeoutMs: STEP_TIMEOUT_MS, quiet: true }).catch((e: unknown) => {
    throw e instanceof CommandError ? new RemoteStepError(`listing the volumes in ${formatRemoteTarget(m.target, dir)} failed: ${e.reason}`, e) : e;
  });
  return records(r.stdout)
    .filter((v) => /^[A-Za-z0-9._+-]+\/[A-Za-z0-9._+-]+$/.test(v))
    .sort();
}
