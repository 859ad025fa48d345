// Incrementals whose directories go through the native unchanged-directory path (engines/tar/unchanged-dir.ts)
// as a whole backup sees them: the counts it reports, and excludes added after the previous backup, which
// that path must leave to the general one (their old lines must not be carried over).
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { readBlocks } from '../helpers/manifest-read.js';
import { makeScratchDir } from '../helpers/scratch.js';
import { apiBackup, chainArchives, cliRestore, gnuTarRestoreChain, show, StepClock, volumeDir } from './engine-fixtures.js';

const VOLUME = 'dom/disk';

/** A tree of `dirs` directories of `files` files each, one level down, plus a nested pair. */
function makeTree(root: string, dirs: number, files: number): void {
  for (let d = 0; d < dirs; d++) {
    const dir = path.join(root, `d${d}`);
    fs.mkdirSync(dir, { recursive: true });
    for (let f = 0; f < files; f++) fs.writeFileSync(path.join(dir, `f${f}`), `file ${f} of directory ${d}\n`);
  }
  fs.mkdirSync(path.join(root, 'a', 'b', 'sub'), { recursive: true });
  fs.writeFileSync(path.join(root, 'a', 'b', 'kept'), 'kept');
  fs.writeFileSync(path.join(root, 'a', 'b', 'dropped'), 'excluded later');
  fs.writeFileSync(path.join(root, 'a', 'b', 'sub', 'inside'), 'excluded later with its directory');
}

/** Manifest paths of a backup (directories with a trailing '/'). */
function manifestPaths(medium: string, manifest: string): string[] {
  const out: string[] = [];
  for (const block of readBlocks(path.join(volumeDir(medium, VOLUME), manifest))) {
    const dir = block.dir.toString();
    out.push(`${dir}/`);
    for (const e of block.entries) out.push(dir ? `${dir}/${e.name.toString()}` : e.name.toString());
  }
  return out.sort();
}

/** A scratch folder with the tree and an empty medium, and a clock for the backups. */
function setUp(t: Parameters<typeof makeScratchDir>[0], dirs: number, files: number): { scratch: string; root: string; medium: string; clock: StepClock } {
  const scratch = makeScratchDir(t, 'xb-unchanged-incr-');
  const root = path.join(scratch, 'tree');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  makeTree(root, dirs, files);
  return { scratch, root, medium, clock: new StepClock() };
}

test('a no-change incremental stores every directory and nothing else, and counts every other entry unchanged', async (t) => {
  const { scratch, root, medium, clock } = setUp(t, 40, 25);
  const full = (await apiBackup(root, medium, VOLUME, { clock })).sidecar;
  const incr = (await apiBackup(root, medium, VOLUME, { clock })).sidecar;
  assert.equal(incr.kind, 'incremental');
  const directories = 1 + 40 + 3; // the root, d0..d39, a, a/b, a/b/sub
  assert.equal(incr.stats.entries, full.stats.entries);
  assert.equal(incr.stats.stored, directories, 'only directory members are written');
  assert.equal(incr.stats.unchanged, full.stats.entries - directories);
  assert.equal(incr.stats.deleted, 0);
  assert.equal(incr.stats.filesRead, 0, 'nothing is read');
  assert.equal(incr.stats.sourceBytes, full.stats.sourceBytes);
  assert.deepEqual(manifestPaths(medium, incr.manifest), manifestPaths(medium, full.manifest), 'the same entries in both manifests');
  const restored = path.join(scratch, 'gnu');
  gnuTarRestoreChain(chainArchives(medium, VOLUME, incr), restored);
  assert.equal(fs.readFileSync(path.join(restored, 'd39', 'f24'), 'utf8'), 'file 24 of directory 39\n');
});

test('excludes added after the previous backup leave the excluded paths out of the next incremental', async (t) => {
  const { scratch, root, medium, clock } = setUp(t, 3, 2);
  await apiBackup(root, medium, VOLUME, { clock });
  // Nothing changed in the tree: a/b would be an unchanged directory but for the excludes below it.
  const incr = (await apiBackup(root, medium, VOLUME, { clock, excludes: [Buffer.from('a/b/dropped'), Buffer.from('a/b/sub')] })).sidecar;
  assert.equal(incr.kind, 'incremental');
  assert.equal(incr.stats.deleted, 3, 'a/b/dropped, a/b/sub and a/b/sub/inside are gone from this backup');
  const paths = manifestPaths(medium, incr.manifest);
  for (const gone of ['a/b/dropped', 'a/b/sub/', 'a/b/sub/inside']) assert.ok(!paths.includes(gone), `${gone} is not in the manifest`);
  assert.ok(paths.includes('a/b/kept'));

  const viaGnu = path.join(scratch, 'gnu');
  gnuTarRestoreChain(chainArchives(medium, VOLUME, incr), viaGnu);
  const viaUs = path.join(scratch, 'ours');
  const r = cliRestore(VOLUME, medium, viaUs);
  assert.equal(r.code, 0, show(r));
  for (const to of [viaGnu, viaUs]) {
    assert.deepEqual(fs.readdirSync(path.join(to, 'a', 'b')).sort(), ['kept'], `only a/b/kept is restored (${path.basename(to)})`);
  }
});
