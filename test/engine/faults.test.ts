/**
 * Issue 2 item 9: bad input and faults. Each gives one clear line and a
 * non-zero exit code, and harms nothing already on the medium: a missing
 * or unreadable source, an unknown volume, --at before the first backup, a
 * medium that is missing or not writable, a medium that fills up
 * mid-archive (a real 32 MiB ext4), an unreadable file inside the source
 * (the backup is partial and says which file), and a backup killed with
 * SIGKILL mid-archive (the earlier backups restore, the next run works and
 * clears the debris).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeScratchDir, withLoopFs } from '../helpers/scratch.js';
import { snapshotTree } from '../helpers/tree-snapshot.js';
import { assertTreesEqual } from '../helpers/tree-compare.js';
import { timeOfId } from '../../src/repo/volume-store.js';
import {
  apiBackup,
  assertOneLineError,
  backupsOf,
  chainArchives,
  cliBackup,
  cliRestore,
  fingerprint,
  gnuTarRestoreChain,
  HOST,
  NOBODY,
  put,
  show,
  StepClock,
  volumeDir,
  xenbackup,
  xenbackupSpawn,
} from './engine-fixtures.js';

const VOLUME = 'app1/root';

function smallTree(root: string): void {
  for (let i = 0; i < 20; i++) put(root, `etc/conf${i}`, `setting ${i}\n`.repeat(20));
  put(root, 'var/lib/state', 'state\n');
}

/** A scratch dir with a source (small tree) and an empty medium, both under a 0755 top (for setpriv runs). */
function setUp(t: { after(fn: () => unknown): void }, name: string): { scratch: string; source: string; medium: string } {
  const scratch = makeScratchDir(t, name);
  fs.chmodSync(scratch, 0o755);
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  smallTree(source);
  return { scratch, source, medium };
}

test('bad input: each is one clear line, a non-zero exit, and the medium is untouched', async (t) => {
  const { scratch, source, medium } = setUp(t, 'engine-bad-input');
  const ok = cliBackup(source, medium, VOLUME);
  assert.equal(ok.code, 0, show(ok));
  const first = backupsOf(medium, VOLUME)[0]!;
  const before = fingerprint(medium);
  const to = path.join(scratch, 'to');

  const cases: Array<[string, () => ReturnType<typeof xenbackup>, RegExp, number]> = [
    ['missing source', () => cliBackup(path.join(scratch, 'nope'), medium, VOLUME), /source .*nope does not exist/, 2],
    ['source is a file', () => cliBackup(path.join(source, 'var/lib/state'), medium, VOLUME), /is not a directory/, 2],
    ['bad volume name', () => cliBackup(source, medium, 'no-slash'), /volume "no-slash" must be DOMU\/PART/, 2],
    ['bad --compress', () => cliBackup(source, medium, VOLUME, ['--compress', 'xz']), /--compress must be one of/, 2],
    ['missing medium', () => cliBackup(source, path.join(scratch, 'no-medium'), VOLUME), /medium .*no-medium does not exist/, 4],
    ['restore of an unknown volume', () => cliRestore('ghost/root', medium, to), /unknown volume ghost\/root/, 2],
    ['ls of an unknown volume', () => xenbackup(['ls', 'ghost/root', '--medium', medium, '--host', HOST]), /unknown volume ghost\/root/, 2],
    ['list of an unknown volume', () => xenbackup(['list', 'ghost/root', '--medium', medium, '--host', HOST]), /no backups of ghost\/root/, 2],
    [
      '--at before the first backup',
      () => cliRestore(VOLUME, medium, to, ['--at', new Date(timeOfId(first.id).getTime() - 86_400_000).toISOString()]),
      new RegExp(`no backup of ${VOLUME} at or before .*the first is ${first.id}`),
      2,
    ],
    ['--at that is not a date', () => cliRestore(VOLUME, medium, to, ['--at', 'yesterday']), /--at "yesterday" is not a date/, 2],
    ['a path not in the backup', () => cliRestore(VOLUME, medium, to, ['etc/nope']), /not in backup .*etc\/nope/, 2],
    ['an unsafe path asked for', () => cliRestore(VOLUME, medium, to, ['etc/../../x']), /refusing unsafe path/, 2],
  ];
  for (const [what, run, pattern, code] of cases) {
    await t.test(what, () => {
      const r = run();
      assertOneLineError(r, pattern, code);
      assert.equal(fingerprint(medium), before, 'the medium changed');
      assert.equal(fs.existsSync(to) ? fs.readdirSync(to).length : 0, 0, 'nothing was restored');
    });
  }

  await t.test('a damaged manifest makes restore and ls fail in one line', () => {
    const manifest = path.join(volumeDir(medium, VOLUME), first.manifest);
    const saved = fs.readFileSync(manifest);
    try {
      fs.truncateSync(manifest, saved.length - 10);
      assertOneLineError(cliRestore(VOLUME, medium, to), /manifest.*(trailer|truncated|damaged)/, 1);
      assertOneLineError(xenbackup(['ls', VOLUME, 'etc', '--medium', medium, '--host', HOST]), /manifest.*(trailer|truncated|damaged)/, 1);
    } finally {
      fs.writeFileSync(manifest, saved);
    }
  });
});

test('a backup dated later than the clock (a clock reset) is an error, not an endless wait', async (t) => {
  const { source, medium } = setUp(t, 'engine-future');
  const { sidecar } = await apiBackup(source, medium, VOLUME, { clock: new StepClock(-365 * 24 * 60) });
  const before = fingerprint(medium);
  const r = cliBackup(source, medium, VOLUME, [], { timeoutMs: 60_000 });
  assertOneLineError(r, new RegExp(`newest backup ${sidecar.id} .* is later than the clock .*is the clock wrong`), 1);
  assert.equal(fingerprint(medium), before);
});

test('as an unprivileged user: an unreadable source, a medium that is not writable', async (t) => {
  const { scratch, source, medium } = setUp(t, 'engine-unprivileged');
  const mine = path.join(scratch, 'mine');
  fs.mkdirSync(mine);
  fs.chownSync(mine, NOBODY, NOBODY);
  execFileSync('chmod', ['-R', 'go-rwx', source]);

  assertOneLineError(cliBackup(source, mine, VOLUME, [], { asUser: NOBODY }), /source .* cannot be read: permission denied/, 2);
  assert.deepEqual(fs.readdirSync(mine), [], 'nothing written to the medium');

  const readable = path.join(scratch, 'public');
  smallTree(readable);
  execFileSync('chmod', ['-R', 'go+rX', readable]);
  assertOneLineError(cliBackup(readable, medium, VOLUME, [], { asUser: NOBODY }), /medium .* is not writable/, 4);
  assert.deepEqual(fs.readdirSync(medium), []);
});

test('a read-only medium (a real ro mount) is refused with exit 4', async (t) => {
  const { source } = setUp(t, 'engine-ro-medium');
  const fsys = withLoopFs(t, { fsType: 'ext4', sizeMiB: 16, mountOptions: ['ro'] });
  assertOneLineError(cliBackup(source, fsys.dir, VOLUME), /medium .* is not writable/, 4);
});

test('an unreadable file inside the source: reported by path, the backup is partial, exit 1', async (t) => {
  const { scratch, source } = setUp(t, 'engine-unreadable-file');
  const medium = path.join(scratch, 'nobody-medium');
  fs.mkdirSync(medium);
  execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, source, medium]);
  fs.chmodSync(path.join(source, 'etc/conf7'), 0o000);

  const r = cliBackup(source, medium, VOLUME, [], { asUser: NOBODY });
  assert.equal(r.code, 1, show(r));
  assert.match(r.stderr, /cannot read etc\/conf7: EACCES/);
  assert.match(r.stderr, /PARTIAL/);
  const [partial] = backupsOf(medium, VOLUME);
  assert.equal(partial!.status, 'partial');
  assert.deepEqual(partial!.unreadable.length, 1);
  assert.match(partial!.unreadable[0]!, /etc\/conf7/);
  const listed = xenbackup(['list', '--medium', medium, '--host', HOST]);
  assert.match(listed.stdout, /PARTIAL/);

  // Everything else was saved; once the file is readable again the next backup stores it.
  const to1 = path.join(scratch, 'r1');
  assert.equal(cliRestore(VOLUME, medium, to1).code, 0);
  assert.equal(fs.existsSync(path.join(to1, 'etc/conf7')), false);
  assert.equal(fs.readFileSync(path.join(to1, 'etc/conf8'), 'utf8'), 'setting 8\n'.repeat(20));
  fs.chmodSync(path.join(source, 'etc/conf7'), 0o644);
  const again = cliBackup(source, medium, VOLUME, [], { asUser: NOBODY });
  assert.equal(again.code, 0, show(again));
  assert.equal(backupsOf(medium, VOLUME)[1]!.status, 'complete');
  const to2 = path.join(scratch, 'r2');
  assert.equal(cliRestore(VOLUME, medium, to2).code, 0);
  assertTreesEqual(await snapshotTree(source), await snapshotTree(to2));
});

test('a file that changed and became unreadable keeps its last good version in the partial incremental, for xenbackup and GNU tar alike', async (t) => {
  const { scratch, source } = setUp(t, 'engine-unreadable-incr');
  const medium = path.join(scratch, 'nobody-medium');
  fs.mkdirSync(medium);
  execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, source, medium]);
  assert.equal(cliBackup(source, medium, VOLUME, [], { asUser: NOBODY }).code, 0);
  const good = await snapshotTree(source);

  const victim = path.join(source, 'etc/conf3');
  fs.appendFileSync(victim, 'changed after the full\n');
  fs.chmodSync(victim, 0o000);
  const r = cliBackup(source, medium, VOLUME, [], { asUser: NOBODY });
  assert.equal(r.code, 1, show(r));
  const incr = backupsOf(medium, VOLUME)[1]!;
  assert.equal(incr.kind, 'incremental');
  assert.equal(incr.status, 'partial');

  // The only thing known about etc/conf3 is its last good version: both restores must give that.
  const ours = path.join(scratch, 'ours');
  const restored = cliRestore(VOLUME, medium, ours);
  assert.equal(restored.code, 0, show(restored));
  const gnu = path.join(scratch, 'gnu');
  gnuTarRestoreChain(chainArchives(medium, VOLUME, incr), gnu);
  const options = { ignoreWhere: [{ paths: [/^etc$/], fields: ['mtime' as const] }] }; // etc's own mtime moved with the append
  assertTreesEqual(good, await snapshotTree(gnu), options);
  assertTreesEqual(good, await snapshotTree(ours), options);

  // Readable again: the next backup stores the new version.
  fs.chmodSync(victim, 0o644);
  assert.equal(cliBackup(source, medium, VOLUME, [], { asUser: NOBODY }).code, 0);
  const latest = path.join(scratch, 'latest');
  assert.equal(cliRestore(VOLUME, medium, latest, ['etc/conf3']).code, 0);
  assert.match(fs.readFileSync(path.join(latest, 'etc/conf3'), 'utf8'), /changed after the full\n$/);
});

test('a directory that cannot be listed keeps its last known subtree in the partial incremental, for xenbackup and GNU tar alike', async (t) => {
  const { scratch, source } = setUp(t, 'engine-unlistable');
  put(source, 'etc/sub/deeper/file', 'deep\n');
  fs.mkdirSync(path.join(source, 'etc/empty-sub'));
  const medium = path.join(scratch, 'nobody-medium');
  fs.mkdirSync(medium);
  execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, source, medium]);
  assert.equal(cliBackup(source, medium, VOLUME, [], { asUser: NOBODY }).code, 0);

  fs.chmodSync(path.join(source, 'etc'), 0o000);
  put(source, 'var/lib/new', 'a new file elsewhere\n');
  const r = cliBackup(source, medium, VOLUME, [], { asUser: NOBODY });
  assert.equal(r.code, 1, show(r));
  assert.match(r.stderr, /cannot read etc: EACCES/);
  const incr = backupsOf(medium, VOLUME)[1]!;
  assert.equal(incr.status, 'partial');
  fs.chmodSync(path.join(source, 'etc'), 0o755);
  const now = await snapshotTree(source);

  const options = { ignoreWhere: [{ paths: [/^etc$/], fields: ['mode' as const] }] }; // etc was 0000 when backed up
  const ours = path.join(scratch, 'ours');
  const restored = cliRestore(VOLUME, medium, ours);
  assert.equal(restored.code, 0, show(restored));
  assertTreesEqual(now, await snapshotTree(ours), options);
  const gnu = path.join(scratch, 'gnu');
  gnuTarRestoreChain(chainArchives(medium, VOLUME, incr), gnu);
  assertTreesEqual(now, await snapshotTree(gnu), options);
  assert.equal(fs.statSync(path.join(ours, 'etc')).mode & 0o7777, 0, 'the directory itself is as it was seen');

  // Listable again: nothing in it changed, so nothing is read again.
  const next = cliBackup(source, medium, VOLUME, [], { asUser: NOBODY });
  assert.equal(next.code, 0, show(next));
  assert.equal(backupsOf(medium, VOLUME)[2]!.stats.filesRead, 0);
});

test('a medium that fills up mid-archive: the partial is removed, exit non-zero, earlier backups still restore', async (t) => {
  const { scratch, source } = setUp(t, 'engine-medium-full');
  const fsys = withLoopFs(t, { fsType: 'ext4', sizeMiB: 32 });
  const medium = fsys.dir;
  assert.equal(cliBackup(source, medium, VOLUME).code, 0);
  const first = await snapshotTree(source);
  const committed = fingerprint(medium);

  // Incompressible and bigger than the whole filesystem.
  put(source, 'var/big.bin', randomBytes(40 << 20));
  const r = cliBackup(source, medium, VOLUME);
  assertOneLineError(r, /writing .*\/app1\/root\/\d{8}T\d{6}Z\.incr\.tar\.zst\.partial: ENOSPC: no space left on device/, 1);
  assert.equal(fingerprint(medium), committed, 'only the earlier backup remains: no .partial, nothing changed');
  assert.equal(backupsOf(medium, VOLUME).length, 1);

  const to = path.join(scratch, 'restored');
  const restored = cliRestore(VOLUME, medium, to);
  assert.equal(restored.code, 0, show(restored));
  assertTreesEqual(first, await snapshotTree(to));
});

test('a backup killed with SIGKILL mid-archive: earlier backups restore; the next backup works and removes the debris', async (t) => {
  const { scratch, source, medium } = setUp(t, 'engine-killed');
  assert.equal(cliBackup(source, medium, VOLUME).code, 0);
  const first = await snapshotTree(source);
  const dir = volumeDir(medium, VOLUME);
  const committed = fingerprint(dir);

  // gzip of incompressible data is slow enough (tens of MB/s) that the kill lands mid-archive.
  put(source, 'var/big.bin', randomBytes(64 << 20));
  const child = xenbackupSpawn(['backup', source, '--volume', VOLUME, '--medium', medium, '--host', HOST, '--compress', 'gzip']);
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const exited = new Promise<string | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  const archivePartial = (): string | undefined =>
    fs.readdirSync(dir).find((n) => /\.tar\.gz\.partial$/.test(n) && fs.statSync(path.join(dir, n)).size > 0);
  let killedMidArchive = false;
  while (child.exitCode === null) {
    if (archivePartial()) {
      child.kill('SIGKILL');
      killedMidArchive = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(killedMidArchive, 'the backup finished before it could be killed mid-archive');
  assert.equal(await exited, 'SIGKILL');
  assert.ok(fs.readdirSync(dir).some((n) => n.endsWith('.partial')), 'the kill left debris, as a real crash would');
  assert.equal(backupsOf(medium, VOLUME).length, 1, 'a killed backup is no backup');

  const to1 = path.join(scratch, 'r1');
  const r1 = cliRestore(VOLUME, medium, to1);
  assert.equal(r1.code, 0, show(r1));
  assertTreesEqual(first, await snapshotTree(to1));
  const listed = xenbackup(['list', VOLUME, '--medium', medium, '--host', HOST, '--json']);
  assert.equal(JSON.parse(listed.stdout)[0].backups.length, 1);

  const next = cliBackup(source, medium, VOLUME);
  assert.equal(next.code, 0, show(next));
  assert.match(next.stderr, /taking over .*\.backup\.lock from pid \d+ .*no longer running/);
  assert.match(next.stderr, /removed .*\.partial, left by an interrupted run/);
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.endsWith('.partial')), []);
  const [, second] = backupsOf(medium, VOLUME);
  assert.equal(second!.kind, 'incremental', 'the chain continues from the last committed backup');
  for (const line of committed.split('\n')) assert.ok(fingerprint(dir).includes(line), `earlier file changed: ${line}`);
  const to2 = path.join(scratch, 'r2');
  assert.equal(cliRestore(VOLUME, medium, to2).code, 0);
  assertTreesEqual(await snapshotTree(source), await snapshotTree(to2));
});

test('a second backup of a volume while one is running is refused and harms neither', async (t) => {
  const { scratch, source, medium } = setUp(t, 'engine-concurrent');
  put(source, 'var/big.bin', randomBytes(48 << 20));
  const dir = volumeDir(medium, VOLUME);
  const child = xenbackupSpawn(['backup', source, '--volume', VOLUME, '--medium', medium, '--host', HOST, '--compress', 'gzip']);
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const running = (): boolean => fs.existsSync(dir) && fs.readdirSync(dir).some((n) => n.endsWith('.tar.gz.partial'));
  while (!running() && child.exitCode === null) await new Promise((r) => setTimeout(r, 10));
  assert.ok(running(), 'the first backup finished before the second could start');

  const second = cliBackup(source, medium, VOLUME);
  assertOneLineError(second, /another backup of this volume is running \(pid \d+/, 1);
  assert.equal(await exited, 0, `the first backup was harmed:\n${stderr}`);
  const [only] = backupsOf(medium, VOLUME);
  assert.equal(backupsOf(medium, VOLUME).length, 1);
  assert.equal(only!.kind, 'full');
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.endsWith('.partial') || n.startsWith('.backup.lock')), [], 'lock released, no debris');
  const to = path.join(scratch, 'restored');
  assert.equal(cliRestore(VOLUME, medium, to).code, 0);
  assertTreesEqual(await snapshotTree(source), await snapshotTree(to));
});
