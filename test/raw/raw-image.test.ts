/**
 * Raw mode on real block devices: a 128 MiB sparse image with an ext4
 * filesystem (random and text files, a file of written zeros, untouched
 * holes) on a loop device is backed up full, then incrementally after
 * changing a few chunks (free space written at raw offsets, a file
 * rewritten through a mount, a data chunk zeroed). Each incremental must
 * store exactly the changed non-zero chunks (counted here independently,
 * with plain reads of saved copies). Every backup is restored to a file
 * (byte-identical to the copy saved at that time, sparse where zero, a
 * usable filesystem when loop-mounted read-only) and onto a loop device
 * (only with --force).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { prepareRawBackup, type RawBackupRequest } from '../../src/engines/raw/raw-backup.js';
import { restoreRawImage } from '../../src/engines/raw/raw-restore.js';
import { verifyRawVolume } from '../../src/engines/raw/raw-verify.js';
import type { RawSidecar } from '../../src/medium/sidecar.js';
import { VolumeStore } from '../../src/repo/volume-store.js';
import { LocalStorage } from '../../src/storage/local-storage.js';
import { makeScratchDir } from '../helpers/scratch.js';
import { allocatedBytes, attachLoop, chunkFacts, MiB, quietLogger, saveImage, seededBytes, sh, writeAt } from './raw-fixtures.js';

const CHUNK = 1 * MiB;
const SIZE = 128 * MiB;

test('raw full + incrementals of an ext4 loop device: only changed chunks stored, every backup restores exactly, sparse, mountable', async (t) => {
  const dir = makeScratchDir(t, 'xenbackup-raw');
  const image = path.join(dir, 'guest.img');
  const medium = path.join(dir, 'medium');
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  fs.closeSync(fs.openSync(image, 'w'));
  fs.truncateSync(image, SIZE);
  sh('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard', image]);
  const dev = attachLoop(t, image);
  sh('mount', [dev, mnt]);
  try {
    fs.writeFileSync(path.join(mnt, 'random.bin'), seededBytes(12 * MiB, 1));
    fs.writeFileSync(path.join(mnt, 'text.txt'), 'the quick brown fox jumps over the lazy dog\n'.repeat(100_000));
    fs.writeFileSync(path.join(mnt, 'zeros.bin'), Buffer.alloc(6 * MiB)); // allocated, but zero: zero chunks without a hole
  } finally {
    sh('umount', [mnt]);
  }

  let clock = Date.parse('2026-11-20T01:00:00Z');
  const request = (): RawBackupRequest => ({
    device: dev,
    medium,
    host: 'dom0',
    volume: 'win1/disk',
    chunkSize: CHUNK,
    forceFull: false,
    fullIntervalDays: 30,
    maxChainLength: 10,
    logger: quietLogger,
    now: () => new Date(clock),
  });
  const backups: Array<{ sidecar: RawSidecar; copy: string; facts: Array<string> }> = [];
  const backup = async (): Promise<RawSidecar> => {
    clock += 3600_000;
    const copy = path.join(dir, `copy${backups.length}.img`);
    saveImage(dev, copy);
    const facts = chunkFacts(copy, CHUNK);
    const prepared = await prepareRawBackup(request());
    const sidecar = await prepared.commit();
    backups.push({ sidecar, copy, facts });
    return sidecar;
  };

  // full
  const full = await backup();
  const facts0 = backups[0]!.facts;
  const nonZero0 = facts0.filter((f) => f !== 'zero').length;
  assert.equal(full.kind, 'full');
  assert.equal(full.engine, 'raw');
  assert.equal(full.raw.imageBytes, SIZE);
  assert.equal(full.raw.chunks, SIZE / CHUNK);
  assert.equal(full.raw.storedChunks, nonZero0);
  assert.equal(full.raw.zeroChunks, SIZE / CHUNK - nonZero0);
  assert.ok(full.raw.zeroChunks > 80, `most of a fresh 128 MiB ext4 is zero (${full.raw.zeroChunks} zero chunks)`);
  assert.ok(full.archiveBytes > 12 * MiB && full.archiveBytes < 20 * MiB, `container ${full.archiveBytes} bytes: the random MiBs, the text compressed`);
  assert.ok(full.raw.imageXxh64.match(/^[0-9a-f]{16}$/));

  // 1st incremental: free space at raw offsets (ext4 ignores it) and a file rewritten through a mount
  writeAt(dev, 100 * MiB + 4096, seededBytes(8192, 2));
  writeAt(dev, 117 * MiB, seededBytes(CHUNK, 3));
  sh('mount', [dev, mnt]);
  try {
    const fd = fs.openSync(path.join(mnt, 'random.bin'), 'r+');
    fs.writeSync(fd, seededBytes(4096, 4), 0, 4096, 5 * MiB);
    fs.closeSync(fd);
  } finally {
    sh('umount', [mnt]);
  }
  const incr1 = await backup();
  const changed1 = backups[1]!.facts.filter((f, i) => f !== 'zero' && f !== facts0[i]).length;
  assert.equal(incr1.kind, 'incremental');
  assert.equal(incr1.base, full.id);
  assert.ok(changed1 >= 3 && changed1 < 12, `a few chunks changed (${changed1}; the mount also touches metadata)`);
  assert.equal(incr1.raw.storedChunks, changed1, 'the incremental stores exactly the changed non-zero chunks');
  assert.equal(incr1.raw.unchangedChunks, backups[1]!.facts.filter((f, i) => f !== 'zero' && f === facts0[i]).length);
  assert.ok(incr1.archiveBytes < (changed1 + 1) * CHUNK, `container ${incr1.archiveBytes} bytes for ${changed1} chunks`);
  assert.equal(incr1.stats.bytesRead, SIZE, 'the device is read once, whole');

  // 2nd incremental: a data chunk zeroed again, nothing else
  writeAt(dev, 117 * MiB, Buffer.alloc(CHUNK));
  const incr2 = await backup();
  assert.equal(incr2.kind, 'incremental');
  assert.equal(incr2.raw.storedChunks, 0, 'a chunk that became zero is not stored');
  assert.equal(incr2.raw.zeroChunks, incr1.raw.zeroChunks + 1);
  assert.notEqual(incr2.raw.imageXxh64, incr1.raw.imageXxh64);

  // every backup restores to a file, byte for byte, sparse, and the filesystem mounts
  for (const [k, b] of backups.entries()) {
    const out = path.join(dir, `restored${k}.img`);
    const r = await restoreRawImage({ medium, host: 'dom0', volume: 'win1/disk', at: new Date(Date.parse('2026-11-20T01:00:00Z') + (k + 1) * 3600_000 + 1800_000), to: out, force: false, logger: quietLogger });
    assert.equal(r.backup.id, b.sidecar.id);
    assert.equal(r.targetKind, 'file');
    assert.equal(r.imageXxh64, b.sidecar.raw.imageXxh64);
    assert.deepEqual(r.containers.length, k + (k === 2 ? 0 : 1), 'each container of the chain that still holds a newest chunk is read');
    assert.ok(fs.readFileSync(out).equals(fs.readFileSync(b.copy)), `restore as of backup ${k} equals the image at that time`);
    const nonZeroBytes = b.facts.filter((f) => f !== 'zero').length * CHUNK;
    assert.ok(allocatedBytes(out) <= nonZeroBytes, `restored file allocates ${allocatedBytes(out)} bytes, at most its ${nonZeroBytes} non-zero chunk bytes`);
    assert.ok(!fs.existsSync(out + '.partial'));
  }
  // the restored image is a usable filesystem (read-only loop mount)
  const ro = attachLoop(t, path.join(dir, 'restored1.img'), true);
  sh('mount', ['-o', 'ro,noload', ro, mnt]);
  try {
    const content = fs.readFileSync(path.join(mnt, 'random.bin'));
    const expected = seededBytes(12 * MiB, 1);
    seededBytes(4096, 4).copy(expected, 5 * MiB);
    assert.ok(content.equals(expected), 'random.bin as rewritten before backup 1');
    assert.equal(fs.statSync(path.join(mnt, 'zeros.bin')).size, 6 * MiB);
  } finally {
    sh('umount', [mnt]);
  }

  // an existing file is refused without --force, replaced with it
  const existing = path.join(dir, 'restored0.img');
  await assert.rejects(restoreRawImage({ medium, host: 'dom0', volume: 'win1/disk', to: existing, force: false, logger: quietLogger }), /exists; nothing was written \(use --force/);
  assert.ok(fs.readFileSync(existing).equals(fs.readFileSync(backups[0]!.copy)), 'untouched');
  await restoreRawImage({ medium, host: 'dom0', volume: 'win1/disk', to: existing, force: true, logger: quietLogger });
  assert.ok(fs.readFileSync(existing).equals(fs.readFileSync(backups[2]!.copy)), 'replaced by the newest image');

  // a block device needs --force; then it holds the image, zeros included
  const targetFile = path.join(dir, 'target.img');
  fs.writeFileSync(targetFile, Buffer.alloc(SIZE, 0xaa));
  const target = attachLoop(t, targetFile);
  await assert.rejects(
    restoreRawImage({ medium, host: 'dom0', volume: 'win1/disk', to: target, force: false, logger: quietLogger }),
    /is a block device: restoring onto it overwrites it; nothing was written \(use --force/,
  );
  assert.equal(fs.readFileSync(target).subarray(0, 4096).every((b) => b === 0xaa), true, 'device untouched without --force');
  const r = await restoreRawImage({ medium, host: 'dom0', volume: 'win1/disk', to: target, force: true, logger: quietLogger });
  assert.equal(r.targetKind, 'block device');
  assert.ok(fs.readFileSync(target).equals(fs.readFileSync(backups[2]!.copy)), 'device holds the newest image, zero chunks written as zeros');

  // a device smaller than the image is refused
  const smallFile = path.join(dir, 'small.img');
  fs.closeSync(fs.openSync(smallFile, 'w'));
  fs.truncateSync(smallFile, SIZE / 2);
  const small = attachLoop(t, smallFile);
  await assert.rejects(restoreRawImage({ medium, host: 'dom0', volume: 'win1/disk', to: small, force: true, logger: quietLogger }), /holds \d+ bytes, the image needs/);

  // the whole chain verifies, quick and full
  for (const depth of ['quick', 'full'] as const) {
    const v = await verifyRawVolume({ medium, host: 'dom0', volume: 'win1/disk', depth, logger: quietLogger });
    assert.deepEqual(v.problems, [], v.lines.join('\n'));
    assert.equal(v.backups, 3);
  }
  const store = new VolumeStore(new LocalStorage(medium), 'dom0', 'win1/disk');
  assert.deepEqual(
    fs.readdirSync(store.dir).filter((n) => !n.startsWith('.')).sort(),
    backups.flatMap((b) => [b.sidecar.archive, b.sidecar.manifest, b.sidecar.manifest.replace(/manifest$/, 'json')]).sort(),
  );
});
