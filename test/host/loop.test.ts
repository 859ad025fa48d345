/**
 * Loop devices on real images, including a partitioned disk image (an MBR
 * with one ext4 partition, like an HVM guest's whole-disk LV): reached
 * through a byte-range loop device found with partx, and, where the kernel
 * parses partition tables (not this project's test machines: their kernel
 * has no CONFIG_MSDOS_PARTITION), through losetup -P.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  attachLoop,
  attachPartition,
  detachLoop,
  listLoops,
  listPartitions,
  loopPartitions,
  losetupAttachArgs,
  parsePartx,
  LoopError,
} from '../../src/host/loop.js';
import { mountReadOnly } from '../../src/host/mount.js';
import { makeExt4, scratch } from './host-fixtures.js';

/** A disk image: an MBR whose one Linux partition (from 1 MiB) holds `fsImage`. */
function partitionedDisk(dir: string, fsImage: string): string {
  const fsBytes = fs.readFileSync(fsImage);
  const startSector = 2048;
  const mbr = Buffer.alloc(512);
  const entry = 446;
  mbr[entry + 4] = 0x83; // Linux
  mbr.writeUInt32LE(startSector, entry + 8);
  mbr.writeUInt32LE(fsBytes.length / 512, entry + 12);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  const disk = path.join(dir, 'disk.img');
  const fd = fs.openSync(disk, 'w');
  try {
    fs.writeSync(fd, mbr, 0, 512, 0);
    fs.writeSync(fd, fsBytes, 0, fsBytes.length, startSector * 512);
    fs.ftruncateSync(fd, startSector * 512 + fsBytes.length + 2 ** 20);
  } finally {
    fs.closeSync(fd);
  }
  return disk;
}

test('losetup arguments', () => {
  assert.deepEqual(losetupAttachArgs('/x.img', {}), ['--find', '--show', '/x.img']);
  assert.deepEqual(losetupAttachArgs('/dev/vgxen/hvm-xbsnap', { readOnly: true, partscan: true }), ['--find', '--show', '-r', '-P', '/dev/vgxen/hvm-xbsnap']);
  assert.deepEqual(losetupAttachArgs('/d', { readOnly: true, offset: 1048576, sizeLimit: 8388608 }), ['--find', '--show', '-r', '--offset', '1048576', '--sizelimit', '8388608', '/d']);
});

test('partx output parses into byte ranges', () => {
  assert.deepEqual(parsePartx('1 2048 16384 0x83\n5 20480 2048 0x82\n'), [
    { number: 1, startBytes: 1048576, sizeBytes: 8388608, type: '0x83' },
    { number: 5, startBytes: 10485760, sizeBytes: 1048576, type: '0x82' },
  ]);
  assert.deepEqual(parsePartx(''), []);
});

test('a partition of a disk image as its own read-only loop device: found with partx, mounted, read', async (t) => {
  const dir = scratch(t);
  const disk = partitionedDisk(dir, makeExt4(dir, 'part.img', { 'inside.txt': 'from partition 1\n' }, 8));
  assert.deepEqual(await listPartitions(disk), [{ number: 1, startBytes: 2 ** 20, sizeBytes: 8 * 2 ** 20, type: '0x83' }]);
  assert.deepEqual(await listPartitions(makeExt4(dir, 'plain.img')), [], 'a bare filesystem has no partition table');

  const part = await attachPartition(disk, 1, { readOnly: true });
  assert.equal(part.partition.number, 1);
  assert.equal(fs.readFileSync(`/sys/block/${path.basename(part.device)}/ro`, 'utf8').trim(), '1');
  const h = await mountReadOnly(part.device, path.join(dir, 'mnt'), 'ext4', 'ro');
  try {
    assert.equal(fs.readFileSync(path.join(dir, 'mnt', 'inside.txt'), 'utf8'), 'from partition 1\n');
  } finally {
    await h.release();
  }
  await part.release();
  assert.equal((await listLoops()).some((l) => l.device === part.device && l.backingFile === disk), false);

  await assert.rejects(attachPartition(disk, 2), { message: `${disk} has no partition 2 (it has 1)` });
  await assert.rejects(listPartitions(path.join(dir, 'nope.img')), { message: /it does not exist$/ });
});

test('a partitioned disk attached read-only with partition scan: its partition mounts and reads', async (t) => {
  const dir = scratch(t);
  const disk = partitionedDisk(dir, makeExt4(dir, 'part.img', { 'inside.txt': 'from partition 1\n' }, 8));
  const loop = await attachLoop(disk, { readOnly: true, partscan: true });
  if ((await loopPartitions(loop.device)).length === 0) {
    await loop.release();
    t.skip('this kernel does not parse partition tables (no CONFIG_MSDOS_PARTITION); the partx route above covers it');
    return;
  }
  assert.match(loop.device, /^\/dev\/loop\d+$/);
  assert.equal(loop.file, disk);
  assert.equal(loop.readOnly, true);
  assert.deepEqual(await listLoops().then((l) => l.filter((x) => x.device === loop.device)), [{ device: loop.device, backingFile: disk }]);
  assert.equal(fs.readFileSync(`/sys/block/${path.basename(loop.device)}/ro`, 'utf8').trim(), '1');

  const parts = await loopPartitions(loop.device);
  assert.deepEqual(parts, [`${loop.device}p1`]);
  const h = await mountReadOnly(parts[0]!, path.join(dir, 'mnt'), 'ext4', 'ro');
  try {
    assert.equal(fs.readFileSync(path.join(dir, 'mnt', 'inside.txt'), 'utf8'), 'from partition 1\n');
  } finally {
    await h.release();
  }
  await loop.release();
  assert.equal((await listLoops()).some((l) => l.device === loop.device && l.backingFile === disk), false);
  await loop.release();
  await detachLoop(loop.device); // not attached any more: nothing to do
});

test('an image without partitions has none; a missing file is a clear error', async (t) => {
  const dir = scratch(t);
  const loop = await attachLoop(makeExt4(dir, 'plain.img'), { partscan: true });
  try {
    assert.deepEqual(await loopPartitions(loop.device), []);
    assert.equal(loop.readOnly, false);
  } finally {
    await loop.release();
  }
  await assert.rejects(attachLoop(path.join(dir, 'missing.img')), (e: unknown) => {
    assert.ok(e instanceof LoopError);
    assert.equal(e.message, `cannot attach ${path.join(dir, 'missing.img')} to a loop device: it does not exist`);
    return true;
  });
});
