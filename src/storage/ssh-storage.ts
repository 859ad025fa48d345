/**
 * The Storage (storage.ts) of a folder on an ssh server, `user@host:/path`:
 * the rsync engine's remote medium. Each step is one ssh connection running
 * one fixed sh script of ssh-scripts.ts with the folder's components and
 * the names as arguments, through host/exec.ts like every command; files
 * are copied up with rsync, and rsync reaches the folder itself through the
 * `rsync` capability.
 *
 * The server is trusted to run the scripts, the folder's contents are not:
 * the scripts refuse a symlink or a non-directory on the way and a file
 * that is not regular (MediumDamage here, naming the file); a failure of
 * ssh or of a command is one RemoteStepError line naming the step and the
 * server.
 */
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { CommandError, run, spawnStreaming } from '../host/exec.js';
import { formatRemoteTarget, remoteShellQuote, rsyncRemotePath, rsyncSshArgs, sshArgv, type RemoteTarget, type SshOptions } from '../host/remote-target.js';
import { runRemote } from '../host/ssh.js';
import { MediumDamage } from '../medium/medium-error.js';
import type { Logger } from '../util/log.js';
import { RemoteStepError } from './remote-step-error.js';
import { PARTIAL_SUFFIX } from '../medium/layout.js';
import * as sh from './ssh-scripts.js';
import { checkCount, checkFolder, checkName, notFound } from './storage-checks.js';
import type { Folder, LockAttempt, RsyncAccess, Storage, StoredItem } from './storage.js';

/** Steps that only look, lock or rename finish quickly; a slow link still gets a few minutes. */
const STEP_TIMEOUT_MS = 5 * 60_000;
/** An upload of a manifest (hundreds of MB), as remote-volume.ts allows it. */
const COPY_TIMEOUT_MS = 3600_000;
/** A stream is read as fast as its reader consumes it: a restore of a large archive may take most of a day. */
const STREAM_TIMEOUT_MS = 24 * 3600_000;

const PARTIAL = PARTIAL_SUFFIX;

/** NUL-terminated records of a script's output. */
function records(stdout: string): string[] {
  const parts = stdout.split('\0');
  parts.pop();
  return parts;
}

function byName<T>(key: (x: T) => string): (a: T, b: T) => number {
  return (a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);
}

/** One step: its label (the script's $0, so `ps` on the server says which step runs), the folder, and the names it acts on. */
interface Step {
  label: string;
  script: string;
  folder: Folder;
  names: readonly string[];
  args: readonly string[];
}

export class SshStorage implements Storage {
  readonly kind = 'ssh';
  readonly root: string;
  readonly rsync: RsyncAccess;

  constructor(
    readonly target: RemoteTarget,
    readonly ssh: SshOptions,
    private readonly log: Logger,
  ) {
    this.root = formatRemoteTarget(target);
    this.rsync = {
      location: (folder, name) => {
        this.check(folder, ...(name === undefined ? [] : [name]));
        return rsyncRemotePath(target, this.remotePath(folder, name));
      },
      // -s: names travel to the remote rsync as they are, not split again by its shell.
      args: ['-s', ...rsyncSshArgs(ssh)],
    };
  }

  /** The absolute path on the server (components are not checked here: callers check first). */
  private remotePath(folder: Folder, name?: string): string {
    return path.posix.join(this.target.path, ...folder, ...(name === undefined ? [] : [name]));
  }

  show(folder: Folder, name?: string): string {
    const base = this.target.path.replace(/\/+$/, '');
    return formatRemoteTarget(this.target, [base, ...folder, ...(name === undefined ? [] : [name])].join('/'));
  }

  /** Checks the folder and names before any connection is made. */
  private check(folder: Folder, ...names: string[]): void {
    checkFolder(folder, this.show(folder));
    for (const n of names) checkName(n, this.show(folder, n));
  }

  private argv(s: Step): string[] {
    return ['sh', '-c', s.script, s.label, this.target.path, String(s.folder.length), ...s.folder, ...s.args];
  }

  /** What a failed step means: damage, an absent folder or file, or a RemoteStepError naming the step and the server. */
  private failure(e: unknown, s: Step): unknown {
    if (!(e instanceof CommandError)) return e;
    const k = s.folder.length;
    const at = (i: number): string => (i < k ? this.show(s.folder.slice(0, i + 1)) : this.show(s.folder, s.names[i - k] ?? s.names[0]));
    const marked = (letter: string): RegExpExecArray | undefined =>
      e.stderr
        .split('\n')
        .reverse()
        .map((l) => new RegExp(`^${letter}(\\d+)(?: (.*))?$`).exec(l))
        .find((m) => m !== null) ?? undefined;
    if (e.exitCode === 65) {
      const m = marked('D');
      if (m) return new MediumDamage(at(Number(m[1])), m[2] ?? 'is damaged');
    }
    if (e.exitCode === 66) return notFound(this.show(s.folder), 'no such folder');
    if (e.exitCode === 67) return notFound(at(Number(marked('M')?.[1] ?? k)));
    return new RemoteStepError(`${s.label} on ${this.show(s.folder)} failed: ${e.reason}`, e);
  }

  /** Runs a step to its end; its output as text. */
  private async step(s: Step, input?: Buffer): Promise<string> {
    try {
      return (await runRemote(this.target, this.ssh, this.argv(s), { input, logger: this.log, timeoutMs: STEP_TIMEOUT_MS, quiet: true })).stdout;
    } catch (e) {
      throw this.failure(e, s);
    }
  }

  /**
   * Starts a reading step whose script answers 'O' once its checks passed
   * and then sends the bytes: resolves to a stream of those bytes, which
   * ends only when the step succeeded (a step failing midway destroys it
   * with the error, so a cut-off file never looks complete). Destroying the
   * stream early ends the connection.
   */
  private openStep(s: Step, timeoutMs: number): Promise<Readable> {
    const command = sshArgv(this.target, this.ssh, this.argv(s).map(remoteShellQuote).join(' '));
    const { child, done } = spawnStreaming('ssh', command, { stdin: 'ignore', logger: this.log, quiet: true, timeoutMs });
    const out = child.stdout!;
    const pass = new PassThrough();
    let started = false;
    let finished = false;
    return new Promise((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        out.off('data', onData);
        if (chunk[0] !== 0x4f) {
          child.kill('SIGTERM');
          reject(new Error(`${s.label} on ${this.show(s.folder)}: unexpected answer from the server`));
          return;
        }
        started = true;
        if (chunk.length > 1) pass.write(chunk.subarray(1));
        out.pipe(pass, { end: false });
        resolve(pass);
      };
      out.on('data', onData);
      pass.on('close', () => {
        if (!finished) child.kill('SIGTERM');
      });
      done.then(
        () => {
          finished = true;
          if (started) pass.end();
          else reject(new Error(`${s.label} on ${this.show(s.folder)}: the server sent nothing`));
        },
        (e: unknown) => {
          finished = true;
          const err = this.failure(e, s);
          if (started) pass.destroy(err as Error);
          else reject(err);
        },
      );
    });
  }

  async list(folder: Folder): Promise<StoredItem[] | undefined> {
    this.check(folder);
    let out: string;
    try {
      out = await this.step({ label: 'xenbackup-list', script: sh.LIST, folder, names: [], args: [] });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    const items = records(out).map((r): StoredItem => {
      const slash = r.indexOf('/');
      const type = r[0] === 'f' ? 'file' : r[0] === 'd' ? 'dir' : 'other';
      return { name: r.slice(slash + 1), type, size: type === 'file' ? Number(r.slice(1, slash)) : 0 };
    });
    return items.sort(byName((i) => i.name));
  }

  async listFolders(folder: Folder): Promise<string[]> {
    this.check(folder);
    try {
      return records(await this.step({ label: 'xenbackup-list-folders', script: sh.LIST_FOLDERS, folder, names: [], args: [] })).sort(byName((n) => n));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  async ensureFolder(folder: Folder): Promise<void> {
    this.check(folder);
    await this.step({ label: 'xenbackup-mkdir', script: sh.ENSURE_FOLDER, folder, names: [], args: [] });
  }

  async read(folder: Folder, name: string, maxBytes: number): Promise<Buffer> {
    this.check(folder, name);
    checkCount(maxBytes, 'maxBytes', this.show(folder, name));
    const stream = await this.openStep({ label: 'xenbackup-read', script: sh.READ, folder, names: [name], args: [name, String(maxBytes)] }, STEP_TIMEOUT_MS);
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of stream as AsyncIterable<Buffer>) {
      n += c.length;
      // The size was checked before the read; a file that grew since is refused all the same.
      if (n > maxBytes) {
        stream.destroy();
        throw new MediumDamage(this.show(folder, name), `is more than the ${maxBytes} bytes it can be`);
      }
      chunks.push(c);
    }
    return Buffer.concat(chunks);
  }

  async readRange(folder: Folder, name: string, offset: number, length: number): Promise<Buffer> {
    this.check(folder, name);
    checkCount(offset, 'offset', this.show(folder, name));
    checkCount(length, 'length', this.show(folder, name));
    const s = { label: 'xenbackup-read-range', script: sh.READ_RANGE, folder, names: [name], args: [name, String(offset), String(length)] };
    const chunks: Buffer[] = [];
    for await (const c of (await this.openStep(s, STEP_TIMEOUT_MS)) as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks);
  }

  async openRead(folder: Folder, name: string, offset = 0): Promise<Readable> {
    this.check(folder, name);
    checkCount(offset, 'offset', this.show(folder, name));
    return this.openStep({ label: 'xenbackup-open-read', script: sh.OPEN_READ, folder, names: [name], args: [name, String(offset)] }, STREAM_TIMEOUT_MS);
  }

  async write(folder: Folder, name: string, data: Buffer): Promise<void> {
    this.check(folder, name);
    await this.step({ label: 'xenbackup-write', script: sh.WRITE, folder, names: [name], args: [name, String(data.length)] }, data);
  }

  async upload(folder: Folder, name: string, localFile: string): Promise<void> {
    this.check(folder, name);
    const s = { label: 'xenbackup-upload', script: sh.UPLOAD_CHECK, folder, names: [name], args: [name] };
    await this.step(s);
    try {
      // -s: the remote path reaches the server as one literal argument; -p with --chmod: mode 0600 whatever the local file's.
      await run('rsync', [...this.rsync.args, '-tp', '--chmod=F600', localFile, this.rsync.location(folder, name)], { logger: this.log, timeoutMs: COPY_TIMEOUT_MS });
    } catch (e) {
      throw this.failure(e, s);
    }
  }

  async remove(folder: Folder, name: string): Promise<void> {
    this.check(folder, name);
    try {
      await this.step({ label: 'xenbackup-remove', script: sh.REMOVE, folder, names: [name], args: [name] });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
  }

  stagedName(name: string): string {
    return name + PARTIAL;
  }

  async publish(folder: Folder, names: readonly string[]): Promise<void> {
    this.check(folder, ...names);
    if (names.length === 0) return;
    await this.step({ label: 'xenbackup-publish', script: sh.PUBLISH, folder, names: names.map((n) => this.stagedName(n)), args: [...names] });
  }

  async tryLock(folder: Folder, name: string, holderText: string): Promise<LockAttempt> {
    this.check(folder, name);
    const out = await this.step({ label: 'xenbackup-lock', script: sh.TRY_LOCK, folder, names: [name], args: [name, holderText] });
    if (out === 'L') return { taken: true };
    if (out.startsWith('B')) return { taken: false, holderText: out.slice(1) };
    throw new Error(`${this.show(folder, name)}: unexpected answer from the server (${JSON.stringify(out.slice(0, 80))})`);
  }

  async unlock(folder: Folder, name: string, holderText: string): Promise<void> {
    this.check(folder, name);
    try {
      await this.step({ label: 'xenbackup-unlock', script: sh.UNLOCK, folder, names: [name], args: [name, holderText] });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
  }

  async bytesHeld(folder: Folder, names: readonly string[]): Promise<number> {
    this.check(folder, ...names);
    if (names.length === 0) return 0;
    try {
      const out = await this.step({ label: 'xenbackup-bytes-held', script: sh.BYTES_HELD, folder, names, args: [...names] });
      const n = Number(out.trim());
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${this.show(folder)}: unexpected answer from the server (${JSON.stringify(out.slice(0, 80))})`);
      return n;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw e;
    }
  }

  async freeBytes(): Promise<number | undefined> {
    try {
      const r = await runRemote(this.target, this.ssh, ['df', '-Pk', '--', this.target.path], { logger: this.log, timeoutMs: STEP_TIMEOUT_MS, quiet: true });
      const kib = Number(r.stdout.trim().split('\n')[1]?.trim().split(/\s+/)[3]);
      return Number.isFinite(kib) ? kib * 1024 : undefined;
    } catch (e) {
      this.log.debug(`free space of ${this.root}: ${(e as Error).message}`);
      return undefined;
    }
  }
}
