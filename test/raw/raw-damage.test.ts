/**
 * Damaged raw backups are found and never restored as good: a bit flipped
 * inside a chunk's frame, a truncated container, a damaged index and a
 * damaged manifest are each reported by verify (quick finds the changed
 * file hash, full the frame that no longer decodes to its hash) and make a
 * restore fail without leaving a target file or its ".partial" behind.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { prepareRawBackup } from '../../src/engines/raw/raw-backup.js';
import { restoreRawImage } from '../../src/engines/raw/raw-restore.js';
import { verifyRawVolume } from '../../src/engines/raw/raw-verify.js';
import { readContainerIndex } from '../../src/engines/raw/raw-container.js';
import { VolumeStore } from '../../src/repo/volume-store.js';
import { LocalStorage } from '../../src/storage/local-storage.js';
import { makeScratchDir } from '../helpers/scratch.js';
import { attachLoop, MiB, quietLogger, seededBytes, writeAt } from './raw-fixtures.js';

test('raw damage: flipped frame bit, truncation, damaged index or manifest are reported by verify and refused by restore', async (t) => {
  const dir = makeScratchDir(t, 'xenbackup-raw-damage');
  const image = path.join(dir, 'disk.img');
  const medium = path.join(dir, 'medium');
  fs.closeSync(fs.openSync(image, 'w'));
  fs.truncateSync(image, 32 * MiB);
  const dev = attachLoop(t, image);
  writeAt(dev, 2 * MiB, seededBytes(5 * MiB, 10));
  writeAt(dev, 20 * MiB, Buffer.from('text that compresses well '.repeat(80_000)));
  let clock = Date.parse('2026-11-01T00:00:00Z');
  const base = { medium, host: 'h', volume: 'bsd/raw', logger: quietLogger };
  const backup = async (): Promise<void> => {
    clock += 3600_000;
    const p = await prepareRawBackup({ ...base, device: dev, chunkSize: MiB, forceFull: false, fullIntervalDays: 30, maxChainLength: 5, now: () => new Date(clock) });
    await p.commit();
  };
  await backup();
  writeAt(dev, 3 * MiB + 10, seededBytes(100, 11));
  await backup();

  const store = new VolumeStore(new LocalStorage(medium), 'h', 'bsd/raw');
  const [full, incr] = await store.list();
  assert.ok(full && incr);
  const container = store.pathOf(full.archive);
  const pristine = fs.readFileSync(container);
  const manifestFile = store.pathOf(incr.manifest);
  const pristineManifest = fs.readFileSync(manifestFile);
  const index = readContainerIndex(container);
  const out = path.join(dir, 'out.img');

  const expectBad = async (what: string, quickToo: boolean): Promise<void> => {
    const quick = await verifyRawVolume({ ...base, depth: 'quick' });
    if (quickToo) assert.ok(quick.problems.length > 0, `${what}: quick verify reports it`);
    const fullV = await verifyRawVolume({ ...base, depth: 'full' });
    assert.ok(fullV.problems.length > 0, `${what}: full verify reports it`);
    await assert.rejects(restoreRawImage({ ...base, to: out, force: false }), /./, `${what}: restore fails`);
    assert.ok(!fs.existsSync(out) && !fs.existsSync(out + '.partial'), `${what}: nothing is left that looks restored`);
  };

  // a bit flipped in the middle of chunk 4's frame (chunk 3 was replaced by the incremental; 4 is still needed)
  const frame = index.entries.find((e) => e.index === 4)!;
  const flipped = Buffer.from(pristine);
  flipped[frame.offset + Math.floor(frame.length / 2)]! ^= 0x10;
  fs.writeFileSync(container, flipped);
  await expectBad('flipped bit in a frame', true);
  const fullV = await verifyRawVolume({ ...base, depth: 'full' });
  assert.match(fullV.lines.join('\n'), /does not decode|wrong xxh64/);

  // truncated container: the trailer is gone
  fs.writeFileSync(container, pristine.subarray(0, pristine.length - 100));
  await expectBad('truncated container', true);
  assert.match((await verifyRawVolume({ ...base, depth: 'quick' })).lines.join('\n'), /trailer|truncated/);

  // damaged index (its checksum in the trailer no longer matches)
  const badIndex = Buffer.from(pristine);
  badIndex[index.indexOffset + 30]! ^= 0x01;
  fs.writeFileSync(container, badIndex);
  await expectBad('damaged index', true);

  // the pristine container restores and verifies again
  fs.writeFileSync(container, pristine);
  assert.deepEqual((await verifyRawVolume({ ...base, depth: 'full' })).problems, []);

  // damaged manifest of the newest backup
  const badManifest = Buffer.from(pristineManifest);
  badManifest[badManifest.length - 30]! ^= 0x04;
  fs.writeFileSync(manifestFile, badManifest);
  await expectBad('damaged manifest', true);
  fs.writeFileSync(manifestFile, pristineManifest);

  await restoreRawImage({ ...base, to: out, force: false });
  assert.ok(fs.readFileSync(out).equals(fs.readFileSync(dev)), 'undamaged again: the restore equals the device');
});
