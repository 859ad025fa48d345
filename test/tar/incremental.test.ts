/**
 * GNU incremental archives: a full and an incremental written by us, with
 * dumpdirs, restore with `tar -x -G` to exactly the same tree as GNU tar's own
 * --listed-incremental pair of the same source, which deletes what the later
 * dumpdirs no longer name. Our dumpdirs are computed independently here and
 * must equal the bytes GNU tar stored, as read by our reader.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { TarEntry } from '../../src/tar/entry.js';
import { b, buildArchive, gnuExtract, gnuTar, listTree, parseArchive, tempDir, under, type Member } from './fixtures.js';

interface Seen {
  mtimeNs: bigint;
  size: bigint;
  ino: bigint;
}

/**
 * Our archive of the tree under src/top: GNU's layout (all directories first,
 * then each directory's other members), every directory with a dumpdir that
 * marks subdirectories 'D', members stored in this archive 'Y' and unchanged
 * ones 'N'. `before` holds what the previous archive saw; empty for a full.
 */
function incrementalMembers(src: string, top: string, before: Map<string, Seen>, after: Map<string, Seen>): Member[] {
  const dirs: Member[] = [];
  const others: Member[][] = [];
  const walk = (rel: Buffer): void => {
    const st = fs.lstatSync(under(src, rel), { bigint: true });
    const names = fs.readdirSync(under(src, rel), { encoding: 'buffer' }).sort(Buffer.compare);
    const dumpdir: Buffer[] = [];
    const stored: Member[] = [];
    const subdirs: Buffer[] = [];
    for (const name of names) {
      const child = Buffer.concat([rel, b('/'), name]);
      const cst = fs.lstatSync(under(src, child), { bigint: true });
      const key = child.toString('latin1');
      after.set(key, { mtimeNs: cst.mtimeNs, size: cst.size, ino: cst.ino });
      if (cst.isDirectory()) {
        dumpdir.push(b('D'), name, Buffer.alloc(1));
        subdirs.push(child);
        continue;
      }
      const old = before.get(key);
      const unchanged = old && old.mtimeNs === cst.mtimeNs && old.size === cst.size && old.ino === cst.ino;
      dumpdir.push(b(unchanged ? 'N' : 'Y'), name, Buffer.alloc(1));
      if (unchanged) continue;
      const entry: TarEntry = { path: child, type: 'file', mode: Number(cst.mode & 0o7777n), uid: Number(cst.uid), gid: Number(cst.gid), size: 0, mtimeNs: cst.mtimeNs };
      if (cst.isSymbolicLink()) Object.assign(entry, { type: 'symlink', linkTarget: fs.readlinkSync(under(src, child), { encoding: 'buffer' }) });
      else entry.size = Number(cst.size);
      stored.push({ entry, data: entry.type === 'file' ? fs.readFileSync(under(src, child)) : undefined });
    }
    dumpdir.push(Buffer.alloc(1));
    dirs.push({
      entry: { path: rel, type: 'dir', mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), size: 0, mtimeNs: st.mtimeNs, dumpdir: Buffer.concat(dumpdir) },
    });
    others.push(stored);
    for (const sub of subdirs) walk(sub);
  };
  walk(b(top));
  return [...dirs, ...others.flat()];
}

test('tar -x -G of our full + incremental deletes and restores exactly as for GNU tar\'s own', (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  const at = (p: string): Buffer => under(src, b(p));
  for (const d of ['vol/sub/deep', 'vol/olddir/nested', 'vol/caf\xe9', 'vol/keepdir']) fs.mkdirSync(at(d), { recursive: true });
  for (const [p, content] of [
    ['vol/keep.txt', 'keep'], ['vol/change.txt', 'v1'], ['vol/gone.txt', 'gone'], ['vol/sub/a', 'a'], ['vol/sub/deep/z', 'z'],
    ['vol/olddir/x', 'x'], ['vol/olddir/nested/y', 'y'], ['vol/caf\xe9/inner', 'i'], ['vol/caf\xe9/stays', 's'], ['vol/keepdir/k', 'k'],
  ] as const) {
    fs.writeFileSync(at(p), content);
    fs.utimesSync(at(p), 1_000_000_000, 1_000_000_000);
  }
  fs.symlinkSync('keep.txt', at('vol/link'));

  // Level 0, by GNU tar and by us.
  const snar = path.join(dir, 'snar');
  const gnu0 = path.join(dir, 'gnu0.tar');
  const gnu1 = path.join(dir, 'gnu1.tar');
  const ours0 = path.join(dir, 'ours0.tar');
  const ours1 = path.join(dir, 'ours1.tar');
  const seen0 = new Map<string, Seen>();
  const full = incrementalMembers(src, 'vol', new Map(), seen0);
  gnuTar(['-c', '--format=pax', '-g', snar, '-f', gnu0, '-C', src, 'vol']);
  fs.writeFileSync(ours0, buildArchive(full));

  // Changes: additions, a change, then deletions of a file, a directory tree, a nested file and a
  // file in a non-UTF-8 dir. Additions first: a new directory that got a deleted one's inode
  // would look renamed to GNU tar (it then writes R/T records, which this test is not about).
  // Explicit future mtimes: GNU tar calls a file changed if its mtime is after the level 0,
  // which a fresh file's coarse-clock timestamp need not be when everything runs within one tick.
  fs.writeFileSync(at('vol/new.txt'), 'new');
  fs.mkdirSync(at('vol/newdir'));
  fs.writeFileSync(at('vol/newdir/f'), 'f');
  fs.writeFileSync(at('vol/change.txt'), 'version 2');
  for (const p of ['vol/new.txt', 'vol/newdir/f', 'vol/change.txt']) fs.utimesSync(at(p), 2_000_000_000, 2_000_000_000);
  fs.rmSync(at('vol/gone.txt'));
  fs.rmSync(at('vol/olddir'), { recursive: true });
  fs.rmSync(at('vol/sub/deep/z'));
  fs.rmSync(at('vol/caf\xe9/inner'));

  const incr = incrementalMembers(src, 'vol', seen0, new Map());
  gnuTar(['-c', '--format=pax', '-g', snar, '-f', gnu1, '-C', src, 'vol']);
  fs.writeFileSync(ours1, buildArchive(incr));

  // Our dumpdirs are byte for byte what GNU tar stored (as read by our reader).
  for (const [ours, gnu] of [[full, gnu0], [incr, gnu1]] as const) {
    const gnuDumpdirs = new Map(
      parseArchive(fs.readFileSync(gnu)).filter((m) => m.entry.type === 'dir').map((m) => [m.entry.path.toString('latin1'), m.entry.dumpdir?.toString('latin1')]),
    );
    const ourDumpdirs = new Map(ours.filter((m) => m.entry.type === 'dir').map((m) => [m.entry.path.toString('latin1'), m.entry.dumpdir!.toString('latin1')]));
    assert.deepEqual(ourDumpdirs, gnuDumpdirs, `dumpdirs of ${path.basename(gnu)}`);
  }

  // Restore both chains onto a tree that holds the full, as `tar -x -G` would be used.
  const restore = (archives: string[], name: string): string => {
    const dest = path.join(dir, name);
    fs.mkdirSync(dest);
    for (const archive of archives) gnuExtract(archive, dest);
    return dest;
  };
  const fromOurs = restore([ours0, ours1], 'from-ours');
  const fromGnu = restore([gnu0, gnu1], 'from-gnu');

  const names = (root: string): string[] => listTree(root).map((p) => p.toString('latin1'));
  assert.deepEqual(names(fromOurs), names(fromGnu));
  assert.deepEqual(names(fromOurs), names(src));
  for (const gone of ['vol/gone.txt', 'vol/olddir', 'vol/sub/deep/z', 'vol/caf\xe9/inner']) {
    assert.ok(!fs.existsSync(under(fromOurs, b(gone))), `${gone} was deleted by the incremental`);
  }
  for (const rel of listTree(src)) {
    const want = fs.lstatSync(under(src, rel), { bigint: true });
    for (const root of [fromOurs, fromGnu]) {
      const got = fs.lstatSync(under(root, rel), { bigint: true });
      const shown = `${rel.toString('latin1')} in ${path.basename(root)}`;
      assert.equal(got.mode, want.mode, `mode of ${shown}`);
      if (!want.isDirectory()) assert.equal(got.mtimeNs, want.mtimeNs, `mtime of ${shown}`);
      if (want.isFile()) assert.deepEqual(fs.readFileSync(under(root, rel)), fs.readFileSync(under(src, rel)), `content of ${shown}`);
    }
  }
});

test('our reader yields the dumpdirs of GNU-format incrementals (typeflag D) like those of pax ones', (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, 'src/v/d'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'src/v/f'), 'f');
  fs.writeFileSync(path.join(dir, 'src/v/d/g'), 'g');
  const dumpdirs = (format: string): Array<[string, string]> => {
    const archive = gnuTar(['-c', `--format=${format}`, '-g', path.join(dir, `snar-${format}`), '-f', '-', '-C', path.join(dir, 'src'), 'v']).stdout;
    return parseArchive(archive, 100)
      .filter((m) => m.entry.type === 'dir')
      .map((m) => [m.entry.path.toString(), m.entry.dumpdir!.toString('latin1')]);
  };
  const expected: Array<[string, string]> = [['v', 'Dd\0Yf\0\0'], ['v/d', 'Yg\0\0']];
  assert.deepEqual(dumpdirs('pax'), expected);
  assert.deepEqual(dumpdirs('gnu'), expected);
});
