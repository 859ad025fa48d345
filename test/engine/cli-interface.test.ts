/**
 * The command line as a user and a script see it (issue 2 items 2 and 8):
 * `list --json` has exactly the documented, stable shape; `ls` lists a
 * directory or one entry as of a backup, names that are not UTF-8 shown
 * escaped; every command's --help carries examples; `demo` runs as a plain
 * user and writes only under the folder it names.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeScratchDir } from '../helpers/scratch.js';
import { timeOfId } from '../../src/repo/volume-store.js';
import { assertOneLineError, backupsOf, HOST, NOBODY, put, show, StepClock, apiBackup, xenbackup } from './engine-fixtures.js';

const LISTED_KEYS = ['archive', 'archiveBytes', 'base', 'bytes', 'chain', 'files', 'id', 'kind', 'manifest', 'status', 'time'];

test('list --json: the documented shape, volumes in order, backups oldest first', async (t) => {
  const scratch = makeScratchDir(t, 'engine-list');
  const medium = path.join(scratch, 'medium');
  const a = path.join(scratch, 'a');
  const b = path.join(scratch, 'b');
  fs.mkdirSync(medium);
  put(a, 'one', '1\n');
  put(a, 'two', '22\n');
  put(b, 'x/y', 'why\n');
  const clock = new StepClock();
  await apiBackup(a, medium, 'web1/root', { clock });
  put(a, 'three', '333\n');
  await apiBackup(a, medium, 'web1/root', { clock });
  await apiBackup(b, medium, 'db1/data', { clock, compression: 'gzip' });

  const empty = xenbackup(['list', '--medium', medium, '--host', 'no-such-host', '--json']);
  assert.equal(empty.code, 0, show(empty));
  assert.deepEqual(JSON.parse(empty.stdout), []);

  const r = xenbackup(['list', '--medium', medium, '--host', HOST, '--json']);
  assert.equal(r.code, 0, show(r));
  const data = JSON.parse(r.stdout) as Array<{ volume: string; backups: Array<Record<string, unknown>> }>;
  assert.deepEqual(data.map((v) => v.volume), ['db1/data', 'web1/root']);
  for (const v of data) {
    // The documented fields, each with its meaning; fields may be added, never removed or changed.
    for (const key of ['backups', 'volume']) assert.ok(key in v, `volume field ${key}`);
    const sidecars = backupsOf(medium, v.volume);
    assert.deepEqual(v.backups.map((x) => x.id), sidecars.map((s) => s.id), 'oldest first');
    for (const [i, x] of v.backups.entries()) {
      for (const key of LISTED_KEYS) assert.ok(key in x, `field ${key} of ${v.volume} ${String(x.id)}`);
      const s = sidecars[i]!;
      assert.equal(x.time, timeOfId(s.id).toISOString());
      assert.ok(x.kind === 'full' || x.kind === 'incremental');
      assert.equal(x.kind, s.kind);
      assert.equal(x.base, s.base);
      assert.equal(x.chain, s.chain);
      assert.equal(x.status, 'complete');
      assert.equal(typeof x.files, 'number');
      assert.equal(x.files, s.stats.entries);
      assert.equal(x.bytes, s.stats.sourceBytes);
      assert.equal(x.archiveBytes, fs.statSync(x.archive as string).size);
      for (const key of ['archive', 'manifest'] as const) {
        assert.ok(path.isAbsolute(x[key] as string), `${key} is an absolute path`);
        assert.ok(fs.existsSync(x[key] as string), `${key} exists`);
      }
    }
  }
  const web = data.find((v) => v.volume === 'web1/root')!.backups;
  assert.deepEqual(web.map((x) => x.kind), ['full', 'incremental']);
  assert.equal(web[1]!.base, web[0]!.id);
  assert.equal(web[1]!.files, 4, 'the root and three files');
  assert.match(data[0]!.backups[0]!.archive as string, /\.full\.tar\.gz$/);

  const one = xenbackup(['list', 'web1/root', '--medium', medium, '--host', HOST, '--json']);
  const only = JSON.parse(one.stdout) as typeof data;
  assert.deepEqual(only.map((v) => v.volume), ['web1/root']);
  assert.deepEqual(only[0]!.backups.map((x) => x.id), web.map((x) => x.id));

  const text = xenbackup(['list', '--medium', medium, '--host', HOST]);
  assert.equal(text.code, 0, show(text));
  assert.match(text.stdout, /^web1\/root$/m);
  assert.match(text.stdout, new RegExp(`^  ${web[1]!.id as string}\\s+incr .*\\.incr\\.tar\\.zst$`, 'm'));
});

test('ls: a directory, one entry, -l, --at, odd names', async (t) => {
  const scratch = makeScratchDir(t, 'engine-ls');
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  put(source, 'etc/passwd', 'root:x:0:0::/root:/bin/sh\n');
  put(source, 'etc/hosts', '127.0.0.1 localhost\n');
  fs.mkdirSync(path.join(source, 'etc/ssh'));
  fs.symlinkSync('hosts', path.join(source, 'etc/hosts.link'));
  fs.writeFileSync(Buffer.from(source + '/etc/caf\xe9', 'latin1'), 'Latin-1\n');
  fs.chmodSync(path.join(source, 'etc/passwd'), 0o4754);
  const clock = new StepClock();
  const first = await apiBackup(source, medium, 'web1/root', { clock });
  put(source, 'etc/passwd', 'root:x:0:0::/root:/bin/bash\nnew:x:1000:1000::/home/new:/bin/sh\n');
  await apiBackup(source, medium, 'web1/root', { clock });
  const ls = (...args: string[]): ReturnType<typeof xenbackup> => xenbackup(['ls', 'web1/root', ...args, '--medium', medium, '--host', HOST]);

  const root = ls();
  assert.equal(root.code, 0, show(root));
  assert.deepEqual(root.stdout.trim().split('\n'), ['etc']);
  const etc = ls('etc');
  assert.deepEqual(etc.stdout.trim().split('\n'), ['caf\\xe9', 'hosts', 'hosts.link -> hosts', 'passwd', 'ssh']);
  const long = ls('/etc/passwd', '-l');
  assert.equal(long.code, 0, show(long));
  assert.match(long.stdout, /^-rwsr-xr-- +0 +0 +63 \d{4}-\d\d-\d\d \d\d:\d\d:\d\d {2}passwd {2}\[\d{8}T\d{6}Z\]$/m);
  const old = ls('etc/passwd', '-l', '--at', timeOfId(first.sidecar.id).toISOString());
  assert.match(old.stdout, new RegExp(` 26 .*passwd  \\[${first.sidecar.id}\\]`), show(old));
  assert.match(ls('etc', '-l').stdout, /^d.* ssh /m);
  assertOneLineError(ls('etc/nope'), /etc\/nope is not in backup/, 2);
});

test('every command has --help with examples', () => {
  const top = xenbackup(['--help']);
  assert.equal(top.code, 0, show(top));
  assert.match(top.stdout, /^Examples:$/m);
  const section = top.stdout.slice(top.stdout.indexOf('Commands:'), top.stdout.indexOf('Examples:'));
  const commands = [...section.matchAll(/^ {2}([a-z][a-z-]*) .*$/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
  for (const c of ['backup', 'list', 'ls', 'restore', 'demo']) assert.ok(commands.includes(c), `${c} is listed in --help`);
  for (const c of commands) {
    const r = xenbackup([c, '--help']);
    assert.equal(r.code, 0, `${c} --help:\n${show(r)}`);
    assert.match(r.stdout, /^Examples?:$/m, `${c} --help has no examples`);
    assert.match(r.stdout, new RegExp(`^ +xenbackup ${c}\\b`, 'm'), `${c} --help shows no example of itself`);
  }
});

test('demo runs as a plain user and writes only under the folder it names', async (t) => {
  const scratch = makeScratchDir(t, 'engine-demo');
  fs.chmodSync(scratch, 0o755);
  const dir = path.join(scratch, 'demo');
  fs.mkdirSync(dir);
  fs.chownSync(dir, NOBODY, NOBODY);
  const r = xenbackup(['demo', '--dir', dir], { asUser: NOBODY });
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /Restored etc\/motd as of backup \d{8}T\d{6}Z \(the full\): "Welcome to web1, first version\."/);
  assert.match(r.stdout, new RegExp(`Everything is under ${dir}`));
  assert.deepEqual(fs.readdirSync(scratch), ['demo']);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['medium', 'restored', 'source']);
  const listed = JSON.parse(xenbackup(['list', '--medium', path.join(dir, 'medium'), '--host', 'demo-host', '--json']).stdout);
  assert.deepEqual(listed[0].backups.map((b: { kind: string }) => b.kind), ['full', 'incremental']);
});
