/**
 * Self-tests of the comparator: in a faithful copy of the torture tree,
 * change one property at a time and check that the comparator reports that
 * property, at that path, and nothing else; that the ignore options remove
 * exactly what they name; and that assertTreesEqual fails with a readable,
 * bounded message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bashQuote, makeScratchDir, runBash } from './scratch.js';
import { buildTortureTree, formatSeconds } from './torture-tree.js';
import { entryAt, showPath, snapshotTree, type TreeSnapshot } from './tree-snapshot.js';
import { assertTreesEqual, compareTrees, formatDifference, type CompareField, type CompareOptions } from './tree-compare.js';

const MiB = 1024 * 1024;
const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

interface FlipCase {
  name: string;
  /**
   * Changes the copy at `dir`; `p` makes absolute byte paths, `resetMtime` puts back an mtime the change
   * disturbed, `mtimeOf` is the original's mtime of an entry.
   */
  change(dir: string, p: (rel: string | Buffer) => Buffer, resetMtime: (rel: string | Buffer) => void, mtimeOf: (rel: string) => bigint): void;
  expect: Array<[path: string, field: CompareField, expected?: string, actual?: string]>;
  opts?: CompareOptions;
}

const cases: FlipCase[] = [
  {
    name: 'a content byte',
    change: (_, p, reset) => { writeAt(p('files/small.txt'), 0, Buffer.from('H')); reset('files/small.txt'); },
    expect: [['files/small.txt', 'content']],
  },
  {
    name: 'a content byte in the 1 TiB sparse file, 512 GiB in',
    change: (_, p, reset) => { writeAt(p('sparse/lastlog-1TiB'), 512 * 1024 ** 3 + 100, Buffer.from([0])); reset('sparse/lastlog-1TiB'); },
    expect: [['sparse/lastlog-1TiB', 'content']],
  },
  {
    name: 'the mode',
    change: (_, p) => fs.chmodSync(p('modes/setuid'), 0o755),
    expect: [['modes/setuid', 'mode', '04755', '00755']],
  },
  {
    name: 'the owner',
    change: (_, p) => fs.lchownSync(p('owners/4242-4343'), 4243, 4343),
    expect: [['owners/4242-4343', 'uid', '4242', '4243']],
  },
  {
    name: 'the mtime by one nanosecond',
    change: (_, p, __, mtimeOf) => runBash(`touch -h -d @${formatSeconds(mtimeOf('files/big.bin') + 1n)} ${bashQuote(p('files/big.bin'))}`),
    expect: [['files/big.bin', 'mtime']],
  },
  {
    name: 'an xattr value',
    change: (_, p) => runBash(`setfattr -n user.text -v hellO ${bashQuote(p('xattrs/user-binary'))}`),
    expect: [['xattrs/user-binary', 'xattrs', 'user.text=0x68656c6c6f', 'user.text=0x68656c6c4f']],
  },
  {
    name: 'an ACL entry',
    change: (_, p) => runBash(`setfacl -m u:4242:--- ${bashQuote(p('acls/file'))}`),
    expect: [['acls/file', 'acl',
      'access user::rw-,user:4242:r--,group::r--,group:4343:rw-,mask::rw-,other::r--',
      'access user::rw-,user:4242:---,group::r--,group:4343:rw-,mask::rw-,other::r--']],
  },
  {
    name: 'a symlink target',
    change: (_, p, reset) => {
      fs.unlinkSync(p('links/relative'));
      fs.symlinkSync('../files/one-byte', p('links/relative'));
      reset('links/relative'); reset('links');
    },
    expect: [['links/relative', 'linkTarget', '../files/small.txt', '../files/one-byte']],
  },
  {
    name: 'a hardlink broken into a copy',
    change: (_, p, reset) => { replaceWithCopy(p('hardlinks/pair-b')); reset('hardlinks'); },
    expect: [['hardlinks/pair-a', 'hardlinks', '{hardlinks/pair-a = hardlinks/pair-b}', '{hardlinks/pair-a} {hardlinks/pair-b}']],
  },
  {
    name: 'one name of a group of three broken into a copy',
    change: (_, p, reset) => { replaceWithCopy(p(latin1('names/three-\xe9'))); reset('names'); },
    expect: [['hardlinks/sub/three-2', 'hardlinks',
      '{hardlinks/sub/three-2 = names/three-1 = names/three-\\xe9}', '{hardlinks/sub/three-2 = names/three-1} {names/three-\\xe9}']],
  },
  {
    name: 'a hole filled with (zero) data',
    change: (_, p, reset) => { writeAt(p('sparse/lastlog-1TiB'), 2 * MiB, Buffer.alloc(MiB)); reset('sparse/lastlog-1TiB'); },
    expect: [['sparse/lastlog-1TiB', 'allocated']],
  },
  {
    name: 'a sparse file made dense (same content)',
    change: (_, p, reset) => {
      execFileSync('cp', ['-a', '--sparse=never', p('sparse/ends-in-hole').toString(), p('sparse/dense').toString()]);
      fs.renameSync(p('sparse/dense'), p('sparse/ends-in-hole'));
      reset('sparse');
    },
    expect: [['sparse/ends-in-hole', 'sparse', 'sparse', 'dense']],
  },
  {
    name: 'a name byte',
    change: (_, p, reset) => { fs.renameSync(p(latin1('names/caf\xe9.txt')), p(latin1('names/caf\xe8.txt'))); reset('names'); },
    expect: [['names/caf\\xe8.txt', 'presence', 'absent', 'present (file)'], ['names/caf\\xe9.txt', 'presence', 'present (file)', 'absent']],
  },
  {
    name: 'a device number',
    change: (_, p, reset) => {
      fs.unlinkSync(p('special/char-tty'));
      runBash(`mknod -m 0640 ${bashQuote(p('special/char-tty'))} c 4 65`);
      reset('special/char-tty'); reset('special');
    },
    expect: [['special/char-tty', 'device', '4:64', '4:65']],
  },
  {
    name: 'the type (a fifo replaced by a file)',
    change: (_, p, reset) => {
      fs.unlinkSync(p('special/fifo'));
      fs.writeFileSync(p('special/fifo'), '');
      fs.chmodSync(p('special/fifo'), 0o644);
      reset('special/fifo'); reset('special');
    },
    expect: [['special/fifo', 'type', 'fifo', 'file']],
  },
  {
    name: 'a missing subtree (one difference, not one per entry)',
    change: (_, p, reset) => { fs.rmSync(p('dirs/nested'), { recursive: true }); reset('dirs'); },
    expect: [['dirs/nested', 'presence', 'present (dir, with 3 entries below)', 'absent']],
  },
  {
    name: 'the root directory mtime',
    change: (dir) => runBash(`touch -d @1 ${bashQuote(dir)}`),
    expect: [['.', 'mtime']],
  },
  {
    name: 'the root directory mtime, ignored at the root by ignoreWhere',
    change: (dir) => runBash(`touch -d @1 ${bashQuote(dir)}`),
    expect: [],
    opts: { ignoreWhere: [{ paths: ['.'], fields: ['mtime'] }] },
  },
  {
    name: 'the mtime, ignored everywhere',
    change: (_, p) => runBash(`touch -h -d @1 ${bashQuote(p('files/big.bin'))}`),
    expect: [],
    opts: { ignore: { mtime: true } },
  },
  {
    name: 'a name byte, below an ignored path',
    change: (_, p, reset) => { fs.renameSync(p(latin1('names/caf\xe9.txt')), p(latin1('names/caf\xe8.txt'))); reset('names'); },
    expect: [],
    opts: { ignorePaths: ['names'] },
  },
  {
    name: 'the socket missing, with sockets ignored',
    change: (_, p, reset) => { fs.unlinkSync(p('special/socket')); reset('special'); },
    expect: [],
    opts: { ignoreTypes: ['socket'] },
  },
  {
    name: 'an xattr, with its name ignored',
    change: (_, p) => runBash(`setfattr -x user.text ${bashQuote(p('xattrs/user-binary'))}`),
    expect: [],
    opts: { ignoreXattrs: [/^user\.te/] },
  },
];

test('the comparator reports exactly the one property changed in a faithful copy', async (t) => {
  const src = path.join(makeScratchDir(t, 'tree-compare'), 'tree');
  fs.mkdirSync(src);
  await buildTortureTree(src, { bigFileSize: 2 * MiB });
  const original = await snapshotTree(src);

  for (const c of cases) {
    await t.test(c.name, async (t2) => {
      const dir = path.join(makeScratchDir(t2, 'tree-compare-copy'), 'tree');
      execFileSync('cp', ['-a', '--sparse=always', src, dir]);
      const p = (rel: string | Buffer): Buffer => Buffer.concat([Buffer.from(dir + '/'), Buffer.from(rel)]);
      // Changing a name or an inode also moves its directory's mtime; put it back so only the intended field differs.
      const resetMtime = (rel: string | Buffer): void => {
        const entry = entryAt(original, rel);
        assert.ok(entry, `no ${showPath(Buffer.from(rel))} in the original`);
        runBash(`touch -h -d @${formatSeconds(entry.mtimeNs)} ${bashQuote(p(rel))}`);
      };
      c.change(dir, p, resetMtime, (rel) => entryAt(original, rel)!.mtimeNs);
      const copy = await snapshotTree(dir);
      const diffs = compareTrees(original, copy, c.opts);
      if (c.opts) assert.notDeepEqual(compareTrees(original, copy), [], 'the change must show without the ignore option');
      const shown = diffs.map(formatDifference).join('\n');
      assert.deepEqual(diffs.map((d) => [d.path, d.field]), c.expect.map(([p2, f]) => [p2, f]), shown);
      c.expect.forEach(([, , expected, actual], i) => {
        if (expected !== undefined) assert.equal(diffs[i].expected, expected, shown);
        if (actual !== undefined) assert.equal(diffs[i].actual, actual, shown);
      });
    });
  }
});

test('assertTreesEqual passes on equal trees and otherwise lists the first 30 differences', async (t) => {
  const base = makeScratchDir(t, 'tree-assert');
  const [src, copy] = [path.join(base, 'src'), path.join(base, 'copy')];
  fs.mkdirSync(src);
  await buildTortureTree(src, { bigFileSize: 1024, socket: false });
  execFileSync('cp', ['-a', '--sparse=always', src, copy]);
  const original: TreeSnapshot = await snapshotTree(src);
  assertTreesEqual(original, await snapshotTree(copy));

  execFileSync('chown', ['-R', '-h', '1:1', copy]);
  const changed = await snapshotTree(copy);
  const count = compareTrees(original, changed).length;
  assert.ok(count > 100, `${count} differences`);
  assert.throws(
    () => assertTreesEqual(original, changed),
    (e: Error) => {
      const lines = e.message.split('\n');
      assert.match(lines[0], new RegExp(`${copy} differs from ${src} in ${count} place\\(s\\):`));
      assert.equal(lines.length, 1 + 30 + 1);
      assert.equal(lines[31], `  ... and ${count - 30} more`);
      assert.match(lines[1], /^ {2}\.: uid: expected 0, actual 1$/);
      return true;
    },
  );
});

test('showPath: readable, and distinct for distinct bytes', () => {
  assert.equal(showPath(Buffer.from('plain/path.txt')), 'plain/path.txt');
  assert.equal(showPath(latin1('caf\xe9')), 'caf\\xe9');
  assert.equal(showPath(Buffer.from('ünï/日本語')), 'ünï/日本語');
  assert.equal(showPath(Buffer.from('new\nline\ttab\\x41')), 'new\\nline\\ttab\\\\x41');
  assert.equal(showPath(Buffer.from([0xc0, 0x80, 0xed, 0xa0, 0x80, 0x7f])), '\\xc0\\x80\\xed\\xa0\\x80\\x7f'); // overlong, surrogate, DEL
  assert.notEqual(showPath(latin1('a\xe9')), showPath(Buffer.from('a\\xe9')));
});

function writeAt(file: Buffer, offset: number, data: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, data, 0, data.length, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** Gives a name its own inode with the same content and metadata (cp -a of one file keeps no link). */
function replaceWithCopy(file: Buffer): void {
  const temp = Buffer.concat([file, Buffer.from('.copy')]);
  runBash(`cp -a ${bashQuote(file)} ${bashQuote(temp)} && mv ${bashQuote(temp)} ${bashQuote(file)}`);
}
