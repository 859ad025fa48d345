// The native directory scan's change key must be byte-identical to the key text
// the manifest stores (core/manifest.ts), or every incremental reads everything.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { DirScan, MergeBuffers } from '../../src/engines/dir-scan.js';
import { closeFd, fgetxattr, flistxattr, manifestIndex, openAt, readAt } from '../../src/native/xbfs.js';
import { manifestEntryOf, entryTypeOf } from '../../src/engines/metadata.js';
import { encodeEntry, sliceEntryLine, type ManifestType } from '../../src/core/manifest.js';

/**
 * What the archiver's C join (DirScan.merge) says of child i against a manifest holding just `line`:
 * 'same' (names and change keys equal), 'changed' (name found, key differs or the line is bad), 'absent'.
 */
function joined(scan: DirScan, i: number, line: Buffer): 'same' | 'changed' | 'absent' {
  const keep = new Uint8Array(scan.count);
  keep[i] = 1;
  const m = scan.merge(keep, { data: line, index: manifestIndex(line), first: 0, end: 1 }, new MergeBuffers()).match[i]!;
  return m < 0 ? 'absent' : m === 1 ? 'same' : 'changed';
}

test('DirScan lists children in byte order with keys identical to the manifest text, for every entry kind', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xb-scan-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'b-file'), 'hello');
  fs.writeFileSync(path.join(dir, 'B-upper'), '');
  fs.symlinkSync('../elsewhere', path.join(dir, 'link'));
  fs.mkdirSync(path.join(dir, 'sub'));
  execFileSync('mkfifo', [path.join(dir, 'fifo')]);
  execFileSync('mknod', [path.join(dir, 'null-dev'), 'c', '1', '3']);
  fs.writeFileSync(path.join(dir, 'old'), 'x');
  fs.utimesSync(path.join(dir, 'old'), new Date('1960-01-01T00:00:00.123Z'), new Date('1960-01-01T00:00:00.123Z'));
  fs.writeFileSync(path.join(dir, 'nobody'), 'y');
  fs.chownSync(path.join(dir, 'nobody'), 4294967294, 65534);
  const latin1 = Buffer.from([0x6e, 0xe9, 0x0a, 0x22, 0x5c]); // "né\n\"\\" in Latin-1: not UTF-8, with JSON escapes
  fs.writeFileSync(Buffer.concat([Buffer.from(dir + '/'), latin1]), 'z');
  fs.writeFileSync(path.join(dir, 'quote"back\\slash'), 'q');

  const scan = DirScan.list(Buffer.from(dir));
  const names = Array.from({ length: scan.count }, (_, i) => scan.name(i));
  const sorted = [...names].sort(Buffer.compare);
  assert.deepEqual(names, sorted, 'children come sorted by name bytes');
  assert.equal(scan.count, 10);
  for (let i = 0; i < scan.count; i++) {
    const abs = Buffer.concat([Buffer.from(dir + '/'), scan.name(i)]);
    const st = fs.lstatSync(abs, { bigint: true });
    const type = entryTypeOf(st) as ManifestType;
    const line = Buffer.from(encodeEntry({ ...manifestEntryOf(scan.name(i), st, type, 'X'), hash: type === 'file' ? '0123456789abcdef' : undefined }));
    const stored = sliceEntryLine(line, 0, line.length);
    assert.ok(stored, `a child line for ${scan.name(i).toString('latin1')}`);
    assert.deepEqual(stored.name, scan.name(i), 'the stored name decodes to the same bytes');
    // Directories are never matched with a child line: their content is their own block.
    assert.equal(joined(scan, i, line), type === 'dir' ? 'absent' : 'same', `key of ${JSON.stringify(scan.name(i).toString('latin1'))}: ${line.toString('utf8', stored.keyStart, stored.keyEnd)}`);
    const s = scan.stat(i);
    for (const k of ['mode', 'uid', 'gid', 'size', 'mtimeNs', 'ctimeNs', 'ino', 'dev', 'rdev', 'nlink', 'blocks'] as const) {
      assert.equal(s[k], st[k], `${k} of ${scan.name(i).toString('latin1')}`);
    }
  }
});

test('a changed field makes the keys differ; an unread entry is never taken as unchanged', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xb-scan-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const f = path.join(dir, 'f');
  fs.writeFileSync(f, 'one');
  const st = fs.lstatSync(f, { bigint: true });
  const line = Buffer.from(encodeEntry({ ...manifestEntryOf(Buffer.from('f'), st, 'file', 'X'), hash: '0123456789abcdef' }));
  const stored = sliceEntryLine(line, 0, line.length)!;
  assert.ok(stored);
  assert.equal(joined(DirScan.list(Buffer.from(dir)), 0, line), 'same');
  const bad = Buffer.from(encodeEntry({ ...manifestEntryOf(Buffer.from('f'), st, 'file', 'X'), unread: true }));
  assert.equal(sliceEntryLine(bad, 0, bad.length)!.unread, true);
  assert.equal(joined(DirScan.list(Buffer.from(dir)), 0, bad), 'changed', 'a bad line is never the same');
  fs.writeFileSync(f, 'two'); // same size, new mtime and ctime
  assert.equal(joined(DirScan.list(Buffer.from(dir)), 0, line), 'changed');
  fs.renameSync(f, path.join(dir, 'g'));
  assert.equal(joined(DirScan.list(Buffer.from(dir)), 0, line), 'absent');
});

test('a directory that cannot be listed fails with its errno code', () => {
  assert.throws(() => DirScan.list(Buffer.from('/nonexistent-xenbackup-dir')), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && /ENOENT/.test(e.message));
});

test('keepOpen hands over the listed directory for openAt, readAt and flistxattr; the listing is the same', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xb-scan-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const n of ['c', 'a', 'b']) fs.writeFileSync(path.join(dir, n), `content of ${n}`);
  fs.symlinkSync('a', path.join(dir, 'link'));
  execFileSync('mkfifo', [path.join(dir, 'fifo')]);
  execFileSync('setfattr', ['-n', 'user.note', '-v', 'hello', dir]);
  const sync = DirScan.list(Buffer.from(dir));
  assert.equal(sync.fd, -1, 'not kept open unless asked');
  const scan = DirScan.list(Buffer.from(dir), true);
  try {
    assert.ok(scan.fd >= 0);
    assert.equal(scan.count, sync.count);
    for (let i = 0; i < scan.count; i++) {
      assert.deepEqual(scan.name(i), sync.name(i));
      assert.deepEqual(scan.stat(i), sync.stat(i));
    }
    assert.deepEqual(flistxattr(scan.fd), ['user.note']);
    assert.equal(fgetxattr(scan.fd, 'user.note').toString(), 'hello');
    const b = [...Array(scan.count).keys()].find((i) => scan.name(i).toString() === 'b')!;
    const fd = openAt(scan.fd, scan.name(b));
    try {
      const buf = Buffer.alloc(64);
      const n = readAt(fd, buf, 3, 60, 0);
      assert.equal(buf.toString('utf8', 3, 3 + n), 'content of b');
      assert.equal(readAt(fd, buf, 0, 10, n), 0, 'end of file');
    } finally {
      closeFd(fd);
    }
    // Only regular files, never followed or blocking: a symlink (O_NOFOLLOW) and a fifo (O_NONBLOCK, then refused).
    assert.throws(() => openAt(scan.fd, Buffer.from('link')), (e: NodeJS.ErrnoException) => e.code === 'ELOOP' && /^ELOOP: /.test(e.message));
    assert.throws(() => openAt(scan.fd, Buffer.from('fifo')), (e: NodeJS.ErrnoException) => e.code === 'EINVAL');
    assert.throws(() => openAt(scan.fd, Buffer.from('../x')), (e: NodeJS.ErrnoException) => e.code === 'EINVAL');
    assert.throws(() => openAt(scan.fd, Buffer.from('missing')), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && /^ENOENT: open/.test(e.message));
  } finally {
    scan.close();
  }
  assert.equal(scan.fd, -1);
});

test('change keys of times around the epoch (whole seconds, before and after 1970) equal the manifest text', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xb-scan-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const times = ['1969-12-31T23:59:59.000Z', '1969-12-31T23:59:58.999Z', '1970-01-01T00:00:00.000Z', '1970-01-01T00:00:00.500Z', '1901-12-13T20:45:52.001Z', '2262-04-11T23:47:16.000Z'];
  times.forEach((when, i) => {
    const f = path.join(dir, `t${i}`);
    fs.writeFileSync(f, String(i));
    fs.utimesSync(f, new Date(when), new Date(when));
  });
  const scan = DirScan.list(Buffer.from(dir));
  assert.equal(scan.count, times.length);
  for (let i = 0; i < scan.count; i++) {
    const st = fs.lstatSync(Buffer.concat([Buffer.from(dir + '/'), scan.name(i)]), { bigint: true });
    const line = Buffer.from(encodeEntry({ ...manifestEntryOf(scan.name(i), st, 'file', 'X'), hash: '0123456789abcdef' }));
    const stored = sliceEntryLine(line, 0, line.length)!;
    assert.equal(joined(scan, i, line), 'same', `${times[i]}: ${line.toString('utf8', stored.keyStart, stored.keyEnd)}`);
    assert.equal(scan.stat(i).mtimeNs, st.mtimeNs);
  }
});

test('merge reuses its buffers across directories and grows them for a large one; results match the listing', (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'xb-merge-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const small = path.join(root, 'small');
  const large = path.join(root, 'large');
  fs.mkdirSync(small);
  fs.mkdirSync(large);
  for (const n of ['a', 'b', 'c']) fs.writeFileSync(path.join(small, n), n);
  fs.mkdirSync(path.join(small, 'd'));
  // 1,500 children of ~120-byte names: more than the 1,024 matches and the 64 KiB dumpdir it starts with.
  for (let i = 0; i < 1500; i++) fs.writeFileSync(path.join(large, `${String(i).padStart(5, '0')}-${'x'.repeat(114)}`), '');
  const into = new MergeBuffers();
  const expectDumpdir = (scan: DirScan): Buffer =>
    Buffer.concat([
      ...Array.from({ length: scan.count }, (_, i) => [Buffer.from((scan.mode(i) & 0o170000) === 0o040000 ? 'D' : 'Y'), scan.name(i), Buffer.from([0])]).flat(),
      Buffer.from([0]),
    ]);
  for (const dir of [small, large, small]) {
    const scan = DirScan.list(Buffer.from(dir));
    const keep = new Uint8Array(scan.count).fill(1);
    const merged = scan.merge(keep, undefined, into);
    assert.deepEqual(merged.dumpdir, expectDumpdir(scan), dir);
    assert.deepEqual([...merged.match.subarray(0, scan.count)], new Array(scan.count).fill(-1));
  }
  assert.ok(into.match.length >= 1500 && into.dumpdir.length >= 1500 * 122, 'grown for the large directory');

  // The small one again, now against a previous block holding its files: the reused buffers give its
  // own matches and dumpdir, nothing left over from the large one.
  const scan = DirScan.list(Buffer.from(small));
  const files = Array.from({ length: scan.count }, (_, i) => i).filter((i) => (scan.mode(i) & 0o170000) !== 0o040000);
  const block = Buffer.from(
    files
      .map((i) => encodeEntry({ ...manifestEntryOf(scan.name(i), fs.lstatSync(Buffer.concat([Buffer.from(small + '/'), scan.name(i)]), { bigint: true }), 'file', 'X'), hash: '0123456789abcdef' }))
      .join('\n'),
  );
  const merged = scan.merge(new Uint8Array(scan.count).fill(1), { data: block, index: manifestIndex(block), first: 0, end: files.length }, into);
  const expectMatch = Array.from({ length: scan.count }, (_, i) => (files.includes(i) ? files.indexOf(i) * 2 + 1 : -1));
  assert.deepEqual([...merged.match.subarray(0, scan.count)], expectMatch, 'files: their line, the same key; the directory: none');
  const expectDump = Buffer.concat([
    ...Array.from({ length: scan.count }, (_, i) => [Buffer.from(files.includes(i) ? 'N' : 'D'), scan.name(i), Buffer.from([0])]).flat(),
    Buffer.from([0]),
  ]);
  assert.deepEqual(merged.dumpdir, expectDump);
});

test('listed beneath an open root, a directory is reached without following a symlink on the way (ELOOP)', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xb-scan-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'root');
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(path.join(root, 'a', 'b'), { recursive: true });
  fs.writeFileSync(path.join(root, 'a', 'b', 'inside'), 'x');
  fs.mkdirSync(path.join(outside, 'b'), { recursive: true });
  fs.writeFileSync(path.join(outside, 'b', 'secret'), 'y');
  const rootFd = fs.openSync(root, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  t.after(() => fs.closeSync(rootFd));
  const names = (s: DirScan): string[] => Array.from({ length: s.count }, (_, i) => s.name(i).toString());
  const beneath = (rel: string): DirScan => DirScan.list(Buffer.from(path.join(root, rel)), false, { fd: rootFd, rel: Buffer.from(rel) });
  assert.deepEqual(names(beneath('')), ['a']);
  assert.deepEqual(names(beneath('a/b')), ['inside']);
  // a swapped for a symlink to a tree outside the root, as on a live source between two listings
  fs.renameSync(path.join(root, 'a'), path.join(dir, 'a-moved'));
  fs.symlinkSync(outside, path.join(root, 'a'));
  assert.deepEqual(names(DirScan.list(Buffer.from(path.join(root, 'a/b')))), ['secret'], 'by path, the symlink is followed');
  assert.throws(() => beneath('a/b'), (e: NodeJS.ErrnoException) => e.code === 'ELOOP' && /^ELOOP: /.test(e.message));
  assert.throws(() => beneath('a'), (e: NodeJS.ErrnoException) => e.code === 'ELOOP');
  const kept = DirScan.list(Buffer.from(root), true, { fd: rootFd, rel: Buffer.from('') });
  try {
    assert.ok(kept.fd >= 0, 'kept open as asked');
  } finally {
    kept.close();
  }
});
