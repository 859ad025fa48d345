/**
 * Prune on rsync trees (the rsync engine's <id>.tree/ directories, each a
 * full copy whose unchanged files are hardlinks into the previous tree): a
 * deleted tree goes as a whole, sidecar first; the kept trees still hold
 * every file of their night (the hardlinks they share with deleted trees
 * survive); the bytes a deletion reports are what it frees (not the shared
 * files); and a prune stopped after the sidecar leaves a tree that is not
 * listed and is removed by the next prune. Real rsync.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeScratchDir } from '../helpers/scratch.js';
import { prepareMirror } from '../../src/engines/rsync/rsync-backup.js';
import { pruneVolume, sidecarName } from '../../src/repo/prune.js';
import type { Sidecar } from '../../src/medium/sidecar.js';
import { silentLogger } from '../../src/util/log.js';
import { DAY_MS, folderNames, HOST, put, recordDiff, recordTree, storeOf, type TreeRecord } from './prune-fixtures.js';

const VOLUME = 'files/srv';
const START = Date.UTC(2026, 3, 6, 12);
const TTL5 = { ttlDays: 5, keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0 };
const BIG = 256 * 1024;

async function mirrorNights(scratch: string, count: number): Promise<{ medium: string; trees: Sidecar[]; records: Map<string, TreeRecord> }> {
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  put(source, 'data/big.bin', 'b'.repeat(BIG)); // never changes: one inode shared by every tree
  const trees: Sidecar[] = [];
  const records = new Map<string, TreeRecord>();
  for (let n = 0; n < count; n++) {
    put(source, `log/night-${n}.log`, `night ${n}\n`);
    if (n > 0) fs.rmSync(path.join(source, `log/night-${n - 1}.log`));
    const record = recordTree(source);
    const at = new Date(START + n * DAY_MS);
    const m = await prepareMirror({ sourceDir: source, medium, host: HOST, volume: VOLUME, logger: silentLogger, now: () => at });
    const s = await m.commit();
    records.set(s.id, record);
    trees.push(s);
  }
  return { medium, trees, records };
}

test('rsync trees: deleted whole, sidecar first; kept trees keep their shared hardlinks; bytes are what is freed; a stopped prune leaves unlisted debris', async (t) => {
  const scratch = makeScratchDir(t, 'prune-rsync');
  const { medium, trees, records } = await mirrorNights(scratch, 10);
  const store = storeOf(medium, VOLUME);
  assert.equal(trees[0]!.engine, 'rsync');
  assert.equal(sidecarName(trees[0]!), `${trees[0]!.id}.tree.json`);
  const bigInode = fs.statSync(path.join(store.pathOf(trees[9]!.archive), 'data/big.bin')).ino;
  assert.equal(fs.statSync(path.join(store.pathOf(trees[0]!.archive), 'data/big.bin')).ino, bigInode, 'the trees share the unchanged file');

  // Stop the first deletion right after its sidecar went (as a crash would).
  const stopped = await pruneVolume(store, TTL5, {
    dryRun: false,
    now: new Date(START + 9 * DAY_MS + 3_600_000),
    afterStep: (step) => {
      if (step === 'sidecar-removed') throw new Error('power cut');
    },
  });
  const victim = trees[4]!; // nights 5..9 are within 5 days; 4 is the newest to go
  assert.match(stopped.errors.join('\n'), /power cut; stopped pruning this volume \(5 backups left to delete\)/);
  assert.ok(fs.existsSync(store.pathOf(victim.archive)), 'its tree is still there');
  assert.deepEqual((await store.list()).map((s) => s.id), trees.filter((s) => s !== victim).map((s) => s.id), 'but it is no longer a backup');

  const r = await pruneVolume(store, TTL5, { dryRun: false, now: new Date(START + 9 * DAY_MS + 3_600_000) });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.deleted.map((d) => d.id), trees.slice(0, 4).map((s) => s.id).reverse());
  assert.deepEqual(r.debris.sort(), [victim.archive, victim.manifest].sort());
  for (const d of r.deleted) assert.ok(d.bytes > 0 && d.bytes < BIG, `${d.id}: ${d.bytes} bytes freed, not counting the shared ${BIG}-byte file`);
  assert.deepEqual(
    folderNames(medium, VOLUME),
    trees.slice(5).flatMap((s) => [s.archive, s.manifest, sidecarName(s)]).sort(),
  );
  for (const s of trees.slice(5)) {
    assert.deepEqual(recordDiff(records.get(s.id)!, recordTree(store.pathOf(s.archive))), [], `tree ${s.id} is still whole`);
  }
  assert.equal(fs.statSync(path.join(store.pathOf(trees[5]!.archive), 'data/big.bin')).ino, bigInode);
});
