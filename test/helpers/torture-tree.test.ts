/**
 * Self-tests of the torture tree and the snapshot: the tree holds what its
 * description promises (read back through the snapshot, so both are checked
 * against each other), and copies made by tools known to be faithful (cp -a,
 * GNU tar with --xattrs --acls -S) and builds on xfs and btrfs compare equal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeScratchDir, withLoopFs, type LoopFsType } from './scratch.js';
import { buildTortureTree } from './torture-tree.js';
import { entryAt, showPath, snapshotTree, type SnapshotEntry, type TreeSnapshot } from './tree-snapshot.js';
import { assertTreesEqual, compareTrees, formatDifference } from './tree-compare.js';

const MiB = 1024 * 1024;
const BIG = 3 * MiB; // the 100 MB default is for the engine's tests; this is about the helpers

function at(s: TreeSnapshot, rel: Buffer): SnapshotEntry {
  const e = entryAt(s, rel);
  assert.ok(e, `${showPath(rel)} is missing`);
  return e;
}

function isValidUtf8(b: Buffer): boolean {
  return Buffer.from(b.toString('utf8')).equals(b);
}

test('the torture tree holds everything its description lists', async (t) => {
  const root = path.join(makeScratchDir(t, 'torture'), 'tree');
  fs.mkdirSync(root);
  const tree = await buildTortureTree(root, { bigFileSize: BIG });
  const s = await snapshotTree(root);

  assert.equal(s.entries.size, tree.all.length + 1, 'entries: everything made, plus the root');
  for (const p of tree.regularFiles) assert.equal(at(s, p).type, 'file', showPath(p));
  for (const p of tree.directories) assert.equal(at(s, p).type, 'dir', showPath(p));
  assert.equal(at(s, tree.bigFile).size, BIG);
  assert.ok(tree.emptyFiles.length >= 2);
  for (const p of tree.emptyFiles) assert.equal(at(s, p).size, 0);
  for (const p of tree.emptyDirs) assert.deepEqual(fs.readdirSync(path.join(root, p.toString())), []);

  for (const p of tree.symlinks.all) assert.equal(at(s, p).type, 'symlink');
  assert.ok(tree.symlinks.relative.length && tree.symlinks.absolute.length && tree.symlinks.dangling.length);
  for (const p of tree.symlinks.absolute) assert.equal(at(s, p).linkTarget![0], 0x2f);
  for (const p of tree.symlinks.dangling) assert.equal(fs.existsSync(Buffer.concat([Buffer.from(root + '/'), p])), false);
  assert.ok(tree.oddLinkTargets.some((p) => !isValidUtf8(at(s, p).linkTarget!)));
  assert.ok(tree.oddLinkTargets.some((p) => at(s, p).linkTarget!.includes(0x0a)));

  const hex = (groups: Buffer[][]): string[][] => groups.map((g) => g.map((p) => p.toString('hex')));
  assert.deepEqual(hex(s.hardlinkGroups), hex([...tree.hardlinkGroups].sort((a, b) => Buffer.compare(a[0], b[0]))));
  assert.ok(tree.hardlinkGroups.some((g) => g.length === 3));
  assert.ok(tree.hardlinkGroups.some((g) => new Set(g.map((p) => path.dirname(p.toString('latin1')))).size > 1), 'a group across directories');

  for (const d of tree.charDevices) assert.deepEqual([at(s, d.path).type, at(s, d.path).devMajor, at(s, d.path).devMinor], ['char', d.major, d.minor]);
  for (const d of tree.blockDevices) assert.deepEqual([at(s, d.path).type, at(s, d.path).devMajor, at(s, d.path).devMinor], ['block', d.major, d.minor]);
  for (const p of tree.fifos) assert.equal(at(s, p).type, 'fifo');
  assert.equal(tree.sockets.length, 1);
  assert.equal(at(s, tree.sockets[0]).type, 'socket');

  for (const m of tree.specialModes) assert.equal(at(s, m.path).mode, m.mode, showPath(m.path));
  for (const bit of [0o4000, 0o2000, 0o1000]) assert.ok(tree.specialModes.some((m) => m.mode & bit));
  for (const o of tree.numericOwners) assert.deepEqual([at(s, o.path).uid, at(s, o.path).gid], [o.uid, o.gid], showPath(o.path));
  const passwd = fs.readFileSync('/etc/passwd', 'utf8');
  assert.ok(!/^[^:]*:[^:]*:(4242|2000000):/m.test(passwd), 'the numeric owners must have no passwd entry');

  assert.equal(tree.mtimes.length, s.entries.size);
  for (const m of tree.mtimes) assert.equal(at(s, m.path).mtimeNs, m.mtimeNs, showPath(m.path));
  assert.ok(tree.mtimes.filter((m) => m.mtimeNs % 1000n !== 0n).length > tree.mtimes.length / 2, 'mtimes need nanoseconds');
  assert.ok(tree.edgeMtimes.some((p) => at(s, p).mtimeNs < 0n));

  for (const x of tree.xattrs) assert.deepEqual(at(s, x.path).xattrs.get(x.name), x.value, `${showPath(x.path)} ${x.name}`);
  for (const p of tree.capabilities) {
    assert.ok(at(s, p).xattrs.has('security.capability'));
    const getcap = execFileSync('getcap', [Buffer.concat([Buffer.from(root + '/'), p]).toString()], { encoding: 'utf8' });
    assert.match(getcap, /cap_net_raw[=+]ep/);
  }
  for (const a of tree.acls) {
    assert.equal(at(s, a.path).aclAccess, a.access, `access ACL of ${showPath(a.path)}`);
    assert.equal(at(s, a.path).aclDefault, a.default, `default ACL of ${showPath(a.path)}`);
  }

  const tib = tree.sparseFiles.find((f) => f.size === 1024 ** 4);
  assert.ok(tib, 'a 1 TiB sparse file');
  for (const f of tree.sparseFiles) {
    const e = at(s, f.path);
    assert.equal(e.size, f.size);
    assert.ok(e.sparse, `${showPath(f.path)} is sparse`);
    assert.ok(e.allocatedBytes < 8 * MiB, `${showPath(f.path)}: ${e.allocatedBytes} bytes allocated`);
  }

  assert.ok(tree.longPaths.length >= 4);
  for (const p of tree.longPaths) assert.ok(p.length > 255 && at(s, p), showPath(p));
  assert.ok(tree.nonUtf8Names.length >= 3);
  for (const p of tree.nonUtf8Names) assert.ok(!isValidUtf8(p) && at(s, p), showPath(p));
  for (const p of tree.newlineNames) assert.ok(p.includes(0x0a) && at(s, p), showPath(p));
});

test('copies by cp -a --sparse=always and by GNU tar (--xattrs --acls -S) compare equal to the tree', async (t) => {
  const base = makeScratchDir(t, 'torture-copies');
  const [src, viaCp, viaTar] = ['src', 'cp', 'tar'].map((n) => path.join(base, n));
  for (const d of [src, viaCp, viaTar]) fs.mkdirSync(d);
  await buildTortureTree(src, { bigFileSize: BIG });
  const original = await snapshotTree(src);

  execFileSync('cp', ['-a', '--sparse=always', `${src}/.`, `${viaCp}/`]);
  assertTreesEqual(original, await snapshotTree(viaCp));

  const tarOpts = ['--xattrs', "--xattrs-include=*", '--acls'];
  execFileSync('bash', ['-o', 'pipefail', '-c',
    `tar ${tarOpts.join(' ')} -S -C ${src} -cf - . | tar ${tarOpts.join(' ')} --numeric-owner -C ${viaTar} -xpf -`], { stdio: ['ignore', 'ignore', 'pipe'] });
  const tarCopy = await snapshotTree(viaTar);
  // GNU tar skips sockets ("socket ignored"); everything else must survive.
  assertTreesEqual(original, tarCopy, { ignoreTypes: ['socket'] });
  assert.deepEqual(compareTrees(original, tarCopy).map(formatDifference), [
    'special/socket: presence: expected present (socket), actual absent',
  ]);
});

test('trees built on xfs and btrfs compare equal to one built on ext4', async (t) => {
  const reference = path.join(makeScratchDir(t, 'torture-ext4'), 'tree');
  fs.mkdirSync(reference);
  await buildTortureTree(reference, { bigFileSize: BIG });
  const expected = await snapshotTree(reference);
  for (const fsType of ['xfs', 'btrfs'] as LoopFsType[]) {
    const loop = withLoopFs(t, { fsType, sizeMiB: 64 });
    const root = path.join(loop.dir, 'tree');
    fs.mkdirSync(root);
    await buildTortureTree(root, { bigFileSize: BIG });
    assertTreesEqual(expected, await snapshotTree(root));
    loop.release();
  }
});
