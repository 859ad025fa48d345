/**
 * The rsync engine with the real rsync binary: dated trees whose unchanged
 * files are hardlinks into the previous tree (inode numbers checked), exact
 * restores from a tree (torture tree, compared entry by entry), and a failed
 * rsync (medium full) that leaves no tree that looks complete.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { prepareMirror } from '../../src/engines/rsync/rsync-backup.js';
import { restore } from '../../src/engines/restore.js';
import { VolumeStore } from '../../src/repo/volume-store.js';
import { LocalStorage } from '../../src/storage/local-storage.js';
import { createLogger, MemorySink } from '../../src/util/log.js';
import { makeScratchDir, withLoopFs, type CleanupContext } from '../helpers/scratch.js';
import { buildTortureTree } from '../helpers/torture-tree.js';
import { snapshotTree } from '../helpers/tree-snapshot.js';
import { assertTreesEqual } from '../helpers/tree-compare.js';

const HOST = 'test-host';
const VOLUME = 'web1/root';

/** A clock a minute apart per call, so backups need no real waiting. */
function steppingClock(start = Date.UTC(2026, 10, 1, 3, 0, 0)): () => Date {
  let t = start;
  return () => new Date((t += 60_000));
}

/** A scratch folder holding an empty source tree and an empty medium. */
function sourceAndMedium(t: CleanupContext, prefix: string): { dir: string; src: string; medium: string } {
  const dir = makeScratchDir(t, prefix);
  const src = path.join(dir, 'src');
  const medium = path.join(dir, 'medium');
  fs.mkdirSync(src);
  fs.mkdirSync(medium);
  return { dir, src, medium };
}

function logger(): { sink: MemorySink; log: ReturnType<typeof createLogger> } {
  const sink = new MemorySink();
  return { sink, log: createLogger([sink.sink], 'debug') };
}

test('unchanged files of the second tree are hardlinks into the first; changed and new ones are not', async (t) => {
  const { dir, src, medium } = sourceAndMedium(t, 'rsync-links');
  fs.mkdirSync(path.join(src, 'etc'));
  fs.writeFileSync(path.join(src, 'etc/keep'), 'same\n');
  fs.writeFileSync(path.join(src, 'etc/change'), 'one\n');
  fs.writeFileSync(path.join(src, 'gone'), 'bye\n');
  const now = steppingClock();
  const { log } = logger();
  const req = { sourceDir: src, medium, host: HOST, volume: VOLUME, logger: log, now };
  const first = await (await prepareMirror(req)).commit();
  fs.writeFileSync(path.join(src, 'etc/change'), 'two\n');
  fs.writeFileSync(path.join(src, 'etc/new'), 'new\n');
  fs.rmSync(path.join(src, 'gone'));
  const second = await (await prepareMirror(req)).commit();
  const store = new VolumeStore(new LocalStorage(medium), HOST, VOLUME);
  const ino = (sc: { archive: string }, rel: string): bigint => fs.statSync(path.join(store.pathOf(sc.archive), rel), { bigint: true }).ino;
  assert.equal(ino(first, 'etc/keep'), ino(second, 'etc/keep'), 'an unchanged file must be a hardlink to the previous tree');
  assert.notEqual(ino(first, 'etc/change'), ino(second, 'etc/change'));
  assert.equal(fs.readFileSync(path.join(store.pathOf(second.archive), 'etc/change'), 'utf8'), 'two\n');
  assert.equal(fs.existsSync(path.join(store.pathOf(second.archive), 'gone')), false, '--delete: a deleted file is not in the new tree');
  assert.equal(fs.readFileSync(path.join(store.pathOf(first.archive), 'gone'), 'utf8'), 'bye\n', 'the old tree is untouched');
  assert.equal(second.engine, 'rsync');
  assert.equal(second.stats.unchanged, 1, 'only etc/keep carried its hash over unread');
  assert.equal((fs.statSync(store.pathOf(second.archive)).mode & 0o777).toString(8), '700', 'trees are private');
  // Both trees are restore points: --at picks the first.
  const target = path.join(dir, 'restored-first');
  const r = await restore({ medium, host: HOST, volume: VOLUME, paths: [Buffer.from('etc/change'), Buffer.from('gone')], targetDir: target, at: new Date(first.finishedAt), force: false, logger: log });
  assert.deepEqual(r.errors, []);
  assert.equal(fs.readFileSync(path.join(target, 'etc/change'), 'utf8'), 'one\n');
  assert.equal(fs.readFileSync(path.join(target, 'gone'), 'utf8'), 'bye\n');
});

test('a torture tree restores exactly from an rsync tree', async (t) => {
  const { dir, src, medium } = sourceAndMedium(t, 'rsync-torture');
  // rsync reads a sparse file's holes as zeros: keep its apparent size small here.
  await buildTortureTree(src, { bigFileSize: 8 << 20, sparseApparentSize: 256 << 20, socket: false });
  const { log } = logger();
  const sc = await (await prepareMirror({ sourceDir: src, medium, host: HOST, volume: VOLUME, logger: log, now: steppingClock() })).commit();
  assert.equal(sc.status, 'complete', sc.unreadable.join('; '));
  const target = path.join(dir, 'restored');
  const r = await restore({ medium, host: HOST, volume: VOLUME, paths: [], targetDir: target, force: false, logger: log });
  assert.deepEqual(r.errors, []);
  assertTreesEqual(await snapshotTree(src), await snapshotTree(target), {
    // The restore target keeps its own root metadata; rsync trees carry no socket (none was made).
    ignoreWhere: [{ paths: ['.'], fields: ['mode', 'uid', 'gid', 'mtime', 'xattrs', 'acl'] }],
  });
});

test('a failed rsync (medium full) leaves no tree that looks complete, and the earlier tree still restores', async (t) => {
  const dir = makeScratchDir(t, 'rsync-full');
  const small = withLoopFs(t, { fsType: 'ext4', sizeMiB: 32 });
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'small'), 'fits\n');
  const { log } = logger();
  const now = steppingClock();
  const req = { sourceDir: src, medium: small.dir, host: HOST, volume: VOLUME, logger: log, now };
  const first = await (await prepareMirror(req)).commit();
  // Random data does not compress or dedupe: 48 MiB cannot fit on a 32 MiB filesystem.
  const fd = fs.openSync(path.join(src, 'big'), 'w');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < 48; i++) {
    for (let j = 0; j < chunk.length; j += 4) chunk.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, j);
    fs.writeSync(fd, chunk);
  }
  fs.closeSync(fd);
  await assert.rejects(prepareMirror(req), /rsync/);
  const store = new VolumeStore(new LocalStorage(small.dir), HOST, VOLUME);
  const names = fs.readdirSync(store.dir);
  assert.deepEqual(names.filter((n) => n.endsWith('.partial')), [], 'the partial tree is removed');
  assert.deepEqual((await store.list()).map((s) => s.id), [first.id], 'only the first backup exists');
  const target = path.join(dir, 'restored');
  await restore({ medium: small.dir, host: HOST, volume: VOLUME, paths: [Buffer.from('small')], targetDir: target, force: false, logger: log });
  assert.equal(fs.readFileSync(path.join(target, 'small'), 'utf8'), 'fits\n');
});

test('another filesystem inside the source is kept as an empty directory, and the mirror says which (for the report)', async (t) => {
  const { src, medium } = sourceAndMedium(t, 'rsync-onefs');
  fs.mkdirSync(path.join(src, 'boot'));
  fs.writeFileSync(path.join(src, 'kept'), 'on the source filesystem\n');
  // A separate /boot, as many systems have: rsync --one-file-system leaves it empty; so does the manifest.
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'xenbackup-test-boot', path.join(src, 'boot')]);
  fs.writeFileSync(path.join(src, 'boot', 'vmlinuz'), 'a kernel\n');
  const { log } = logger();
  const prepared = await prepareMirror({ sourceDir: src, medium, host: HOST, volume: VOLUME, logger: log, now: steppingClock() });
  assert.deepEqual(prepared.otherFilesystems, ['boot']);
  const sc = await prepared.commit();
  const tree = new VolumeStore(new LocalStorage(medium), HOST, VOLUME).pathOf(sc.archive);
  assert.deepEqual(fs.readdirSync(path.join(tree, 'boot')), []);
  assert.equal(fs.readFileSync(path.join(tree, 'kept'), 'utf8'), 'on the source filesystem\n');
});
