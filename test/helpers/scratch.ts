/**
 * Scratch space for tests that touch the real filesystem: temporary
 * directories, small loop-mounted filesystems (a backup medium that can fill
 * up, a filesystem with specific features), and running shell commands on
 * paths whose bytes are not valid UTF-8.
 *
 * Everything is released in the test's `after` hook, also when the test
 * fails. Each helper cleans up only what it created itself, so the order in
 * which hooks run does not matter. Test-only code: it calls commands with
 * `execFileSync` directly instead of going through `src/host/exec.ts`.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** What the helpers need from `node:test`'s TestContext (or anything with an `after` hook). */
export interface CleanupContext {
  after(fn: () => unknown): void;
}

/**
 * Creates a fresh directory under the system temp dir (/tmp) and removes it
 * after the test. Anything still mounted below it is unmounted first, and the
 * removal never crosses into another filesystem.
 */
export function makeScratchDir(t: CleanupContext, prefix = 'xenbackup-test'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix.replace(/[^A-Za-z0-9._-]/g, '_')}-`));
  t.after(() => removeScratchDir(dir));
  return dir;
}

/** Removes a scratch directory: unmounts what a test left mounted inside, then deletes the tree. */
export function removeScratchDir(dir: string): void {
  for (const mountPoint of mountsBelow(dir)) {
    unmount(mountPoint);
  }
  // --one-file-system: if an unmount failed, do not delete the mounted filesystem's contents.
  execFileSync('rm', ['-rf', '--one-file-system', '--', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
}

export type LoopFsType = 'ext4' | 'xfs' | 'btrfs';

export interface LoopFsOptions {
  fsType: LoopFsType;
  sizeMiB: number;
  /** Options for `mount -o`, e.g. ['noatime']. */
  mountOptions?: string[];
}

export interface LoopFs {
  /** Where the filesystem is mounted (an empty, root-owned directory at first). */
  dir: string;
  /** The loop device, e.g. /dev/loop3. */
  device: string;
  /** The image file behind the loop device. */
  image: string;
  fsType: LoopFsType;
  sizeMiB: number;
  /** Unmounts, detaches and deletes now (idempotent; also runs after the test). */
  release(): void;
}

/**
 * Makes a small filesystem in a sparse image file, attaches it to a loop
 * device and mounts it. Released (umount, losetup -d, image deleted) after the
 * test, or earlier by `release()`. Needs root and e2fsprogs / xfsprogs /
 * btrfs-progs for the chosen type.
 *
 * Small sizes work for every type: below 300 MiB mkfs.xfs is told (through
 * its own test-environment variables) to accept the size, and below the
 * btrfs minimum of ~110 MiB btrfs is made in mixed data/metadata mode.
 */
export function withLoopFs(t: CleanupContext, opts: LoopFsOptions): LoopFs {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), `xenbackup-loop-${opts.fsType}-`));
  const image = path.join(home, 'image');
  const dir = path.join(home, 'mnt');
  let device = '';
  let mounted = false;
  let released = false;

  const release = (): void => {
    if (released) return;
    released = true;
    const problems: string[] = [];
    if (mounted) {
      try { unmount(dir); } catch (e) { problems.push(String((e as Error).message)); }
    }
    if (device) {
      try { detach(device); } catch (e) { problems.push(String((e as Error).message)); }
    }
    if (problems.length === 0) fs.rmSync(home, { recursive: true, force: true });
    else throw new Error(`withLoopFs cleanup of ${dir} (${device}) left things behind: ${problems.join('; ')}`);
  };
  // Registered before anything exists, so a failure half-way is cleaned up too.
  t.after(release);

  fs.mkdirSync(dir);
  fs.closeSync(fs.openSync(image, 'w'));
  fs.truncateSync(image, opts.sizeMiB * 1024 * 1024);
  makeFilesystem(image, opts.fsType, opts.sizeMiB);
  device = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8' }).trim();
  const mountArgs = opts.mountOptions?.length ? ['-o', opts.mountOptions.join(',')] : [];
  execFileSync('mount', ['-t', opts.fsType, ...mountArgs, device, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  mounted = true;
  return { dir, device, image, fsType: opts.fsType, sizeMiB: opts.sizeMiB, release };
}

function makeFilesystem(image: string, fsType: LoopFsType, sizeMiB: number): void {
  const quiet = { stdio: ['ignore', 'ignore', 'pipe'] as ['ignore', 'ignore', 'pipe'] };
  switch (fsType) {
    case 'ext4':
      execFileSync('mkfs.ext4', ['-q', '-F', image], quiet);
      return;
    case 'xfs': {
      // xfsprogs >= 5.19 refuses < 300 MB unless it believes it runs under xfstests.
      const env = sizeMiB < 300 ? { ...process.env, TEST_DIR: '1', TEST_DEV: '1', QA_CHECK_FS: '1' } : process.env;
      execFileSync('mkfs.xfs', ['-q', '-f', image], { ...quiet, env });
      return;
    }
    case 'btrfs':
      execFileSync('mkfs.btrfs', ['-q', '-f', ...(sizeMiB < 128 ? ['--mixed'] : []), image], quiet);
      return;
  }
}

function unmount(mountPoint: string): void {
  // A process still inside the mount (a test's child that has not exited yet) makes umount
  // fail with EBUSY for a moment; after a few tries, detach lazily so the test run goes on.
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      execFileSync('umount', [mountPoint], { stdio: ['ignore', 'ignore', 'pipe'] });
      return;
    } catch {
      if (!isMountPoint(mountPoint)) return;
      sleepMs(100 * (attempt + 1));
    }
  }
  execFileSync('umount', ['--lazy', mountPoint], { stdio: ['ignore', 'ignore', 'pipe'] });
}

function detach(device: string): void {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      execFileSync('losetup', ['--detach', device], { stdio: ['ignore', 'ignore', 'pipe'] });
      return;
    } catch (e) {
      if (attempt === 4) throw new Error(`losetup --detach ${device} failed: ${(e as Error).message.split('\n')[0]}`);
      sleepMs(100 * (attempt + 1));
    }
  }
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Mount points of this mount namespace, from /proc/self/mountinfo (octal escapes decoded). */
export function mountPoints(): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => line.split(' ')[4].replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))));
}

export function isMountPoint(dir: string): boolean {
  return mountPoints().includes(path.resolve(dir));
}

/** Mount points at or below `dir`, deepest first (the order to unmount them in). */
function mountsBelow(dir: string): string[] {
  const root = path.resolve(dir);
  return mountPoints()
    .filter((m) => m === root || m.startsWith(root + '/'))
    .sort((a, b) => b.length - a.length);
}

/**
 * Quotes raw path bytes for bash as `$'\xHH...'`, so a command can name a
 * file whose name is not valid UTF-8 or contains a newline (child_process
 * arguments are strings and would turn such bytes into U+FFFD).
 */
export function bashQuote(bytes: Buffer | string): string {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  let out = "$'";
  for (const byte of buf) out += '\\x' + byte.toString(16).padStart(2, '0');
  return out + "'";
}

/** Runs a bash script (with `set -e`); on failure throws with its stderr. Returns stdout. */
export function runBash(script: string, what = 'bash script'): string {
  try {
    return execFileSync('bash', ['-e', '-c', script], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; status?: number };
    throw new Error(`${what} failed (exit ${err.status}): ${String(err.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
  }
}
