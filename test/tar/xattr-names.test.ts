/**
 * Issue 14 item 11: xattr names that are not ASCII. The `SCHILY.xattr.`
 * keyword holds the name's own bytes, as GNU tar writes it, so GNU tar
 * restores `user.été`, `user.\xe9` (not UTF-8) and `user.日本` exactly; our
 * reader gives the same bytes back; and a member in the form older
 * xenbackup wrote (each name byte taken as Latin-1, written as UTF-8, no
 * raw-names record) still reads back to the original bytes.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { lgetxattr, llistxattr } from '../../src/native/xbfs.js';
import type { TarEntry } from '../../src/tar/entry.js';
import { BLOCK_SIZE, F, MAGIC_USTAR, T, writeChecksum } from '../../src/tar/header.js';
import { writeOctal } from '../../src/tar/octal.js';
import { paxRecordLength, writePaxRecord } from '../../src/tar/pax.js';
import { END_OF_ARCHIVE, encodeHeader } from '../../src/tar/write.js';
import { b, buildArchive, gnuExtract, gnuTar, parseArchive, tempDir } from './fixtures.js';

/** Names as byte strings (one char per byte), the representation of TarEntry.xattrs. */
const bytes = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');
const NAMES = [bytes('user.été'), 'user.\xe9', bytes('user.日本'), 'user.plain'];

function fileEntry(name: string): TarEntry {
  return {
    path: b(name),
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: 0,
    mtimeNs: 1_600_000_000_000_000_000n,
    xattrs: new Map(NAMES.map((n, i) => [n, Buffer.from(`value ${i}`)])),
  };
}

function xattrsOnDisk(file: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const n of llistxattr(Buffer.from(file)).sort()) out.set(n, lgetxattr(Buffer.from(file), n).toString());
  return out;
}

test('GNU tar restores non-ASCII xattr names with their exact bytes, and our reader reads them back', (t) => {
  const dir = tempDir(t);
  const archive = path.join(dir, 'a.tar');
  fs.writeFileSync(archive, buildArchive([{ entry: fileEntry('f'), data: Buffer.alloc(0) }]));
  const raw = fs.readFileSync(archive);
  assert.ok(raw.includes(Buffer.from('SCHILY.xattr.user.été=', 'utf8')), 'a UTF-8 name is written once, as UTF-8');
  assert.ok(raw.includes(Buffer.from('SCHILY.xattr.user.\xe9=', 'latin1')), 'a byte that is not UTF-8 is written as it is');
  assert.ok(!raw.includes(Buffer.from('Ã', 'utf8')), 'nothing is double-encoded');

  const to = path.join(dir, 'out');
  fs.mkdirSync(to);
  gnuExtract(archive, to); // throws if GNU tar says anything (the raw-names record is silent)
  const want = new Map(NAMES.map((n, i) => [n, `value ${i}`]));
  assert.deepEqual(xattrsOnDisk(path.join(to, 'f')), want);

  const [m] = parseArchive(raw);
  assert.deepEqual(m!.entry.xattrs, new Map(NAMES.map((n, i) => [n, Buffer.from(`value ${i}`)])));

  // What GNU tar itself writes for the restored file holds the same keyword bytes as ours.
  const gnu = gnuTar(['--format=pax', '--xattrs', '--xattrs-include=*', '-cf', '-', 'f'], { cwd: to }).stdout;
  for (const n of NAMES.slice(0, 3)) assert.ok(gnu.includes(Buffer.from(`SCHILY.xattr.${n}=`, 'latin1')), `GNU tar's keyword for ${JSON.stringify(n)}`);
});

test('only a member with a non-ASCII xattr name carries the raw-names record', () => {
  const plain = encodeHeader({ ...fileEntry('p'), xattrs: new Map([['user.a', b('1')]]) });
  assert.ok(!plain.includes(b(' comment=')));
  assert.ok(encodeHeader(fileEntry('q')).includes(b(' comment=xenbackup: SCHILY.xattr names are raw bytes\n')));
});

test('an archive written by older xenbackup (names double-encoded, no raw-names record) still reads exactly', () => {
  // The old writer: keyword = UTF-8 of the name's bytes taken as Latin-1.
  const records: Array<[Buffer, Buffer]> = NAMES.map((n, i) => [Buffer.from('SCHILY.xattr.' + n, 'utf8'), Buffer.from(`value ${i}`)]);
  const paxLength = records.reduce((sum, [k, v]) => sum + paxRecordLength(k.length, v.length), 0);
  const pax = Buffer.alloc(BLOCK_SIZE * (1 + Math.ceil(paxLength / BLOCK_SIZE)));
  b('./PaxHeaders/old').copy(pax, F.name);
  writeOctal(pax, F.mode, F.idLen, 0o644);
  writeOctal(pax, F.uid, F.idLen, 0);
  writeOctal(pax, F.gid, F.idLen, 0);
  writeOctal(pax, F.size, F.bigLen, paxLength);
  writeOctal(pax, F.mtime, F.bigLen, 0);
  pax[F.typeflag] = T.paxLocal;
  MAGIC_USTAR.copy(pax, F.magic);
  writeChecksum(pax, 0);
  let off = BLOCK_SIZE;
  for (const [k, v] of records) off = writePaxRecord(pax, off, k, v);
  const main = encodeHeader({ ...fileEntry('old'), xattrs: undefined });
  const [m] = parseArchive(Buffer.concat([pax, main, END_OF_ARCHIVE]));
  assert.deepEqual([...m!.entry.xattrs!.keys()], NAMES);
});
