/**
 * The behaviour every Storage (src/storage/storage.ts) must have, as one
 * suite run against each implementation (conformance.test.ts): a factory
 * gives a fresh, empty storage per test plus a way to put things on its
 * medium directly, bypassing the storage, as a hostile medium would hold
 * them. The ordinary cases are here; the hostile ones in
 * conformance-hostile.ts.
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Folder, Storage } from '../../src/storage/storage.js';
import { hostileCases } from './conformance-hostile.js';

/** What a test can plant: a symlink to a decoy folder or file outside the root, a fifo, a file, a folder. */
export type Plant = 'symlink-dir' | 'symlink-file' | 'fifo' | 'file' | 'dir';

export interface Subject {
  storage: Storage;
  /** Puts `kind` at folder/name on the medium, making the folders on the way. */
  plant(folder: Folder, name: string, kind: Plant, data?: Buffer): Promise<void>;
  /**
   * The names in the decoy folder and the decoy file's bytes: what a
   * followed symlink would reach. The decoy folder starts with one file,
   * 'x', holding DECOY; the decoy file holds DECOY.
   */
  decoy(): Promise<{ names: string[]; file: Buffer }>;
  /** Where the medium has hardlinks: makes folder/name a second link of a file outside the root. */
  plantHardlink?(folder: Folder, name: string): Promise<void>;
}

export const DECOY = Buffer.from('outside the root\n');

export type SubjectFactory = (t: TestContext) => Promise<Subject>;

export async function drain(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Every byte value, then random bytes: `n` bytes in all. */
export function binary(n: number): Buffer {
  const b = crypto.randomBytes(n);
  for (let i = 0; i < Math.min(256, n); i++) b[i] = i;
  return b;
}

function localFile(t: TestContext, data: Buffer): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'storage-upload-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const f = path.join(dir, "a local 'file'");
  fs.writeFileSync(f, data, { mode: 0o644 });
  return f;
}

const F: Folder = ['host', 'web1', 'root'];
const T = { timeout: 60_000 };

export function storageConformance(label: string, factory: SubjectFactory): void {
  describe(label, () => {
    test('write then read gives the bytes back; read of an absent file is ENOENT', T, async (t) => {
      const { storage: s } = await factory(t);
      await s.ensureFolder(F);
      const data = binary(300_000);
      await s.write(F, 'a.json', data);
      assert.deepEqual(await s.read(F, 'a.json', data.length), data);
      await s.write(F, 'empty', Buffer.alloc(0));
      assert.equal((await s.read(F, 'empty', 0)).length, 0);
      await s.write(F, 'a.json', Buffer.from('second'));
      assert.equal((await s.read(F, 'a.json', 100)).toString(), 'second');
      await assert.rejects(s.read(F, 'absent', 100), { code: 'ENOENT' });
      // write, upload and tryLock make the folder where missing.
      await s.write(['host', 'new', 'deeper'], 'a', Buffer.from('x'));
      assert.deepEqual(await s.listFolders(['host', 'new']), ['deeper']);
    });

    test('write is atomic: a reader sees the old bytes or the new, never part; no partial name is left', T, async (t) => {
      const { storage: s } = await factory(t);
      await s.ensureFolder(F);
      const before = Buffer.alloc(1000, 'a');
      const after = binary(4 << 20);
      await s.write(F, 'sidecar.json', before);
      let writing = true;
      const w = s.write(F, 'sidecar.json', after).finally(() => (writing = false));
      let looks = 0;
      while (writing || looks === 0) {
        const item = (await s.list(F))!.find((i) => i.name === 'sidecar.json');
        assert.ok(item && (item.size === before.length || item.size === after.length), `size ${item?.size}`);
        const got = await s.read(F, 'sidecar.json', after.length);
        assert.ok(got.equals(before) || got.equals(after), `read ${got.length} bytes`);
        looks++;
      }
      await w;
      assert.deepEqual(await s.read(F, 'sidecar.json', after.length), after);
      assert.deepEqual((await s.list(F))!.map((i) => i.name), ['sidecar.json']);
    });

    test('list: every item with its type and a file\'s size, sorted by name; an absent folder is undefined', T, async (t) => {
      const sub = await factory(t);
      const s = sub.storage;
      assert.equal(await s.list(F), undefined);
      assert.equal(await s.list(['nothing']), undefined);
      await s.ensureFolder(F);
      assert.deepEqual(await s.list(F), []);
      await s.write(F, 'b', Buffer.alloc(7));
      await s.write(F, 'a', Buffer.alloc(0));
      await s.write(F, 'C', Buffer.alloc(3));
      await s.write(F, '.hidden', Buffer.alloc(1));
      await s.write(F, "with space 'and quote' $(x)", Buffer.alloc(2));
      await s.ensureFolder([...F, 'd.tree']);
      await sub.plant(F, 'link', 'symlink-dir');
      await sub.plant(F, 'pipe', 'fifo');
      assert.deepEqual(await s.list(F), [
        { name: '.hidden', type: 'file', size: 1 },
        { name: 'C', type: 'file', size: 3 },
        { name: 'a', type: 'file', size: 0 },
        { name: 'b', type: 'file', size: 7 },
        { name: 'd.tree', type: 'dir', size: 0 },
        { name: 'link', type: 'other', size: 0 },
        { name: 'pipe', type: 'other', size: 0 },
        { name: "with space 'and quote' $(x)", type: 'file', size: 2 },
      ]);
    });

    test('listFolders: the real folders, sorted; [] when the folder is absent', T, async (t) => {
      const sub = await factory(t);
      const s = sub.storage;
      assert.deepEqual(await s.listFolders(['host']), []);
      await s.ensureFolder(['host', 'web2']);
      await s.ensureFolder(['host', 'db']);
      await s.ensureFolder(['host', '.dot']);
      await s.write(['host'], 'file', Buffer.from('x'));
      await sub.plant(['host'], 'link', 'symlink-dir');
      assert.deepEqual(await s.listFolders(['host']), ['.dot', 'db', 'web2']);
      assert.deepEqual(await s.listFolders([]), ['host']);
    });

    test('ensureFolder makes every missing level and is idempotent', T, async (t) => {
      const { storage: s } = await factory(t);
      await s.ensureFolder(F);
      await s.ensureFolder(F);
      await s.ensureFolder([...F, 'deeper']);
      assert.deepEqual(await s.listFolders(['host']), ['web1']);
      assert.deepEqual(await s.listFolders(F), ['deeper']);
    });

    test('readRange: start, middle, end, past the end, zero bytes', T, async (t) => {
      const { storage: s } = await factory(t);
      await s.ensureFolder(F);
      const data = binary(200_000);
      await s.write(F, 'archive', data);
      assert.deepEqual(await s.readRange(F, 'archive', 0, 1000), data.subarray(0, 1000));
      assert.deepEqual(await s.readRange(F, 'archive', 65_535, 70_000), data.subarray(65_535, 135_535));
      assert.deepEqual(await s.readRange(F, 'archive', 199_990, 100), data.subarray(199_990));
      assert.equal((await s.readRange(F, 'archive', 200_000, 10)).length, 0);
      assert.equal((await s.readRange(F, 'archive', 300_000, 10)).length, 0);
      assert.equal((await s.readRange(F, 'archive', 5, 0)).length, 0);
      await assert.rejects(s.readRange(F, 'absent', 0, 1), { code: 'ENOENT' });
    });

    test('openRead: the whole file, or from an offset on; an offset at or past the end is an empty stream', T, async (t) => {
      const { storage: s } = await factory(t);
      await s.ensureFolder(F);
      const data = binary(3 << 20);
      await s.write(F, 'archive', data);
      assert.deepEqual(await drain(await s.openRead(F, 'archive')), data);
      assert.deepEqual(await drain(await s.openRead(F, 'archive', 1_234_567)), data.subarray(1_234_567));
      assert.equal((await drain(await s.openRead(F, 'archive', data.length))).length, 0);
      assert.equal((await drain(await s.openRead(F, 'archive', data.length + 5))).length, 0);
      await assert.rejects(s.openRead(F, 'absent'), { code: 'ENOENT' });
      // A reader that stops early: the storage lets go (the next read works).
      const r = await s.openRead(F, 'archive');
      await new Promise<void>((resolve) => r.once('readable', () => resolve()));
      r.destroy();
      assert.deepEqual(await s.readRange(F, 'archive', 0, 10), data.subarray(0, 10));
    });

    test('upload copies a local file in; publish makes staged names visible, in order', T, async (t) => {
      const { storage: s } = await factory(t);
      await s.ensureFolder(F);
      const manifest = binary(1 << 20);
      await s.upload(F, 'm', localFile(t, manifest));
      assert.deepEqual(await s.read(F, 'm', manifest.length), manifest);
      await s.upload(['host', 'new'], 'm', localFile(t, manifest));
      assert.deepEqual((await s.list(['host', 'new']))!.map((i) => [i.name, i.size]), [['m', manifest.length]]);

      const id = '20261101T030000Z.tree';
      const staged = (n: string): string => s.stagedName(n);
      await s.ensureFolder([...F, staged(id)]);
      await s.write([...F, staged(id)], 'etc-passwd', Buffer.from('root:x:0:0'));
      await s.upload(F, staged(`${id}.manifest`), localFile(t, manifest));
      await s.write(F, staged(`${id}.json`), Buffer.from('{}'));
      const renames = staged(id) !== id;
      if (renames) {
        assert.equal(staged(id), `${id}.partial`);
        const names = (await s.list(F))!.map((i) => i.name);
        assert.ok(!names.includes(id) && !names.includes(`${id}.json`), names.join(' '));
      }
      await s.publish(F, [id, `${id}.manifest`, `${id}.json`]);
      assert.deepEqual((await s.list(F))!.map((i) => [i.name, i.type]), [
        [id, 'dir'],
        [`${id}.json`, 'file'],
        [`${id}.manifest`, 'file'],
        ['m', 'file'],
      ]);
      assert.equal((await s.read([...F, id], 'etc-passwd', 100)).toString(), 'root:x:0:0');
      assert.deepEqual(await s.read(F, `${id}.manifest`, manifest.length), manifest);
      await s.publish(F, []);

      if (renames) {
        // In order: a missing staged name stops publish there; the names before it are published, those after are not.
        await s.write(F, staged('first'), Buffer.from('1'));
        await s.write(F, staged('third'), Buffer.from('3'));
        await assert.rejects(s.publish(F, ['first', 'second', 'third']), { code: 'ENOENT' });
        const names = (await s.list(F))!.map((i) => i.name);
        assert.ok(names.includes('first') && !names.includes('third') && names.includes(staged('third')), names.join(' '));
      }
    });

    test('remove: a file, a whole tree, an absent name, in an absent folder', T, async (t) => {
      const { storage: s } = await factory(t);
      await s.ensureFolder([...F, 'tree.partial', 'etc', 'deep']);
      await s.write([...F, 'tree.partial', 'etc', 'deep'], 'f', Buffer.from('x'));
      await s.write(F, 'file', Buffer.from('x'));
      await s.remove(F, 'file');
      await s.remove(F, 'tree.partial');
      await s.remove(F, 'absent');
      await s.remove(['host', 'absent'], 'absent');
      assert.deepEqual(await s.list(F), []);
    });

    test('tryLock: of two at once exactly one wins; the other learns the holder; unlock leaves another\'s lock', T, async (t) => {
      const { storage: s } = await factory(t);
      await s.ensureFolder(F);
      const one = '{"pid":1,"host":"a"}\n';
      const two = '{"pid":2,"host":"b","note":"ünïcode"}';
      const [r1, r2] = await Promise.all([s.tryLock(F, 'lock', one), s.tryLock(F, 'lock', two)]);
      assert.equal([r1, r2].filter((r) => r.taken).length, 1, JSON.stringify([r1, r2]));
      const [winner, loser] = r1.taken ? [one, r2] : [two, r1];
      assert.deepEqual(loser, { taken: false, holderText: winner });
      assert.deepEqual(await s.tryLock(F, 'lock', winner), { taken: false, holderText: winner });
      // Another's text (also one differing only by a newline) leaves the lock.
      await s.unlock(F, 'lock', winner === one ? two : one);
      await s.unlock(F, 'lock', winner.trimEnd() === winner ? `${winner}\n` : winner.trimEnd());
      assert.deepEqual(await s.tryLock(F, 'lock', 'third'), { taken: false, holderText: winner });
      await s.unlock(F, 'lock', winner);
      assert.deepEqual((await s.list(F))!.map((i) => i.name), []);
      assert.deepEqual(await s.tryLock(F, 'lock', 'third'), { taken: true });
      assert.deepEqual(await s.read(F, 'lock', 100), Buffer.from('third'));
      await s.unlock(F, 'absent-lock', 'third');
      await s.unlock(['host', 'absent'], 'lock', 'third');
      assert.deepEqual(await s.tryLock(['host', 'new'], 'lock', 'x'), { taken: true });
    });

    test('bytesHeld: files, trees, absent names; a file with another link frees nothing', T, async (t) => {
      const sub = await factory(t);
      const s = sub.storage;
      assert.equal(await s.bytesHeld(F, ['a']), 0);
      await s.write(F, 'a', Buffer.alloc(1000));
      await s.ensureFolder([...F, 'tree', 'etc']);
      await s.write([...F, 'tree', 'etc'], 'f', Buffer.alloc(5000));
      await s.write([...F, 'tree'], 'g', Buffer.alloc(3000));
      assert.equal(await s.bytesHeld(F, ['a']), 1000);
      assert.equal(await s.bytesHeld(F, ['a', 'absent']), 1000);
      assert.equal(await s.bytesHeld(F, []), 0);
      assert.equal(await s.bytesHeld(['host', 'absent'], ['a']), 0);
      const tree = await s.bytesHeld(F, ['tree']);
      // A folder's own size is the filesystem's (0 in memory, a block or so on disk).
      assert.ok(tree >= 8000 && tree < 8000 + 3 * 65536, String(tree));
      assert.equal(await s.bytesHeld(F, ['a', 'tree']), tree + 1000);
      if (sub.plantHardlink) {
        await sub.plantHardlink([...F, 'tree', 'etc'], 'shared');
        assert.equal(await s.bytesHeld(F, ['tree']), tree);
      }
    });

    test('show, freeBytes and the rsync capability', T, async (t) => {
      const { storage: s } = await factory(t);
      assert.ok(s.show(F, 'x.json').startsWith(s.root.replace(/\/+$/, '')), s.show(F, 'x.json'));
      assert.ok(s.show(F, 'x.json').endsWith('/host/web1/root/x.json'), s.show(F, 'x.json'));
      assert.ok(s.show(F).endsWith('/host/web1/root'), s.show(F));
      const free = await s.freeBytes();
      assert.ok(free === undefined || (Number.isSafeInteger(free) && free > 0), String(free));
      if (s.rsync) {
        assert.ok(s.rsync.location(F, 'x').endsWith('/host/web1/root/x'), s.rsync.location(F, 'x'));
        assert.ok(Array.isArray(s.rsync.args));
      }
      if (s.local) assert.ok(path.isAbsolute(s.local.path(F, 'x')) && s.local.path(F, 'x').endsWith('/host/web1/root/x'));
    });

    hostileCases(factory);
  });
}
