/**
 * Sparse files: our GNU.sparse 1.0 members restore with GNU tar as sparse
 * files of the right size and content (a 1 TiB file with 3 MiB of data stays
 * a few MiB on disk), and our reader understands every sparse layout GNU tar
 * 1.34 writes: pax 1.0, 0.1, 0.0 and the old GNU 'S' header with extension blocks.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { TarEntry } from '../../src/tar/entry.js';
import { alignSparseMap, encodeHeader, encodeSparseMap, sparseDataSize } from '../../src/tar/write.js';
import { b, buildArchive, gnuExtract, gnuTar, parseArchive, tempDir, type Member } from './fixtures.js';

const MiB = 1 << 20;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

/** Deterministic, non-zero-heavy bytes. */
function pattern(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = (x >>> 16) | 1;
  }
  return out;
}

function sparseMember(p: string, size: number, map: Array<[number, number]>, regions?: Buffer[]): Member {
  const entry: TarEntry = { path: b(p), type: 'file', mode: 0o600, uid: 0, gid: 0, size, mtimeNs: 1_700_000_000_000_000_001n, sparseMap: map };
  return { entry, regions: regions ?? map.map(([, length], i) => pattern(length, i + 1)) };
}

/** A small sparse file given as its whole content plus its data regions, widened by alignSparseMap. */
function alignedMember(p: string, content: Buffer, dataRegions: Array<[number, number]>): Member {
  const map = alignSparseMap(dataRegions, content.length);
  return sparseMember(p, content.length, map, map.map(([offset, length]) => content.subarray(offset, offset + length)));
}

/** 200 short unaligned data regions in a 2 MB file. */
function manyRegions(): { content: Buffer; regions: Array<[number, number]> } {
  const content = Buffer.alloc(2_000_000);
  const regions = Array.from({ length: 200 }, (_, i): [number, number] => [i * 10_000 + 3, 1 + (i % 7)]);
  regions.forEach(([offset, length], i) => pattern(length, i).copy(content, offset));
  return { content, regions };
}

function readAt(file: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const n = fs.readSync(fd, buf, 0, length, offset);
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

test('GNU tar restores our 1 TiB sparse files sparse, with their data and size', (t) => {
  const dir = tempDir(t);
  const members: Member[] = [
    { entry: { path: b('s'), type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtimeNs: 1_700_000_000_000_000_000n } },
    // Ends in data.
    sparseMember('s/ends-in-data', TiB, [[0, MiB], [512 * GiB, MiB], [TiB - MiB, MiB]]),
    // Ends in a hole: only the terminal map entry gives it its size.
    sparseMember('s/ends-in-hole', TiB, [[4096, MiB], [3 * GiB + 17, 1000]]),
    // All hole.
    sparseMember('s/all-hole', TiB, []),
    // Unaligned regions (widened to blocks) and a map longer than one 512-byte block.
    alignedMember('s/many', manyRegions().content, manyRegions().regions),
  ];
  assert.ok(encodeSparseMap(members[4]!.entry.sparseMap!, 2_000_000).length > 512, 'the map spans several blocks');
  const archivePath = path.join(dir, 'sparse.tar');
  const archive = buildArchive(members);
  const dataBytes = members.reduce((sum, m) => sum + (m.entry.sparseMap ? sparseDataSize(m.entry.sparseMap) : 0), 0);
  assert.ok(archive.length < dataBytes + 64 * 1024, 'holes are not stored');
  fs.writeFileSync(archivePath, archive);
  const dest = path.join(dir, 'out');
  fs.mkdirSync(dest);
  gnuExtract(archivePath, dest);

  for (const { entry, regions } of members.slice(1)) {
    const file = path.join(dest, entry.path.toString());
    const st = fs.statSync(file);
    assert.equal(st.size, entry.size, `size of ${file}`);
    assert.equal(st.mtimeMs, 1_700_000_000_000);
    assert.ok(st.blocks * 512 <= sparseDataSize(entry.sparseMap!) + 2 * MiB, `${file} is stored sparse (${st.blocks} blocks)`);
    if (entry.size < 10 * MiB) assert.deepEqual(fs.readFileSync(file), manyRegions().content, `content of ${file}`);
    entry.sparseMap!.forEach(([offset, length], i) => {
      assert.deepEqual(readAt(file, offset, length), regions![i], `region ${i} of ${file}`);
    });
    // Spot checks of holes, including the byte before each region and the tail.
    for (const [offset] of entry.sparseMap!) if (offset > 0) assert.deepEqual(readAt(file, offset - 1, 1), Buffer.alloc(1));
    if (entry.size > 300 * GiB) assert.ok(readAt(file, 300 * GiB, MiB).every((x) => x === 0));
  }
  // Without sparse support a reader would see GNUSparseFile.0/...; GNU tar must not.
  assert.deepEqual(fs.readdirSync(path.join(dest, 's')).sort(), ['all-hole', 'ends-in-data', 'ends-in-hole', 'many']);
});

test('regions GNU tar would misread are refused, and alignSparseMap widens them to blocks', () => {
  const entry: TarEntry = { path: b('f'), type: 'file', mode: 0o644, uid: 0, gid: 0, size: 10_000, mtimeNs: 0n, sparseMap: [[3, 5], [2000, 10]] };
  assert.throws(() => encodeHeader(entry), /region \[3, 5\] is not a multiple of 512 bytes long but not the last/);
  // The last data region may have any length, also when a hole follows.
  assert.doesNotThrow(() => encodeHeader({ ...entry, sparseMap: [[0, 512], [2000, 10]] }));
  assert.deepEqual(alignSparseMap([[3, 5], [2000, 10], [2100, 1], [9990, 10]], 10_000), [[0, 512], [1536, 1024], [9728, 272]]);
  assert.deepEqual(alignSparseMap([[3, 5], [600, 1]], 700), [[0, 700]]);
  assert.deepEqual(alignSparseMap([], 700), []);
});

test('our reader reports sparse members of our writer with file offsets', () => {
  const member = sparseMember('x', 50_000, [[10, 1024], [4096, 5120], [40_000, 1]]);
  const parsed = parseArchive(buildArchive([member]), 333);
  assert.equal(parsed.length, 1);
  assert.deepEqual(parsed[0]!.entry.sparseMap, member.entry.sparseMap);
  assert.equal(parsed[0]!.entry.size, 50_000);
  assert.deepEqual(
    parsed[0]!.data.map(([offset, data]) => [offset, data]),
    member.entry.sparseMap!.map(([offset], i) => [offset, member.regions![i]]),
  );
});

/** A real sparse file on disk: `count` 4 KiB data blocks, each followed by a hole, then a tail hole. */
function makeSparseFile(file: string, count: number): { size: number; map: Array<[number, number]>; content: Buffer[] } {
  const fd = fs.openSync(file, 'w');
  const map: Array<[number, number]> = [];
  const content: Buffer[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const data = pattern(4096, 100 + i);
      fs.writeSync(fd, data, 0, 4096, i * 3 * 4096);
      map.push([i * 3 * 4096, 4096]);
      content.push(data);
    }
    const size = count * 3 * 4096 + 5 * MiB;
    fs.ftruncateSync(fd, size);
    return { size, map, content };
  } finally {
    fs.closeSync(fd);
  }
}

const layouts: Array<[string, string[]]> = [
  ['pax GNU.sparse 1.0', ['--format=pax']],
  ['pax GNU.sparse 0.1', ['--format=pax', '--sparse-version=0.1']],
  ['pax GNU.sparse 0.0', ['--format=pax', '--sparse-version=0.0']],
  ['old GNU format with extension blocks', ['--format=gnu']],
];
for (const [name, options] of layouts) {
  test(`our reader parses GNU tar's ${name} sparse members`, (t) => {
    const dir = tempDir(t);
    // 30 regions: more than the 4 in an old GNU header and the 21 of one extension block.
    const { size, map, content } = makeSparseFile(path.join(dir, 'holes'), 30);
    const archive = gnuTar(['-c', '-S', ...options, '-f', '-', '-C', dir, 'holes']).stdout;
    for (const chunkSize of [archive.length, 512, 100, 7]) {
      const [member, ...rest] = parseArchive(archive, chunkSize);
      assert.equal(rest.length, 0);
      assert.deepEqual(member!.entry.path, b('holes'));
      assert.equal(member!.entry.size, size);
      assert.deepEqual(member!.entry.sparseMap, map);
      assert.deepEqual(member!.data, map.map(([offset], i) => [offset, content[i]]));
    }
  });
}
