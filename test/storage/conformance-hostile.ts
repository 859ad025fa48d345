/**
 * The conformance suite's hostile cases (see conformance.ts): the medium is
 * untrusted. A name that is not a plain component is refused before
 * anything is touched; a symlink or a non-folder on the way to a folder is
 * MediumDamage for every method and nothing outside the root is read or
 * written; a symlink, fifo or folder where a file belongs is refused by the
 * readers without hanging; a file over the reader's limit is refused.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MediumDamage } from '../../src/medium/medium-error.js';
import type { Folder, Storage } from '../../src/storage/storage.js';
import { DECOY, drain, type Subject, type SubjectFactory } from './conformance.js';

const T = { timeout: 60_000 };
const isDamage = (e: unknown): boolean => e instanceof MediumDamage;

function localFile(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'storage-upload-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'f'), 'uploaded');
  return path.join(dir, 'f');
}

/** Every method that takes a folder (and a name), each as one call. */
function everyMethod(s: Storage, folder: Folder, name: string, local: string): Array<[string, () => Promise<unknown>]> {
  return [
    ['list', () => s.list(folder)],
    ['listFolders', () => s.listFolders(folder)],
    ['ensureFolder', () => s.ensureFolder(folder)],
    ['read', () => s.read(folder, name, 1000)],
    ['readRange', () => s.readRange(folder, name, 0, 10)],
    ['openRead', () => s.openRead(folder, name).then(drain)],
    ['write', () => s.write(folder, name, Buffer.from('written'))],
    ['upload', () => s.upload(folder, name, local)],
    ['remove', () => s.remove(folder, name)],
    ['publish', () => s.publish(folder, [name])],
    ['tryLock', () => s.tryLock(folder, name, 'holder')],
    ['unlock', () => s.unlock(folder, name, 'x')],
    ['bytesHeld', () => s.bytesHeld(folder, [name])],
  ];
}

/** The decoy is as it was: nothing written, removed or created through a symlink. */
async function decoyIntact(sub: Subject): Promise<void> {
  const d = await sub.decoy();
  assert.deepEqual(d.names, ['x'], `the decoy folder now holds ${d.names.join(' ')}`);
  assert.deepEqual(d.file, DECOY);
}

export function hostileCases(factory: SubjectFactory): void {
  test('hostile: a folder component or name that is not plain is refused before anything is touched', T, async (t) => {
    const sub = await factory(t);
    const s = sub.storage;
    await s.ensureFolder(['host']);
    await s.write(['host'], 'keep', Buffer.from('kept'));
    const local = localFile(t);
    for (const bad of ['..', '', 'a/b', '.', '../host', 'x\0y']) {
      for (const [method, call] of [...everyMethod(s, ['host', bad, 'p'], 'n', local), ...everyMethod(s, ['host'], bad, local).filter(([m]) => m !== 'list' && m !== 'listFolders' && m !== 'ensureFolder')]) {
        await assert.rejects(call(), isDamage, `${method} with ${JSON.stringify(bad)}`);
      }
      if (s.rsync) assert.throws(() => s.rsync!.location(['host', bad]), isDamage);
      if (s.rsync) assert.throws(() => s.rsync!.location(['host'], bad), isDamage);
      if (s.local) assert.throws(() => s.local!.path(['host', bad], 'n'), isDamage);
    }
    assert.deepEqual(await s.list([]), [{ name: 'host', type: 'dir', size: 0 }]);
    assert.deepEqual(await s.list(['host']), [{ name: 'keep', type: 'file', size: 4 }]);
    await decoyIntact(sub);
  });

  test('hostile: a symlinked folder on the way is MediumDamage for every method; nothing outside is touched', T, async (t) => {
    const sub = await factory(t);
    const s = sub.storage;
    await sub.plant(['host'], 'web1', 'symlink-dir');
    const local = localFile(t);
    // The folder is the symlink itself, or lies below it.
    for (const folder of [['host', 'web1'], ['host', 'web1', 'deeper']]) {
      for (const [method, call] of everyMethod(s, folder, 'x', local)) {
        await assert.rejects(call(), isDamage, `${method} in ${folder.join('/')}`);
      }
    }
    await decoyIntact(sub);
    assert.deepEqual(await s.list(['host']), [{ name: 'web1', type: 'other', size: 0 }]);
  });

  test('hostile: a file, a fifo or a symlink to a file where a folder belongs is MediumDamage', T, async (t) => {
    const sub = await factory(t);
    const s = sub.storage;
    await sub.plant(['host'], 'file', 'file', Buffer.from('a file'));
    await sub.plant(['host'], 'pipe', 'fifo');
    await sub.plant(['host'], 'link', 'symlink-file');
    for (const c of ['file', 'pipe', 'link']) {
      for (const [method, call] of everyMethod(s, ['host', c], 'x', localFile(t))) {
        await assert.rejects(call(), isDamage, `${method} in host/${c}`);
      }
    }
    await decoyIntact(sub);
  });

  test('hostile: a symlink, fifo or folder where a file belongs is refused by every reader, without hanging', T, async (t) => {
    const sub = await factory(t);
    const s = sub.storage;
    const F = ['host', 'web1', 'root'];
    await s.ensureFolder(F);
    await sub.plant(F, 'to-file', 'symlink-file');
    await sub.plant(F, 'to-dir', 'symlink-dir');
    await sub.plant(F, 'pipe', 'fifo');
    await sub.plant(F, 'folder', 'dir');
    for (const name of ['to-file', 'to-dir', 'pipe', 'folder']) {
      await assert.rejects(s.read(F, name, 1 << 20), isDamage, `read ${name}`);
      await assert.rejects(s.readRange(F, name, 0, 10), isDamage, `readRange ${name}`);
      await assert.rejects(s.openRead(F, name).then(drain), isDamage, `openRead ${name}`);
      await assert.rejects(s.openRead(F, name, 3).then(drain), isDamage, `openRead ${name} at 3`);
    }
    await decoyIntact(sub);
  });

  test('hostile: read refuses a file larger than its limit; exactly the limit is read', T, async (t) => {
    const sub = await factory(t);
    const s = sub.storage;
    await sub.plant(['host'], 'big.json', 'file', Buffer.alloc(100_001, 'x'));
    await assert.rejects(s.read(['host'], 'big.json', 100_000), (e: unknown) => isDamage(e) && /big\.json/.test((e as Error).message));
    assert.equal((await s.read(['host'], 'big.json', 100_001)).length, 100_001);
    await assert.rejects(s.read(['host'], 'big.json', 0), isDamage);
  });

  test('hostile: remove of a symlink removes the link, not what it points to', T, async (t) => {
    const sub = await factory(t);
    const s = sub.storage;
    await sub.plant(['host'], 'to-dir', 'symlink-dir');
    await sub.plant(['host'], 'to-file', 'symlink-file');
    await sub.plant(['host'], 'pipe', 'fifo');
    await s.remove(['host'], 'to-dir');
    await s.remove(['host'], 'to-file');
    await s.remove(['host'], 'pipe');
    assert.deepEqual(await s.list(['host']), []);
    await decoyIntact(sub);
  });

  test('hostile: a planted lock (symlink, fifo, folder) reads as \'\'; unlock with \'\' takes it over, a folder stays', T, async (t) => {
    const sub = await factory(t);
    const s = sub.storage;
    const kinds = ['symlink-file', 'symlink-dir', 'fifo', 'dir'] as const;
    for (const kind of kinds) await sub.plant(['host'], `lock-${kind}`, kind);
    for (const kind of kinds) {
      assert.deepEqual(await s.tryLock(['host'], `lock-${kind}`, 'me'), { taken: false, holderText: '' }, kind);
      await s.unlock(['host'], `lock-${kind}`, 'me');
    }
    assert.equal((await s.list(['host']))!.length, kinds.length, 'unlock with another text removed a planted lock');
    for (const kind of kinds.filter((k) => k !== 'dir')) await s.unlock(['host'], `lock-${kind}`, '');
    assert.deepEqual(
      (await s.list(['host']))!.map((i) => i.name),
      ['lock-dir'],
    );
    await decoyIntact(sub);
  });

  test('hostile: write and upload replace a planted symlink or fifo, never writing through it', T, async (t) => {
    const sub = await factory(t);
    const s = sub.storage;
    await sub.plant(['host'], 'w', 'symlink-file');
    await sub.plant(['host'], s.stagedName('w2') === 'w2' ? 'w2-staged' : s.stagedName('w2'), 'symlink-file');
    await sub.plant(['host'], 'pipe', 'fifo');
    await s.write(['host'], 'w', Buffer.from('mine'));
    await s.write(['host'], 'w2', Buffer.from('mine'));
    await s.write(['host'], 'pipe', Buffer.from('mine'));
    assert.equal((await s.read(['host'], 'w', 10)).toString(), 'mine');
    assert.equal((await s.read(['host'], 'pipe', 10)).toString(), 'mine');
    await sub.plant(['host'], 'u', 'symlink-file');
    await s.upload(['host'], 'u', localFile(t)).catch((e: unknown) => assert.ok(isDamage(e), String(e)));
    await decoyIntact(sub);
  });
}
