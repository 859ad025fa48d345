import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  parseMountinfo,
  parseMountinfoLine,
  readMountinfo,
  mountAt,
  isMountpoint,
  mountsUnder,
  topMountAt,
  unescapeMountField,
  MountinfoParseError,
} from '../../src/host/mountinfo.js';
import { splitDev } from '../../src/host/device.js';
import { scratch, sh } from './host-fixtures.js';

test('the real /proc/self/mountinfo parses, and its root mount has the device stat reports for /', async () => {
  const entries = await readMountinfo();
  assert.ok(entries.length > 0);
  for (const e of entries) {
    assert.ok(e.mountPoint.startsWith('/'), `mountpoint ${e.mountPoint}`);
    assert.ok(e.fsType !== '');
    assert.ok(e.mountOptions.includes('ro') || e.mountOptions.includes('rw'));
  }
  const root = topMountAt(entries, '/');
  assert.ok(root, 'a mount at /');
  const dev = splitDev(fs.statSync('/', { bigint: true }).dev);
  assert.deepEqual({ major: root.major, minor: root.minor }, dev);
  assert.equal((await mountAt('/proc'))?.fsType, 'proc');
  assert.equal(await isMountpoint('/proc'), true);
  assert.equal(await isMountpoint('/proc/self'), false);
  assert.equal(await isMountpoint('/no/such/dir/anywhere'), false);
});

test('a real mount whose path holds a space, a tab and a backslash is found by its path', async (t) => {
  const dir = scratch(t);
  const mnt = path.join(dir, 'odd name\twith\\escapes');
  fs.mkdirSync(mnt);
  sh('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'xb test source', mnt]);
  const e = await mountAt(mnt);
  assert.ok(e, 'found');
  assert.equal(e.mountPoint, mnt);
  assert.equal(e.source, 'xb test source');
  assert.equal(e.fsType, 'tmpfs');
  // through a symlink too: mountinfo shows canonical paths
  fs.symlinkSync(mnt, path.join(dir, 'link'));
  assert.equal((await mountAt(path.join(dir, 'link')))?.mountId, e.mountId);
  sh('umount', [mnt]);
  assert.equal(await isMountpoint(mnt), false);
});

test('octal escapes decode, including newline, and unknown backslashes stay', () => {
  assert.equal(unescapeMountField('/mnt/a\\040b\\011c\\012d\\134e'), '/mnt/a b\tc\nd\\e');
  assert.equal(unescapeMountField('/plain'), '/plain');
  assert.equal(unescapeMountField('\\x'), '\\x');
});

test('optional fields: none, one, several', () => {
  const none = parseMountinfoLine('27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard');
  assert.deepEqual(none.optionalFields, []);
  assert.equal(none.source, '/dev/vda');
  assert.deepEqual(none.superOptions, ['rw', 'discard']);
  const several = parseMountinfoLine('36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 propagate_from:2 - ext3 /dev/root rw,errors=continue');
  assert.deepEqual(several.optionalFields, ['master:1', 'shared:7', 'propagate_from:2']);
  assert.equal(several.root, '/mnt1');
  assert.equal(several.mountPoint, '/mnt2');
  assert.equal(several.major, 98);
  assert.equal(several.minor, 0);
  assert.equal(several.fsType, 'ext3');
  assert.deepEqual(several.mountOptions, ['rw', 'noatime']);
});

test('a "-" field before the separator position and an empty source are handled', () => {
  // mountpoint literally named "-" (fields 0..5 are fixed, the separator is searched from field 6)
  const dash = parseMountinfoLine('40 27 0:50 / - rw shared:3 - tmpfs tmpfs rw');
  assert.equal(dash.mountPoint, '-');
  assert.deepEqual(dash.optionalFields, ['shared:3']);
  const empty = parseMountinfoLine('41 27 0:51 / /x rw - fuse.sshfs  rw,user_id=0');
  assert.equal(empty.source, '');
  assert.deepEqual(empty.superOptions, ['rw', 'user_id=0']);
  const xfs = parseMountinfoLine('42 27 253:7 / /4backup/dom\\040u/root ro,relatime - xfs /dev/mapper/vgxen-dom--u-xbsnap ro,nouuid,norecovery');
  assert.equal(xfs.mountPoint, '/4backup/dom u/root');
  assert.deepEqual(xfs.superOptions, ['ro', 'nouuid', 'norecovery']);
});

test('malformed lines are errors naming file and line', () => {
  assert.throws(
    () => parseMountinfo('27 1 254:0 / / rw - ext4 /dev/vda rw\nthis is not mountinfo\n', '/proc/1/mountinfo'),
    (e: unknown) => e instanceof MountinfoParseError && /^\/proc\/1\/mountinfo:2: expected/.test(e.message),
  );
  assert.throws(() => parseMountinfoLine('x 1 254:0 / / rw - ext4 /dev/vda rw', 'f', 9), { message: /^f:9: bad mount id/ });
  assert.throws(() => parseMountinfoLine('27 1 254-0 / / rw - ext4 /dev/vda rw', 'f', 3), { message: /^f:3: bad .*major:minor/ });
  assert.equal(parseMountinfo('\n\n').length, 0);
});

const STACKED = [
  '27 1 254:0 / / rw - ext4 /dev/vda rw',
  '50 27 0:60 / /4backup rw - tmpfs tmpfs rw',
  '51 50 7:1 / /4backup/web/root ro - ext4 /dev/loop1 ro',
  '52 51 7:2 / /4backup/web/root ro - xfs /dev/loop2 ro,nouuid',
  '53 50 7:3 / /4backup/web/root/var ro - ext4 /dev/loop3 ro',
  '54 50 7:4 / /4backup/web ro - ext4 /dev/loop4 ro',
  '55 27 7:5 / /4backup2/x ro - ext4 /dev/loop5 ro',
].join('\n');

test('stacked mounts: the visible one is the one nothing else sits on', () => {
  const entries = parseMountinfo(STACKED);
  assert.equal(topMountAt(entries, '/4backup/web/root')?.source, '/dev/loop2');
  assert.equal(topMountAt(entries, '/4backup/nothing'), undefined);
});

test('mountsUnder: strictly below the prefix, deepest first, latest first at one place, no sibling prefixes', () => {
  const entries = parseMountinfo(STACKED);
  assert.deepEqual(
    mountsUnder(entries, '/4backup').map((e) => e.source),
    ['/dev/loop3', '/dev/loop2', '/dev/loop1', '/dev/loop4'],
  );
  assert.deepEqual(mountsUnder(entries, '/4backup/').map((e) => e.mountId), [53, 52, 51, 54]);
});
