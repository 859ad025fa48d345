/**
 * The native xxh64 (native/xxh64.c through native/xxh.ts) against xxhash-wasm,
 * the reference it replaced: every length 0..300 (all tail paths and the
 * 32-byte stripes), views at odd offsets into their ArrayBuffer, large
 * random buffers, and streaming fed in pieces of every size.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import xxhash from 'xxhash-wasm';
import { createAsyncXxh64, createXxh64, xxh64 } from '../../src/native/xxh.js';

const wasm = await xxhash();
const ref = (b: Uint8Array): string => wasm.h64Raw(b).toString(16).padStart(16, '0');

test('one-shot xxh64 equals xxhash-wasm for every length 0..300, aligned and not', () => {
  const pool = randomBytes(400);
  for (let len = 0; len <= 300; len++) {
    for (const off of [0, 1, 3, 7]) {
      const view = pool.subarray(off, off + len);
      assert.equal(xxh64(view), ref(view), `length ${len} at offset ${off}`);
    }
  }
  assert.equal(xxh64(Buffer.alloc(0)), 'ef46db3751d8e999'); // the specification's empty-input value
});

test('one-shot xxh64 equals xxhash-wasm on large buffers and plain Uint8Arrays', () => {
  for (const len of [1 << 20, (8 << 20) + 13, 65537]) {
    const b = randomBytes(len);
    assert.equal(xxh64(b), ref(b));
    const u = new Uint8Array(b.buffer, b.byteOffset + 5, len - 5);
    assert.equal(xxh64(u), ref(u));
  }
});

test('streaming xxh64 equals the one-shot value whatever the piece sizes', () => {
  const data = randomBytes(10_000);
  const expected = ref(data);
  for (const piece of [1, 3, 7, 31, 32, 33, 64, 100, 4096, 10_000]) {
    const h = createXxh64();
    for (let i = 0; i < data.length; i += piece) h.update(data.subarray(i, i + piece));
    assert.equal(h.digest(), expected, `pieces of ${piece}`);
  }
  // Lengths below one stripe in total, and digest() leaving the state usable.
  for (let len = 0; len < 70; len++) {
    const h = createXxh64();
    for (let i = 0; i < len; i++) h.update(data.subarray(i, i + 1));
    assert.equal(h.digest(), ref(data.subarray(0, len)), `${len} single bytes`);
    assert.equal(h.digest(), ref(data.subarray(0, len)), 'digest twice');
  }
  const mixed = createXxh64().update(data.subarray(0, 5)).update(new Uint8Array(0)).update(data.subarray(5, 9000)).update(data.subarray(9000));
  assert.equal(mixed.digest(), expected);
});

test('updateAsync (on a worker thread) hashes like update, in order, mixed with synchronous updates', async () => {
  const data = randomBytes(3 << 20);
  const h = createAsyncXxh64();
  await h.updateAsync(data.subarray(0, 1 << 20));
  h.update(data.subarray(1 << 20, (1 << 20) + 7));
  await h.updateAsync(data.subarray((1 << 20) + 7));
  assert.equal(h.digest(), ref(data));
  const empty = createAsyncXxh64();
  await empty.updateAsync(new Uint8Array(0));
  assert.equal(empty.digest(), ref(new Uint8Array(0)));
});

test('xxh64 refuses what is not bytes', () => {
  assert.throws(() => xxh64('text' as unknown as Uint8Array), TypeError);
});
