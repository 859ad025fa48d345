/**
 * zstdDecompressFrame (native/xbzstd.c through native/zstd.ts), the raw
 * restore's decoder: frames written by the `zstd` binary (with and without
 * content size and checksum) and by zstdCompressFrame decode to their
 * bytes; damaged, truncated, foreign or doubled frames and a wrong expected
 * size are refused with a one-line reason; many decodes at once stay apart;
 * alignedBuffer memory takes O_DIRECT writes.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { alignedBuffer, zstdCompressFrame, zstdDecompressFrame } from '../../src/native/zstd.js';

/** Pseudo-random bytes, the same for the same length (xorshift32). */
function noise(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  let x = seed | 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Text-like bytes (compressible), random bytes and zeros in one buffer; the same for the same length. */
function sample(len: number): Buffer {
  const b = Buffer.alloc(len);
  const words = ['raw ', 'chunk ', 'frame ', 'xenbackup ', 'image\n'];
  let p = 0;
  for (let i = 0; p < len / 2; i++) p += b.write(words[(i * 7) % words.length]!, p);
  noise(Math.floor(len / 4), len).copy(b, Math.floor(len / 2));
  return b; // the last quarter stays zero
}

async function decode(frame: Buffer, expected: number, room = expected): Promise<Buffer> {
  const out = alignedBuffer(room);
  const n = await zstdDecompressFrame(frame, out, expected);
  assert.equal(n, expected);
  return out.subarray(0, n);
}

test('frames of the zstd binary decode to their bytes: with content size and checksum, without checksum, from a pipe (no content size)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenbackup-unzstd-'));
  try {
    const data = sample((1 << 20) + 4099);
    const file = path.join(dir, 'chunk');
    fs.writeFileSync(file, data);
    const withSize = execFileSync('zstd', ['-1', '-q', '-c', file]);
    const noCheck = execFileSync('zstd', ['-3', '-q', '-c', '--no-check', file]);
    const piped = execFileSync('zstd', ['-1', '-q', '-c'], { input: data, maxBuffer: 64 << 20 });
    for (const [what, frame] of [['content size', withSize], ['no checksum', noCheck], ['piped', piped]] as const) {
      assert.ok((await decode(frame, data.length)).equals(data), what);
    }
    // The other way round too: `zstd -d` reads what zstdCompressFrame wrote.
    fs.writeFileSync(file + '.zst', await zstdCompressFrame(data, 1));
    assert.ok(execFileSync('zstd', ['-d', '-q', '-c', file + '.zst'], { maxBuffer: 64 << 20 }).equals(data));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('zstdCompressFrame round trip: empty, one byte, odd sizes, 4 MiB; into a larger buffer', async () => {
  for (const len of [0, 1, 4095, 65537, 4 << 20]) {
    const data = sample(len);
    const frame = await zstdCompressFrame(data, 1);
    assert.ok((await decode(frame, len)).equals(data), `${len} bytes`);
    assert.ok((await decode(frame, len, len + 8192)).equals(data), `${len} bytes into a larger buffer`);
  }
});

test('a damaged frame is refused with a clear reason: flipped bit, truncated, not zstd, two frames', async () => {
  const data = sample(256 * 1024);
  const frame = await zstdCompressFrame(data, 1);
  const flipped = Buffer.from(frame);
  flipped[flipped.length >> 1]! ^= 0x10;
  const tailFlipped = Buffer.from(frame);
  tailFlipped[tailFlipped.length - 2]! ^= 0x01; // inside the checksum itself
  const cases: Array<[string, Buffer, RegExp]> = [
    ['flipped bit', flipped, /checksum|corrupt/i],
    ['flipped checksum', tailFlipped, /checksum/i],
    ['truncated', frame.subarray(0, frame.length - 10), /^not a zstd frame \(/],
    ['not zstd', Buffer.from('this is not a zstd frame at all'), /^not a zstd frame \(/],
    ['two frames', Buffer.concat([frame, frame]), /^the frame ends after \d+ of its \d+ bytes$/],
    ['empty input', Buffer.alloc(0), /^not a zstd frame \(/],
  ];
  for (const [what, bad, reason] of cases) {
    await assert.rejects(decode(bad, data.length), (e: Error) => {
      assert.match(e.message, reason, what);
      assert.ok(!e.message.includes('\n'), `${what}: one line`);
      return true;
    });
  }
  // The decoder is fine afterwards (a failed decode must not poison the thread's context).
  assert.ok((await decode(frame, data.length)).equals(data));
});

test('a wrong expected size is refused: frame header says otherwise, or (no content size) the bytes do', async () => {
  const data = sample(100_000);
  const frame = await zstdCompressFrame(data, 1);
  await assert.rejects(decode(frame, data.length - 1, data.length + 100), /^Error: the frame holds 100000 bytes, expected 99999$/);
  await assert.rejects(decode(frame, data.length + 1), /^Error: the frame holds 100000 bytes, expected 100001$/);
  const piped = execFileSync('zstd', ['-1', '-q', '-c'], { input: data });
  await assert.rejects(decode(piped, data.length - 1, data.length + 100), /^Error: the frame decodes to more than the expected 99999 bytes$/);
  await assert.rejects(decode(piped, data.length + 1), /^Error: the frame decodes to 100000 bytes, expected 100001$/);
  // An output buffer too small for the expected size is the caller's error, thrown at once.
  assert.throws(() => zstdDecompressFrame(frame, Buffer.alloc(10), data.length), RangeError);
  assert.throws(() => zstdDecompressFrame('x' as unknown as Buffer, Buffer.alloc(10), 1), TypeError);
});

test('many frames decoding at once each land in their own buffer', async () => {
  const datas = Array.from({ length: 24 }, (_, i) => sample(300_000 + i * 4097));
  const frames = await Promise.all(datas.map((d) => zstdCompressFrame(d, 1)));
  const outs = await Promise.all(frames.map((f, i) => decode(f, datas[i]!.length)));
  outs.forEach((o, i) => assert.ok(o.equals(datas[i]!), `frame ${i}`));
});

test('alignedBuffer memory is taken by O_DIRECT writes (where the temp filesystem has O_DIRECT)', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenbackup-direct-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'direct');
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_DIRECT, 0o600);
  } catch {
    t.skip(`${os.tmpdir()} does not take O_DIRECT`);
    return;
  }
  try {
    const buf = alignedBuffer(1 << 20);
    assert.equal(buf.length, 1 << 20);
    sample(1 << 20).copy(buf);
    assert.equal(fs.writeSync(fd, buf, 0, buf.length, 0), buf.length);
    assert.equal(fs.writeSync(fd, buf.subarray(65536), 0, 65536, 1 << 20), 65536); // page-aligned views too
  } finally {
    fs.closeSync(fd);
  }
  const back = fs.readFileSync(file);
  assert.ok(back.subarray(0, 1 << 20).equals(sample(1 << 20)));
  assert.ok(back.subarray(1 << 20).equals(sample(1 << 20).subarray(65536, 131072)));
});
