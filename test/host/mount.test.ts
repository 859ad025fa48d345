/**
 * mountReadOnly against real loop devices carrying real ext4 and xfs
 * filesystems, including ones left with a dirty journal/log (shut down with
 * FS_IOC_GOINGDOWN while files were being written), attached read-only the
 * way a snapshot of a crashed guest looks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createLogger, MemorySink } from '../../src/util/log.js';
import { mountReadOnly, isStillMounted, mountOptionLadder, mountArgs, MountError } from '../../src/host/mount.js';
import { attach, isMountpointNow, leaveDirty, makeExt4, makeXfs, scratch, sh } from './host-fixtures.js';

function memLogger() {
  const mem = new MemorySink();
  return { mem, logger: createLogger([mem.sink], 'debug'), warnings: () => mem.records.filter((r) => r.level === 'warn').map((r) => r.message) };
}

test('option ladder: ro forced, rw and journal-skipping options dropped from the first try, nouuid for xfs', () => {
  assert.deepEqual(mountOptionLadder('ext4', 'rw,noatime'), [
    { options: ['ro', 'noatime'] },
    { options: ['ro', 'noatime', 'noload'], fallbackReason: 'noload skips the journal and can show stale data' },
  ]);
  assert.deepEqual(mountOptionLadder('xfs', 'ro,noload,norecovery'), [
    { options: ['ro', 'nouuid'] },
    { options: ['ro', 'nouuid', 'norecovery'], fallbackReason: 'norecovery skips the xfs log and can show stale data' },
  ]);
  assert.deepEqual(mountOptionLadder('xfs', ['ro', 'nouuid', 'inode64']), [
    { options: ['ro', 'nouuid', 'inode64'] },
    { options: ['ro', 'nouuid', 'inode64', 'norecovery'], fallbackReason: 'norecovery skips the xfs log and can show stale data' },
  ]);
  assert.deepEqual(mountOptionLadder('ufs', 'ro,ufstype=44bsd'), [{ options: ['ro', 'ufstype=44bsd'] }]);
  assert.deepEqual(mountOptionLadder('ext2', ''), [{ options: ['ro'] }]);
  assert.deepEqual(mountArgs('/dev/x', '/m', 'ext4', ['ro']), ['-t', 'ext4', '-o', 'ro', '/dev/x', '/m']);
  assert.deepEqual(mountArgs('/dev/x', '/m', 'auto', ['ro']), ['-o', 'ro', '/dev/x', '/m']);
});

test('ext4: mounted read-only on a new nested mountpoint, confirmed, released, directories removed', async (t) => {
  const dir = scratch(t);
  const dev = attach(makeExt4(dir, 'guest.img', { 'hello.txt': 'hello from the guest\n' }));
  const mnt = path.join(dir, 'src', 'domu', 'root');
  const { logger, warnings } = memLogger();

  const h = await mountReadOnly(dev, mnt, 'ext4', 'ro,noatime', logger);
  assert.equal(h.mountpoint, mnt);
  assert.deepEqual(h.options, ['ro', 'noatime']);
  assert.equal(h.fallbackReason, undefined);
  assert.equal(h.entry.source, dev);
  assert.ok(h.entry.mountOptions.includes('ro'));
  assert.ok(isMountpointNow(mnt));
  assert.equal(fs.readFileSync(path.join(mnt, 'hello.txt'), 'utf8'), 'hello from the guest\n');
  assert.throws(() => fs.writeFileSync(path.join(mnt, 'new'), 'x'), { code: 'EROFS' });
  assert.equal(await isStillMounted(h), true);

  const r = await h.release();
  assert.deepEqual(r, { unmounted: true, lazy: false });
  assert.equal(isMountpointNow(mnt), false);
  assert.equal(await isStillMounted(h), false);
  assert.equal(fs.existsSync(path.join(dir, 'src')), false, 'the directories it created are gone');
  await h.release(); // twice is fine
  assert.deepEqual(warnings(), []);
});

test('xfs with the same UUID as a mounted origin (a snapshot beside its origin): mounts thanks to nouuid', async (t) => {
  const dir = scratch(t);
  const origin = makeXfs(dir, 'origin.img');
  fs.copyFileSync(origin, path.join(dir, 'snap.img')); // byte copy: same UUID, like an LVM snapshot
  const originDev = attach(origin);
  const snapDev = attach(path.join(dir, 'snap.img'));
  const originMnt = path.join(dir, 'origin');
  fs.mkdirSync(originMnt);
  sh('mount', [originDev, originMnt]);
  // without nouuid the kernel refuses the duplicate
  assert.throws(() => sh('mount', ['-t', 'xfs', '-o', 'ro', snapDev, path.join(dir, 'origin')]));

  const mnt = path.join(dir, 'snapmnt');
  fs.mkdirSync(mnt);
  const h = await mountReadOnly(snapDev, mnt, 'xfs', 'ro', memLogger().logger);
  assert.deepEqual(h.options, ['ro', 'nouuid']);
  assert.equal(h.entry.fsType, 'xfs');
  assert.ok(h.entry.superOptions.includes('nouuid'));
  await h.release();
  assert.equal(isMountpointNow(mnt), false);
  assert.ok(fs.existsSync(mnt), 'a mountpoint that existed before stays');
});

test('ext4 with a dirty journal on a read-only device: falls back to noload with a warning', async (t) => {
  const dir = scratch(t);
  const image = makeExt4(dir, 'dirty.img', { 'old.txt': 'before\n' }, 32);
  const rw = attach(image);
  leaveDirty(rw, path.join(dir, 'rw'), (root) => fs.writeFileSync(path.join(root, 'new.txt'), 'after\n'));
  sh('losetup', ['-d', rw]);
  const ro = attach(image, true);
  const { logger, warnings } = memLogger();

  const h = await mountReadOnly(ro, path.join(dir, 'mnt'), 'ext4', 'ro', logger);
  t.after(() => h.release());
  assert.deepEqual(h.options, ['ro', 'noload']);
  assert.match(h.fallbackReason ?? '', /stale/);
  assert.equal(warnings().length, 1);
  assert.match(warnings()[0]!, new RegExp(`^mounted ${ro} on .* only with ro,noload: noload skips the journal and can show stale data$`));
  assert.equal(fs.readFileSync(path.join(dir, 'mnt', 'old.txt'), 'utf8'), 'before\n');
  assert.equal(fs.existsSync(path.join(dir, 'mnt', 'last-write.txt')), false, 'why noload is only a fallback: it misses what is in the journal');
  await h.release();
});

test('ext4 with a dirty journal on a writable device (a default LVM snapshot): plain ro replays it, no fallback', async (t) => {
  const dir = scratch(t);
  const image = makeExt4(dir, 'dirty.img', {}, 32);
  const dev = attach(image);
  leaveDirty(dev, path.join(dir, 'rw'), (root) => fs.writeFileSync(path.join(root, 'synced.txt'), 'committed\n'));
  const { logger, warnings } = memLogger();
  const h = await mountReadOnly(dev, path.join(dir, 'mnt'), 'ext4', 'ro', logger);
  t.after(() => h.release());
  assert.deepEqual(h.options, ['ro']);
  assert.equal(fs.readFileSync(path.join(dir, 'mnt', 'synced.txt'), 'utf8'), 'committed\n');
  assert.deepEqual(warnings(), []);
  await h.release();
});

test('xfs with a dirty log on a read-only device: falls back to norecovery with a warning', async (t) => {
  const dir = scratch(t);
  const image = makeXfs(dir, 'dirty.img');
  const rw = attach(image);
  leaveDirty(rw, path.join(dir, 'rw'), (root) => fs.writeFileSync(path.join(root, 'new.txt'), 'after\n'));
  sh('losetup', ['-d', rw]);
  const ro = attach(image, true);
  const { logger, warnings } = memLogger();

  const h = await mountReadOnly(ro, path.join(dir, 'mnt'), 'xfs', '', logger);
  t.after(() => h.release());
  assert.deepEqual(h.options, ['ro', 'nouuid', 'norecovery']);
  assert.equal(warnings().length, 1);
  assert.match(warnings()[0]!, /only with ro,nouuid,norecovery: norecovery skips the xfs log and can show stale data$/);
  await h.release();
});

test('wrong fstype: a clear error, nothing mounted, the created mountpoint removed', async (t) => {
  const dir = scratch(t);
  const dev = attach(makeExt4(dir, 'guest.img', { a: 'a' }));
  const mnt = path.join(dir, 'src', 'web', 'var');
  const { logger, warnings } = memLogger();
  await assert.rejects(mountReadOnly(dev, mnt, 'xfs', 'ro', logger), (e: unknown) => {
    assert.ok(e instanceof MountError);
    assert.equal(e.message, `cannot mount ${dev} on ${mnt}: ${dev} holds a filesystem of type ext4 (blkid), not xfs`);
    return true;
  });
  assert.equal(isMountpointNow(mnt), false);
  assert.equal(fs.existsSync(path.join(dir, 'src')), false);
  assert.deepEqual(warnings(), []);
});

test('no filesystem at all: every attempt fails, the error lists them, the existing mountpoint is left empty', async (t) => {
  const dir = scratch(t);
  const blank = path.join(dir, 'blank.img');
  fs.writeFileSync(blank, '');
  fs.truncateSync(blank, 8 * 2 ** 20);
  const dev = attach(blank);
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  await assert.rejects(mountReadOnly(dev, mnt, 'ext4', 'ro', memLogger().logger), (e: unknown) => {
    assert.ok(e instanceof MountError);
    assert.match(e.message, new RegExp(`^cannot mount ${dev} on ${mnt}: mount -t ext4 failed \\(blkid recognises no filesystem on it\\): -o ro: exit 32: .*; -o ro,noload: exit 32: `));
    return true;
  });
  assert.equal(isMountpointNow(mnt), false);
  assert.deepEqual(fs.readdirSync(mnt), []);
});

test('refuses a mountpoint that already has something mounted, and a device that does not exist', async (t) => {
  const dir = scratch(t);
  const dev = attach(makeExt4(dir, 'guest.img'));
  const mnt = path.join(dir, 'busy');
  fs.mkdirSync(mnt);
  sh('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
  await assert.rejects(mountReadOnly(dev, mnt, 'ext4', 'ro'), {
    name: 'MountError',
    message: new RegExp(`^cannot mount ${dev} on ${mnt}: ${mnt} is already a mountpoint \\(tmpfs \\(0:\\d+, tmpfs\\) on ${mnt}\\)$`),
  });
  sh('umount', [mnt]);
  await assert.rejects(mountReadOnly('/dev/xb-no-such-device', path.join(dir, 'x'), 'ext4', 'ro'), {
    message: `cannot mount /dev/xb-no-such-device on ${path.join(dir, 'x')}: /dev/xb-no-such-device does not exist`,
  });
  assert.equal(fs.existsSync(path.join(dir, 'x')), false);
});

test('a busy mount is retried, then detached lazily, and that is reported', async (t) => {
  const dir = scratch(t);
  const dev = attach(makeExt4(dir, 'guest.img', { 'held.txt': 'x' }));
  const mnt = path.join(dir, 'mnt');
  const { logger, warnings } = memLogger();
  const h = await mountReadOnly(dev, mnt, 'ext4', 'ro', logger, { unmountRetryDelayMs: 10 });
  const fd = fs.openSync(path.join(mnt, 'held.txt'), 'r'); // a reader that doesn't go away
  try {
    const r = await h.release();
    assert.deepEqual(r, { unmounted: true, lazy: true });
    assert.equal(isMountpointNow(mnt), false);
    assert.equal(warnings().length, 1);
    assert.match(warnings()[0]!, new RegExp(`^${mnt} was busy \\(.*target is busy.*\\); detached lazily with umount -l`));
    assert.ok(fs.existsSync(mnt), 'a lazily detached mountpoint is not removed');
  } finally {
    fs.closeSync(fd);
  }
});

test('isStillMounted notices a mount that vanished behind our back (as dmeventd does on overflow)', async (t) => {
  const dir = scratch(t);
  const dev = attach(makeExt4(dir, 'guest.img', { f: 'x' }));
  const mnt = path.join(dir, 'mnt');
  const h = await mountReadOnly(dev, mnt, 'ext4', 'ro');
  sh('umount', ['-l', mnt]);
  assert.equal(await isStillMounted(h), false);
  assert.deepEqual(fs.readdirSync(mnt), [], 'what an archiver would see: an empty directory');
  // something else mounted there now is not "still mounted" either
  sh('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
  assert.equal(await isStillMounted(h), false);
  assert.deepEqual(await h.release(), { unmounted: false, lazy: false }, 'release leaves the stranger alone');
  assert.ok(isMountpointNow(mnt));
});
