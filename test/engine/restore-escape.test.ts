/**
 * Issue 14 item 2: a restore never reaches outside --to, whatever the
 * backup or the target holds. A sentinel tree next to --to (restore-sentinel.ts)
 * must be byte for byte and metadata for metadata unchanged after each
 * attack, with and without --force, and a hostile backup ends in one line
 * naming the path (exit 1: the backup is damaged or hostile).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeScratchDir } from '../helpers/scratch.js';
import { assertOneLineError, cliBackup, cliRestore, memoryLogger, put, show } from './engine-fixtures.js';
import { writeHandmadeBackup, type HandBlock } from './handmade-backup.js';
import { makeSentinel } from './restore-sentinel.js';
import { RestoreError, RestoreWriter } from '../../src/engines/restore-writer.js';
import type { ManifestEntry } from '../../src/core/manifest.js';
import type { TarEntry } from '../../src/tar/entry.js';

const VOLUME = 'db1/data';

const hostile: Array<{ what: string; blocks: (outside: string) => HandBlock[]; error: RegExp }> = [
  {
    what: 'a symlink a -> outside, a directory a holding a file a/x',
    error: /manifest (lists a twice|puts a\/x below a)/,
    blocks: (outside) => [
      { dir: '', entries: [{ name: 'a', type: 'symlink', link: outside }] },
      { dir: 'a', entries: [{ name: 'x', type: 'file', content: 'through the symlink?\n', mode: 0o777 }] },
    ],
  },
  {
    what: 'a symlink a -> outside and a symlink a/x',
    error: /manifest (lists a twice|puts a\/x below a)/,
    blocks: (outside) => [
      { dir: '', entries: [{ name: 'a', type: 'symlink', link: outside }] },
      { dir: 'a', entries: [{ name: 'x', type: 'symlink', link: '/etc/passwd' }] },
    ],
  },
  {
    what: 'a relative symlink a -> ../../../outside, a directory a/x',
    error: /manifest (lists a twice|puts a\/x below a)/,
    blocks: () => [
      { dir: '', entries: [{ name: 'a', type: 'symlink', link: '../../../outside' }] },
      { dir: 'a', entries: [] },
      { dir: 'a/x', entries: [{ name: 'f', type: 'file', content: 'deeper\n' }] },
    ],
  },
  {
    what: 'a file a and a file a/x below it',
    error: /manifest (lists a twice|puts a\/x below a)/,
    blocks: () => [
      { dir: '', entries: [{ name: 'a', type: 'file', content: 'a file\n' }] },
      { dir: 'a', entries: [{ name: 'x', type: 'file', content: 'below a file\n' }] },
    ],
  },
  {
    what: 'a hard link member to an outside path',
    error: /the member for h .*type hardlink/,
    blocks: () => [{ dir: '', entries: [{ name: 'h', type: 'file', content: '', member: { type: 'hardlink', linkTarget: Buffer.from('../../../outside/x') } }] }],
  },
  {
    what: 'a hard link member to the victim by absolute path',
    error: /the member for h .*type hardlink/,
    blocks: (outside) => [{ dir: '', entries: [{ name: 'h', type: 'file', content: '', member: { type: 'hardlink', linkTarget: Buffer.from(path.join(outside, '../victim')) } }] }],
  },
  {
    what: 'a member named ../../../outside/x under the manifest name x',
    error: /the member for x .*path \.\.\/\.\.\/\.\.\/outside\/x/,
    blocks: () => [{ dir: '', entries: [{ name: 'x', type: 'file', content: 'honest name\n', memberPath: '../../../outside/x' }] }],
  },
];

for (const [i, h] of hostile.entries()) {
  test(`restore of a hostile backup (${h.what}) changes nothing outside --to and names the path`, async (t) => {
    const scratch = makeScratchDir(t, 'restore-escape');
    const medium = path.join(scratch, 'medium');
    const { to, sentinel } = makeSentinel(path.join(scratch, 'jail'));
    await writeHandmadeBackup(medium, VOLUME, `2026010${i + 1}T000000Z`, h.blocks(sentinel.dir));
    const before = sentinel.state();
    for (const force of [[], ['--force']]) {
      const r = cliRestore(VOLUME, medium, to, force, { timeoutMs: 30_000 });
      assertOneLineError(r, h.error, 1);
      assert.equal(sentinel.state(), before, `outside --to changed (${force.join(' ')}):\n${show(r)}`);
    }
  });
}

test('--force replaces a symlink the target holds where the backup has a directory, without following it', async (t) => {
  const scratch = makeScratchDir(t, 'restore-escape-target');
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  put(source, 'a/x', 'restored x\n');
  put(source, 'd', 'a file where the target has a directory\n');
  assert.equal(cliBackup(source, medium, VOLUME).code, 0);
  const { to, sentinel } = makeSentinel(path.join(scratch, 'jail'));
  fs.symlinkSync(sentinel.dir, path.join(to, 'a'));
  // A directory in the way, holding symlinks out: removed without entering them.
  fs.mkdirSync(path.join(to, 'd/deep'), { recursive: true });
  fs.symlinkSync(sentinel.dir, path.join(to, 'd/link'));
  fs.symlinkSync(path.join(sentinel.dir, 'sub'), path.join(to, 'd/deep/sub'));
  const before = sentinel.state();

  const refused = cliRestore(VOLUME, medium, to);
  assertOneLineError(refused, /already exist.*\ba\b.*--force/, 2);
  assert.equal(sentinel.state(), before);

  const partial = cliRestore(VOLUME, medium, to, ['a/x', '--force']);
  assertOneLineError(partial, /refusing to restore a\/x: a in the target is a symlink/, 2);
  assert.equal(sentinel.state(), before);

  const forced = cliRestore(VOLUME, medium, to, ['--force']);
  assert.equal(forced.code, 0, show(forced));
  assert.equal(sentinel.state(), before, show(forced));
  assert.ok(fs.lstatSync(path.join(to, 'a')).isDirectory());
  assert.equal(fs.readFileSync(path.join(to, 'a/x'), 'utf8'), 'restored x\n');
  assert.equal(fs.readFileSync(path.join(to, 'd'), 'utf8'), 'a file where the target has a directory\n');
});

const T = 1_600_000_000_000_000_000n;
function entry(name: string, type: ManifestEntry['type'], extra: Partial<ManifestEntry> = {}): { rel: Buffer; entry: ManifestEntry; meta: TarEntry } {
  const e: ManifestEntry = {
    name: Buffer.from(path.basename(name)),
    type,
    mode: 0o777,
    uid: 1234,
    gid: 1234,
    size: 0,
    mtimeNs: T,
    ctimeNs: T,
    ino: '1',
    nlink: 1,
    archive: 'x',
    offset: 0,
    ...extra,
  };
  return { rel: Buffer.from(name), entry: e, meta: { path: Buffer.from(name), type, mode: e.mode, uid: e.uid, gid: e.gid, size: 0, mtimeNs: T, linkTarget: e.link } };
}

// The writer alone, given what the plan check refuses: a directory a, then a symlink a -> outside.
// Its own confinement must hold: the symlink replaces the directory (--force), and the directory's
// mode, owner and times, applied last, land on the symlink itself, never on what it points to.
for (const force of [false, true]) {
  test(`the writer never applies metadata through a symlink it made (force ${force})`, async (t) => {
    const scratch = makeScratchDir(t, 'restore-escape-writer');
    const { to, sentinel } = makeSentinel(path.join(scratch, 'jail'));
    const before = sentinel.state();
    const w = new RestoreWriter(to, force, memoryLogger().log);
    const dir = entry('a', 'dir');
    const file = entry('a/x', 'file', { size: 3 });
    const link = entry('a', 'symlink', { link: Buffer.from(sentinel.dir) });
    const inner = entry('a/y', 'symlink', { link: Buffer.from('/etc/passwd') });
    w.begin(dir.rel, dir.entry, dir.meta);
    w.begin(file.rel, file.entry, file.meta);
    w.data(Buffer.from('abc'), 0);
    w.end();
    w.begin(link.rel, link.entry, link.meta);
    w.begin(inner.rel, inner.entry, inner.meta);
    assert.throws(() => w.finish(), (e: Error) => e instanceof RestoreError && (force ? /a\/y: a in the target is a symlink/ : /a exists in the target/).test(e.message));
    assert.equal(sentinel.state(), before);

    // Without the inner symlink, the directory's metadata goes to the symlink a, not to outside.
    const w2 = new RestoreWriter(path.join(to, 'again'), true, memoryLogger().log);
    w2.begin(dir.rel, dir.entry, dir.meta);
    w2.begin(link.rel, link.entry, link.meta);
    w2.finish();
    assert.ok(fs.lstatSync(path.join(to, 'again/a')).isSymbolicLink());
    assert.equal(sentinel.state(), before);
  });
}
