/**
 * The catalogue of entries the tar tests write: every kind of entry and
 * attribute the archiver can hand the writer, and the check that a tree
 * extracted by GNU tar holds exactly these entries.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { TarEntry } from '../../src/tar/entry.js';
import { b, devParts, getAcl, getXattrs, listTree, under, type Member } from './fixtures.js';

const T0 = 1_600_000_000_123_456_789n;

export function entry(p: string | Buffer, type: TarEntry['type'], extra: Partial<TarEntry> = {}): TarEntry {
  return { path: typeof p === 'string' ? b(p) : p, type, mode: type === 'dir' ? 0o755 : 0o644, uid: 0, gid: 0, size: 0, mtimeNs: T0, ...extra };
}

export function file(p: string | Buffer, data: string | Buffer, extra: Partial<TarEntry> = {}): Member {
  const bytes = typeof data === 'string' ? b(data) : data;
  return { entry: entry(p, 'file', { size: bytes.length, ...extra }), data: bytes };
}

/** Every kind of entry the archiver can hand the writer. */
export function everyCase(): Member[] {
  const longDir = 'vol/' + 'd'.repeat(150);
  const longFile = `${longDir}/${'f'.repeat(200)}\xe9`; // > 255 bytes in all, not UTF-8
  const exact100 = 'vol/' + 'e'.repeat(96); // exactly fills the ustar name field
  return [
    { entry: entry('vol', 'dir', { mtimeNs: T0 + 7n }) },
    file('vol/plain', 'hello\n', { mode: 0o640, uid: 1000, gid: 1001 }),
    file('vol/caf\xe9', 'latin-1 name\n'),
    file(Buffer.from('vol/café-utf8', 'utf8'), 'utf-8 name\n'),
    { entry: entry('vol/dir-\xe9\xff', 'dir', { mode: 0o750 }) },
    file('vol/dir-\xe9\xff/inside', 'x'),
    file('vol/new\nline', 'newline in name'),
    { entry: entry(longDir, 'dir') },
    file(longFile, 'long name\n'),
    file(exact100, '100'),
    file(exact100.slice(0, -1) + 'X1', '101'),
    { entry: entry('vol/' + 'q'.repeat(95), 'dir') }, // 99 bytes + '/' = 100
    file('vol/suid', '#!/bin/sh\n', { mode: 0o4755 }),
    { entry: entry('vol/sgid', 'dir', { mode: 0o2775 }) },
    { entry: entry('vol/sticky', 'dir', { mode: 0o1777 }) },
    file('vol/biguid', 'big ids', { uid: 3_000_000_000, gid: 2_500_000_000 }),
    file('vol/id-limit', 'largest octal id', { uid: 2_097_151, gid: 2_097_152 }),
    file('vol/whole-second', 'no ns', { mtimeNs: 1_500_000_000_000_000_000n }),
    file('vol/pre1970', 'old', { mtimeNs: -315_619_200_500_000_000n }),
    file('vol/y2400', 'beyond the octal field', { mtimeNs: 13_569_465_600_000_000_001n }),
    file('vol/empty', ''),
    file('vol/block-sized', Buffer.alloc(1024, 0x61)),
    { entry: entry('vol/sym', 'symlink', { mode: 0o777, linkTarget: b('caf\xe9') }) },
    { entry: entry('vol/longsym', 'symlink', { mode: 0o777, linkTarget: b('../' + 't'.repeat(300) + '\xff') }) },
    { entry: entry('vol/hard', 'hardlink', { linkTarget: b('vol/plain'), mode: 0o640, uid: 1000, gid: 1001 }) },
    { entry: entry('vol/hard-to-long', 'hardlink', { linkTarget: b(longFile) }) },
    { entry: entry('vol/hard-latin', 'hardlink', { linkTarget: b('vol/caf\xe9') }) },
    { entry: entry('vol/nlsym', 'symlink', { mode: 0o777, linkTarget: b('new\nline') }) },
    { entry: entry('vol/cdev', 'char', { mode: 0o620, devMajor: 1, devMinor: 3 }) },
    { entry: entry('vol/bdev', 'block', { mode: 0o660, gid: 6, devMajor: 259, devMinor: 1_048_575 }) },
    { entry: entry('vol/fifo', 'fifo', { mode: 0o600 }) },
    file('vol/xattrs', 'with xattrs', {
      xattrs: new Map([
        ['user.bin', Buffer.from([0x00, 0x0a, 0x3d, 0xff])],
        ['user.a=b%c', b('v')],
        ['user.empty', Buffer.alloc(0)],
        ['trusted.t', b('1')],
        // VFS_CAP_REVISION_2, effective, permitted CAP_NET_RAW.
        ['security.capability', Buffer.from('0100000200200000000000000000000000000000', 'hex')],
      ]),
    }),
    file('vol/acl-file', 'acl', {
      mode: 0o664, // group bits = ACL mask
      aclAccess: 'user::rw-\nuser:54321:r--\ngroup::r--\ngroup:54322:rw-\nmask::rw-\nother::r--\n',
    }),
    {
      entry: entry('vol/acl-dir', 'dir', {
        mode: 0o775,
        aclAccess: 'user::rwx\nuser:54321:rwx\ngroup::r-x\nmask::rwx\nother::r-x\n',
        aclDefault: 'user::rwx\nuser:54321:r-x\ngroup::r--\nmask::r-x\nother::---\n',
      }),
    },
  ];
}

/** Asserts that what GNU tar extracted under root is exactly `members`, nothing more. */
export function assertExtracted(root: string, members: Member[]): void {
  const expected = members.map((m) => m.entry.path.toString('latin1')).sort();
  assert.deepEqual(listTree(root).map((p) => p.toString('latin1')).sort(), expected, 'the set of extracted names');
  for (const { entry: e, data } of members) {
    const where = under(root, e.path);
    const shown = JSON.stringify(e.path.toString('latin1'));
    const st = fs.lstatSync(where, { bigint: true });
    const kind = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isCharacterDevice() ? 'char'
      : st.isBlockDevice() ? 'block' : st.isFIFO() ? 'fifo' : 'file';
    assert.equal(kind, e.type === 'hardlink' ? 'file' : e.type, `type of ${shown}`);
    if (e.type !== 'symlink') assert.equal(Number(st.mode & 0o7777n), e.mode, `mode of ${shown}`);
    assert.equal(Number(st.uid), e.uid, `uid of ${shown}`);
    assert.equal(Number(st.gid), e.gid, `gid of ${shown}`);
    assert.equal(st.mtimeNs, e.mtimeNs, `mtime of ${shown}`);
    if (e.type === 'file') assert.deepEqual(fs.readFileSync(where), data ?? Buffer.alloc(0), `content of ${shown}`);
    if (e.type === 'symlink') assert.deepEqual(fs.readlinkSync(where, { encoding: 'buffer' }), e.linkTarget, `target of ${shown}`);
    if (e.type === 'hardlink') assert.equal(st.ino, fs.lstatSync(under(root, e.linkTarget!), { bigint: true }).ino, `${shown} is a hard link`);
    if (e.type === 'char' || e.type === 'block') assert.deepEqual(devParts(st.rdev), [e.devMajor, e.devMinor], `device numbers of ${shown}`);
    if (e.xattrs) {
      const want = new Map([...e.xattrs].map(([k, v]) => [k, v.toString('hex')]));
      assert.deepEqual(getXattrs(where.toString()), want, `xattrs of ${shown}`);
    }
    if (e.aclAccess || e.aclDefault) {
      const lines = (e.aclAccess ?? '').split('\n').filter(Boolean);
      for (const line of (e.aclDefault ?? '').split('\n').filter(Boolean)) lines.push('default:' + line);
      assert.equal(getAcl(where.toString()), lines.join('\n'), `ACLs of ${shown}`);
    }
  }
}

