/**
 * A host for `xenbackup run` tests, all real: a scratch directory holding an
 * ext4 image attached to a loop device (the medium, BCKDEV; left unmounted
 * so the run mounts it itself), the medium's mountpoint (BCKMNTP), the
 * snapshot mount directory (MNTSOURCEDIR), a small dom0 tree (DOM0_ROOT), an
 * empty volume table, LOGFILE and LOCKFILE. The CLI runs as a real child
 * process (bin/xenbackup) started asynchronously, so an SMTP server in the
 * test process can answer it and signals can be sent to it.
 *
 * Cleanup (t.after, also when a test fails half-way): children still
 * running are resumed and killed, then every mount below the directory or
 * from its loop devices is unmounted (deepest first), the loop devices are
 * detached and the directory removed.
 *
 * Test-only code: commands run with execFileSync directly, not through
 * src/host/exec.ts, so the set-up doesn't depend on the code under test.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface AfterHook {
  after(fn: () => unknown): void;
}

/** The repository root (this file runs as dist/test/run/run-fixtures.js). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const XENBACKUP = path.join(repoRoot, 'bin/xenbackup');
export const HOST = 'testhost';
export const FQDN = 'testhost.example.org';

export function sh(file: string, args: string[]): string {
  return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
}

interface RawMount {
  id: number;
  mountPoint: string;
  source: string;
  options: string[];
}

/** /proc/self/mountinfo, read independently of src/host/mountinfo.ts. */
export function rawMounts(): RawMount[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const f = l.split(' ');
      const sep = f.indexOf('-', 6);
      return { id: Number(f[0]), mountPoint: unescape(f[4]!), source: unescape(f[sep + 2] ?? ''), options: f[5]!.split(',') };
    });
}

function loopsUnder(dir: string): string[] {
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

/** Mounts below `dir` or of a loop device backed by a file below it, deepest and newest first. */
export function mountsFrom(dir: string): string[] {
  const loops = new Set(loopsUnder(dir));
  return rawMounts()
    .filter((m) => m.mountPoint === dir || m.mountPoint.startsWith(`${dir}/`) || loops.has(m.source))
    .sort((a, b) => b.mountPoint.split('/').length - a.mountPoint.split('/').length || b.id - a.id)
    .map((m) => m.mountPoint);
}

/** Every path below `dir`, relative and sorted: to show nothing was written. */
export function listing(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  child: ChildProcess;
  pid: number;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves once stderr matches `re` (rejects if the process ends first). */
  waitForStderr(re: RegExp): Promise<void>;
  done: Promise<CliResult>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 20 ms until it is true; fails after `timeoutMs` (a hang, not a timing assertion). */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`gave up waiting for ${what}`);
    await sleep(20);
  }
}

export interface RunEnv {
  dir: string;
  /** BCKDEV: the medium's loop device. */
  device: string;
  image: string;
  /** BCKMNTP */
  mediumDir: string;
  /** MNTSOURCEDIR */
  snapDir: string;
  /** DOM0_ROOT */
  root: string;
  volumes: string;
  logFile: string;
  lockDir: string;
  /** Writes the config with these keys over the defaults (undefined: leave the key out); returns its path. */
  writeConfig(overrides?: Record<string, string | undefined>, name?: string): string;
  /** Starts bin/xenbackup with `args`; the child is killed at cleanup if still running. */
  start(args: string[], env?: Record<string, string>): RunningCli;
  /** Starts and waits. */
  cli(args: string[], env?: Record<string, string>): Promise<CliResult>;
  /** Mounts the medium somewhere of the test's own, runs `fn` on it, unmounts. */
  inspectMedium<T>(fn: (mnt: string) => T | Promise<T>): Promise<T>;
  /** Mountpoints of the medium's loop device right now. */
  mediumMounts(): string[];
  /** A second ext4 image on its own loop device (for the wrong-device case). */
  otherDevice(): { device: string; image: string };
}

/** A small dom0 tree: a few files, and paths the run must leave out. */
export function populateRoot(root: string): void {
  const files: Record<string, string> = {
    'etc/hostname': 'testhost\n',
    'etc/passwd': 'root:x:0:0:root:/root:/bin/bash\n',
    'home/alice/notes.txt': 'backup me\n'.repeat(100),
    'var/lib/app/state.db': 'x'.repeat(5000),
    'tmp/scratch.tmp': 'excluded: /tmp\n',
    'proc/fake': 'excluded: /proc\n',
    'var/cache/big.cache': 'excluded by DOM0_EXCLUDES\n',
  };
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.join(root, path.dirname(rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
  fs.chmodSync(path.join(root, 'home/alice/notes.txt'), 0o640);
  fs.symlinkSync('../etc/hostname', path.join(root, 'home/hostname-link'));
}

export function makeRunEnv(t: AfterHook, opts: { mediumMiB?: number } = {}): RunEnv {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'xenbackup-run-')));
  const children: ChildProcess[] = [];
  t.after(async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGCONT');
        c.kill('SIGKILL');
        await new Promise((r) => c.once('exit', r));
      }
    }
    cleanup(dir);
  });

  const image = path.join(dir, 'medium.img');
  fs.writeFileSync(image, '');
  fs.truncateSync(image, (opts.mediumMiB ?? 64) * 2 ** 20);
  sh('mkfs.ext4', ['-q', '-F', image]);
  const device = sh('losetup', ['--find', '--show', image]).trim();
  const mediumDir = path.join(dir, 'backup');
  const snapDir = path.join(dir, '4backup');
  const root = path.join(dir, 'root');
  for (const d of [mediumDir, snapDir, root]) fs.mkdirSync(d);
  populateRoot(root);
  const volumes = path.join(dir, 'xenback_vols');
  fs.writeFileSync(volumes, '# no guest volumes: LVM is exercised in the VM suite\n');
  const logFile = path.join(dir, 'xenbackup.log');
  const lockDir = path.join(dir, 'xenbackup.lock');

  const env: RunEnv = {
    dir,
    device,
    image,
    mediumDir,
    snapDir,
    root,
    volumes,
    logFile,
    lockDir,
    writeConfig(overrides = {}, name = 'xenbackup.conf') {
      const keys: Record<string, string | undefined> = {
        BCKDEV: device,
        BCKDEV_FS: 'ext4',
        BCKMNTP: mediumDir,
        MNTSOURCEDIR: snapDir,
        SBCONFIGFILE: volumes,
        SNAPMOUNTDELAY: '0',
        LOGFILE: logFile,
        LOCKFILE: lockDir,
        HOSTN: HOST,
        DOMAINN: 'example.org',
        DOM0_ROOT: root,
        DOM0_EXCLUDES: '/var/cache',
        REPORT_WHEN: 'never',
        // never read the machine's own /etc/backup-manager.conf
        BM_CONFIGFILE: path.join(dir, 'no-backup-manager.conf'),
        ...overrides,
      };
      const text = Object.entries(keys)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}="${v}"`)
        .join('\n');
      const file = path.join(dir, name);
      fs.writeFileSync(file, `# written by test/run/run-fixtures.ts\n${text}\n`);
      return file;
    },
    start(args, extraEnv = {}) {
      const child = spawn(process.execPath, [XENBACKUP, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, LC_ALL: 'C', ...extraEnv },
      });
      children.push(child);
      let out = '';
      let err = '';
      const waiters: { re: RegExp; resolve: () => void; reject: (e: Error) => void }[] = [];
      child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr!.on('data', (c: Buffer) => {
        err += c.toString();
        for (const w of waiters.splice(0)) {
          if (w.re.test(err)) w.resolve();
          else waiters.push(w);
        }
      });
      const done = new Promise<CliResult>((resolve) => {
        child.on('close', (code, signal) => {
          for (const w of waiters.splice(0)) w.reject(new Error(`xenbackup ${args.join(' ')} ended (exit ${code}) before stderr matched ${w.re}; stderr:\n${err}`));
          resolve({ code, signal, stdout: out, stderr: err });
        });
      });
      return {
        child,
        pid: child.pid!,
        stdout: () => out,
        stderr: () => err,
        waitForStderr: (re) =>
          re.test(err)
            ? Promise.resolve()
            : new Promise<void>((resolve, reject) => {
                if (child.exitCode !== null || child.signalCode !== null) reject(new Error(`process already ended; stderr:\n${err}`));
                else waiters.push({ re, resolve, reject });
              }),
        done,
      };
    },
    cli(args, extraEnv) {
      return env.start(args, extraEnv).done;
    },
    async inspectMedium(fn) {
      const mnt = fs.mkdtempSync(path.join(dir, 'inspect-'));
      sh('mount', ['-t', 'ext4', device, mnt]);
      try {
        return await fn(mnt);
      } finally {
        sh('umount', [mnt]);
        fs.rmdirSync(mnt);
      }
    },
    mediumMounts() {
      return rawMounts()
        .filter((m) => m.source === device)
        .map((m) => m.mountPoint);
    },
    otherDevice() {
      const other = path.join(dir, `other-${Date.now()}.img`);
      fs.writeFileSync(other, '');
      fs.truncateSync(other, 32 * 2 ** 20);
      sh('mkfs.ext4', ['-q', '-F', other]);
      return { device: sh('losetup', ['--find', '--show', other]).trim(), image: other };
    },
  };
  return env;
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
  // --one-file-system: should an unmount have failed, never delete into a mounted filesystem
  execFileSync('rm', ['-rf', '--one-file-system', '--', dir], { stdio: 'ignore' });
}

/** Files with random (incompressible) content, `count` x `mib` MiB, so archiving them takes seconds. */
export function writeIncompressible(dir: string, count: number, mib: number): void {
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    sh('dd', ['if=/dev/urandom', `of=${path.join(dir, `random-${i}.bin`)}`, 'bs=1M', `count=${mib}`, 'status=none']);
  }
}

/** The backup folder of dom0/root on a mounted medium. */
export function dom0Folder(medium: string): string {
  return path.join(medium, HOST, 'dom0', 'root');
}
