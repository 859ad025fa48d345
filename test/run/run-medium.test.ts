/**
 * `xenbackup run` end to end as a real process, with a real loop-mounted
 * ext4 image as the backup medium and DOM0_ROOT pointing at a test tree (no
 * LVM here: guest volumes are exercised in the VM suite). Proves: a run
 * mounts the medium, archives, unmounts, and the archive restores; a missing
 * or wrong medium writes nothing anywhere and exits 4; a config error exits
 * 2 touching nothing; --dry-run touches nothing; one failed guest volume
 * does not stop dom0's backup.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { dom0Folder, FQDN, HOST, listing, makeRunEnv, rawMounts, repoRoot, sh, XENBACKUP } from './run-fixtures.js';

const BAD = path.join(repoRoot, 'test/fixtures/config/bad');

function expectedMessage(name: string, file: string): string {
  return fs.readFileSync(path.join(BAD, `${name}.expect`), 'utf8').trimEnd().replaceAll('{file}', file);
}

test('a run mounts the medium, backs up DOM0_ROOT, unmounts; the archive restores with xenbackup restore', async (t) => {
  const env = makeRunEnv(t);
  const conf = env.writeConfig();
  const r = await env.cli(['run', '-c', conf]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`exec: mount -t ext4 ${env.device} ${env.mediumDir}`));
  assert.match(r.stderr, /outcome: \[xenbackup\] OK testhost\.example\.org: 1\/1 volumes ok/);
  assert.deepEqual(env.mediumMounts(), [], 'the run unmounted the medium it mounted');
  assert.deepEqual(listing(env.mediumDir), [], 'BCKMNTP is an empty directory again');
  assert.deepEqual(listing(env.snapDir), []);
  const log = fs.readFileSync(env.logFile, 'utf8');
  assert.match(log, /INFO  xenbackup run started/);
  assert.match(log, /dom0\/root: ok \(full\)/);
  assert.match(log, /xenbackup run finished: exit 0/);

  await env.inspectMedium(async (mnt) => {
    const names = fs.readdirSync(dom0Folder(mnt));
    assert.equal(names.filter((n) => n.endsWith('.json')).length, 1, names.join(' '));
    assert.ok(!names.some((n) => n.endsWith('.partial')), names.join(' '));
    const to = path.join(env.dir, 'restored');
    const restored = await env.cli(['restore', 'dom0/root', '--medium', mnt, '--host', HOST, '--to', to]);
    assert.equal(restored.code, 0, restored.stderr);
    for (const rel of ['etc/hostname', 'etc/passwd', 'home/alice/notes.txt', 'var/lib/app/state.db']) {
      assert.deepEqual(fs.readFileSync(path.join(to, rel)), fs.readFileSync(path.join(env.root, rel)), rel);
    }
    assert.equal(fs.statSync(path.join(to, 'home/alice/notes.txt')).mode & 0o7777, 0o640);
    assert.equal(fs.readlinkSync(path.join(to, 'home/hostname-link')), '../etc/hostname');
    for (const rel of ['tmp/scratch.tmp', 'proc/fake', 'var/cache/big.cache']) {
      assert.ok(!fs.existsSync(path.join(to, rel)), `${rel} is excluded (system path or DOM0_EXCLUDES)`);
    }
  });
});

test('another filesystem mounted inside DOM0_ROOT is kept as an empty directory, and the report says so', async (t) => {
  const env = makeRunEnv(t);
  // A separate /boot, as many dom0s have: one filesystem per volume, so it is not descended into.
  const boot = path.join(env.root, 'boot');
  fs.mkdirSync(boot);
  sh('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'xenbackup-test-boot', boot]);
  fs.writeFileSync(path.join(boot, 'vmlinuz'), 'a kernel\n');
  const r = await env.cli(['run', '-c', env.writeConfig()]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(fs.readFileSync(env.logFile, 'utf8'), /dom0\/root: kept 1 directory of another filesystem empty \(one filesystem per volume\): boot\n/);
  await env.inspectMedium(async (mnt) => {
    const to = path.join(env.dir, 'restored');
    const restored = await env.cli(['restore', 'dom0/root', '--medium', mnt, '--host', HOST, '--to', to]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.deepEqual(fs.readdirSync(path.join(to, 'boot')), []);
    assert.ok(fs.existsSync(path.join(to, 'etc/hostname')));
  });
});

test('a medium already mounted on BCKMNTP is used and left mounted; dry-run then reads its chains', async (t) => {
  const env = makeRunEnv(t);
  const conf = env.writeConfig();
  sh('mount', ['-t', 'ext4', env.device, env.mediumDir]);
  const first = await env.cli(['run', '-c', conf]);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /already mounted on .*; using it and leaving it mounted/);
  assert.deepEqual(env.mediumMounts(), [env.mediumDir], 'still mounted, as it was before the run');

  const dry = await env.cli(['run', '-c', conf, '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /\(mounted now\)/);
  assert.match(dry.stdout, /dom0\/root: .* incremental \(incremental on \d{8}T\d{6}Z\)/);
  const forced = await env.cli(['run', '-c', conf, '--dry-run', '--full']);
  assert.match(forced.stdout, /dom0\/root: .* full \(full requested\)/);

  const second = await env.cli(['run', '-c', conf]);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /dom0\/root: incremental backup/);
  sh('umount', [env.mediumDir]);
});

test('run --dry-run prints the plan and touches nothing: no mount, no lock, no log file', async (t) => {
  const env = makeRunEnv(t);
  const conf = env.writeConfig();
  const before = listing(env.dir);
  const r = await env.cli(['run', '-c', conf, '--dry-run']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /nothing will be touched/);
  assert.match(r.stdout, new RegExp(`medium: ${env.device} \\(ext4\\) on ${env.mediumDir} \\(would be mounted\\)`));
  assert.match(r.stdout, new RegExp(`1\\. dom0/root: ${env.root} \\(one filesystem, no snapshot\\)`));
  assert.equal(r.stderr, '');
  assert.deepEqual(listing(env.dir), before, 'no file or directory appeared or vanished');
  assert.ok(!fs.existsSync(env.logFile) && !fs.existsSync(env.lockDir));
  assert.deepEqual(env.mediumMounts(), []);
});

test('a missing medium: exit 4, nothing written anywhere, the outcome says why', async (t) => {
  const env = makeRunEnv(t);
  const missing = '/dev/xenbackup-test-no-such-disk';
  const conf = env.writeConfig({ BCKDEV: missing });
  const before = listing(env.dir);
  const r = await env.cli(['run', '-c', conf]);
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, new RegExp(`ERROR device ${missing} does not exist\n`));
  assert.ok(r.stderr.includes(`outcome: [xenbackup] MEDIUM UNAVAILABLE ${FQDN}: device ${missing} does not exist\n`), r.stderr);
  assert.deepEqual(listing(env.mediumDir), [], 'BCKMNTP stays an empty directory of the root disk');
  assert.deepEqual(listing(env.snapDir), []);
  // only the log and the (released) lock are new: no backup folder anywhere
  const added = listing(env.dir).filter((p) => !before.includes(p));
  assert.ok(added.every((p) => p === path.basename(env.logFile) || p.startsWith(path.basename(env.lockDir))), added.join(', '));
  assert.ok(!fs.existsSync(path.join(env.dir, HOST)) && !fs.existsSync(path.join('/', HOST)));
  assert.match(fs.readFileSync(env.logFile, 'utf8'), /xenbackup run finished: exit 4/);
});

test('a wrong device on BCKMNTP: exit 4, nothing written to it, and it stays mounted', async (t) => {
  const env = makeRunEnv(t);
  const other = env.otherDevice();
  sh('mount', ['-t', 'ext4', other.device, env.mediumDir]);
  const before = listing(env.mediumDir);
  const conf = env.writeConfig();
  const r = await env.cli(['run', '-c', conf]);
  assert.equal(r.code, 4, r.stderr);
  const why = `${env.mediumDir} is a mountpoint of ${other.device} (`;
  assert.match(r.stderr, new RegExp(`ERROR ${why.replace(/[()]/g, '\\$&')}.*, not of ${env.device} \\(.*\\); refusing to write to it\n`));
  assert.ok(r.stderr.includes(`outcome: [xenbackup] MEDIUM UNAVAILABLE ${FQDN}: ${why}`), r.stderr);
  assert.deepEqual(listing(env.mediumDir), before, 'nothing written onto the wrong filesystem');
  assert.ok(fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${env.mediumDir} `), 'the foreign mount was left alone');
  assert.deepEqual(env.mediumMounts(), [], 'BCKDEV was not mounted anywhere');
  const dry = await env.cli(['run', '-c', conf, '--dry-run']);
  assert.match(dry.stdout, /\(would be mounted\)/, 'a dry run does not take the foreign filesystem for the medium');
  assert.match(dry.stdout, /medium not mounted: chains unknown/);
  sh('umount', [env.mediumDir]);
});

test('a config error: exit 2 with the file:line message, nothing touched', async (t) => {
  const env = makeRunEnv(t);
  // a corpus file as it is: the default LOGFILE and lock must not even be opened
  const corpus = path.join(BAD, '24-delay-not-a-number.xenbackup.conf');
  const defaults = ['/var/log/xenbackup.log', '/run/xenbackup.lock'].map((p) => [p, fs.existsSync(p) ? fs.statSync(p).mtimeMs : null] as const);
  const a = await env.cli(['run', '-c', corpus]);
  assert.equal(a.code, 2);
  assert.equal(a.stderr, `xenbackup: ${expectedMessage('24-delay-not-a-number', corpus)}\n`);
  for (const [p, mtime] of defaults) assert.equal(fs.existsSync(p) ? fs.statSync(p).mtimeMs : null, mtime, `${p} untouched`);

  // a broken volume table under an otherwise good config
  const table = path.join(BAD, '41-readme-example.xenback_vols');
  const conf = env.writeConfig();
  const before = listing(env.dir);
  const b = await env.cli(['run', '-c', conf, '--volumes', table]);
  assert.equal(b.code, 2);
  assert.equal(b.stderr, `xenbackup: ${expectedMessage('41-readme-example', table)}\n`);
  assert.deepEqual(listing(env.dir), before, 'no log, no lock, nothing on the medium');
  assert.deepEqual(env.mediumMounts(), []);
});

test('a LOGFILE that cannot be opened is a config error (exit 2) found before anything is touched', async (t) => {
  const env = makeRunEnv(t);
  const conf = env.writeConfig({ LOGFILE: path.join(env.dir, 'no-such-dir/xenbackup.log') });
  const before = listing(env.dir);
  const r = await env.cli(['run', '-c', conf]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^xenbackup: cannot open log file .*no-such-dir\/xenbackup\.log: ENOENT.* \(LOGFILE, .*xenbackup\.conf:\d+\)\n$/);
  assert.deepEqual(listing(env.dir), before);
  assert.deepEqual(env.mediumMounts(), []);
});

test('a guest volume that fails (its device is no LVM volume) does not stop dom0/root: exit 1', async (t) => {
  const env = makeRunEnv(t);
  fs.writeFileSync(env.volumes, 'web1|root|/dev/xenbackup-test/web1-root|ext4|ro,noatime\n');
  const conf = env.writeConfig();
  const r = await env.cli(['run', '-c', conf]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /ERROR web1\/root: \/dev\/xenbackup-test\/web1-root is not an LVM logical volume/);
  assert.match(r.stderr, /outcome: \[xenbackup\] FAILED testhost\.example\.org: 1\/2 volumes ok, .*1 error/);
  assert.deepEqual(listing(env.snapDir), [], 'no snapshot mountpoint left behind');
  assert.deepEqual(env.mediumMounts(), []);
  await env.inspectMedium((mnt) => {
    assert.ok(fs.existsSync(dom0Folder(mnt)), 'dom0/root was backed up');
    assert.ok(!fs.existsSync(path.join(mnt, HOST, 'web1')), 'nothing of the failed volume on the medium');
  });
});

test('a mount left under MNTSOURCEDIR by a crashed run is unmounted first, and reported', async (t) => {
  const env = makeRunEnv(t);
  const other = env.otherDevice();
  const left = path.join(env.snapDir, 'web1', 'root');
  fs.mkdirSync(left, { recursive: true });
  sh('mount', ['-t', 'ext4', '-o', 'ro', other.device, left]);
  const r = await env.cli(['run', '-c', env.writeConfig()]);
  assert.equal(r.code, 0, r.stderr);
  const line = `sweep: unmounted leftover ${other.device} (ext4) from ${left}`;
  assert.equal(r.stderr.split('\n').filter((l) => l.endsWith(`WARN  ${line}`)).length, 1, r.stderr);
  assert.ok(!rawMounts().some((m) => m.mountPoint === left), 'the leftover mount is gone');
  const log = fs.readFileSync(env.logFile, 'utf8');
  assert.match(log, /report: Leftovers of an earlier run, removed before this one:\n.*report: {3}unmounted leftover /);
});

test('on a terminal the run shows a progress line; under cron (no TTY) it does not', async (t) => {
  const env = makeRunEnv(t);
  const conf = env.writeConfig();
  // script(1) runs the command on a real pseudo-terminal
  const tty = sh('script', ['-qec', `${process.execPath} ${XENBACKUP} run -c ${conf}`, '/dev/null']);
  assert.match(tty, /\r\x1b\[2Kdom0\/root: \d+ entries, \S+ \S+ read: /);
  const cron = await env.cli(['run', '-c', conf]);
  assert.equal(cron.code, 0, cron.stderr);
  assert.ok(!/\x1b|\r/.test(cron.stderr), 'plain lines without control characters under cron');
  assert.ok(!/ entries, /.test(cron.stderr));
});

test('run --help documents the exit codes', async () => {
  const out = sh(process.execPath, [XENBACKUP, 'run', '--help']);
  for (const code of ['0  ', '1  ', '2  ', '3  ', '4  ']) assert.ok(out.includes(`\n  ${code}`), `exit code ${code.trim()} in --help`);
});
