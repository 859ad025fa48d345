/**
 * Issue 2 item 6: a chain of a full and five incrementals over a tree that
 * changes in every way an incremental must carry: new, changed and
 * metadata-only-changed entries (chmod, chown, xattr, mtime), deleted and
 * renamed files and directories, a file replaced by a directory and the
 * reverse, a symlink replaced by a file, and hardlinks whose siblings
 * changed. The source is snapshotted after each backup; at the end every
 * backup is restored as of its time, by `xenbackup restore --at` and by
 * stock GNU tar (`-x -G` over the chain up to it), and compared with the
 * snapshot of its time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeScratchDir } from '../helpers/scratch.js';
import { readBlocks } from '../helpers/manifest-read.js';
import { showPath } from '../../src/core/path-order.js';
import { snapshotTree, type TreeSnapshot } from '../helpers/tree-snapshot.js';
import { assertTreesEqual, compareTrees } from '../helpers/tree-compare.js';
import type { Sidecar } from '../../src/medium/sidecar.js';
import { timeOfId } from '../../src/repo/volume-store.js';
import { apiBackup, chainArchives, cliRestore, gnuTarRestoreChain, put, show, StepClock, volumeDir, xenbackup, HOST } from './engine-fixtures.js';

const VOLUME = 'mail1/var';

/** The steps: each changes the tree, then a backup is taken. Step 0 builds it. */
function steps(src: string): Array<[string, () => void]> {
  const p = (rel: string): string => path.join(src, rel);
  const setTime = (rel: string, iso: string): void => fs.lutimesSync(p(rel), new Date(iso), new Date(iso));
  return [
    [
      'the first tree',
      () => {
        for (let i = 0; i < 5; i++) put(src, `docs/page${i}.txt`, `page ${i}\n`.repeat(100 * (i + 1)));
        put(src, 'docs/same-size.txt', 'aaaaaaaaaa\n');
        put(src, 'meta/chmod-me', 'mode changes\n');
        put(src, 'meta/chown-me', 'owner changes\n');
        put(src, 'meta/xattr-me', 'xattr changes\n');
        put(src, 'meta/touch-me', 'only the mtime changes\n');
        fs.mkdirSync(p('meta/dir-chmod'));
        put(src, 'gone/file', 'to be deleted\n');
        put(src, 'gone/tree/deep/file', 'a whole tree to be deleted\n');
        put(src, 'rename/old-name.txt', 'renamed file\n');
        put(src, 'rename/old-dir/inside.txt', 'in a renamed directory\n');
        put(src, 'swap/was-file', 'becomes a directory\n');
        put(src, 'swap/was-dir/inside', 'the directory becomes a file\n');
        fs.symlinkSync('../docs/page0.txt', p('swap/was-symlink'));
        put(src, 'links/a/inplace', 'linked, changed in place\n');
        fs.linkSync(p('links/a/inplace'), p('links/b/inplace-sibling'));
        put(src, 'links/a/replaced', 'linked, one name replaced\n');
        fs.linkSync(p('links/a/replaced'), p('links/b/replaced-sibling'));
        put(src, 'links/a/gains-a-link', 'a second name comes later\n');
        // Hardlinks across directories that get renamed: the names then live in different archives.
        put(src, 'links/p/first', 'the sibling\'s directory moves\n');
        fs.mkdirSync(p('links/q'));
        fs.linkSync(p('links/p/first'), p('links/q/second'));
        put(src, 'links/s/first', 'the data holder\'s directory moves\n');
        fs.mkdirSync(p('links/t'));
        fs.linkSync(p('links/s/first'), p('links/t/second'));
        fs.mkdirSync(p('empty-dir'));
      },
    ],
    [
      'new and changed content',
      () => {
        put(src, 'docs/new.txt', 'a new file\n');
        put(src, 'newdir/sub/file', 'a new directory tree\n');
        fs.mkdirSync(p('newdir/empty'));
        fs.appendFileSync(p('docs/page1.txt'), 'grown\n');
        fs.writeFileSync(p('docs/same-size.txt'), 'bbbbbbbbbb\n');
        setTime('docs/same-size.txt', '2031-05-05T05:05:05.123Z');
      },
    ],
    [
      'metadata only',
      () => {
        fs.chmodSync(p('meta/chmod-me'), 0o4711);
        fs.chownSync(p('meta/chown-me'), 4242, 4343);
        execFileSync('setfattr', ['-n', 'user.step', '-v', 'two', p('meta/xattr-me')]);
        setTime('meta/touch-me', '2001-01-01T00:00:00Z');
        fs.chmodSync(p('meta/dir-chmod'), 0o1777);
        execFileSync('setfattr', ['-n', 'user.on-dir', '-v', 'yes', p('meta')]);
      },
    ],
    [
      'deletions and renames',
      () => {
        fs.rmSync(p('gone/file'));
        fs.rmSync(p('gone/tree'), { recursive: true });
        fs.renameSync(p('rename/old-name.txt'), p('rename/new-name.txt'));
        fs.renameSync(p('rename/old-dir'), p('rename/new-dir'));
        fs.rmSync(p('docs/page3.txt'));
        fs.renameSync(p('links/q'), p('links/r'));
        fs.renameSync(p('links/s'), p('links/u'));
        execFileSync('setfattr', ['-x', 'user.step', p('meta/xattr-me')]);
      },
    ],
    [
      'type changes',
      () => {
        fs.rmSync(p('swap/was-file'));
        put(src, 'swap/was-file/now-inside', 'the file became a directory\n');
        fs.rmSync(p('swap/was-dir'), { recursive: true });
        fs.writeFileSync(p('swap/was-dir'), 'the directory became a file\n');
        fs.rmSync(p('swap/was-symlink'));
        fs.writeFileSync(p('swap/was-symlink'), 'the symlink became a file\n');
        fs.symlinkSync('was-dir', p('swap/new-symlink'));
      },
    ],
    [
      'hardlinks whose siblings changed',
      () => {
        // Written in place: both names see the new content.
        fs.writeFileSync(p('links/a/inplace'), 'linked, changed in place, version 2, longer\n', { flag: 'r+' });
        // One name replaced by a new file: the sibling keeps the old content and is linked no more.
        fs.rmSync(p('links/a/replaced'));
        fs.writeFileSync(p('links/a/replaced'), 'a new file under the old name\n');
        fs.linkSync(p('links/a/gains-a-link'), p('links/c/new-link'));
      },
    ],
    [
      'back to a quiet day',
      () => {
        put(src, 'docs/page0.txt', 'rewritten\n');
        fs.rmSync(p('newdir'), { recursive: true });
      },
    ],
  ];
}

test('a chain of six backups restores exactly as of each backup, by xenbackup --at and by GNU tar -x -G', async (t) => {
  const scratch = makeScratchDir(t, 'engine-chain');
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(source);
  fs.mkdirSync(medium);
  for (const d of ['links/b', 'links/c']) fs.mkdirSync(path.join(source, d), { recursive: true });

  const clock = new StepClock();
  const taken: Array<{ what: string; sidecar: Sidecar; snapshot: TreeSnapshot }> = [];
  for (const [what, change] of steps(source)) {
    change();
    const { sidecar } = await apiBackup(source, medium, VOLUME, { clock });
    taken.push({ what, sidecar, snapshot: await snapshotTree(source) });
  }
  assert.deepEqual(
    taken.map((s) => s.sidecar.kind),
    ['full', 'incremental', 'incremental', 'incremental', 'incremental', 'incremental', 'incremental'],
  );
  // Each step must be visible, or comparing with "the snapshot of its time" would prove little.
  for (let i = 1; i < taken.length; i++) {
    assert.ok(compareTrees(taken[i - 1]!.snapshot, taken[i]!.snapshot).length > 0, `step ${i} changed nothing`);
  }
  // The deletions step stores no file content but must record what is gone.
  const deletions = taken[3]!.sidecar;
  assert.ok(deletions.stats.deleted >= 4, `deleted: ${deletions.stats.deleted}`);
  assert.ok(taken[2]!.sidecar.stats.filesRead <= 4, 'metadata-only changes re-read only the files whose ctime moved');

  for (const [i, { what, sidecar, snapshot }] of taken.entries()) {
    await t.test(`backup ${i} (${what}) through xenbackup restore --at`, async () => {
      const to = path.join(scratch, `xb-${i}`);
      const r = cliRestore(VOLUME, medium, to, ['--at', timeOfId(sidecar.id).toISOString()]);
      assert.equal(r.code, 0, show(r));
      assert.match(r.stderr + r.stdout, new RegExp(`from backup ${sidecar.id}`));
      assertTreesEqual(snapshot, await snapshotTree(to));
    });
    await t.test(`backup ${i} (${what}) through GNU tar -x -G over its chain`, async () => {
      const to = path.join(scratch, `gnu-${i}`);
      gnuTarRestoreChain(chainArchives(medium, VOLUME, sidecar), to);
      assertTreesEqual(snapshot, await snapshotTree(to));
    });
  }

  await t.test('GNU tar -x -G relinks hardlinks whose names a directory rename put in different archives', async () => {
    // The incremental after the renames stores the unchanged outside names again (engines/tar/split-links.ts).
    const renames = taken[3]!.sidecar;
    // Its manifest read as entries (version 2 compresses the lines; references followed into the chain's manifests).
    const blocks = readBlocks(path.join(volumeDir(medium, VOLUME), renames.manifest));
    for (const name of ['first', 'second']) {
      const stored = blocks.some((b) => showPath(b.dir).startsWith('links/') && b.entries.some((e) => e.name.toString() === name && e.type === 'file' && e.archive === renames.id));
      assert.ok(stored, `links/*/${name} stored in ${renames.id}`);
    }
    const last = taken[taken.length - 1]!;
    const to = path.join(scratch, 'gnu-strict');
    gnuTarRestoreChain(chainArchives(medium, VOLUME, last.sidecar), to);
    assertTreesEqual(last.snapshot, await snapshotTree(to));
    const linked = (a: string, b: string): boolean => fs.statSync(path.join(to, a)).ino === fs.statSync(path.join(to, b)).ino;
    assert.ok(linked('links/p/first', 'links/r/second') && linked('links/u/first', 'links/t/second'));
    // Members, dumpdirs ('Y' for the names stored again) and manifests agree, as verify reads them.
    const v = xenbackup(['verify', VOLUME, '--medium', medium, '--host', HOST]);
    assert.equal(v.code, 0, show(v));
  });

  await t.test('a hardlink restored alone, and with its sibling, from an archive where the other name holds the data', async () => {
    const first = taken[0]!.sidecar;
    const at = ['--at', timeOfId(first.id).toISOString()];
    const alone = path.join(scratch, 'link-alone');
    const r1 = cliRestore(VOLUME, medium, alone, [...at, 'links/b/inplace-sibling']);
    assert.equal(r1.code, 0, show(r1));
    assert.equal(fs.readFileSync(path.join(alone, 'links/b/inplace-sibling'), 'utf8'), 'linked, changed in place\n');
    assert.equal(fs.existsSync(path.join(alone, 'links/a')), false, 'only the asked-for name is created');

    const both = path.join(scratch, 'link-both');
    const r2 = cliRestore(VOLUME, medium, both, [...at, 'links/b/inplace-sibling', 'links/a/inplace']);
    assert.equal(r2.code, 0, show(r2));
    const a = fs.statSync(path.join(both, 'links/a/inplace'));
    const b = fs.statSync(path.join(both, 'links/b/inplace-sibling'));
    assert.equal(a.ino, b.ino, 'two names of one inode asked for together are linked again');
  });

  await t.test('--at between two backups picks the earlier one', async () => {
    const third = taken[2]!.sidecar;
    const between = new Date(timeOfId(third.id).getTime() + 30_000).toISOString();
    const to = path.join(scratch, 'between');
    const r = cliRestore(VOLUME, medium, to, ['--at', between, 'meta']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stderr + r.stdout, new RegExp(`from backup ${third.id}`));
    assert.equal(fs.statSync(path.join(to, 'meta/chmod-me')).mode & 0o7777, 0o4711);
  });
});

test('a chain mixing gzip, none and zstd archives restores through xenbackup and GNU tar', async (t) => {
  const scratch = makeScratchDir(t, 'engine-compressions');
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  for (let i = 0; i < 30; i++) put(source, `d${i % 3}/f${i}`, `file ${i}\n`.repeat(400));
  const clock = new StepClock();
  const kinds: string[] = [];
  let last: Sidecar | undefined;
  for (const compression of ['gzip', 'none', 'zstd'] as const) {
    put(source, `d1/changed-in-${compression}`, compression);
    fs.rmSync(path.join(source, `d2/f${kinds.length * 3 + 2}`));
    last = (await apiBackup(source, medium, VOLUME, { clock, compression })).sidecar;
    kinds.push(`${last.kind}:${last.archive.replace(/^.*?\.(full|incr)/, '$1')}`);
  }
  assert.deepEqual(kinds, ['full:full.tar.gz', 'incremental:incr.tar', 'incremental:incr.tar.zst']);
  const expected = await snapshotTree(source);
  const ours = path.join(scratch, 'ours');
  const r = cliRestore(VOLUME, medium, ours);
  assert.equal(r.code, 0, show(r));
  assertTreesEqual(expected, await snapshotTree(ours));
  const one = path.join(scratch, 'one');
  assert.equal(cliRestore(VOLUME, medium, one, ['d1/changed-in-none']).code, 0);
  assert.equal(fs.readFileSync(path.join(one, 'd1/changed-in-none'), 'utf8'), 'none');
  const gnu = path.join(scratch, 'gnu');
  gnuTarRestoreChain(chainArchives(medium, VOLUME, last!), gnu);
  assertTreesEqual(expected, await snapshotTree(gnu));
});
