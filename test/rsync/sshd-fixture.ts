/**
 * A real OpenSSH server on 127.0.0.1 for the remote rsync target's tests:
 * `/usr/sbin/sshd -D` with a config, host key and authorized key made in a
 * temp dir, on a free port; the client logs in as root with a key made by
 * ssh-keygen and trusts only the test's host key (its own known_hosts).
 * Stopping it kills every session it runs, deepest first, each reaped.
 *
 * Needs openssh-server and openssh-client (installed by CI). sshd needs its
 * privilege separation directory /run/sshd: ensureRunSshd makes it if
 * missing and removes it at cleanup.
 *
 * Test-only code: commands run with execFileSync/spawn directly.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { SshOptions } from '../../src/host/remote-target.js';
import { makeScratchDir, type CleanupContext } from '../helpers/scratch.js';

/**
 * sshd's privilege separation directory, needed at every login. Test files
 * run in parallel: each registers itself with a marker file, and the
 * directory goes (if a test made it) with the last one.
 */
export function ensureRunSshd(t: CleanupContext): void {
  const dir = '/run/sshd';
  const madeByTests = path.join(dir, '.made-by-xenbackup-tests');
  if (!fs.existsSync(dir)) {
    fs.mkdirSync(dir, { mode: 0o755 });
    fs.writeFileSync(madeByTests, '');
  }
  const mine = path.join(dir, `.xenbackup-test-${process.pid}`);
  fs.writeFileSync(mine, '');
  t.after(() => {
    fs.rmSync(mine, { force: true });
    // markers of test processes that died without cleaning up do not count
    const others = fs.readdirSync(dir).filter((n) => n.startsWith('.xenbackup-test-') && fs.existsSync(`/proc/${n.slice('.xenbackup-test-'.length)}`));
    if (others.length === 0 && fs.existsSync(madeByTests)) fs.rmSync(dir, { recursive: true, force: true });
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export function keygen(file: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'xenbackup-test', '-f', file], { stdio: 'ignore' });
}

/** The pids below `root` in the process tree, parents before their children. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      /* exited meanwhile */
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(root);
  return out;
}

/** Kills every process below `root` (not root itself), deepest first, waiting until each is reaped. */
export async function killTree(root: number): Promise<void> {
  for (let round = 0; round < 20; round++) {
    const below = descendants(root);
    if (below.length === 0) return;
    for (const pid of below.reverse()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      for (let i = 0; i < 100 && fs.existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 10));
    }
  }
}

export interface Sshd {
  port: number;
  /** Client options that log in as root with the test's key and trust only the test's host key. */
  ssh: SshOptions;
  dir: string;
  /** The server's authorized_keys: emptied, no login succeeds. */
  authorizedKeys: string;
  /** Kills every session sshd runs (a connection dropped mid-transfer); the listener stays. */
  killSessions(): Promise<void>;
  /** Stops sshd and every session it runs. */
  kill(): Promise<void>;
  /** Starts sshd again on the same port with the same keys. */
  restart(): Promise<void>;
}

export async function startSshd(t: CleanupContext): Promise<Sshd> {
  const dir = makeScratchDir(t, 'sshd');
  // The client's key lives in a directory whose name needs quoting in rsync's -e string.
  const keyDir = path.join(dir, "client keys 'quoted'");
  fs.mkdirSync(keyDir, { mode: 0o700 });
  keygen(path.join(dir, 'host_key'));
  keygen(path.join(keyDir, 'id'));
  fs.copyFileSync(path.join(keyDir, 'id.pub'), path.join(dir, 'authorized_keys'));
  fs.chmodSync(path.join(dir, 'authorized_keys'), 0o600);
  const port = await freePort();
  const hostKey = fs.readFileSync(path.join(dir, 'host_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  fs.writeFileSync(path.join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${hostKey}\n`);
  const config = path.join(dir, 'sshd_config');
  fs.writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${dir}/host_key`,
      `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      // The temp dir lies below /tmp (mode 1777), which StrictModes would refuse.
      'StrictModes no',
      // Offered, so that a client allowed to prompt would ask for a password (the BatchMode test's control).
      'PasswordAuthentication yes',
      'KbdInteractiveAuthentication no',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  execFileSync('/usr/sbin/sshd', ['-t', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = '';
  const start = async (): Promise<void> => {
    const c = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    c.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    exited = new Promise((resolve) => c.once('exit', () => resolve()));
    for (let i = 0; i < 200; i++) {
      if (c.exitCode !== null) throw new Error(`sshd exited at start: ${log}`);
      if (await canConnect(port)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`sshd did not listen on 127.0.0.1:${port}: ${log}`);
  };
  const kill = async (): Promise<void> => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    // Sessions that are ending get a moment to end by themselves.
    for (let i = 0; i < 100 && descendants(child.pid!).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    // Then deepest first, each reaped by its still-living parent before the next: an orphan would be left
    // to a PID 1 that may never reap it (containers).
    await killTree(child.pid!);
    child.kill('SIGKILL');
    await exited;
  };
  t.after(kill);
  await start();
  return {
    port,
    dir,
    authorizedKeys: path.join(dir, 'authorized_keys'),
    killSessions: async () => {
      if (child?.pid !== undefined && child.exitCode === null) await killTree(child.pid);
    },
    ssh: { identityFile: path.join(keyDir, 'id'), port, knownHostsFile: path.join(dir, 'known_hosts'), configFile: 'none', connectTimeoutSec: 10 },
    kill,
    restart: start,
  };
}
