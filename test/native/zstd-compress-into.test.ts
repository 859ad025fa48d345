/**
 * zstdCompressFrameInto (native/xbzstd.c through native/zstd.ts): the
 * archive writer's frames compressed into buffers it reuses. The frame is
 * the one zstdCompressFrame makes, byte for byte; compressions into
 * different buffers at once stay apart; a buffer too small is refused in
 * one line, never overrun.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { zstdCompressFrame, zstdCompressFrameInto, zstdDecompressFrame, zstdFrameBound } from '../../src/native/zstd.js';

/** Half text, half pseudo-random bytes: the same for the same seed. */
function sample(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  let p = 0;
  for (let i = 0; p < len / 2; i++) p += b.write(`line ${i} of sample ${seed}\n`, p);
  let x = seed | 1;
  for (; p < len; p++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[p] = x & 0xff;
  }
  return b;
}

test('a frame compressed into a given buffer is the frame zstdCompressFrame makes, and decodes to the input', async () => {
  const input = sample((1 << 20) + 777, 3);
  const out = Buffer.alloc(zstdFrameBound(input.length));
  const frame = await zstdCompressFrameInto(input, out);
  assert.equal(frame.buffer, out.buffer, 'a view of the given buffer');
  assert.ok(frame.equals(await zstdCompressFrame(input)));
  const back = Buffer.alloc(input.length);
  assert.equal(await zstdDecompressFrame(frame, back, input.length), input.length);
  assert.ok(back.equals(input));
});

test('compressions into different buffers at once stay apart, and a reused buffer holds only the latest frame', async () => {
  const inputs = [1, 2, 3, 4].map((s) => sample(300_000 + s * 1000, s));
  const outs = inputs.map((i) => Buffer.alloc(zstdFrameBound(i.length)));
  const frames = await Promise.all(inputs.map((i, k) => zstdCompressFrameInto(i, outs[k]!)));
  for (let k = 0; k < inputs.length; k++) {
    const back = Buffer.alloc(inputs[k]!.length);
    await zstdDecompressFrame(frames[k]!, back, back.length);
    assert.ok(back.equals(inputs[k]!), `input ${k}`);
  }
  const again = await zstdCompressFrameInto(inputs[1]!, outs[0]!);
  assert.ok(again.equals(await zstdCompressFrame(inputs[1]!)));
});

test('an output buffer too small for the frame is refused in one line, and the bytes after it are untouched', async () => {
  const input = sample(200_000, 9); // half random: the frame needs ~100 KB
  const backing = Buffer.alloc(4096 + 16, 0xa5);
  const out = backing.subarray(0, 4096);
  await assert.rejects(zstdCompressFrameInto(input, out), (e: Error) => !e.message.includes('\n') && /small|size/i.test(e.message));
  assert.ok(backing.subarray(4096).every((b) => b === 0xa5));
});

test('zstdFrameBound is at least what libzstd needs: incompressible input fits', async () => {
  for (const n of [0, 1, 1000, 128 << 10, (8 << 20) + 3]) {
    const input = Buffer.alloc(n);
    let x = n | 1;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      input[i] = x & 0xff;
    }
    const frame = await zstdCompressFrameInto(input, Buffer.alloc(zstdFrameBound(n)));
    assert.ok(frame.length <= zstdFrameBound(n), `${n} bytes`);
  }
});
