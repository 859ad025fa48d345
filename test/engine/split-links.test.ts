/**
 * Issue 14 item 12 beyond the chain test's two renames: hardlinked files
 * whose names a directory rename or move puts in different archives stay
 * linked when GNU tar restores the chain (`tar -x -G` over each archive),
 * whichever name comes first in walk order, for a directory moved deeper and
 * for a group of three names in three directories; xenbackup's restore links
 * them too and verify reads the chain clean. An incremental where nothing
 * moved stores none of those names again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeScratchDir } from '../helpers/scratch.js';
import { snapshotTree } from '../helpers/tree-snapshot.js';
import { assertTreesEqual } from '../helpers/tree-compare.js';
import type { Sidecar } from '../../src/medium/sidecar.js';
import { apiBackup, chainArchives, cliRestore, gnuTarRestoreChain, HOST, put, show, StepClock, xenbackup } from './engine-fixtures.js';

const VOLUME = 'links/split';

test('names of one file that directory renames put in different archives stay linked under GNU tar and xenbackup', async (t) => {
  const scratch = makeScratchDir(t, 'engine-split-links');
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  const p = (rel: string): string => path.join(source, rel);
  // m/a and z/b: z is renamed to a0, before m in walk order (the moved name comes first).
  put(source, 'm/a', 'moved name first\n');
  fs.mkdirSync(p('z'));
  fs.linkSync(p('m/a'), p('z/b'));
  // k/one, k2/two, k3/three: k2 moves into k3/deeper.
  put(source, 'k/one', 'three names\n');
  fs.mkdirSync(p('k2'));
  fs.mkdirSync(p('k3'));
  fs.linkSync(p('k/one'), p('k2/two'));
  fs.linkSync(p('k/one'), p('k3/three'));
  // Hardlinks within one directory, and a plain file, that nothing disturbs.
  put(source, 'same/x', 'one directory\n');
  fs.linkSync(p('same/x'), p('same/y'));
  put(source, 'plain/f', 'plain\n');

  const clock = new StepClock();
  const taken: Sidecar[] = [];
  taken.push((await apiBackup(source, medium, VOLUME, { clock })).sidecar);
  const quiet = (await apiBackup(source, medium, VOLUME, { clock })).sidecar;
  taken.push(quiet);
  assert.equal(quiet.stats.filesRead, 0, 'nothing moved: no name is stored again');

  fs.renameSync(p('z'), p('a0'));
  fs.renameSync(p('k2'), p('k3/deeper'));
  const moved = (await apiBackup(source, medium, VOLUME, { clock })).sidecar;
  taken.push(moved);
  assert.equal(moved.kind, 'incremental');
  assert.equal(moved.stats.filesRead, 2, 'one read of each moved file; every other name is a hardlink member');
  const expected = await snapshotTree(source);

  const linked = (root: string, names: string[]): boolean => new Set(names.map((n) => fs.statSync(path.join(root, n)).ino)).size === 1;
  const groups = [['m/a', 'a0/b'], ['k/one', 'k3/deeper/two', 'k3/three'], ['same/x', 'same/y']];

  await t.test('GNU tar -x -G over the chain', async () => {
    const to = path.join(scratch, 'gnu');
    gnuTarRestoreChain(chainArchives(medium, VOLUME, moved), to);
    assertTreesEqual(expected, await snapshotTree(to));
    for (const g of groups) assert.ok(linked(to, g), g.join(' = '));
  });

  await t.test('xenbackup restore', async () => {
    const to = path.join(scratch, 'xb');
    const r = cliRestore(VOLUME, medium, to);
    assert.equal(r.code, 0, show(r));
    assertTreesEqual(expected, await snapshotTree(to));
    for (const g of groups) assert.ok(linked(to, g), g.join(' = '));
  });

  await t.test('verify', () => {
    const r = xenbackup(['verify', VOLUME, '--medium', medium, '--host', HOST]);
    assert.equal(r.code, 0, show(r));
  });

  await t.test('the next incremental stores none of them again', async () => {
    const next = (await apiBackup(source, medium, VOLUME, { clock })).sidecar;
    assert.equal(next.stats.filesRead, 0);
  });
});
