/**
 * Issue 14, the corpus: every kind of tar member an attacker can put in an
 * archive (names with "..", absolute names, hardlinks and symlinks out,
 * device nodes, broken pax headers, truncation), and the link tricks of
 * item 2 (a symlink `a` -> outside with entries under `a/`), each in a
 * backup written by hand as the newest of the volume with every checksum
 * right (an attacker who can write the medium can compute xxh64 too).
 * restore with and without --force must refuse in one line (exit 1), verify
 * must report the damage naming the archive or manifest, and nothing outside
 * --to changes.
 */
import { after, describe, test } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { assertCase, removeScratch, type Cmd, type HostileCase } from './case-runner.js';
import type { World } from './hostile-media.js';
import { archiveFile, entry, fixArchiveHash, idAfter, member, paxHeader, readTar, writeHandBackup, writeTar, type HandStep } from './media-edit.js';

const HOSTILE: Partial<Record<Cmd, number[]>> = {
  ls: [0, 1],
  'verify-quick': [0, 1],
  verify: [1],
  restore: [1],
  'restore-force': [1],
};

const newest = (w: World): string => idAfter(w.ids[3], 1);

function handCase(name: string, steps: (w: World) => HandStep[], expect = HOSTILE, tail?: (w: World) => Buffer): HostileCase {
  return {
    name,
    setup: (w) => writeHandBackup(w, newest(w), steps(w), tail?.(w)),
    expect,
    names: (w) => newest(w) + '.full.',
    nameIn: ['verify'],
  };
}

const root: HandStep = { dir: '' };
const text = 'planted by the attacker\n';

const cases: HostileCase[] = [
  handCase('member named "../../outside/victim" under the manifest name victim', () => [
    root, { name: 'victim', t: 'f', content: text, member: entry('../../outside/victim', 'file', { size: text.length }) },
  ]),
  handCase('member with an absolute name', (w) => [
    root, { name: 'victim', t: 'f', content: text, member: entry(path.join(w.outside, 'victim'), 'file', { size: text.length }) },
  ]),
  handCase('manifest and member both named "../../outside/victim"', () => [
    root, { name: '../../outside/victim', t: 'f', content: text, member: entry('../../outside/victim', 'file', { size: text.length }) },
  ]),
  handCase('a hardlink member to an outside file (relative)', () => [
    root, { name: 'h', t: 'f', content: '', member: entry('h', 'hardlink', { linkTarget: Buffer.from('../outside/etc/passwd') }) },
  ]),
  handCase('a hardlink member to an outside file (absolute)', (w) => [
    root, { name: 'h', t: 'f', content: '', member: entry('h', 'hardlink', { linkTarget: Buffer.from(path.join(w.outside, 'etc/passwd')) }) },
  ]),
  handCase('a hardlink to a symlink the backup planted (a -> outside file, then b linked to a)', (w) => [
    root,
    { name: 'a', t: 'l', link: path.join(w.outside, 'etc/passwd') },
    { name: 'b', t: 'f', content: text, member: entry('b', 'hardlink', { linkTarget: Buffer.from('a') }) },
  ]),
  handCase('a char device named "../../outside/null"', () => [
    root, { name: 'null', t: 'c', rdev: [1, 3], member: entry('../../outside/null', 'char', { devMajor: 1, devMinor: 3 }) },
  ]),
  handCase('a block device with major/minor out of range', () => [
    root, { name: 'disk', t: 'b', rdev: [4095, 1048575], json: { r: [2 ** 40, 2 ** 40] } },
  ]),
  handCase('a fifo member where the manifest says file', () => [
    root, { name: 'f', t: 'f', content: '', member: entry('f', 'fifo') },
  ]),
  handCase('a pax header with a record length past its end', () => [
    root, { name: 'x', t: 'f', content: text, member: Buffer.concat([paxHeader(Buffer.from('999 path=x\n')), member(entry('x', 'file', { size: text.length }), Buffer.from(text))]) },
  ]),
  handCase('a pax header with a record length of 0', () => [
    root, { name: 'x', t: 'f', content: text, member: Buffer.concat([paxHeader(Buffer.from('0 path=x\n')), member(entry('x', 'file', { size: text.length }), Buffer.from(text))]) },
  ]),
  handCase('a pax header whose size field says 8 GiB', () => [
    root, { name: 'x', t: 'f', content: text, member: Buffer.concat([paxHeader(Buffer.from('10 path=x\n'), 0o77777777777), member(entry('x', 'file', { size: text.length }), Buffer.from(text))]) },
  ]),
  handCase('a pax path record naming "../../outside/victim"', () => [
    root, { name: 'x', t: 'f', content: text, member: Buffer.concat([paxHeader(Buffer.from('33 path=../../outside/victimxxxx\n')), member(entry('x', 'file', { size: text.length }), Buffer.from(text))]) },
  ]),
  handCase('a pax linkpath record pointing a hardlink outside', () => [
    root, { name: 'h', t: 'f', content: '', member: Buffer.concat([paxHeader(Buffer.from('33 linkpath=../outside/etc/passwd\n')), member(entry('h', 'hardlink', { linkTarget: Buffer.from('x') }))]) },
  ]),
  handCase('archive truncated in the middle of a file', () => [
    root, { name: 'big', t: 'f', content: 'z'.repeat(5000), member: member(entry('big', 'file', { size: 5000 }), Buffer.alloc(5000, 'z')).subarray(0, 1512) },
  ], HOSTILE, () => Buffer.alloc(0)),
  {
    name: 'the newest archive cut short (frame index, size and xxh64 fixed)',
    setup: (w) => {
      const tar = readTar(w, w.ids[3]);
      writeTar(w, w.ids[3], tar.subarray(0, Math.floor(tar.length / 2 / 512) * 512 + 100));
    },
    expect: HOSTILE,
    names: (w) => path.basename(archiveFile(w, w.ids[3])),
    nameIn: ['verify'],
  },
  {
    name: 'bytes flipped inside the compressed archive, xxh64 fixed',
    setup: (w) => {
      const f = archiveFile(w, w.ids[2]);
      const z = fs.readFileSync(f);
      for (let i = 20; i < z.length - 8; i += 37) z[i]! ^= 0x5a;
      fs.writeFileSync(f, z);
      fixArchiveHash(w, w.ids[2]);
    },
    expect: HOSTILE,
    names: (w) => path.basename(archiveFile(w, w.ids[2])),
    nameIn: ['verify'],
  },
  // The link tricks of item 2: a symlink a that points outside, and entries under a/.
  handCase('link trick: symlink a -> outside, directory a (block "a") holding file x', (w) => [
    root, { name: 'a', t: 'l', link: w.outside }, { dir: 'a' }, { name: 'x', t: 'f', content: text, mode: 0o777 },
  ]),
  handCase('link trick: symlink a -> outside, file a/x in the root block', (w) => [
    root, { name: 'a', t: 'l', link: w.outside }, { name: 'a/x', t: 'f', content: text, member: entry('a/victim', 'file', { size: text.length }) },
  ]),
  handCase('link trick: symlink a -> outside, symlink a/x', (w) => [
    root, { name: 'a', t: 'l', link: w.outside }, { dir: 'a' }, { name: 'victim', t: 'l', link: '/etc/shadow' },
  ]),
  handCase('link trick: relative symlink a -> ../outside, directory a/sub', () => [
    root, { name: 'a', t: 'l', link: '../outside' }, { dir: 'a' }, { dir: 'a/sub' }, { name: 'x', t: 'f', content: text },
  ]),
  handCase('link trick: directory a and symlink a -> outside in the same backup', (w) => [
    root, { name: 'a', t: 'l', link: w.outside }, { name: 'a', t: 'd' },
  ]),
  handCase('link trick: symlink member a -> outside where the manifest says directory a', (w) => [
    root, { dir: 'a', member: entry('a', 'symlink', { linkTarget: Buffer.from(w.outside) }) }, { name: 'victim', t: 'f', content: text },
  ]),
  {
    // An honest backup may hold a symlink to anywhere: restore makes it inside --to and never follows it,
    // also when --force replaces the one the first restore made.
    name: 'a symlink to the sentinel (absolute) and a file beside it, restored twice (exit 0)',
    setup: (w) => writeHandBackup(w, newest(w), [root, { name: 'link', t: 'l', link: path.join(w.outside, 'etc/passwd') }, { name: 'passwd', t: 'f', content: text }]),
    expect: { ls: [0], 'verify-quick': [0], verify: [0], restore: [0], 'restore-force': [0] },
  },
  {
    name: 'the target holds a symlink etc -> outside/etc; restore --force of the backup\'s etc/passwd',
    setup: (w) => {
      fs.mkdirSync(w.to);
      fs.symlinkSync(path.join(w.outside, 'etc'), path.join(w.to, 'etc'));
    },
    // Without --force: a path in the way (2); with --force the symlink is replaced, never followed.
    expect: { restore: [2], 'restore-force': [0] },
  },
];

describe('hostile media: tar members and link tricks', { concurrency: 2 }, () => {
  after(removeScratch);
  for (const c of cases) test(c.name, () => assertCase(c));
});
