/**
 * The rsync engine's remote target against a real OpenSSH server on
 * 127.0.0.1: `/usr/sbin/sshd -D` with a config, host key and authorized key
 * made in a temp dir, on a free port (one sshd shared by the tests that
 * leave it running, and one of its own for the test that stops it); the
 * client logs in as root with a key made by ssh-keygen and trusts only the
 * test's host key. Proves: two backups over ssh whose unchanged files are
 * hardlinks on the remote side (inode numbers read over ssh); restores of
 * one file and of a whole torture tree that match the source, with every
 * file's checksum checked (and a tampered one caught); failed transfers
 * (remote medium full; the host going away mid-transfer) that leave no tree
 * that looks complete, cleaned up by the next run after taking over the
 * dead lock; every argument reaching the remote command literally; and ssh
 * never prompting (checked on a real terminal, against a control that does).
 *
 * Needs openssh-server and openssh-client (installed by CI); the test
 * installs nothing. sshd needs its privilege separation directory
 * /run/sshd: made if missing and removed afterwards.
 */
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { restore, type RestoreRequest, type RestoreResult } from '../../src/engines/restore.js';
import { prepareMirror, type MirrorRequest } from '../../src/engines/rsync/rsync-backup.js';
import { volumesOnMedium } from '../../src/repo/medium-index.js';
import { isRemoteTarget, parseRemoteTarget, rsyncRemotePath, rsyncSshArgs, sshArgv, type RemoteTarget, type SshOptions } from '../../src/host/remote-target.js';
import { runRemote } from '../../src/host/ssh.js';
import { VolumeBusyError } from '../../src/repo/volume-lock.js';
import { VolumeStore } from '../../src/repo/volume-store.js';
import { LocalStorage } from '../../src/storage/local-storage.js';
import { SshStorage } from '../../src/storage/ssh-storage.js';
import type { Sidecar } from '../../src/medium/sidecar.js';
import type { Logger } from '../../src/util/log.js';
import { createLogger, MemorySink } from '../../src/util/log.js';
import { makeScratchDir, withLoopFs, type CleanupContext } from '../helpers/scratch.js';
import { buildTortureTree } from '../helpers/torture-tree.js';
import { ensureRunSshd, keygen, killTree, startSshd, type Sshd } from './sshd-fixture.js';
import { snapshotTree, type SnapshotEntry } from '../helpers/tree-snapshot.js';
import { assertTreesEqual } from '../helpers/tree-compare.js';

const HOST = 'test-host';
const VOLUME = 'web1/root';

function steppingClock(start = Date.UTC(2026, 10, 1, 3, 0, 0)): () => Date {
  let t = start;
  return () => new Date((t += 60_000));
}

function logger(): { sink: MemorySink; log: ReturnType<typeof createLogger> } {
  const sink = new MemorySink();
  return { sink, log: createLogger([sink.sink], 'debug') };
}

/** Cleanups of what the tests share (one sshd, /run/sshd), run after the last test. */
const sharedCleanups: Array<() => unknown> = [];
const shared: CleanupContext = { after: (fn) => void sharedCleanups.push(fn) };
after(async () => {
  for (const fn of sharedCleanups.reverse()) await fn();
});

// sshd's privilege separation directory, needed at every login; made once for the whole file.
ensureRunSshd(shared);

let sharedServer: Promise<Sshd> | undefined;
/** One sshd for the tests that do not stop it (each start costs keys and a second or so). */
function sharedSshd(): Promise<Sshd> {
  return (sharedServer ??= startSshd(shared));
}

/** A remote medium as these tests name it: the server and the ssh settings (each call makes its SshStorage). */
interface RemoteMedium {
  target: RemoteTarget;
  ssh: SshOptions;
}

function remoteMedium(sshd: Sshd, remotePath: string): RemoteMedium {
  return { target: parseRemoteTarget(`root@127.0.0.1:${remotePath}`), ssh: sshd.ssh };
}

/** The remote volume folder: <path>/<host>/<domU>/<part>. */
function remoteVolumeDir(target: RemoteTarget, host: string, volume: string): string {
  return path.posix.join(target.path, host, volume);
}

/** A mirror to the remote medium: prepareMirror over an SshStorage with the request's ssh settings. */
function prepareRemoteMirror(req: RemoteMedium & Omit<MirrorRequest, 'medium'>): ReturnType<typeof prepareMirror> {
  const { target, ssh, ...rest } = req;
  return prepareMirror({ ...rest, medium: new SshStorage(target, ssh, req.logger) });
}

/** The remote volume's backups, as the local code lists them (VolumeStore over the SshStorage). */
function listRemote(m: RemoteMedium, host: string, volume: string, log: Logger): Promise<Sidecar[]> {
  return new VolumeStore(new SshStorage(m.target, m.ssh, log), host, volume).list();
}

async function listRemoteVolumes(m: RemoteMedium, host: string, log: Logger): Promise<string[]> {
  return (await volumesOnMedium(new SshStorage(m.target, m.ssh, log), host)).map((s) => s.volume).sort();
}

/** A restore from the remote medium, and what its check after the copy covered (from its summary and warnings). */
async function restoreFromRemote(req: RemoteMedium & Omit<RestoreRequest, 'medium'>): Promise<RestoreResult & { filesChecked: number; unchecked: number }> {
  const { target, ssh, ...rest } = req;
  const r = await restore({ ...rest, medium: new SshStorage(target, ssh, req.logger) });
  const checked = /; (\d+) files checked$/.exec(r.summary);
  if (!checked) throw new Error(`no count of checked files in the summary: ${r.summary}`);
  const sparse = r.warnings.map((w) => /^(\d+) sparse file\(s\) not checked/.exec(w)).find((m) => m !== null);
  return { ...r, filesChecked: Number(checked[1]), unchecked: sparse ? Number(sparse[1]) : 0 };
}

/**
 * Copies one host's index (every volume's sidecars and manifests, no trees)
 * from the remote medium into localMedium/<host>/ with rsync, as the
 * removed fetchRemoteIndex did, to show the remote layout is a local medium's.
 */
function fetchRemoteIndex(m: RemoteMedium, host: string, localMedium: string): void {
  const into = path.join(localMedium, host);
  fs.mkdirSync(into, { recursive: true, mode: 0o700 });
  const filters = ['--include=/*/', '--include=/*/*/', '--include=/*/*/*.json', '--include=/*/*/*.manifest', '--exclude=*'];
  const from = rsyncRemotePath(m.target, path.posix.join(m.target.path, host) + '/');
  execFileSync('rsync', ['-s', ...rsyncSshArgs(m.ssh), '-rtp', '--chmod=D700,F600', '--delete', ...filters, from, into + '/']);
}

/** Inode numbers as the remote host sees them. */
async function remoteInodes(m: RemoteMedium, files: string[]): Promise<string[]> {
  return (await runRemote(m.target, m.ssh, ['stat', '-c', '%i', '--', ...files])).stdout.trim().split('\n');
}

async function remoteNames(m: RemoteMedium, dir: string): Promise<string[]> {
  const out = (await runRemote(m.target, m.ssh, ['ls', '-A', '--', dir])).stdout;
  return out.split('\n').filter(Boolean).sort();
}

test('remote targets: parsing and telling them from local directories', () => {
  assert.deepEqual(parseRemoteTarget('backup@store.example.org:/srv/backup/'), { user: 'backup', host: 'store.example.org', path: '/srv/backup' });
  assert.deepEqual(parseRemoteTarget('store:/'), { user: undefined, host: 'store', path: '/' });
  assert.deepEqual(parseRemoteTarget('root@[fd00::1]:/b'), { user: 'root', host: 'fd00::1', path: '/b' });
  assert.throws(() => parseRemoteTarget('root@store:backup'), /absolute/);
  assert.throws(() => parseRemoteTarget('-oProxyCommand=x:/b'), /user@host:\/path/);
  assert.throws(() => parseRemoteTarget('root@-x:/b'), /user@host:\/path/);
  assert.throws(() => parseRemoteTarget('root@store:/b/../etc'), /\.\./);
  assert.equal(isRemoteTarget('root@store:/b'), true);
  assert.equal(isRemoteTarget('store:/b'), true);
  assert.equal(isRemoteTarget('/mnt/backup'), false);
  assert.equal(isRemoteTarget('/mnt/a:b'), false);
  assert.equal(isRemoteTarget('./a:b'), false);
});

test('over ssh: two backups of a torture tree, unchanged files hardlinked on the remote side, one file and everything restored exactly', async (t) => {
  const sshd = await sharedSshd();
  const dir = makeScratchDir(t, 'ssh-target');
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  const tree = await buildTortureTree(src, { bigFileSize: 4 << 20, sparseApparentSize: 16 << 20, socket: false });
  // rsync sends holes as zeros: these three would put 1.7 GB through ssh twice. Sparse files stay covered
  // by lastlog-1TiB (16 MiB here); the local rsync test restores them all.
  for (const big of ['sparse/only-hole', 'sparse/lastlog', 'sparse/ends-in-hole']) fs.rmSync(path.join(src, big));
  fs.writeFileSync(path.join(src, 'keep'), 'same\n');
  fs.writeFileSync(path.join(src, 'change'), 'one\n');
  fs.writeFileSync(path.join(src, 'gone'), 'bye\n');
  // A remote path that needs quoting for the remote shell and for rsync.
  const m = remoteMedium(sshd, path.join(dir, "remote medium's $HOME"));
  const { log } = logger();
  const req = { ...m, sourceDir: src, host: HOST, volume: VOLUME, logger: log, now: steppingClock() };
  const first = await (await prepareRemoteMirror(req)).commit();
  assert.equal(first.status, 'complete', first.unreadable.join('; '));
  fs.writeFileSync(path.join(src, 'change'), 'two\n');
  fs.writeFileSync(path.join(src, 'new'), 'new\n');
  fs.rmSync(path.join(src, 'gone'));
  const prepared = await prepareRemoteMirror(req);
  assert.match(prepared.treePath, /^root@127\.0\.0\.1:.*\.tree$/);
  const second = await prepared.commit();

  const vdir = remoteVolumeDir(m.target, HOST, VOLUME);
  const inodes = await remoteInodes(m, [first, second].flatMap((sc) => ['keep', 'change'].map((rel) => path.posix.join(vdir, sc.archive, rel))));
  assert.equal(inodes[0], inodes[2], 'an unchanged file must be a hardlink into the previous tree');
  assert.notEqual(inodes[1], inodes[3], 'a changed file is a new copy');
  assert.equal(second.stats.filesRead, 2, 'the previous manifest came from the remote: only change and new were read');
  assert.deepEqual(await remoteNames(m, vdir), [first.archive, first.manifest, `${first.id}.tree.json`, second.archive, second.manifest, `${second.id}.tree.json`].sort(), 'no lock, no partials left');
  const listed = await listRemote(m, HOST, VOLUME, log);
  assert.deepEqual(listed.map((s) => [s.id, s.engine, s.archive]), [[first.id, 'rsync', first.archive], [second.id, 'rsync', second.archive]]);
  assert.deepEqual(await listRemoteVolumes(m, HOST, log), [VOLUME]);
  // The layout is a local medium's: a copy of the index reads with the local code.
  const index = path.join(dir, 'index');
  fetchRemoteIndex(m, HOST, index);
  assert.deepEqual((await new VolumeStore(new LocalStorage(index), HOST, VOLUME).list()).map((s) => s.id), [first.id, second.id]);

  // One file as of the first backup: a deleted one, and one under a name that is not valid UTF-8.
  const odd = tree.nonUtf8Names.find((p) => tree.regularFiles.some((f) => f.equals(p)) && p.includes(0x2f))!;
  assert.ok(odd, 'the torture tree has a non-UTF-8 file name in a subdirectory');
  const oddContent = fs.readFileSync(Buffer.concat([Buffer.from(src + '/'), odd]));
  const one = path.join(dir, 'restored-one');
  const asOfFirst = { ...m, host: HOST, volume: VOLUME, targetDir: one, at: new Date(first.finishedAt), force: false, logger: log };
  const r1 = await restoreFromRemote({ ...asOfFirst, paths: [Buffer.from('gone'), odd] });
  assert.deepEqual(r1.errors, []);
  assert.equal(r1.backup.id, first.id);
  assert.equal(r1.filesChecked, 2);
  assert.equal(fs.readFileSync(path.join(one, 'gone'), 'utf8'), 'bye\n');
  assert.ok(fs.readFileSync(Buffer.concat([Buffer.from(one + '/'), odd])).equals(oddContent));
  assert.deepEqual(fs.readdirSync(one).sort(), ['gone', odd.subarray(0, odd.indexOf(0x2f)).toString()].sort(), 'only what was asked for');
  // Without force an existing file is not replaced; an unsafe path is refused before any connection.
  await assert.rejects(restoreFromRemote({ ...asOfFirst, paths: [Buffer.from('gone')] }), /already exist.*gone.*nothing was restored/);
  await assert.rejects(restoreFromRemote({ ...asOfFirst, paths: [Buffer.from('etc/../../root')] }), /refusing unsafe path/);

  // Everything, from the newest tree: every regular file read back and checked.
  const all = path.join(dir, 'restored-all');
  const r2 = await restoreFromRemote({ ...m, host: HOST, volume: VOLUME, paths: [], targetDir: all, force: false, logger: log });
  assert.deepEqual(r2.errors, []);
  const source = await snapshotTree(src);
  assertTreesEqual(source, await snapshotTree(all));
  // The scanner hashes files of 1 MiB or more with holes region by region, which rsync's holes need not match.
  const sparse = (e: SnapshotEntry): boolean => e.size >= 1 << 20 && e.allocatedBytes + 65536 < e.size;
  const files = [...source.entries.values()].filter((e) => e.type === 'file');
  assert.equal(r2.filesChecked, new Set(files.filter((e) => !sparse(e)).map((e) => e.ino)).size);
  assert.equal(r2.unchecked, files.filter(sparse).length);
  assert.equal(r2.files, new Set(files.map((e) => e.ino)).size);

  // The check is real: a tree file changed on the remote host after the backup is reported.
  fs.writeFileSync(path.join(vdir, second.archive, 'change'), 'tampered\n');
  const r3 = await restoreFromRemote({ ...m, host: HOST, volume: VOLUME, paths: [Buffer.from('change')], targetDir: path.join(dir, 'restored-tampered'), force: false, logger: log });
  assert.equal(r3.errors.length, 1);
  assert.match(r3.errors[0]!, /^change: content does not match the backup's checksum/);
});

test('over ssh: a full remote medium fails the transfer and leaves no tree that looks complete', async (t) => {
  const sshd = await sharedSshd();
  const dir = makeScratchDir(t, 'ssh-full');
  const small = withLoopFs(t, { fsType: 'ext4', sizeMiB: 32 });
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'small'), 'fits\n');
  const m = remoteMedium(sshd, small.dir);
  const { log } = logger();
  const req = { ...m, sourceDir: src, host: HOST, volume: VOLUME, logger: log, now: steppingClock() };
  const first = await (await prepareRemoteMirror(req)).commit();
  // Random data does not compress or dedupe: 48 MiB cannot fit on a 32 MiB filesystem.
  fs.writeFileSync(path.join(src, 'big'), crypto.randomBytes(48 << 20));
  await assert.rejects(prepareRemoteMirror(req), /rsync/);
  const vdir = remoteVolumeDir(m.target, HOST, VOLUME);
  assert.deepEqual(await remoteNames(m, vdir), [first.archive, first.manifest, `${first.id}.tree.json`].sort(), 'the partial tree and the lock are removed');
  assert.deepEqual((await listRemote(m, HOST, VOLUME, log)).map((s) => s.id), [first.id]);
});

test('over ssh: the host going away mid-transfer leaves debris only, which the next run removes after taking over the dead lock', async (t) => {
  const sshd = await startSshd(t);
  const dir = makeScratchDir(t, 'ssh-killed');
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'file'), 'content\n');
  const m = remoteMedium(sshd, path.join(dir, 'remote'));
  const { sink, log } = logger();
  const now = steppingClock();
  const req = { ...m, sourceDir: src, host: HOST, volume: VOLUME, logger: log, now };

  // The real rsync behind a gate, so that the host goes away while the backup is certainly unfinished:
  // the remote rsync has written the partial tree, then the gate says so and holds the connection open,
  // blocked opening a FIFO no one ever writes (no child process left to orphan).
  const reached = path.join(dir, 'gate-reached');
  const fifo = path.join(dir, 'gate-fifo');
  execFileSync('mkfifo', [fifo]);
  const gate = path.join(dir, 'rsync-gate');
  fs.writeFileSync(gate, `#!/bin/sh\nrsync "$@"\nrc=$?\n: > '${reached}'\nread go < '${fifo}'\nexit $rc\n`, { mode: 0o755 });
  const gated = { ...req, ssh: { ...m.ssh, remoteRsync: gate } };
  const attempt = prepareRemoteMirror(gated);
  const outcome = attempt.then(
    () => 'resolved',
    (e: Error) => e.message,
  );
  for (let i = 0; i < 400 && !fs.existsSync(reached); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(fs.existsSync(reached), 'the remote rsync ran');
  // The host goes away: it refuses logins from now on, its sessions die mid-transfer, then sshd stops.
  // (In this order the cleanup's own login fails for certain, and every killed process is reaped.)
  const keys = fs.readFileSync(sshd.authorizedKeys);
  fs.writeFileSync(sshd.authorizedKeys, '');
  await sshd.killSessions();
  assert.match(await outcome, /^rsync .*: exit 255/, 'the transfer itself fails');
  // The cleanup's login fails: refused, or cut by the dying host if it arrived while the sessions were killed
  // (ssh's own failures exit 255; a remote rm that ran and failed would not).
  const cleanup = sink.records.map(({ message }) => message).filter((l) => /could not remove the partial tree/.test(l));
  assert.equal(cleanup.length, 1, `one warning about the partial tree: ${sink.records.map(({ message }) => message).join(' | ')}`);
  assert.match(cleanup[0]!, /exit 255: .*(Permission denied|Connection (closed|reset)|kex_exchange_identification)/, 'the cleanup could not log in either');
  await sshd.kill();

  fs.writeFileSync(sshd.authorizedKeys, keys);
  await sshd.restart();
  const vdir = remoteVolumeDir(m.target, HOST, VOLUME);
  const left = await remoteNames(m, vdir);
  assert.ok(left.some((n) => n.endsWith('.tree.partial')), `the partial tree is still there: ${left.join(', ')}`);
  assert.deepEqual(await listRemote(m, HOST, VOLUME, log), [], 'no backup appears');
  // This process is alive, so its lock still counts: a second backup is refused.
  await assert.rejects(prepareRemoteMirror(req), VolumeBusyError);
  // As after a crash: the holder is a process that has exited.
  const lockFile = path.posix.join(vdir, '.backup.lock');
  const lock = JSON.parse(fs.readFileSync(lockFile, 'utf8')) as { pid: number };
  lock.pid = Number(execFileSync('sh', ['-c', 'echo $$']).toString().trim());
  fs.writeFileSync(lockFile, JSON.stringify(lock) + '\n');
  const next = await (await prepareRemoteMirror(req)).commit();
  assert.ok(sink.records.some(({ message: l }) => /taking over .*\.backup\.lock/.test(l)), 'the dead lock was taken over with a warning');
  assert.ok(sink.records.some(({ message: l }) => /removed .*\.tree\.partial, left by an interrupted run/.test(l)));
  assert.deepEqual(await remoteNames(m, vdir), [next.archive, next.manifest, `${next.id}.tree.json`].sort(), 'only the new backup, complete');
});

test('runRemote: every argument reaches the remote command literally', async (t) => {
  const sshd = await sharedSshd();
  const dir = makeScratchDir(t, 'ssh-quote');
  const m = remoteMedium(sshd, dir);
  const marker = path.join(dir, 'injected');
  const args = ['plain', 'two words', "it's", '"double"', '$HOME', '`id`', `$(touch ${marker})`, 'a;b', 'x|y', '*', '\\back\\slash', 'new\nline', '', '-n'];
  const r = await runRemote(m.target, m.ssh, ['printf', '%s\\0', ...args]);
  assert.deepEqual(r.stdout.split('\0').slice(0, -1), args);
  assert.equal(fs.existsSync(marker), false, 'nothing was run by the remote shell');
});

/** Runs argv on a real terminal (util-linux script), until it exits or prints a password prompt. */
function onTerminal(argv: string[]): Promise<{ output: string; prompted: boolean; exitCode: number | null }> {
  const line = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-q', '-e', '-c', line, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let prompted = false;
    const timer = setTimeout(() => {
      void killTree(child.pid!).then(() => child.kill('SIGKILL'));
      reject(new Error(`ssh neither failed nor prompted within 30 s: ${output}`));
    }, 30_000);
    const onData = (d: Buffer): void => {
      output += d.toString();
      if (!prompted && /password:/i.test(output)) {
        prompted = true;
        // ssh first, so that script sees its child exit and ends; nothing is orphaned.
        void killTree(child.pid!);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ output, prompted, exitCode: code });
    });
  });
}

test('ssh never prompts: an unauthorised key and an unknown host key fail at once, even on a terminal', async (t) => {
  const sshd = await sharedSshd();
  const dir = makeScratchDir(t, 'ssh-batch');
  const m = remoteMedium(sshd, dir);
  keygen(path.join(dir, 'stranger'));
  const stranger: SshOptions = { ...m.ssh, identityFile: path.join(dir, 'stranger') };
  await assert.rejects(runRemote(m.target, stranger, ['true']), /Permission denied/);
  fs.writeFileSync(path.join(dir, 'empty_known_hosts'), '');
  const unknownHost: SshOptions = { ...m.ssh, knownHostsFile: path.join(dir, 'empty_known_hosts') };
  await assert.rejects(runRemote(m.target, unknownHost, ['true']), /Host key verification failed/);
  await assert.rejects(listRemote({ ...m, ssh: unknownHost }, HOST, VOLUME, logger().log), /Host key verification failed/);
  assert.equal(fs.readFileSync(path.join(dir, 'empty_known_hosts'), 'utf8'), '', 'the unknown key was not recorded');

  // On a terminal, where ssh could ask: our options fail without a prompt ...
  const batch = await onTerminal(['ssh', ...sshArgv(m.target, stranger, 'true')]);
  assert.equal(batch.prompted, false, batch.output);
  assert.match(batch.output, /Permission denied/);
  assert.notEqual(batch.exitCode, 0);
  // ... while the same command allowed to prompt asks for a password (the control: the terminal works).
  const interactive = sshArgv(m.target, stranger, 'true').map((a) => (a === 'BatchMode=yes' ? 'BatchMode=no' : a));
  const asked = await onTerminal(['ssh', ...interactive]);
  assert.equal(asked.prompted, true, asked.output);
});
