// A volume's lock lives on the medium, so it is untrusted too: a fifo planted as the lock must not
// hang a backup or prune (it is an unreadable lock, taken over), and a symlink planted under the
// name of the lock's temporary file must not be written through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { lockVolume, VOLUME_LOCK_NAME } from '../../src/repo/volume-lock.js';
import { VolumeStore } from '../../src/repo/volume-store.js';
import { LocalStorage } from '../../src/storage/local-storage.js';
import { createLogger } from '../../src/util/log.js';

function scratch(t: { after: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xb-vlock-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The store of volume v/p in a scratch medium, its folder made; `dir` is that folder, where the lock lives. */
function volumeFolder(t: { after: (fn: () => void) => void }): { store: VolumeStore; dir: string } {
  const store = new VolumeStore(new LocalStorage(scratch(t)), 'h', 'v/p');
  const dir = store.dir;
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return { store, dir };
}

test('a fifo planted as the volume lock is taken over, not read (no hang)', { timeout: 10_000 }, async (t) => {
  const { store, dir } = volumeFolder(t);
  execFileSync('mkfifo', [path.join(dir, VOLUME_LOCK_NAME)]);
  const warnings: string[] = [];
  const log = createLogger([(e) => warnings.push(e.message)], 'warn');
  const lock = await lockVolume(store, log);
  assert.ok(fs.lstatSync(path.join(dir, VOLUME_LOCK_NAME)).isFile(), 'the lock is ours now, a regular file');
  assert.ok(warnings.some((w) => /unreadable lock/.test(w)), warnings.join('\n'));
  await lock.release();
  assert.equal(fs.existsSync(path.join(dir, VOLUME_LOCK_NAME)), false);
});

test("a symlink planted under the lock's temporary name is not written through", async (t) => {
  const { store, dir } = volumeFolder(t);
  const outside = path.join(scratch(t), 'victim');
  fs.writeFileSync(outside, 'untouched\n');
  // The temporary name was <lock>.<pid>.0; LocalStorage.tryLock now uses <lock>.<pid>: both planted.
  fs.symlinkSync(outside, path.join(dir, `${VOLUME_LOCK_NAME}.${process.pid}.0`));
  fs.symlinkSync(outside, path.join(dir, `${VOLUME_LOCK_NAME}.${process.pid}`));
  const lock = await lockVolume(store, createLogger([], 'error'));
  await lock.release();
  assert.equal(fs.readFileSync(outside, 'utf8'), 'untouched\n');
});
