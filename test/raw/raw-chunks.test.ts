/**
 * The pure rules of raw mode (src/core/raw-chunks.ts): chunk geometry, what
 * a backup does with each chunk, map diffs, restore plans over a chain, and
 * the whole-image hash, which must depend on the bytes only.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  checkChunkMap,
  checkChunkSize,
  chunkCount,
  chunkFate,
  chunkLength,
  diffMaps,
  mapImageHash,
  planRawRestore,
  wholeImageHash,
  type ChunkMap,
} from '../../src/core/raw-chunks.js';
import { xxh64 } from '../../src/native/xxh.js';

const C = 64 * 1024;
const h = (n: number): string => n.toString(16).padStart(16, '0');

test('chunk geometry: count, short last chunk, sizes refused', () => {
  assert.equal(chunkCount(0, C), 0);
  assert.equal(chunkCount(C, C), 1);
  assert.equal(chunkCount(C + 1, C), 2);
  assert.equal(chunkLength(1, C + 100, C), 100);
  assert.throws(() => chunkLength(2, C + 100, C), /outside an image/);
  assert.throws(() => checkChunkSize(3 * C), /power of two/);
  assert.throws(() => checkChunkSize(4096), /power of two/);
  checkChunkSize(4 << 20);
});

test('fate of a chunk: zero is never stored, same hash keeps its holder, anything else is stored', () => {
  assert.equal(chunkFate(undefined, null), 'zero');
  assert.equal(chunkFate({ index: 0, hash: h(1), holder: 'A' }, null), 'zero');
  assert.equal(chunkFate({ index: 0, hash: h(1), holder: 'A' }, h(1)), 'unchanged');
  assert.equal(chunkFate({ index: 0, hash: h(1), holder: 'A' }, h(2)), 'changed');
  assert.equal(chunkFate(undefined, h(2)), 'changed');
});

test('diff of two maps: changed, newly zero, newly data, and a resized image', () => {
  const a: ChunkMap = { imageBytes: 5 * C, chunkSize: C, chunks: [{ index: 0, hash: h(1), holder: 'A' }, { index: 2, hash: h(2), holder: 'A' }, { index: 3, hash: h(3), holder: 'A' }] };
  const b: ChunkMap = { imageBytes: 5 * C, chunkSize: C, chunks: [{ index: 0, hash: h(1), holder: 'A' }, { index: 1, hash: h(9), holder: 'B' }, { index: 3, hash: h(4), holder: 'B' }] };
  assert.deepEqual(diffMaps(a, b), [1, 2, 3]);
  assert.deepEqual(diffMaps(a, a), []);
  const grown: ChunkMap = { ...a, imageBytes: 6 * C };
  assert.deepEqual(diffMaps(a, grown), [5]);
  const shortLast: ChunkMap = { ...a, imageBytes: 4 * C + 10 };
  assert.deepEqual(diffMaps(a, shortLast), [4]);
});

test('restore plan: each chunk from its holder, in chain order, zero chunks listed, foreign holders refused', () => {
  const map: ChunkMap = {
    imageBytes: 6 * C,
    chunkSize: C,
    chunks: [
      { index: 0, hash: h(1), holder: 'F' },
      { index: 2, hash: h(2), holder: 'I2' },
      { index: 3, hash: h(3), holder: 'F' },
      { index: 5, hash: h(5), holder: 'I2' },
    ],
  };
  const plan = planRawRestore(map, ['F', 'I1', 'I2']);
  assert.deepEqual(
    plan.reads.map((r) => [r.holder, r.chunks.map((c) => c.index)]),
    [
      ['F', [0, 3]],
      ['I2', [2, 5]],
    ],
  );
  assert.deepEqual(plan.zeroChunks, [1, 4]);
  assert.throws(() => planRawRestore(map, ['F', 'I1']), /held by backup I2, which is not in the chain/);
});

test('map checks: order, range and hash form', () => {
  checkChunkMap({ imageBytes: 2 * C, chunkSize: C, chunks: [{ index: 1, hash: h(1), holder: 'A' }] }, 'm');
  assert.throws(() => checkChunkMap({ imageBytes: 2 * C, chunkSize: C, chunks: [{ index: 2, hash: h(1), holder: 'A' }] }, 'm'), /outside/);
  assert.throws(
    () => checkChunkMap({ imageBytes: 2 * C, chunkSize: C, chunks: [{ index: 1, hash: h(1), holder: 'A' }, { index: 1, hash: h(1), holder: 'A' }] }, 'm'),
    /out of order/,
  );
  assert.throws(() => checkChunkMap({ imageBytes: 2 * C, chunkSize: C, chunks: [{ index: 0, hash: 'xyz', holder: 'A' }] }, 'm'), /no valid xxh64/);
});

test('whole-image hash: depends on the bytes only; zero chunks count as their zero bytes', async () => {
  const size = 3 * C + 500;
  const data = Buffer.alloc(C, 7);
  const hashes = [null, xxh64(data), null, null];
  const a = wholeImageHash(size, C, (i) => hashes[i]!, xxh64);
  // The same image where chunk 0 was hashed instead of recognised as zero.
  const b = wholeImageHash(size, C, (i) => (i === 0 ? xxh64(Buffer.alloc(C)) : i === 3 ? xxh64(Buffer.alloc(500)) : hashes[i]!), xxh64);
  assert.equal(a, b);
  assert.notEqual(a, wholeImageHash(size + 1, C, (i) => hashes[i]!, xxh64), 'the size is part of it');
  assert.notEqual(a, wholeImageHash(size, C, (i) => (i === 2 ? xxh64(data) : hashes[i]!), xxh64), 'a moved chunk changes it');
  const map: ChunkMap = { imageBytes: size, chunkSize: C, chunks: [{ index: 1, hash: xxh64(data), holder: 'X' }] };
  assert.equal(mapImageHash(map, xxh64), a);
});
