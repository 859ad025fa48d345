/**
 * Damaged archives: every flipped byte in a header block and every truncation
 * gives a TarFormatError naming an offset (flips in pax records or data may
 * instead parse to different values), never another exception, a crash or a
 * hang. The test finishing at all is the no-hang check.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TarFormatError } from '../../src/tar/errors.js';
import { BLOCK_SIZE } from '../../src/tar/header.js';
import { END_OF_ARCHIVE, encodeHeader, padding, storedSize } from '../../src/tar/write.js';
import { entry, file } from './cases.js';
import { b, buildArchive, parseArchive, type Member } from './fixtures.js';

function sample(): { archive: Buffer; headerBlocks: Set<number>; dataBytes: Set<number> } {
  const members: Member[] = [
    { entry: entry('v', 'dir', { dumpdir: b('Ya\0Db\0\0') }) },
    file('v/a', 'some file data that spans\n'.repeat(30)),
    file('v/caf\xe9-' + 'l'.repeat(120), 'x', { uid: 3_000_000_000, xattrs: new Map([['user.x', b('1')]]), aclAccess: 'user::rw-\ngroup::r--\nother::r--\n' }),
    { entry: entry('v/s', 'file', { size: 100_000, sparseMap: [[1024, 512], [50_000, 10]] }), regions: [Buffer.alloc(512, 2), b('0123456789')] },
    { entry: entry('v/l', 'symlink', { linkTarget: b('t'.repeat(150)) }) },
    { entry: entry('v/h', 'hardlink', { linkTarget: b('v/a') }) },
    { entry: entry('v/c', 'char', { devMajor: 4, devMinor: 1 }) },
  ];
  const archive = buildArchive(members);
  // Which offsets are ustar/pax header blocks and which are file data (map blocks count as header).
  const headerBlocks = new Set<number>();
  const dataBytes = new Set<number>();
  let at = 0;
  for (const m of members) {
    const header = encodeHeader(m.entry);
    for (let i = 0; i < header.length; i += BLOCK_SIZE) headerBlocks.add(at + i);
    at += header.length;
    const stored = storedSize(m.entry);
    if (m.entry.sparseMap) {
      const mapBytes = stored - m.regions!.reduce((sum, r) => sum + r.length, 0);
      for (let i = 0; i < mapBytes; i += BLOCK_SIZE) headerBlocks.add(at + i);
      for (let i = mapBytes; i < stored; i++) dataBytes.add(at + i);
    } else {
      for (let i = 0; i < stored; i++) dataBytes.add(at + i);
    }
    at += stored + padding(stored);
  }
  assert.equal(at + END_OF_ARCHIVE.length, archive.length);
  return { archive, headerBlocks, dataBytes };
}

/** Parses and classifies the outcome; anything but a TarFormatError thrown fails the test. */
function outcome(archive: Buffer, chunkSize: number): 'error' | string {
  try {
    return JSON.stringify(parseArchive(archive, chunkSize), (_, v) => (typeof v === 'bigint' ? String(v) : v));
  } catch (err) {
    if (err instanceof TarFormatError) {
      assert.match(err.message, / at byte \d+$/);
      assert.ok(err.offset >= 0 && err.offset <= archive.length, `offset ${err.offset} within the archive`);
      return 'error';
    }
    throw err;
  }
}

test('every flipped byte gives a TarFormatError in header blocks and never anything but that or a clean parse', { timeout: 120_000 }, () => {
  const { archive, headerBlocks, dataBytes } = sample();
  const intact = outcome(archive, archive.length);
  assert.ok(intact !== 'error');
  const copy = Buffer.from(archive);
  for (let off = 0; off < archive.length; off++) {
    const block = off - (off % BLOCK_SIZE);
    const inHeader = headerBlocks.has(block);
    // All bytes of header blocks; a sample of data, padding and end-of-archive bytes.
    if (!inHeader && off % 13 !== 0) continue;
    copy[off] = archive[off]! ^ (1 << (off % 8));
    const result = outcome(copy, off % 2 === 0 ? copy.length : 509);
    copy[off] = archive[off]!;
    const isUstarBlock = inHeader && archive[block + 257] === 0x75; // "ustar" magic: a header, not pax records or a sparse map
    // In a header block the checksum catches every flip, except ones that leave the parse identical
    // (a leading '0' of the checksum field itself turned into a space, which reads as the same number).
    if (isUstarBlock) assert.ok(result === 'error' || result === intact, `flip at ${off} (header block ${block}) must be detected`);
    else if (dataBytes.has(off)) assert.ok(result !== 'error' && result !== intact, `flip at ${off} in file data shows as different data`);
    else if (off >= archive.length - END_OF_ARCHIVE.length) assert.ok(result === 'error', `flip at ${off} in the end-of-archive blocks`);
  }
});

test('every truncation gives a TarFormatError; trailing zeros after the end do not matter', { timeout: 60_000 }, () => {
  const { archive } = sample();
  for (let length = 0; length < archive.length; length += length % BLOCK_SIZE === 0 ? 1 : 37) {
    assert.ok(outcome(archive.subarray(0, length), 100) === 'error', `archive cut to ${length} bytes`);
  }
  assert.ok(outcome(Buffer.concat([archive, Buffer.alloc(9 * BLOCK_SIZE)]), 1000) !== 'error');
  assert.throws(() => parseArchive(archive.subarray(0, archive.length - BLOCK_SIZE)), /archive ends after only one of its two end-of-archive blocks at byte \d+/);
  assert.throws(() => parseArchive(archive.subarray(0, 700)), /archive is truncated inside a member at byte 700/);
});

test('errors name what is wrong and where', () => {
  const header = encodeHeader(entry('x', 'file', { size: 3 }));
  const good = Buffer.concat([Buffer.alloc(1024), header, b('abc'), Buffer.alloc(padding(3)), END_OF_ARCHIVE]);
  // A lone zero block is skipped, as GNU tar does; the member after it still reads.
  assert.equal(parseArchive(good.subarray(512)).length, 1);

  const badSum = Buffer.from(good.subarray(512));
  badSum[512 + 10] ^= 1;
  assert.throws(() => parseArchive(badSum), /bad tar header checksum at byte 512$/);

  // A pax record whose length runs past its data.
  const pax = encodeHeader(entry('y', 'file', { mtimeNs: 1n }));
  const badRecord = Buffer.from(pax);
  badRecord[512] = 0x39; // "21 mtime=..." becomes "91 mtime=..."
  assert.throws(() => parseArchive(Buffer.concat([badRecord, END_OF_ARCHIVE])), /bad pax record length at byte 512$/);

  // Random bytes never crash the parser.
  let x = 12345;
  for (let round = 0; round < 200; round++) {
    const junk = Buffer.alloc(2048);
    for (let i = 0; i < junk.length; i++) junk[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
    assert.ok(outcome(junk, 300) === 'error');
  }
});
