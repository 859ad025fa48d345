/**
 * Prune treats raw chains like tar chains (src/repo/prune.ts): two raw
 * chains, the older one past the TTL, go together with all three files of
 * each backup (sidecar first); the kept chain still restores and verifies;
 * raw containers and manifests that no sidecar claims are debris. The
 * image here is a regular file: prune never reads devices.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { prepareRawBackup } from '../../src/engines/raw/raw-backup.js';
import { restoreRawImage } from '../../src/engines/raw/raw-restore.js';
import { verifyRawVolume } from '../../src/engines/raw/raw-verify.js';
import { pruneVolume } from '../../src/repo/prune.js';
import { VolumeStore } from '../../src/repo/volume-store.js';
import { LocalStorage } from '../../src/storage/local-storage.js';
import { makeScratchDir } from '../helpers/scratch.js';
import { MiB, quietLogger, seededBytes, writeAt } from './raw-fixtures.js';

test('prune: a raw chain past the TTL goes whole, the kept chain restores; unclaimed raw files are debris', async (t) => {
  const dir = makeScratchDir(t, 'xenbackup-raw-prune');
  const image = path.join(dir, 'disk.img');
  const medium = path.join(dir, 'medium');
  fs.closeSync(fs.openSync(image, 'w'));
  fs.truncateSync(image, 8 * MiB);
  const base = { medium, host: 'h', volume: 'nt/c', logger: quietLogger };
  const day = (d: number): Date => new Date(Date.parse('2026-10-01T01:00:00Z') + d * 86_400_000);
  const backup = async (d: number, forceFull: boolean): Promise<void> => {
    writeAt(image, (d % 8) * MiB, seededBytes(4096, d));
    const p = await prepareRawBackup({ ...base, device: image, chunkSize: MiB, forceFull, fullIntervalDays: 30, maxChainLength: 10, now: () => day(d) });
    await p.commit();
  };
  await backup(0, true);
  await backup(1, false);
  await backup(2, false);
  await backup(20, true);
  await backup(21, false);
  const store = new VolumeStore(new LocalStorage(medium), 'h', 'nt/c');
  const before = await store.list();
  assert.deepEqual(before.map((s) => s.kind), ['full', 'incremental', 'incremental', 'full', 'incremental']);

  // a container and manifest of an interrupted prune, older than the newest backup
  fs.writeFileSync(store.pathOf('20261001T120000Z.incr.raw.zst'), 'x');
  fs.writeFileSync(store.pathOf('20261001T120000Z.incr.raw.manifest'), 'x');

  const r = await pruneVolume(store, { ttlDays: 10, keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0 }, { dryRun: false, now: day(25) });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.deleted.map((d) => d.id).sort(), before.slice(0, 3).map((s) => s.id).sort());
  for (const d of r.deleted) assert.deepEqual(d.files.map((f) => f.replace(/^\d{8}T\d{6}Z\./, '')).sort(), d.kind === 'full' ? ['full.raw.json', 'full.raw.manifest', 'full.raw.zst'] : ['incr.raw.json', 'incr.raw.manifest', 'incr.raw.zst']);
  assert.deepEqual(r.debris.sort(), ['20261001T120000Z.incr.raw.manifest', '20261001T120000Z.incr.raw.zst']);
  const left = fs.readdirSync(store.dir).filter((n) => !n.startsWith('.')).sort();
  assert.deepEqual(left, before.slice(3).flatMap((s) => [s.archive, s.manifest, s.manifest.replace(/manifest$/, 'json')]).sort());

  const out = path.join(dir, 'out.img');
  await restoreRawImage({ ...base, to: out, force: false });
  assert.ok(fs.readFileSync(out).equals(fs.readFileSync(image)));
  assert.deepEqual((await verifyRawVolume({ ...base, depth: 'full' })).problems, []);
});
