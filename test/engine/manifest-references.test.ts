// Manifest version 2 across a chain (docs/design/manifest-v2.md): an unchanged directory's child lines are a
// reference to the manifest that stores them, one hop deep whatever the chain's length; a changed directory is
// stored literally and later nights refer to that; an incremental on a version 1 base (media of earlier
// releases) stores everything literally; restore, ls and verify read through the references.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { encodeTrailer } from '../../src/core/manifest.js';
import { xxh64 } from '../../src/native/xxh.js';
import { readBlocks } from '../helpers/manifest-read.js';
import { makeScratchDir } from '../helpers/scratch.js';
import { apiBackup, chainArchives, cliRestore, gnuTarRestoreChain, HOST, show, StepClock, volumeDir, xenbackup } from './engine-fixtures.js';
import type { Sidecar } from '../../src/medium/sidecar.js';

const VOLUME = 'dom/refs';

function makeTree(root: string, dirs: number, files: number): void {
  for (let d = 0; d < dirs; d++) {
    const dir = path.join(root, `d${String(d).padStart(3, '0')}`);
    fs.mkdirSync(dir, { recursive: true });
    // Lines long enough that a directory's children are worth a reference.
    for (let f = 0; f < files; f++) fs.writeFileSync(path.join(dir, `file-${f}`), `file ${f} of directory ${d}\n`);
  }
}

/** The data lines of a manifest as `zstd -dc` prints them (version 2: reference lines unexpanded). */
function dataLines(medium: string, s: Sidecar): string[] {
  return execFileSync('zstd', ['-dcq', path.join(volumeDir(medium, VOLUME), s.manifest)], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

function refsOf(medium: string, s: Sidecar): Array<{ ref: string }> {
  return dataLines(medium, s).filter((l) => l.startsWith('{"ref":')).map((l) => JSON.parse(l) as { ref: string });
}

function manifestBytes(medium: string, s: Sidecar): number {
  return fs.statSync(path.join(volumeDir(medium, VOLUME), s.manifest)).size;
}

function entriesOf(medium: string, s: Sidecar): string[] {
  const out: string[] = [];
  for (const b of readBlocks(path.join(volumeDir(medium, VOLUME), s.manifest))) {
    out.push(`${b.dir.toString()}/ ${b.self.mtimeNs}`);
    for (const e of b.entries) out.push(`${b.dir.toString()}/${e.name.toString()} ${e.hash} ${e.archive}@${e.offset}`);
  }
  return out;
}

test('no-change nights refer to the full one hop deep; a changed directory is stored once and referred to after', async (t) => {
  const scratch = makeScratchDir(t, 'xb-refs-');
  const root = path.join(scratch, 'tree');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  makeTree(root, 60, 40);
  const clock = new StepClock();
  const full = (await apiBackup(root, medium, VOLUME, { clock })).sidecar;
  assert.equal(refsOf(medium, full).length, 0, 'a full stores every line');
  const nights: Sidecar[] = [];
  for (let i = 0; i < 3; i++) nights.push((await apiBackup(root, medium, VOLUME, { clock })).sidecar);
  for (const n of nights) {
    const refs = refsOf(medium, n);
    assert.equal(refs.length, 60, `every directory of ${n.id} with files is a reference`);
    assert.ok(refs.every((r) => r.ref === full.id), 'one hop: each names the full, never an incremental');
    assert.equal(entriesOf(medium, n).length, entriesOf(medium, full).length, 'the same entries, read through the references');
    assert.ok(manifestBytes(medium, n) * 4 < manifestBytes(medium, full), `a no-change night's manifest is small: ${manifestBytes(medium, n)} against ${manifestBytes(medium, full)} bytes`);
  }

  // One file of d007 changes, and every file of d008: the changed lines are stored in that night, the
  // unchanged runs around them referred to; the next night refers to d008's lines where they are now.
  fs.writeFileSync(path.join(root, 'd007', 'file-3'), 'changed\n');
  for (let f = 0; f < 40; f++) fs.writeFileSync(path.join(root, 'd008', `file-${f}`), `new content ${f}\n`);
  const changed = (await apiBackup(root, medium, VOLUME, { clock })).sidecar;
  const after = (await apiBackup(root, medium, VOLUME, { clock })).sidecar;
  assert.equal(refsOf(medium, changed).length, 58 + 2, 'the 58 unchanged directories, and the two runs around d007/file-3');
  assert.ok(refsOf(medium, changed).every((r) => r.ref === full.id));
  assert.ok(dataLines(medium, changed).some((l) => l.startsWith('{"n":"file-3"') && l.includes(`"a":"${changed.id}"`)), 'the changed line itself is stored');
  const holders = refsOf(medium, after).map((r) => r.ref);
  assert.equal(holders.filter((h) => h === changed.id).length, 1, "d008's lines: one reference to the night that stored them");
  assert.equal(holders.filter((h) => h === full.id).length, 59 + 1, 'the rest: one hop to the full');
  assert.ok(dataLines(medium, after).some((l) => l.startsWith('{"n":"file-3"')), 'a run shorter than a reference line is copied');

  // Each night restores as it was, by us (through the references) and by GNU tar.
  const ours = path.join(scratch, 'ours');
  const r = cliRestore(VOLUME, medium, ours);
  assert.equal(r.code, 0, show(r));
  assert.equal(fs.readFileSync(path.join(ours, 'd007', 'file-3'), 'utf8'), 'changed\n');
  assert.equal(fs.readFileSync(path.join(ours, 'd059', 'file-39'), 'utf8'), 'file 39 of directory 59\n');
  const asOfNight = path.join(scratch, 'night');
  const r2 = cliRestore(VOLUME, medium, asOfNight, ['--at', nights[2]!.finishedAt, 'd007/file-3']);
  assert.equal(r2.code, 0, show(r2));
  assert.equal(fs.readFileSync(path.join(asOfNight, 'd007', 'file-3'), 'utf8'), 'file 3 of directory 7\n');
  const gnu = path.join(scratch, 'gnu');
  gnuTarRestoreChain(chainArchives(medium, VOLUME, after), gnu);
  assert.equal(fs.readFileSync(path.join(gnu, 'd007', 'file-3'), 'utf8'), 'changed\n');

  // ls finds a directory through the index and a reference.
  const ls = xenbackup(['ls', VOLUME, 'd042', '--medium', medium, '--host', HOST]);
  assert.equal(ls.code, 0, show(ls));
  assert.equal(ls.stdout.trim().split('\n').length, 40);
  assert.match(ls.stdout, /file-39/);

  for (const depth of [['--quick'], []]) {
    const v = xenbackup(['verify', VOLUME, ...depth, '--medium', medium, '--host', HOST]);
    assert.equal(v.code, 0, `${depth.join('') || 'full'}: ${show(v)}`);
  }
});

test('an incremental on a version 1 manifest (an earlier release) stores everything literally and reads back', async (t) => {
  const scratch = makeScratchDir(t, 'xb-refs-v1-');
  const root = path.join(scratch, 'tree');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  makeTree(root, 5, 10);
  const clock = new StepClock();
  const full = (await apiBackup(root, medium, VOLUME, { clock })).sidecar;
  // The full's manifest as version 1 wrote it: header, the same lines, trailer; the sidecar's hash to match.
  const file = path.join(volumeDir(medium, VOLUME), full.manifest);
  const header = JSON.stringify({ xenbackup: 'manifest', version: 1, volume: VOLUME, backup: full.id, base: null, createdAt: full.startedAt });
  const lines = dataLines(medium, full);
  const body = Buffer.from([header, ...lines].join('\n') + '\n');
  const v1 = Buffer.concat([body, Buffer.from(encodeTrailer(lines.length, xxh64(body)) + '\n')]);
  fs.writeFileSync(file, v1);
  const sidecarFile = file.replace(/\.manifest$/, '.json');
  const sc = JSON.parse(fs.readFileSync(sidecarFile, 'utf8')) as Record<string, unknown>;
  sc.manifestXxh64 = xxh64(v1);
  fs.writeFileSync(sidecarFile, JSON.stringify(sc));

  fs.writeFileSync(path.join(root, 'd001', 'file-1'), 'changed\n');
  const incr = (await apiBackup(root, medium, VOLUME, { clock })).sidecar;
  assert.equal(incr.kind, 'incremental', 'the version 1 manifest is a usable base');
  assert.equal(incr.stats.filesRead, 1);
  assert.equal(refsOf(medium, incr).length, 0, 'nothing refers into a version 1 manifest');
  const again = (await apiBackup(root, medium, VOLUME, { clock })).sidecar;
  assert.ok(refsOf(medium, again).every((r) => r.ref === incr.id), 'the next night refers to the first version 2 manifest');

  const ours = path.join(scratch, 'ours');
  const r = cliRestore(VOLUME, medium, ours);
  assert.equal(r.code, 0, show(r));
  assert.equal(fs.readFileSync(path.join(ours, 'd001', 'file-1'), 'utf8'), 'changed\n');
  const old = path.join(scratch, 'old');
  const r2 = cliRestore(VOLUME, medium, old, ['--at', full.finishedAt]);
  assert.equal(r2.code, 0, show(r2));
  assert.equal(fs.readFileSync(path.join(old, 'd001', 'file-1'), 'utf8'), 'file 1 of directory 1\n');
  for (const depth of [['--quick'], []]) {
    const v = xenbackup(['verify', VOLUME, ...depth, '--medium', medium, '--host', HOST]);
    assert.equal(v.code, 0, `${depth.join('') || 'full'} verify reads both versions: ${show(v)}`);
  }
});
