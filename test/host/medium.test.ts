/**
 * openMedium with a real loop-mounted ext4 image as the backup medium: the
 * cases the old tool got wrong (medium missing, something else mounted
 * there, nothing mounted on a directory of the root disk) must write nothing
 * anywhere and say why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createLogger, MemorySink } from '../../src/util/log.js';
import { openMedium, MediumUnavailableError } from '../../src/host/medium.js';
import { attach, isMountpointNow, loopsUnder, makeExt4, scratch, sh } from './host-fixtures.js';

/** Every path below `dir`, to show that nothing was written. */
function listing(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

function expectUnavailable(reason: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof MediumUnavailableError, String(e));
    assert.match(e.reason, reason);
    assert.match(e.message, /^backup medium .* on .* unavailable: /);
    return true;
  };
}

test('mounted by us: verified, free space reported, unmounted on release', async (t) => {
  const dir = scratch(t);
  const dev = attach(makeExt4(dir, 'medium.img', {}, 32));
  const mnt = path.join(dir, 'backup');
  fs.mkdirSync(mnt);
  const mem = new MemorySink();
  const m = await openMedium({ device: dev, fsType: 'ext4', mountpoint: mnt }, { logger: createLogger([mem.sink]) });
  assert.equal(m.mountedByUs, true);
  assert.equal(m.mountpoint, mnt);
  assert.equal(m.fsType, 'ext4');
  assert.equal(m.entry.source, dev);
  assert.ok(isMountpointNow(mnt));
  assert.ok(m.spaceBefore.totalBytes > 20 * 2 ** 20 && m.spaceBefore.totalBytes <= 32 * 2 ** 20);
  assert.ok(m.spaceBefore.freeBytes > 0 && m.spaceBefore.freeBytes <= m.spaceBefore.totalBytes);
  const fd = fs.openSync(path.join(mnt, 'archive'), 'w');
  fs.writeSync(fd, Buffer.alloc(4 * 2 ** 20, 1));
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  const after = await m.space();
  assert.ok(after.freeBytes < m.spaceBefore.freeBytes, 'writing shows in the free space');
  assert.ok(mem.records.some((r) => r.level === 'info' && /^backup medium .* free of /.test(r.message)));
  assert.deepEqual(await m.release(), { unmounted: true, lazy: false });
  assert.equal(isMountpointNow(mnt), false);
  assert.deepEqual(fs.readdirSync(mnt), [], 'the archive went to the medium, not to the directory under it');
  await m.release();
});

test('already mounted: used as it is and left mounted on release', async (t) => {
  const dir = scratch(t);
  const dev = attach(makeExt4(dir, 'medium.img'));
  const mnt = path.join(dir, 'backup');
  fs.mkdirSync(mnt);
  sh('mount', [dev, mnt]);
  // the configured path may be a symlink to the real mountpoint
  fs.symlinkSync(mnt, path.join(dir, 'backup-link'));
  const m = await openMedium({ device: dev, fsType: 'ext4', mountpoint: path.join(dir, 'backup-link') });
  assert.equal(m.mountedByUs, false);
  assert.equal(m.mountpoint, mnt);
  assert.equal(await m.release(), undefined);
  assert.ok(isMountpointNow(mnt));
});

test('missing device: nothing mounted, nothing written, the reason given', async (t) => {
  const dir = scratch(t);
  const mnt = path.join(dir, 'backup');
  fs.mkdirSync(mnt);
  const before = listing(dir);
  await assert.rejects(
    openMedium({ device: '/dev/xb-missing-medium', fsType: 'ext4', mountpoint: mnt }),
    expectUnavailable(/^device \/dev\/xb-missing-medium does not exist$/),
  );
  await assert.rejects(
    openMedium({ device: 'UUID=00000000-dead-beef-0000-000000000000', fsType: 'ext4', mountpoint: mnt }),
    expectUnavailable(/^no device has UUID=00000000-dead-beef-0000-000000000000$/),
  );
  assert.equal(isMountpointNow(mnt), false);
  assert.deepEqual(listing(dir), before);
});

test('a different device mounted at the mountpoint: refused, left alone, nothing written to it', async (t) => {
  const dir = scratch(t);
  const wanted = attach(makeExt4(dir, 'wanted.img'));
  const other = attach(makeExt4(dir, 'other.img', { 'someone-elses.txt': 'keep\n' }));
  const mnt = path.join(dir, 'backup');
  fs.mkdirSync(mnt);
  sh('mount', [other, mnt]);
  const before = listing(mnt);
  await assert.rejects(
    openMedium({ device: wanted, fsType: 'ext4', mountpoint: mnt }),
    expectUnavailable(new RegExp(`^${mnt} is a mountpoint of ${other} \\(7:\\d+, ext4\\), not of ${wanted} \\(7:\\d+\\); refusing to write to it$`)),
  );
  assert.ok(isMountpointNow(mnt), 'the other mount is not ours to unmount');
  assert.deepEqual(listing(mnt), before);
});

test('a mountpoint on the root disk and a device that will not mount: refused, the directory stays empty', async (t) => {
  const dir = scratch(t);
  const blank = path.join(dir, 'blank.img');
  fs.writeFileSync(blank, '');
  fs.truncateSync(blank, 8 * 2 ** 20);
  const dev = attach(blank);
  const mnt = path.join(dir, 'backup');
  fs.mkdirSync(mnt);
  await assert.rejects(
    openMedium({ device: dev, fsType: 'ext4', mountpoint: mnt }),
    expectUnavailable(new RegExp(`^mount failed: mount -t ext4 ${dev} ${mnt}: exit 32: `)),
  );
  assert.equal(isMountpointNow(mnt), false);
  assert.deepEqual(fs.readdirSync(mnt), []);
});

test('a mountpoint that does not exist is not created', async (t) => {
  const dir = scratch(t);
  const dev = attach(makeExt4(dir, 'medium.img'));
  const mnt = path.join(dir, 'no', 'backup');
  await assert.rejects(
    openMedium({ device: dev, fsType: 'ext4', mountpoint: mnt }),
    expectUnavailable(new RegExp(`^mountpoint ${mnt} does not exist \\(create it: mkdir -p ${mnt}\\)$`)),
  );
  assert.equal(fs.existsSync(path.join(dir, 'no')), false);
});

test('the medium mounted read-only is refused', async (t) => {
  const dir = scratch(t);
  const dev = attach(makeExt4(dir, 'medium.img'));
  const mnt = path.join(dir, 'backup');
  fs.mkdirSync(mnt);
  sh('mount', ['-o', 'ro', dev, mnt]);
  await assert.rejects(openMedium({ device: dev, fsType: 'ext4', mountpoint: mnt }), expectUnavailable(/is mounted read-only$/));
  assert.ok(isMountpointNow(mnt), 'not ours: left mounted');
});

test('an image file as the medium: mounted through a loop device, verified by its backing file, freed on release', async (t) => {
  const dir = scratch(t);
  const image = makeExt4(dir, 'medium.img');
  const mnt = path.join(dir, 'backup');
  fs.mkdirSync(mnt);
  const m = await openMedium({ device: image, fsType: 'ext4', mountpoint: mnt });
  assert.equal(m.mountedByUs, true);
  assert.match(m.entry.source, /^\/dev\/loop\d+$/);
  assert.deepEqual(loopsUnder(dir), [m.entry.source]);
  await m.release();
  assert.equal(isMountpointNow(mnt), false);
  assert.deepEqual(loopsUnder(dir), [], 'mount -o loop detaches on umount');

  // an image attached and mounted by hand is recognised too
  const dev = attach(image);
  sh('mount', [dev, mnt]);
  const again = await openMedium({ device: image, fsType: 'ext4', mountpoint: mnt });
  assert.equal(again.mountedByUs, false);
  // and a different image is not
  const other = makeExt4(dir, 'other.img');
  await assert.rejects(
    openMedium({ device: other, fsType: 'ext4', mountpoint: mnt }),
    expectUnavailable(new RegExp(`not of a loop device backed by ${other}; refusing`)),
  );
});
