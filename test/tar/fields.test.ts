/**
 * The codec's small parts: numeric fields (octal and GNU base-256), pax
 * record lengths at digit boundaries, pax times, xattr keyword escaping,
 * the sparse map text, and POSIX ACLs between kernel xattr and text form
 * (checked against setfacl/getfattr on a real file).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { aclTextFromXattr, aclXattrFromText } from '../../src/tar/acl.js';
import { octalLimit, readNumber, writeOctal } from '../../src/tar/octal.js';
import { formatPaxTime, paxRecordLength, parsePaxRecords, parsePaxTime, unescapeXattrName, writePaxRecord, xattrKeyword } from '../../src/tar/pax.js';
import { encodeSparseMap, padding } from '../../src/tar/write.js';
import { b, tempDir } from './fixtures.js';

test('octal fields are written as GNU tar does and read back, base-256 too', () => {
  const field = Buffer.alloc(12, 0xaa);
  assert.ok(writeOctal(field, 0, 12, 8_589_934_591));
  assert.equal(field.toString('latin1'), '77777777777\0');
  assert.equal(readNumber(field, 0, 12), 8_589_934_591);
  assert.equal(writeOctal(field, 0, 12, 8_589_934_592), false);
  assert.ok(writeOctal(field, 0, 8, 0o644));
  assert.equal(field.subarray(0, 8).toString('latin1'), '0000644\0');
  assert.equal(octalLimit(8), 2_097_151);

  assert.equal(readNumber(b('  644 \0\0'), 0, 8), 0o644);
  assert.equal(readNumber(Buffer.alloc(8), 0, 8), 0);
  assert.ok(Number.isNaN(readNumber(b('0006x4\0\0'), 0, 8)));
  assert.ok(Number.isNaN(readNumber(b('00 6 4\0\0'), 0, 8)));
  // GNU base-256: uid 3000000000 and mtime -315619200 as GNU tar 1.34 wrote them.
  assert.equal(readNumber(Buffer.from('80000000b2d05e00', 'hex'), 0, 8), 3_000_000_000);
  assert.equal(readNumber(Buffer.from('ffffffffffffffffed300880', 'hex'), 0, 12), -315_619_200);
  assert.equal(readNumber(Buffer.from('ffffffffffffffffffffffff', 'hex'), 0, 12), -1);
  assert.ok(Number.isNaN(readNumber(Buffer.from('80ffffffffffffffffffffff', 'hex'), 0, 12)), 'beyond 2^53');
});

test('pax records count their own length across digit boundaries', () => {
  for (let valueLength = 0; valueLength < 1100; valueLength++) {
    const value = Buffer.alloc(valueLength, 0x61);
    const out = Buffer.alloc(2000);
    const end = writePaxRecord(out, 0, 'k', value);
    assert.equal(end, paxRecordLength(1, valueLength));
    assert.equal(Number(out.toString('latin1', 0, out.indexOf(0x20))), end, `length field for a ${valueLength}-byte value`);
    assert.deepEqual(parsePaxRecords(out.subarray(0, end), 0), [['k', value]]);
  }
  assert.throws(() => parsePaxRecords(b('9 a=b\n'), 1000), /bad pax record length at byte 1000/);
  assert.throws(() => parsePaxRecords(b('5 a=b\n'), 1000), /does not end in a newline at byte 1004/);
  assert.throws(() => parsePaxRecords(b('x a=b\n'), 0), /bad pax record length at byte 0/);
  assert.throws(() => parsePaxRecords(b('6 a=b!'), 0), /does not end in a newline at byte 5/);
  assert.throws(() => parsePaxRecords(b('6 abc\n'), 0), /without keyword=value/);
  assert.deepEqual(parsePaxRecords(b('6 a=b\n\0\0\0'), 0), [['a', b('b')]], 'NUL padding ends the records');
});

test('pax times keep nanoseconds, drop trailing zeros and handle times before 1970', () => {
  const cases: Array<[bigint, string]> = [
    [0n, '0'],
    [1_577_836_800_123_456_789n, '1577836800.123456789'],
    [1_795_743_686_782_289_070n, '1795743686.78228907'],
    [1_500_000_000_000_000_000n, '1500000000'],
    [-315_619_200_000_000_000n, '-315619200'],
    [-1_500_000_000n, '-1.5'],
    [-500_000_000n, '-0.5'],
    [13_569_465_600_000_000_001n, '13569465600.000000001'],
  ];
  for (const [ns, text] of cases) {
    assert.equal(formatPaxTime(ns), text);
    assert.equal(parsePaxTime(b(text)), ns);
  }
  assert.equal(parsePaxTime(b('1.1234567899')), 1_123_456_789n, 'digits below 1 ns are truncated');
  for (const bad of ['', '-', '1.', '.5', '1x', '1.2.3', '+1']) assert.equal(parsePaxTime(b(bad)), null, bad);
});

test("xattr names escape '%' and '=' as GNU tar does", () => {
  assert.deepEqual(xattrKeyword('user.a=b%c'), b('SCHILY.xattr.user.a%3Db%25c'));
  // Names are byte strings: the keyword holds their bytes, never re-encoded (issue 14 item 11).
  assert.deepEqual(xattrKeyword('user.\xe9'), Buffer.from('SCHILY.xattr.user.\xe9', 'latin1'));
  const utf8Name = Buffer.from('user.été', 'utf8').toString('latin1');
  assert.deepEqual(xattrKeyword(utf8Name), Buffer.from('SCHILY.xattr.user.été', 'utf8'));
  assert.equal(unescapeXattrName('user.a%3Db%25c'), 'user.a=b%c');
  assert.equal(unescapeXattrName('user.%253D'), 'user.%3D');
});

test('the sparse map text is the one GNU tar writes, padded to blocks', () => {
  // GNU tar 1.34 for a 1 MiB file with data at 98304 and 696320 (4 KiB each).
  const map = encodeSparseMap([[98_304, 4096], [696_320, 4096]], 1_048_576);
  assert.equal(map.length, 512);
  assert.equal(map.toString('latin1').replace(/\0+$/, ''), '3\n98304\n4096\n696320\n4096\n1048576\n0\n');
  assert.equal(encodeSparseMap([], 10_000).toString('latin1').replace(/\0+$/, ''), '1\n10000\n0\n');
  assert.equal(encodeSparseMap([[0, 512], [9000, 1000]], 10_000).toString('latin1').replace(/\0+$/, ''), '2\n0\n512\n9000\n1000\n');
  assert.deepEqual([0, 1, 511, 512, 513].map(padding), [0, 511, 1, 0, 511]);
});

test('ACLs convert between the kernel xattr and text like setfacl/getfacl', (t) => {
  const dir = tempDir(t);
  const f = path.join(dir, 'd');
  fs.mkdirSync(f);
  execFileSync('setfacl', ['-m', 'u:54321:rwx,g:54322:r-x,g:7:r,m::rwx', '-d', '-m', 'u:54321:r-x,o::-', f]);
  const xattr = (name: string): Buffer => execFileSync('getfattr', ['-n', name, '--only-values', '--absolute-names', f]);
  const access = xattr('system.posix_acl_access');
  const text = aclTextFromXattr(access);
  assert.equal(text, 'user::rwx\nuser:54321:rwx\ngroup::r-x\ngroup:7:r--\ngroup:54322:r-x\nmask::rwx\nother::r-x\n');
  assert.deepEqual(aclXattrFromText(text), access);
  assert.deepEqual(aclXattrFromText(aclTextFromXattr(xattr('system.posix_acl_default'))), xattr('system.posix_acl_default'));
  // The short form, star's numeric fourth field, comments; order does not matter.
  assert.deepEqual(aclXattrFromText('o::r-x,m::rwx,u::rwx,u:54321:rwx,g::r-x,g:54322:r-x,group:sys:r--:7 # staff'), access);
  assert.throws(() => aclXattrFromText('user::rw-\nuser:lisa:r--\n'), /names a user or group without a numeric id/);
  assert.throws(() => aclXattrFromText('user::rwz'), /bad permissions/);
  assert.throws(() => aclTextFromXattr(Buffer.from('03000000', 'hex')), /not a POSIX ACL xattr value/);
});
