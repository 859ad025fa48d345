/**
 * Raw restore onto a block device writes whole blocks with O_DIRECT and
 * the pieces O_DIRECT refuses through the page cache: an image whose size
 * is not a whole number of 4 KiB blocks (its last chunk 1536 bytes), with
 * a zero chunk in the middle, restored onto a larger loop device, holds the
 * image's bytes, zeros included, and leaves the device's tail as it was.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { prepareRawBackup } from '../../src/engines/raw/raw-backup.js';
import { restoreRawImage } from '../../src/engines/raw/raw-restore.js';
import { makeScratchDir } from '../helpers/scratch.js';
import { attachLoop, MiB, quietLogger, seededBytes } from './raw-fixtures.js';

test('raw restore onto a device: O_DIRECT for whole blocks, the odd-sized last chunk through the cache, zero chunk as zeros, tail untouched', async (t) => {
  const dir = makeScratchDir(t, 'xenbackup-rawdev');
  const source = path.join(dir, 'source.img');
  const imageBytes = 3 * MiB + 1536;
  const image = Buffer.alloc(imageBytes);
  seededBytes(MiB, 1).copy(image, 0); // chunk 0: data; chunk 1 stays zero
  seededBytes(MiB, 2).copy(image, 2 * MiB); // chunk 2: data
  seededBytes(1536, 3).copy(image, 3 * MiB); // chunk 3: 1536 bytes
  fs.writeFileSync(source, image);
  const medium = path.join(dir, 'medium');
  const prepared = await prepareRawBackup({
    device: source,
    medium,
    host: 'dom0',
    volume: 'bsd1/disk',
    chunkSize: MiB,
    forceFull: true,
    fullIntervalDays: 30,
    maxChainLength: 10,
    logger: quietLogger,
    now: () => new Date('2026-11-20T01:00:00Z'),
  });
  await prepared.commit();

  const targetFile = path.join(dir, 'lv.img');
  fs.writeFileSync(targetFile, Buffer.alloc(4 * MiB, 0xaa));
  const device = attachLoop(t, targetFile);
  const r = await restoreRawImage({ medium, host: 'dom0', volume: 'bsd1/disk', to: device, force: true, logger: quietLogger });
  assert.equal(r.targetKind, 'block device');
  assert.equal(r.zeroChunks, 1);
  assert.equal(r.bytesWritten, imageBytes, 'every byte written, the zero chunk too');
  assert.equal(r.bytesDirect, 3 * MiB, 'the three whole chunks went past the cache, the 1536-byte one did not');
  assert.match(r.warnings.join('\n'), /larger than the image; those bytes were left as they were/);

  const fd = fs.openSync(device, 'r');
  try {
    const back = Buffer.alloc(4 * MiB);
    assert.equal(fs.readSync(fd, back, 0, back.length, 0), back.length);
    assert.ok(back.subarray(0, imageBytes).equals(image), 'the device holds the image');
    assert.ok(back.subarray(imageBytes).every((b) => b === 0xaa), 'the bytes past the image are untouched');
  } finally {
    fs.closeSync(fd);
  }
});
