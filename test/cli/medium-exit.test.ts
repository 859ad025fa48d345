/**
 * Exit codes as README and --help state them, seen from outside (issue 14
 * item 7): a --medium folder that is not there, or a --config whose BCKMNTP
 * has nothing mounted, is exit 4 with one line for every command that reads
 * the medium (never "no backups" with exit 0); a folder that is there but
 * holds nothing of the host is still an answer. A restore that finds the
 * target in the way is exit 2, one from a damaged archive exit 1.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeScratchDir } from '../helpers/scratch.js';
import { apiBackup, assertOneLineError, backupsOf, HOST, put, show, StepClock, xenbackup } from '../engine/engine-fixtures.js';
import { makeRunEnv, sh } from '../run/run-fixtures.js';

test('a --medium folder that does not exist: exit 4 and one line for list, prune, ls, verify and restore', async (t) => {
  const scratch = makeScratchDir(t, 'cli-medium-missing');
  const gone = path.join(scratch, 'no-such-medium');
  const file = path.join(scratch, 'a-file');
  fs.writeFileSync(file, '');
  const to = path.join(scratch, 'to');
  const commands: string[][] = [
    ['list'],
    ['list', '--json'],
    ['list', 'web1/root'],
    ['prune'],
    ['prune', '--dry-run'],
    ['ls', 'web1/root'],
    ['verify'],
    ['verify', '--quick'],
    ['restore', 'web1/root', '--to', to],
  ];
  for (const args of commands) {
    for (const [medium, why] of [
      [gone, 'it does not exist'],
      [file, 'it is not a directory'],
    ] as const) {
      const r = xenbackup([...args, '--medium', medium, '--host', HOST]);
      assertOneLineError(r, new RegExp(`^xenbackup: the backup medium ${medium} is not available: ${why}$`), 4);
      assert.equal(r.stdout, '', `${args.join(' ')}: nothing on stdout\n${show(r)}`);
    }
  }
  assert.ok(!fs.existsSync(gone) && !fs.existsSync(to), 'nothing was made');
});

test('a medium folder that holds no backups of the host: list and prune say so, exit 0', async (t) => {
  const scratch = makeScratchDir(t, 'cli-medium-empty');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  const list = xenbackup(['list', '--medium', medium, '--host', HOST]);
  assert.equal(list.code, 0, show(list));
  assert.equal(list.stdout, `no backups on ${medium} for host ${HOST}\n`);
  const json = xenbackup(['list', '--medium', medium, '--host', HOST, '--json']);
  assert.equal(json.code, 0, show(json));
  assert.deepEqual(JSON.parse(json.stdout), []);
  const prune = xenbackup(['prune', '--medium', medium, '--host', HOST, '--dry-run']);
  assert.equal(prune.code, 0, show(prune));
  assert.match(prune.stdout, /^no backups on .* for host /m);
});

test('--config whose BCKMNTP has nothing mounted: list, prune and verify exit 4, nothing read or written there', async (t) => {
  const env = makeRunEnv(t);
  const conf = env.writeConfig();
  // what an unmounted mountpoint may hold: files of the root disk, which must not be taken for the medium
  fs.mkdirSync(path.join(env.mediumDir, HOST));
  const before = fs.readdirSync(env.mediumDir, { recursive: true });
  for (const args of [['list'], ['list', '--json'], ['prune', '--dry-run'], ['prune'], ['verify'], ['verify', '--quick']]) {
    const r = xenbackup([...args, '-c', conf]);
    assertOneLineError(r, new RegExp(`backup medium ${env.device} is not mounted on ${env.mediumDir} \\(BCKMNTP\\)`), 4);
  }
  assert.deepEqual(fs.readdirSync(env.mediumDir, { recursive: true }), before);

  // mounted: the same commands read it (nothing there yet: list says so, verify has nothing to verify)
  sh('mount', ['-t', 'ext4', env.device, env.mediumDir]);
  t.after(() => {
    try {
      sh('umount', [env.mediumDir]);
    } catch {
      // already unmounted
    }
  });
  const list = xenbackup(['list', '-c', conf]);
  assert.equal(list.code, 0, show(list));
  assert.match(list.stdout, /^no backups on /);
  assertOneLineError(xenbackup(['verify', '-c', conf]), /nothing to verify: no backups on /, 2);
});

test('restore: a path in the way, or not in the backup, is exit 2 and one line', async (t) => {
  const scratch = makeScratchDir(t, 'cli-restore-codes');
  const medium = path.join(scratch, 'medium');
  const source = path.join(scratch, 'source');
  fs.mkdirSync(medium);
  // enough incompressible data that the archive has several frames, so a cut one ends mid-member
  for (let i = 0; i < 40; i++) put(source, `etc/f${i}`, Buffer.from(Array.from({ length: 20_000 }, (_, j) => (i * 7919 + j * 104729) % 251)));
  await apiBackup(source, medium, 'web1/root');
  const to = path.join(scratch, 'to');
  fs.mkdirSync(path.join(to, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(to, 'etc/f1'), 'in the way\n');
  assertOneLineError(xenbackup(['restore', 'web1/root', 'etc/f1', '--medium', medium, '--host', HOST, '--to', to, '-q']), /already exist in .*use --force/, 2);
  assertOneLineError(xenbackup(['restore', 'web1/root', 'etc/nope', '--medium', medium, '--host', HOST, '--to', to, '-q']), /not in backup .*etc\/nope/, 2);
});

// The engine tells a damaged backup (DamagedBackupError, exit 1) from a request or target problem
// (RestoreError, exit 2) once src/engines/restore-errors.ts exists (branch h-restore, merged into main
// as fb5044c); on a tree without it a truncated archive is a RestoreError and this is a known gap (todo).

test('restore from a truncated archive: exit 1, one line naming the archive', async (t) => {
  const scratch = makeScratchDir(t, 'cli-restore-damaged');
  const medium = path.join(scratch, 'medium');
  const source = path.join(scratch, 'source');
  fs.mkdirSync(medium);
  // enough data that the archive has several frames, so a cut one ends mid-member
  for (let i = 0; i < 40; i++) put(source, `etc/f${i}`, Buffer.from(Array.from({ length: 20_000 }, (_, j) => (i * 7919 + j * 104729) % 251)));
  await apiBackup(source, medium, 'web1/root');
  const [backup] = backupsOf(medium, 'web1/root');
  const archive = path.join(medium, HOST, 'web1/root', backup!.archive);
  fs.truncateSync(archive, Math.floor(fs.statSync(archive).size / 2));
  const fresh = path.join(scratch, 'fresh');
  const r = xenbackup(['restore', 'web1/root', '--medium', medium, '--host', HOST, '--to', fresh, '-q']);
  assertOneLineError(r, new RegExp(backup!.archive.replace(/\./g, '\\.')), 1);
});

test('list: a sidecar that cannot be read is named on stderr, one line, and exit 1; the others are listed', async (t) => {
  const scratch = makeScratchDir(t, 'cli-list-damaged');
  const medium = path.join(scratch, 'medium');
  const source = path.join(scratch, 'source');
  fs.mkdirSync(medium);
  put(source, 'etc/hostname', 'web1\n');
  const clock = new StepClock();
  await apiBackup(source, medium, 'web1/root', { clock });
  put(source, 'etc/motd', 'hello\n');
  await apiBackup(source, medium, 'web1/root', { clock });
  const [first, second] = backupsOf(medium, 'web1/root');
  const sidecar = path.join(medium, HOST, 'web1/root', `${second!.id}.incr.json`);
  const data = JSON.parse(fs.readFileSync(sidecar, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(sidecar, JSON.stringify({ ...data, stats: null }));
  for (const extra of [[], ['--json']]) {
    const r = xenbackup(['list', '--medium', medium, '--host', HOST, ...extra]);
    assertOneLineError(r, new RegExp(`^xenbackup: ${sidecar.replace(/[.]/g, '\\.')}: .*stats`), 1);
    assert.ok(r.stdout.includes(first!.id), show(r));
    assert.ok(!r.stdout.includes(second!.id), show(r));
  }
});
