/**
 * kill -9 in the middle of a raw incremental leaves nothing that counts:
 * the volume still lists only the earlier full, a restore gives the full's
 * image, and the next backup takes over the dead holder's lock, removes the
 * ".partial" files as debris and builds its incremental on the full.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareRawBackup } from '../../src/engines/raw/raw-backup.js';
import { restoreRawImage } from '../../src/engines/raw/raw-restore.js';
import { verifyRawVolume } from '../../src/engines/raw/raw-verify.js';
import { VolumeStore } from '../../src/repo/volume-store.js';
import { LocalStorage } from '../../src/storage/local-storage.js';
import { makeScratchDir } from '../helpers/scratch.js';
import { attachLoop, MiB, quietLogger, saveImage, seededBytes, writeAt } from './raw-fixtures.js';

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'raw-kill-child.js');

test('raw backup killed with SIGKILL half way: nothing counts, the next backup cleans up and builds on the full', async (t) => {
  const dir = makeScratchDir(t, 'xenbackup-raw-kill');
  const image = path.join(dir, 'disk.img');
  const medium = path.join(dir, 'medium');
  fs.closeSync(fs.openSync(image, 'w'));
  fs.truncateSync(image, 48 * MiB);
  const dev = attachLoop(t, image);
  writeAt(dev, 0, seededBytes(16 * MiB, 20));
  const base = { medium, host: 'h', volume: 'vm/swap', logger: quietLogger };
  const first = await prepareRawBackup({ ...base, device: dev, chunkSize: MiB, forceFull: false, fullIntervalDays: 30, maxChainLength: 10, now: () => new Date('2026-11-26T01:00:00Z') });
  const full = await first.commit();
  const fullCopy = path.join(dir, 'full.img');
  saveImage(dev, fullCopy);

  writeAt(dev, 5 * MiB, seededBytes(3 * MiB, 21));
  const proc = spawn(process.execPath, [child, dev, medium, 'h', 'vm/swap', '2026-11-27T01:00:00Z', '10'], {
    env: { ...process.env, XENBACKUP_RAW_KILL_CHILD: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => proc.kill('SIGKILL'));
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<NodeJS.Signals | number | null>((r) => proc.on('exit', (code, signal) => r(signal ?? code)));
  await new Promise<void>((resolve, reject) => {
    proc.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('mid')) resolve();
    });
    void exited.then((how) => reject(new Error(`child ended (${String(how)}) before the middle: ${stderr}`)));
  });
  const store = new VolumeStore(new LocalStorage(medium), 'h', 'vm/swap');
  const partials = fs.readdirSync(store.dir).filter((n) => n.endsWith('.partial'));
  assert.ok(partials.some((n) => n.endsWith('.incr.raw.zst.partial')), `the container is being written: ${partials.join(', ')}`);
  proc.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');

  assert.deepEqual((await store.list()).map((s) => s.id), [full.id], 'the killed backup does not count');
  const out = path.join(dir, 'out.img');
  await restoreRawImage({ ...base, to: out, force: false });
  assert.ok(fs.readFileSync(out).equals(fs.readFileSync(fullCopy)), 'a restore gives the full');

  const next = await prepareRawBackup({ ...base, device: dev, chunkSize: MiB, forceFull: false, fullIntervalDays: 30, maxChainLength: 10, now: () => new Date('2026-11-27T02:00:00Z') });
  const incr = await next.commit();
  assert.equal(incr.kind, 'incremental');
  assert.equal(incr.base, full.id);
  assert.equal(incr.raw.storedChunks, 3);
  assert.deepEqual(fs.readdirSync(store.dir).filter((n) => n.endsWith('.partial')), [], 'debris removed');
  assert.deepEqual((await verifyRawVolume({ ...base, depth: 'full' })).problems, []);
  await restoreRawImage({ ...base, to: out, force: true });
  assert.ok(fs.readFileSync(out).equals(fs.readFileSync(dev)));
});
