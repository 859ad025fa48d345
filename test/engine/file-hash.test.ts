// The content hash every manifest records (engines/file-hash.ts) must stay what it was, or existing
// backups stop verifying: the readers (rsync scanner, tree verify) and the streaming form (restore,
// tar verify) must agree with each other and with the rule spelled out here byte by byte.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ContentHash, contentHashAsync, contentHashSync } from '../../src/engines/file-hash.js';
import { dataRegions, worthAskingForHoles } from '../../src/engines/sparse-regions.js';
import { xxh64OfFd, xxh64OfFdAsync } from '../../src/util/file-xxh.js';
import { createXxh64, xxh64 } from '../../src/native/xxh.js';

/** The rule as the first manifests were written: per region, offset and length as u64 LE, then the data. */
function byHand(content: Buffer, regions: Array<[number, number]>): string {
  const h = createXxh64();
  for (const [off, len] of regions) {
    const header = Buffer.alloc(16);
    header.writeBigUInt64LE(BigInt(off), 0);
    header.writeBigUInt64LE(BigInt(len), 8);
    h.update(header).update(content.subarray(off, off + len));
  }
  return h.digest();
}

test('a sparse file hashes the same through every form of the rule, and as spelled out', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xb-filehash-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sparse');
  const size = 8 << 20;
  const fd0 = fs.openSync(file, 'w');
  fs.ftruncateSync(fd0, size);
  fs.writeSync(fd0, Buffer.alloc(4096, 0x61), 0, 4096, 0);
  fs.writeSync(fd0, Buffer.alloc(3 << 20, 0x62), 0, 3 << 20, 4 << 20); // more than one read chunk
  fs.closeSync(fd0);
  const content = fs.readFileSync(file);
  const fd = fs.openSync(file, 'r');
  t.after(() => fs.closeSync(fd));
  const st = fs.fstatSync(fd, { bigint: true });
  const regions = dataRegions(fd, size);
  if (!regions || !worthAskingForHoles(size, st)) return t.skip('the filesystem of the temporary folder keeps no holes');
  const want = byHand(content, regions);
  const buf = Buffer.allocUnsafe(1 << 20);

  assert.deepEqual(contentHashSync(fd, size, regions, buf), { hash: want, bytes: regions.reduce((n, r) => n + r[1], 0) });
  assert.equal((await contentHashAsync(fd, size, regions, buf)).hash, want);
  // As restore and tar verify see it: each region's data in two chunks, with file offsets.
  const streamed = new ContentHash(regions);
  for (const [off, len] of regions) {
    const half = Math.floor(len / 2);
    streamed.update(content.subarray(off, off + half), off);
    streamed.update(content.subarray(off + half, off + len), off + half);
  }
  assert.equal(streamed.digest(), want);
});

test('a dense file hashes as the xxh64 of its bytes, whichever reader', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xb-filehash-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'dense');
  const content = Buffer.alloc((2 << 20) + 123);
  for (let i = 0; i < content.length; i++) content[i] = (i * 7) & 0xff;
  fs.writeFileSync(file, content);
  const fd = fs.openSync(file, 'r');
  t.after(() => fs.closeSync(fd));
  const want = xxh64(content);
  const buf = Buffer.allocUnsafe(1 << 20);
  assert.deepEqual(contentHashSync(fd, content.length, undefined, buf), { hash: want, bytes: content.length });
  assert.deepEqual(await contentHashAsync(fd, content.length, undefined, buf), { hash: want, bytes: content.length });
  assert.deepEqual(xxh64OfFd(fd), { hash: want, bytes: content.length });
  assert.deepEqual(await xxh64OfFdAsync(fd), { hash: want, bytes: content.length });
  const streamed = new ContentHash();
  streamed.update(content.subarray(0, 1000), 0);
  streamed.update(content.subarray(1000), 1000);
  assert.equal(streamed.digest(), want);
  // A file shorter than the size expected is hashed as far as it goes.
  assert.deepEqual(contentHashSync(fd, content.length + 5000, undefined, buf), { hash: want, bytes: content.length });
});

test('the region rule is pinned: a known map and content give a known hash', () => {
  const content = Buffer.concat([Buffer.from('abc'), Buffer.alloc(7), Buffer.from('de')]);
  const h = new ContentHash([
    [0, 3],
    [10, 2],
  ]);
  h.update(content.subarray(0, 3), 0);
  h.update(content.subarray(10, 12), 10);
  const got = h.digest();
  assert.equal(got, byHand(content, [[0, 3], [10, 2]]));
  assert.equal(got, '4aa5ab8fbaf105aa');
});
