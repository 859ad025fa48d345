/**
 * Issue 5 item 3 on rsync trees (item 4): a tree is verified against the
 * manifest written at backup time. Good trees (the small tree, and the
 * torture tree with devices, odd names, hardlinks and sparse files) verify
 * without a false alarm; a changed byte (mtime put back), a deleted file, a
 * stray file, a changed mode and a missing tree are each reported, naming
 * the entry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { lutimesNs } from '../../src/native/xbfs.js';
import { prepareMirror } from '../../src/engines/rsync/rsync-backup.js';
import type { Sidecar } from '../../src/medium/sidecar.js';
import { verifyVolume, type VolumeVerification } from '../../src/engines/verify.js';
import { makeScratchDir, type CleanupContext } from '../helpers/scratch.js';
import { buildTortureTree } from '../helpers/torture-tree.js';
import { memoryLogger, put, StepClock, volumeDir } from '../engine/engine-fixtures.js';
import { buildTree, HOST, showResult, TREE } from './verify-fixtures.js';

async function mirror(source: string, medium: string, volume: string, clock: StepClock): Promise<Sidecar> {
  const { log } = memoryLogger();
  const p = await prepareMirror({ sourceDir: source, medium, host: HOST, volume, logger: log, now: clock.now });
  return p.commit();
}

function verify(medium: string, volume: string, depth: 'quick' | 'full'): Promise<VolumeVerification> {
  const { log } = memoryLogger();
  return verifyVolume({ medium, host: HOST, volume, depth, logger: log });
}

async function twoTrees(t: CleanupContext): Promise<{ source: string; medium: string; dir: string; trees: Sidecar[] }> {
  const scratch = makeScratchDir(t, 'verify-rsync');
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  buildTree(source);
  const clock = new StepClock();
  const first = await mirror(source, medium, 'vm/rs', clock);
  put(source, TREE.changed, 'changed\n');
  fs.rmSync(path.join(source, 'etc/conf5'));
  const second = await mirror(source, medium, 'vm/rs', clock);
  return { source, medium, dir: volumeDir(medium, 'vm/rs'), trees: [first, second] };
}

test('rsync trees verify against their manifests without a false alarm', { timeout: 60_000 }, async (t) => {
  const { medium } = await twoTrees(t);
  for (const depth of ['quick', 'full'] as const) {
    const r = await verify(medium, 'vm/rs', depth);
    assert.deepEqual(r.problems, [], showResult(r));
    assert.equal(r.backups, 2);
  }
  // The torture tree: devices, fifos, odd names, long paths, hardlinks, xattrs, ACLs, sparse files.
  const scratch = makeScratchDir(t, 'verify-rsync-torture');
  const source = path.join(scratch, 'source');
  fs.mkdirSync(source);
  await buildTortureTree(source, { bigFileSize: 1 << 20, sparseApparentSize: 64 << 20, socket: true });
  const tm = path.join(scratch, 'medium');
  await mirror(source, tm, 'tt/root', new StepClock());
  const r = await verify(tm, 'tt/root', 'full');
  assert.deepEqual(r.problems, [], showResult(r));
});

test('damage to an rsync tree is reported, naming the entry', { timeout: 60_000 }, async (t) => {
  const { medium, dir, trees } = await twoTrees(t);
  const tree = path.join(dir, trees[1]!.archive);
  const expectOne = async (pattern: RegExp, member: string): Promise<void> => {
    const r = await verify(medium, 'vm/rs', 'full');
    const mine = r.problems.filter((p) => p.file === tree);
    assert.equal(mine.length, 1, showResult(r));
    assert.match(mine[0]!.what, pattern, showResult(r));
    assert.equal(mine[0]!.member, member, showResult(r));
  };

  // One byte changed in place, the mtime put back: only the content check can tell.
  const changed = path.join(tree, TREE.changed);
  const st = fs.statSync(changed, { bigint: true });
  const bytes = fs.readFileSync(changed);
  fs.writeFileSync(changed, Buffer.concat([Buffer.from('C'), bytes.subarray(1)]));
  lutimesNs(Buffer.from(changed), st.atimeNs, st.mtimeNs);
  await expectOne(/1 member\(s\) do not match the manifest, the first: etc\/conf3: content xxh64 \w+, the manifest says/, TREE.changed);
  fs.writeFileSync(changed, bytes);
  lutimesNs(Buffer.from(changed), st.atimeNs, st.mtimeNs);

  // Changes inside etc/ move its mtime; it is put back so that only the entry itself differs.
  const etc = Buffer.from(path.join(tree, 'etc'));
  const etcTime = fs.statSync(etc, { bigint: true }).mtimeNs;
  const inEtc = (change: () => void): void => {
    change();
    lutimesNs(etc, etcTime, etcTime);
  };
  const victim = path.join(tree, 'etc/conf1');
  const saved = fs.readFileSync(victim);
  const savedSt = fs.statSync(victim, { bigint: true });
  inEtc(() => fs.rmSync(victim));
  await expectOne(/etc\/conf1: missing from the tree/, 'etc/conf1');
  inEtc(() => fs.writeFileSync(victim, saved));
  lutimesNs(Buffer.from(victim), savedSt.atimeNs, savedSt.mtimeNs);

  inEtc(() => fs.writeFileSync(path.join(tree, 'etc/stray'), 'not backed up'));
  await expectOne(/etc\/stray: in the tree but not in the manifest/, 'etc/stray');
  inEtc(() => fs.rmSync(path.join(tree, 'etc/stray')));
  inEtc(() => fs.mkdirSync(path.join(tree, 'etc/stray-dir')));
  await expectOne(/etc\/stray-dir: directory in the tree but not in the manifest/, 'etc/stray-dir');
  inEtc(() => fs.rmdirSync(path.join(tree, 'etc/stray-dir')));

  fs.chmodSync(path.join(tree, 'etc/conf2'), 0o600);
  await expectOne(/etc\/conf2: differs from the manifest: mode 600 \(expected 644\)/, 'etc/conf2');
  fs.chmodSync(path.join(tree, 'etc/conf2'), 0o644);
  assert.deepEqual((await verify(medium, 'vm/rs', 'full')).problems, [], 'all put back');

  fs.renameSync(tree, tree + '.away');
  try {
    const r = await verify(medium, 'vm/rs', 'quick');
    assert.deepEqual(r.problems.map((p) => [p.file, p.what]), [[tree, 'missing (the rsync tree of this backup)']]);
  } finally {
    fs.renameSync(tree + '.away', tree);
  }
});
