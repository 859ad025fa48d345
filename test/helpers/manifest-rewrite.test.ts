/**
 * The version 2 rewrite helper: an edit that changes nothing gives the
 * file back byte for byte (references and frames kept), an edit of a block
 * held by reference is read back, that block now literal, and a stale
 * trailer checksum is what the manifest's own check catches.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { manifestProblems } from '../../src/medium/manifest-file.js';
import { makeScratchDir } from './scratch.js';
import { readBlocks } from './manifest-read.js';
import { manifestXxh64Of, readManifestLines, rewriteManifest, trailerXxh64Of, type Json } from './manifest-rewrite.js';
import { apiBackup, backupsOf, put, StepClock, volumeDir } from '../engine/engine-fixtures.js';

const VOLUME = 'vm/rewrite';

test('rewriteManifest: unchanged bytes for no edit, an edit read back, a stale trailer caught', async (t) => {
  const scratch = makeScratchDir(t, 'manifest-rewrite');
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  for (let d = 0; d < 3; d++) for (let f = 0; f < 5; f++) put(source, `dir${d}/file${f}`, `${d}/${f}\n`);
  const clock = new StepClock();
  await apiBackup(source, medium, VOLUME, { clock });
  put(source, 'dir2/file0', 'changed\n');
  await apiBackup(source, medium, VOLUME, { clock });
  const [full, incr] = backupsOf(medium, VOLUME);
  const file = path.join(volumeDir(medium, VOLUME), incr!.manifest);
  const original = fs.readFileSync(file);

  const { lines } = readManifestLines(file);
  assert.ok(lines.some((l) => l.includes('"file3"')), 'the lines of unchanged directories, read through their references');
  assert.equal(lines.length, 1 + 3 + 15, 'root, three directories, fifteen files');
  assert.ok(execFileSync('zstd', ['-dcq', file], { encoding: 'utf8' }).includes(`{"ref":"${full!.id}"`), 'the incremental refers to the full');
  assert.deepEqual(rewriteManifest(file, () => {}), original, 'no edit: the same bytes');
  const fullFile = path.join(volumeDir(medium, VOLUME), full!.manifest);
  assert.deepEqual(rewriteManifest(fullFile, () => {}), fs.readFileSync(fullFile), 'no edit: the same bytes (a full)');

  // dir0 is unchanged in the incremental: its lines are a reference to the full's manifest until edited.
  const edited = rewriteManifest(file, (objs: Json[]) => {
    const dir = objs.findIndex((o) => o.d === 'dir0');
    const e = objs.slice(dir + 1).find((o) => o.n === 'file1');
    assert.equal(e.a, full!.id);
    e.n = 'file1-renamed';
  });
  const sc = { ...incr!, volume: VOLUME };
  try {
    fs.writeFileSync(file, edited);
    assert.deepEqual(manifestProblems(file, { ...sc, manifestXxh64: manifestXxh64Of(edited) }), [], 'the edit passes every checksum');
    const names = readBlocks(file).find((b) => b.dir.toString() === 'dir0')!.entries.map((e) => e.name.toString());
    assert.deepEqual(names, ['file0', 'file1-renamed', 'file2', 'file3', 'file4']);
    assert.ok(readBlocks(file).find((b) => b.dir.toString() === 'dir1')!.entries.length === 5, 'the other blocks as they were');

    const stale = rewriteManifest(file, (objs: Json[]) => {
      objs.find((o) => o.n === 'file1-renamed').n = 'file1-again';
    }, { trailerXxh64: trailerXxh64Of(edited) });
    fs.writeFileSync(file, stale);
    assert.deepEqual(manifestProblems(file, { ...sc, manifestXxh64: undefined }), ['checksum mismatch (damaged)']);
  } finally {
    fs.writeFileSync(file, original);
  }
});
