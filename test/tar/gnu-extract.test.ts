/**
 * Our archives, extracted by real GNU tar 1.34 (as root, numeric owners, with
 * xattrs, ACLs and -G), recreate every detail of every entry exactly: raw-byte
 * names in C and C.UTF-8 locales, long names and link targets, hard links,
 * devices, fifos, special mode bits, huge ids, ns and pre-1970 mtimes, xattrs
 * and ACLs. And for a real tree, our bytes equal GNU tar's own pax output.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { TarEntry } from '../../src/tar/entry.js';
import { encodeHeader, encodeHeaderInto, storedSize } from '../../src/tar/write.js';
import { assertExtracted, entry, everyCase } from './cases.js';
import { b, buildArchive, gnuExtract, gnuTar, tempDir, under } from './fixtures.js';

for (const locale of ['C', 'C.UTF-8']) {
  test(`GNU tar -x in locale ${locale} recreates every entry of our archive exactly`, (t) => {
    const dir = tempDir(t);
    const members = everyCase();
    const archive = path.join(dir, 'all.tar');
    fs.writeFileSync(archive, buildArchive(members));
    const dest = path.join(dir, 'out');
    fs.mkdirSync(dest);
    gnuExtract(archive, dest, locale);
    assertExtracted(dest, members);
  });
}

test('GNU tar lists our archive without warnings, names as raw bytes', (t) => {
  const dir = tempDir(t);
  const members = everyCase();
  const archive = path.join(dir, 'all.tar');
  fs.writeFileSync(archive, buildArchive(members));
  // --warning=all would print "Ignoring unknown extended header keyword" and friends on stderr.
  const listed = gnuTar(['-t', '--quoting-style=literal', '--warning=all', '-f', archive], { locale: 'C' });
  assert.equal(listed.stderr.toString(), '');
  const names = listed.stdout.toString('latin1').split('\n').filter(Boolean);
  assert.ok(names.includes('vol/caf\xe9'));
  assert.ok(names.includes(`vol/${'d'.repeat(150)}/${'f'.repeat(200)}\xe9`));
});

test('for a real tree our header bytes equal those of GNU tar --format=pax', (t) => {
  // GNU tar also writes atime/ctime and always an mtime record; without those
  // (pax-option delete) and with numeric owners, every byte must agree.
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  const top = 'tree';
  fs.mkdirSync(path.join(src, top, 'sub'), { recursive: true });
  const at = (p: string): Buffer => under(src, b(p));
  fs.writeFileSync(at('tree/sub/a'), 'aaaa');
  fs.writeFileSync(at('tree/caf\xe9'), 'x'.repeat(700));
  fs.writeFileSync(at(`tree/${'n'.repeat(120)}`), '');
  fs.symlinkSync(b('caf\xe9'), at('tree/sym'));
  fs.symlinkSync(b('t'.repeat(200)), at('tree/longsym'));
  fs.linkSync(at('tree/sub/a'), at('tree/hard'));
  gnuTar(['--version']); // fail early with a clear error if tar is missing
  fs.chownSync(at('tree/sub/a'), 3_000_000_000, 7);
  fs.chmodSync(at('tree/sub'), 0o2750);
  fs.utimesSync(at('tree/sub'), 1, -100.25);

  // Walk like the archiver: sorted, directories before their contents, hard links to the first path.
  const members: TarEntry[] = [];
  const firstPath = new Map<bigint, Buffer>();
  const walk = (rel: Buffer): void => {
    const st = fs.lstatSync(under(src, rel), { bigint: true });
    const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file';
    const e: TarEntry = { path: rel, type, mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), size: 0, mtimeNs: st.mtimeNs };
    if (type === 'file') {
      const seen = firstPath.get(st.ino);
      if (seen) Object.assign(e, { type: 'hardlink', linkTarget: seen });
      else {
        firstPath.set(st.ino, rel);
        e.size = Number(st.size);
      }
    }
    if (type === 'symlink') e.linkTarget = fs.readlinkSync(under(src, rel), { encoding: 'buffer' });
    members.push(e);
    if (type === 'dir') {
      for (const name of fs.readdirSync(under(src, rel), { encoding: 'buffer' }).sort(Buffer.compare)) walk(Buffer.concat([rel, b('/'), name]));
    }
  };
  walk(b(top));
  const ours = buildArchive(members.map((e) => ({ entry: e, data: e.type === 'file' ? fs.readFileSync(under(src, e.path)) : undefined })));
  const gnu = gnuTar(['-c', '--format=pax', '--sort=name', '--numeric-owner', '--pax-option=delete=atime,delete=ctime', '-f', '-', '-C', src, top]).stdout;
  // GNU tar pads the archive to its 10 KiB record size with more zeros.
  assert.ok(gnu.length >= ours.length);
  assert.ok(gnu.subarray(ours.length).every((byte) => byte === 0));
  assert.deepEqual(ours, gnu.subarray(0, ours.length));
});

test('encodeHeaderInto writes the same bytes into a staging buffer and reports lack of room', () => {
  const stage = Buffer.alloc(4096, 0xee);
  let off = 0;
  for (const { entry: e } of everyCase().slice(0, 12)) {
    const expected = encodeHeader(e);
    let n = encodeHeaderInto(e, stage, off);
    if (n < 0) {
      assert.equal(-n, expected.length, 'the room needed');
      assert.ok(stage.subarray(off).every((byte) => byte === 0xee), 'nothing written when it does not fit');
      stage.fill(0xee);
      off = 0;
      n = encodeHeaderInto(e, stage, off);
    }
    assert.equal(n, expected.length);
    assert.deepEqual(stage.subarray(off, off + n), expected);
    off += n;
  }
});

test('the writer rejects entries no tar member can carry, naming the entry', () => {
  const ok = entry('vol/x', 'file');
  assert.throws(() => encodeHeader({ ...ok, path: b('') }), /empty path/);
  assert.throws(() => encodeHeader({ ...ok, path: b('a\0b') }), /"a\\x00b" contains a NUL byte/);
  assert.throws(() => encodeHeader({ ...ok, mode: 0o170644 }), /mode .* of "vol\/x"/);
  assert.throws(() => encodeHeader({ ...ok, uid: -1 }), /uid -1 of "vol\/x"/);
  assert.throws(() => encodeHeader({ ...ok, size: 1.5 }), /size 1.5/);
  assert.throws(() => encodeHeader({ ...ok, type: 'symlink' }), /symlink "vol\/x" has no link target/);
  assert.throws(() => encodeHeader({ ...ok, type: 'char' }), /device "vol\/x" needs device numbers/);
  assert.throws(() => encodeHeader({ ...ok, dumpdir: b('Ya\0\0') }), /has a dumpdir but is not a directory/);
  assert.throws(() => encodeHeader({ ...ok, size: 10, sparseMap: [[4, 4], [2, 1]] }), /out of order/);
  assert.throws(() => encodeHeader({ ...ok, size: 10, sparseMap: [[8, 4]] }), /beyond the file size 10/);
  assert.equal(storedSize(ok), 0);
});
