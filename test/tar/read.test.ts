/**
 * The reader: it round-trips every field of our writer's output at any chunk
 * boundary; it reads GNU tar's own pax, GNU, ustar and v7 archives of the same
 * entries to the same TarEntry values (names as bytes); it applies pax global
 * headers as GNU tar does; it handles sizes beyond the 8 GiB octal field; and
 * readTar() pulls the same events from a stream.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { TarEntry } from '../../src/tar/entry.js';
import { BLOCK_SIZE, F, T, writeChecksum } from '../../src/tar/header.js';
import { writeOctal } from '../../src/tar/octal.js';
import { paxRecordLength, writePaxRecord } from '../../src/tar/pax.js';
import { TarParser } from '../../src/tar/read.js';
import { readTar } from '../../src/tar/read-tar.js';
import { END_OF_ARCHIVE, encodeHeader, padding } from '../../src/tar/write.js';
import { entry, everyCase } from './cases.js';
import { b, buildArchive, gnuExtract, gnuTar, memberData, parseArchive, tempDir, type Member, type ParsedMember } from './fixtures.js';

test('our reader round-trips every field our writer writes, at any chunk boundary', () => {
  const members = everyCase();
  members.push(
    { entry: entry('vol/dumpdir', 'dir', { dumpdir: b('Ya\0Nb\0Dc\0\0') }) },
    { entry: entry('vol/empty-dumpdir', 'dir', { dumpdir: b('\0') }) },
    { entry: entry('vol/sparse', 'file', { size: 1 << 30, sparseMap: [[4096, 1024], [1 << 29, 3]] }), regions: [Buffer.alloc(1024, 1), b('xyz')] },
    { entry: entry('vol/xattr-and-long', 'file', { size: 0, xattrs: new Map([['user.k', Buffer.alloc(3000, 7)]]), path: b('vol/' + 'z'.repeat(250)) }), data: Buffer.alloc(0) },
  );
  const archive = buildArchive(members);
  // Where each member's first header block is, from the writer's own sizes.
  const offsets: number[] = [];
  let at = 0;
  for (const m of members) {
    offsets.push(at);
    at += encodeHeader(m.entry).length;
    const stored = m.entry.sparseMap ? buildArchive([m]).length - END_OF_ARCHIVE.length - encodeHeader(m.entry).length : m.entry.type === 'file' ? m.data!.length : 0;
    at += stored + padding(stored);
  }
  for (const chunkSize of [archive.length, 4096, 513, 512, 511, 7, 1]) {
    const parsed = parseArchive(archive, chunkSize);
    assert.equal(parsed.length, members.length);
    parsed.forEach((got, i) => {
      const want = members[i]!;
      assert.deepEqual(got.entry, want.entry, `entry ${i} at chunk size ${chunkSize}`);
      assert.equal(got.info.offset, offsets[i], `offset of entry ${i}`);
      if (want.entry.sparseMap) assert.deepEqual(got.data, want.entry.sparseMap.map(([offset], r) => [offset, want.regions![r]]));
      else if (want.entry.type === 'file') assert.deepEqual(memberData(got), want.data);
      else assert.equal(got.data.length, 0);
    });
  }
});

/** Compares what our reader made of GNU tar's archive of the extracted cases with the cases. */
function assertSameAsCases(parsed: ParsedMember[], opts: { secondsOnly: boolean; withXattrs: boolean }): void {
  const cases = new Map(everyCase().map((m) => [m.entry.path.toString('latin1'), m]));
  assert.deepEqual(parsed.map((m) => m.entry.path.toString('latin1')).sort(), [...cases.keys()].sort());
  // GNU tar picks the first path of a hard link group it meets as the file; either is right.
  const groups = [['vol/plain', 'vol/hard'], [`vol/${'d'.repeat(150)}/${'f'.repeat(200)}\xe9`, 'vol/hard-to-long'], ['vol/caf\xe9', 'vol/hard-latin']];
  const files = new Map(parsed.map((m) => [m.entry.path.toString('latin1'), m]));
  for (const group of groups) {
    const stored = group.filter((p) => files.get(p)!.entry.type === 'file');
    assert.equal(stored.length, 1, `one of ${group.join(', ')} holds the data`);
    for (const p of group) if (p !== stored[0]) assert.deepEqual(files.get(p)!.entry.linkTarget, b(stored[0]!));
  }
  for (const got of parsed) {
    const want = cases.get(got.entry.path.toString('latin1'))!;
    const expected: TarEntry = { ...want.entry };
    const actual: TarEntry = { ...got.entry };
    const inGroup = groups.some((g) => g.includes(got.entry.path.toString('latin1')));
    if (inGroup) {
      // Compare the link-independent parts only.
      for (const e of [expected, actual]) {
        e.type = 'file';
        delete e.linkTarget;
        e.size = 0;
      }
    }
    if (opts.secondsOnly) {
      const ns = expected.mtimeNs;
      expected.mtimeNs = (ns >= 0n ? ns / 1_000_000_000n : (ns - 999_999_999n) / 1_000_000_000n) * 1_000_000_000n;
    }
    if (!opts.withXattrs) {
      delete expected.xattrs;
      delete expected.aclAccess;
      delete expected.aclDefault;
    }
    assert.deepEqual(actual, expected, `entry ${JSON.stringify(got.entry.path.toString('latin1'))}`);
    if (got.entry.type === 'file') {
      // In a link group the data is that of the group's file in the cases, whichever path GNU tar stored it under.
      const group = groups.find((g) => g.includes(got.entry.path.toString('latin1'))) ?? [got.entry.path.toString('latin1')];
      const holder = group.map((p) => cases.get(p)!).find((m) => m.entry.type === 'file')!;
      assert.deepEqual(memberData(got), holder.data, `data of ${JSON.stringify(got.entry.path.toString('latin1'))}`);
    }
  }
}

test("reading GNU tar's pax and GNU archives of the same tree yields the same entries", (t) => {
  const dir = tempDir(t);
  const archive = path.join(dir, 'ours.tar');
  fs.writeFileSync(archive, buildArchive(everyCase()));
  const tree = path.join(dir, 'tree');
  fs.mkdirSync(tree);
  gnuExtract(archive, tree);

  const common = ['-c', '--sort=name', '--numeric-owner', '-f', '-', '-C', tree, 'vol'];
  const pax = gnuTar(['--format=pax', '--xattrs', '--xattrs-include=*', '--xattrs-exclude=system.*', '--acls', ...common]).stdout;
  for (const chunkSize of [pax.length, 1000]) assertSameAsCases(parseArchive(pax, chunkSize), { secondsOnly: false, withXattrs: true });

  // GNU format: long names as 'L'/'K' members, big ids and old dates base-256, whole seconds, no xattrs.
  const gnu = gnuTar(['--format=gnu', ...common]).stdout;
  assertSameAsCases(parseArchive(gnu, 777), { secondsOnly: true, withXattrs: false });
});

test('ustar (prefix field) and v7 archives by GNU tar read with the right names', (t) => {
  const dir = tempDir(t);
  const long = `top/${'p'.repeat(80)}/${'n'.repeat(90)}`;
  fs.mkdirSync(path.join(dir, path.dirname(long)), { recursive: true });
  fs.writeFileSync(path.join(dir, long), 'data');
  fs.symlinkSync('target', path.join(dir, 'top/sym'));
  const ustar = gnuTar(['-c', '--format=ustar', '--sort=name', '-f', '-', '-C', dir, 'top']).stdout;
  assert.equal(ustar.subarray(2 * BLOCK_SIZE + F.prefix, 2 * BLOCK_SIZE + F.prefix + 84).toString(), `top/${'p'.repeat(80)}`, 'the directory part went into the prefix field');
  const names = parseArchive(ustar, 300).map((m) => [m.entry.path.toString(), m.entry.type]);
  assert.deepEqual(names, [['top', 'dir'], [`top/${'p'.repeat(80)}`, 'dir'], [long, 'file'], ['top/sym', 'symlink']]);

  fs.rmSync(path.join(dir, 'top', 'p'.repeat(80)), { recursive: true });
  fs.writeFileSync(path.join(dir, 'top/f'), 'v7');
  const v7 = gnuTar(['-c', '--format=v7', '--sort=name', '-f', '-', '-C', dir, 'top']).stdout;
  const parsed = parseArchive(v7, 512);
  // v7 has no directory type: GNU tar marks directories as files named with a trailing '/'.
  assert.deepEqual(parsed.map((m) => [m.entry.path.toString(), m.entry.type]), [['top', 'dir'], ['top/f', 'file'], ['top/sym', 'symlink']]);
  assert.deepEqual(memberData(parsed[1]!), b('v7'));
});

/** A pax header member of the given type ('x' or 'g') holding these records. */
function paxMember(typeflag: number, records: Array<[string, string]>): Buffer {
  const length = records.reduce((sum, [k, v]) => sum + paxRecordLength(k.length, v.length), 0);
  const out = Buffer.alloc(BLOCK_SIZE + length + padding(length));
  b('GlobalHead.0.1').copy(out, F.name);
  writeOctal(out, F.mode, F.idLen, 0o644);
  writeOctal(out, F.size, F.bigLen, length);
  out[F.typeflag] = typeflag;
  b('ustar\x0000').copy(out, F.magic);
  writeChecksum(out, 0);
  let off = BLOCK_SIZE;
  for (const [k, v] of records) off = writePaxRecord(out, off, k, v);
  return out;
}

test('pax global headers apply to later members unless a local header overrides them, as in GNU tar', (t) => {
  const archive = Buffer.concat([
    paxMember(T.paxGlobal, [['uid', '4242'], ['mtime', '5.5']]),
    encodeHeader(entry('a', 'file', { mtimeNs: 0n })),
    encodeHeader(entry('b', 'file', { uid: 3_000_000, mtimeNs: 0n })), // local pax uid wins
    END_OF_ARCHIVE,
  ]);
  const parsed = parseArchive(archive);
  assert.deepEqual(parsed.map((m) => [m.entry.path.toString(), m.entry.uid, m.entry.mtimeNs]), [['a', 4242, 5_500_000_000n], ['b', 3_000_000, 5_500_000_000n]]);
  assert.equal(parsed[0]!.info.offset, 1024, 'a global header is not part of the next member');

  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'g.tar'), archive);
  const listing = gnuTar(['-tv', '--numeric-owner', '-f', path.join(dir, 'g.tar')]).stdout.toString();
  assert.match(listing, /4242\/0 .* a\n/);
  assert.match(listing, /3000000\/0 .* b\n/);
});

test('members over 8 GiB carry their size in a pax record that our reader and GNU tar use', (t) => {
  const size = 8 * 1024 ** 3 + 1; // one more than the octal field holds
  const e = entry('huge', 'file', { size });
  const header = encodeHeader(e);
  assert.match(header.toString('latin1'), /\d+ size=8589934593\n/);

  // Our reader, fed 8 GiB of zeros through a reused chunk.
  let seen = 0;
  let ended = false;
  const parser = new TarParser({ entry: (got) => assert.equal(got.size, size), data: (chunk) => (seen += chunk.length), end: () => (ended = true) });
  parser.write(header);
  const zeros = Buffer.alloc(64 << 20);
  let left = size + padding(size);
  while (left > 0) {
    const n = Math.min(left, zeros.length);
    parser.write(zeros.subarray(0, n));
    left -= n;
  }
  parser.write(END_OF_ARCHIVE);
  parser.end();
  assert.equal(seen, size);
  assert.ok(ended);

  // GNU tar, on the same archive as a sparse file on disk (it seeks over the data).
  const dir = tempDir(t);
  const file = path.join(dir, 'huge.tar');
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, header, 0, header.length, 0);
    fs.writeSync(fd, END_OF_ARCHIVE, 0, END_OF_ARCHIVE.length, header.length + size + padding(size));
  } finally {
    fs.closeSync(fd);
  }
  assert.match(gnuTar(['-tv', '-f', file]).stdout.toString(), / 8589934593 .* huge\n/);
});

test('readTar pulls the same members from a file stream', async (t) => {
  const dir = tempDir(t);
  const members: Member[] = everyCase();
  const archive = buildArchive(members);
  const file = path.join(dir, 'a.tar');
  // Trailing record padding after the end-of-archive blocks, as GNU tar writes it, is ignored.
  fs.writeFileSync(file, Buffer.concat([archive, Buffer.alloc(8192)]));
  const entries: TarEntry[] = [];
  const data = new Map<string, Buffer[]>();
  let ends = 0;
  for await (const event of readTar(fs.createReadStream(file, { highWaterMark: 1000 }), { source: file })) {
    if (event.kind === 'entry') entries.push(event.entry);
    else if (event.kind === 'data') {
      const key = entries[entries.length - 1]!.path.toString('latin1');
      data.set(key, [...(data.get(key) ?? []), Buffer.from(event.chunk)]);
    } else ends++;
  }
  assert.deepEqual(entries, members.map((m) => m.entry));
  assert.equal(ends, members.length);
  for (const m of members) {
    if (m.entry.type === 'file' && m.data!.length > 0) assert.deepEqual(Buffer.concat(data.get(m.entry.path.toString('latin1'))!), m.data);
  }
});
