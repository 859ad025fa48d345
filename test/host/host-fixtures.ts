/**
 * Real filesystems for the host-module tests: a scratch directory per test
 * holding ext4/xfs images, loop devices attached to them, and mounts below
 * it. One `after` hook per scratch directory undoes all of it, whatever the
 * test left (also when it failed half-way): every mount below the directory
 * or from a loop device on one of its images, deepest first, then every
 * loop device on its images, then the directory itself.
 *
 * Test-only code: commands run with execFileSync directly, not through
 * src/host/exec.ts, so the set-up doesn't depend on the code under test.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface AfterHook {
  after(fn: () => unknown): void;
}

export function sh(file: string, args: string[], opts: { input?: string } = {}): string {
  return execFileSync(file, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input: opts.input, env: { ...process.env, LC_ALL: 'C' } });
}

/** Whether `path` is a mountpoint, asked of util-linux's `mountpoint` (independent of our mountinfo parser). */
export function isMountpointNow(p: string): boolean {
  try {
    execFileSync('mountpoint', ['-q', p], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

interface RawMount {
  id: number;
  mountPoint: string;
  source: string;
}

function rawMounts(): RawMount[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const f = l.split(' ');
      const sep = f.indexOf('-', 6);
      return { id: Number(f[0]), mountPoint: unescape(f[4]!), source: unescape(f[sep + 2] ?? '') };
    });
}

/** Loop devices whose backing file lies under `dir`. */
export function loopsUnder(dir: string): string[] {
  const found: string[] = [];
  for (const name of fs.readdirSync('/sys/block').filter((n) => /^loop\d+$/.test(n))) {
    try {
      const backing = fs.readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim();
      if (backing.startsWith(`${dir}/`)) found.push(`/dev/${name}`);
    } catch {
      // not attached
    }
  }
  return found;
}

/** Mounts below `dir` or from a loop device on an image below it. */
export function mountsFrom(dir: string): string[] {
  const loops = new Set(loopsUnder(dir));
  return rawMounts()
    .filter((m) => m.mountPoint.startsWith(`${dir}/`) || m.mountPoint === dir || loops.has(m.source))
    .sort((a, b) => b.mountPoint.split('/').length - a.mountPoint.split('/').length || b.id - a.id)
    .map((m) => m.mountPoint);
}

function cleanup(dir: string): void {
  for (let round = 0; round < 5; round++) {
    const mounts = mountsFrom(dir);
    if (mounts.length === 0) break;
    for (const m of mounts) {
      try {
        execFileSync('umount', [m], { stdio: 'ignore' });
      } catch {
        try {
          execFileSync('umount', ['-l', m], { stdio: 'ignore' });
        } catch {
          // gone meanwhile
        }
      }
    }
  }
  for (const loop of loopsUnder(dir)) {
    try {
      execFileSync('losetup', ['-d', loop], { stdio: 'ignore' });
    } catch {
      // already detached
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * A fresh directory under /tmp, torn down (mounts, loops, files) after the
 * test. `beforeTeardown` runs first (after hooks run in registration order,
 * so anything that must precede the loop detach goes here).
 */
export function scratch(t: AfterHook, prefix = 'xb-host', beforeTeardown?: (dir: string) => void): string {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`)));
  t.after(() => {
    try {
      beforeTeardown?.(dir);
    } finally {
      cleanup(dir);
    }
  });
  return dir;
}

/** An ext4 image of `sizeMiB`, populated from `files` (name -> content; a name ending in / is a directory) with mke2fs -d. */
export function makeExt4(dir: string, name: string, files: Record<string, string> = {}, sizeMiB = 16): string {
  const image = path.join(dir, name);
  const content = path.join(dir, `${name}.content`);
  fs.mkdirSync(content);
  for (const [f, text] of Object.entries(files)) {
    if (f.endsWith('/')) fs.mkdirSync(path.join(content, f), { recursive: true });
    else fs.writeFileSync(path.join(content, f), text);
  }
  fs.writeFileSync(image, '');
  fs.truncateSync(image, sizeMiB * 2 ** 20);
  sh('mkfs.ext4', ['-q', '-F', '-d', content, image]);
  fs.rmSync(content, { recursive: true });
  return image;
}

/** An xfs image (xfsprogs needs 300 MiB at least; sparse, so it costs little). */
export function makeXfs(dir: string, name: string): string {
  const image = path.join(dir, name);
  fs.writeFileSync(image, '');
  fs.truncateSync(image, 300 * 2 ** 20);
  sh('mkfs.xfs', ['-q', '-f', image]);
  return image;
}

export function attach(image: string, readOnly = false): string {
  return sh('losetup', ['--find', '--show', ...(readOnly ? ['-r'] : []), image]).trim();
}

/**
 * Mounts `device` read-write, lets `write` fill it, syncs (so the journal/log
 * holds committed transactions), writes once more, then shuts the filesystem
 * down without flushing (FS_IOC_GOINGDOWN via xfs_io) and unmounts: the image
 * now needs journal recovery, like a snapshot of a guest that crashed, and
 * the last write is only in the journal (what noload/norecovery miss).
 */
export function leaveDirty(device: string, mnt: string, write: (root: string) => void): void {
  fs.mkdirSync(mnt, { recursive: true });
  sh('mount', [device, mnt]);
  try {
    write(mnt);
    sh('sync', ['-f', mnt]);
    fs.writeFileSync(path.join(mnt, 'last-write.txt'), 'only in the journal\n');
    sh('xfs_io', ['-x', '-c', 'shutdown', mnt]);
  } finally {
    sh('umount', [mnt]);
  }
}

export function detach(device: string): void {
  sh('losetup', ['-d', device]);
}

export function commandExists(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore', env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
    return true;
  } catch {
    return false;
  }
}
