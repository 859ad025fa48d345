/**
 * The raw container's in-process frame decoder (src/engines/raw/frame-decoder.ts)
 * on a real container written by RawContainerWriter: every chunk, or a
 * sparse subset, arrives in order with its bytes; reads batch neighbouring
 * frames; a sink that keeps its buffers holds decoding back instead of
 * growing memory; a sink that throws, a damaged frame and an abort end the
 * call with the reason and nothing left running.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { zstdCompressFrame } from '../../src/native/zstd.js';
import { xxh64 } from '../../src/native/xxh.js';
import { RawContainerWriter, readContainerIndex } from '../../src/engines/raw/raw-container.js';
import { decodeFrames } from '../../src/engines/raw/frame-decoder.js';

const CHUNK = 64 * 1024;

/** Chunk i's bytes: text-like with the chunk number in it, some chunks half random-ish. */
function chunkBytes(i: number, len = CHUNK): Buffer {
  const b = Buffer.alloc(len);
  let p = 0;
  while (p < len) p += b.write(`chunk ${i} line ${p} `, p);
  if (i % 3 === 0) for (let k = 0; k < len / 2; k++) b[k] = (k * 2654435761 + i * 40503) >>> 24;
  return b;
}

async function makeContainer(dir: string, indexes: number[]): Promise<string> {
  const file = path.join(dir, 'c.full.raw.zst');
  const w = new RawContainerWriter(file, CHUNK, (d) => zstdCompressFrame(d, 1));
  for (const i of indexes) {
    const data = chunkBytes(i);
    w.add(i, data, xxh64(data), () => undefined);
    await w.drain();
  }
  await w.finish();
  w.commit();
  return file;
}

test('frame decoder: all chunks and a sparse subset arrive in order with their bytes; held buffers hold decoding back', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenbackup-frames-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = await makeContainer(dir, Array.from({ length: 40 }, (_, i) => i * 2));
  const index = readContainerIndex(file);
  for (const entries of [index.entries, index.entries.filter((_, k) => k % 7 === 0 || k === 20 || k === 21)]) {
    const seen: number[] = [];
    await decodeFrames(file, entries, (e, data, release) => {
      seen.push(e.index);
      assert.ok(data.equals(chunkBytes(e.index)), `chunk ${e.index}`);
      assert.equal(xxh64(data), e.hash);
      release();
    });
    assert.deepEqual(seen, entries.map((e) => e.index));
  }

  // A sink that keeps every buffer: decoding stops at the pool's size until some come back.
  const held: Array<() => void> = [];
  let delivered = 0;
  const run = decodeFrames(
    file,
    index.entries,
    (_e, _data, release) => {
      delivered++;
      held.push(release);
    },
    { parallel: 2, buffers: 4 },
  );
  for (let spins = 0; spins < 200 && delivered < 4; spins++) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(delivered, 4, 'no more chunks than buffers while none is released');
  const releaser = setInterval(() => held.shift()?.(), 1);
  try {
    await run;
  } finally {
    clearInterval(releaser);
  }
  assert.equal(delivered, index.entries.length);
});

test('frame decoder: a throwing sink, a damaged frame and an abort end the call with their reason', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenbackup-frames-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = await makeContainer(dir, Array.from({ length: 30 }, (_, i) => i));
  const index = readContainerIndex(file);

  await assert.rejects(
    decodeFrames(file, index.entries, (e, _d, release) => {
      release();
      if (e.index === 5) throw new Error('sink refused chunk 5');
    }),
    /sink refused chunk 5/,
  );
  // A sink that throws while holding buffers it never gives back (fewer than the pool's 8): still no hang.
  await assert.rejects(
    decodeFrames(
      file,
      index.entries,
      (e) => {
        if (e.index === 5) throw new Error('held and failed');
      },
      { parallel: 2, buffers: 8 },
    ),
    /held and failed/,
  );

  const ac = new AbortController();
  await assert.rejects(
    decodeFrames(
      file,
      index.entries,
      (e, _d, release) => {
        release();
        if (e.index === 3) ac.abort();
      },
      { signal: ac.signal },
    ),
    /aborted/,
  );

  const victim = index.entries[17]!;
  const fd = fs.openSync(file, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, victim.offset + (victim.length >> 1));
  b[0]! ^= 0x40;
  fs.writeSync(fd, b, 0, 1, victim.offset + (victim.length >> 1));
  fs.closeSync(fd);
  const seen: number[] = [];
  await assert.rejects(
    decodeFrames(file, index.entries, (e, _d, release) => {
      seen.push(e.index);
      release();
    }),
    (e: Error) => {
      assert.match(e.message, new RegExp(`^${file.replace(/[.]/g, '\\.')}: does not decode \\(zstd: .*, frame of chunk 17 at offset ${victim.offset}\\): the container is damaged$`));
      return true;
    },
  );
  assert.deepEqual(seen, Array.from({ length: 17 }, (_, i) => i), 'the chunks before the damaged one were delivered, none after');

  // A container cut short inside its frames: the read says where.
  fs.truncateSync(file, index.entries[25]!.offset + 3);
  await assert.rejects(
    decodeFrames(file, index.entries.slice(20), (_e, _d, release) => release()),
    /ends at \d+, inside the frame data its index records/,
  );
});
