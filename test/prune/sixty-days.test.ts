/**
 * Issue 5 item 2: the old failure, tested away. backup-manager purged by age
 * alone; with the old tool's own settings (TTL 5 days, a full every week)
 * every week it deleted a full that the next days' incrementals needed.
 *
 * Here 60 nightly runs go through the real engine with an injected clock, on
 * a small real tree that changes a little every day, each followed by a
 * prune (TTL 5). After every prune, every restore point the policy promises
 * (each backup at most 5 days old) is restored with the real restore and
 * compared with a record of the tree as it was that day (content, mode,
 * mtime, link targets, deletions), and the medium holds exactly what those
 * promises need (so never more than the policy needs plus one chain). The
 * same nights run through backup-manager's age purge (on the ids only) for
 * comparison. The numbers go to the test's diagnostics for the closing note.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pruneVolume } from '../../src/repo/prune.js';
import type { Sidecar } from '../../src/medium/sidecar.js';
import { timeOfId } from '../../src/repo/volume-store.js';
import { backupAt, DAY_MS, folderBytes, memoryScratchDir, prng, put, recordDiff, recordTree, restoredRecord, storeOf, type TreeRecord } from './prune-fixtures.js';

const VOLUME = 'sim/root';
const TTL_DAYS = 5;
const DAYS = 60;
const FULL_EVERY_DAYS = 7;
// Noon UTC: the same calendar day in every time zone from -11 to +11.
const FIRST_NIGHT = Date.UTC(2026, 0, 3, 12, 0, 0);

/** A few dozen files in a few directories. */
function seedTree(root: string): void {
  for (let d = 0; d < 4; d++) for (let f = 0; f < 8; f++) put(root, `dir${d}/file${f}.txt`, `dir ${d} file ${f}\n`.repeat(1 + f));
  fs.symlinkSync('dir0/file0.txt', path.join(root, 'link'));
  fs.mkdirSync(path.join(root, 'empty'));
}

/** Day `day`'s small changes: two edits, one new file, every other day a deletion, every fifth a rename, a link moved now and then. */
function changeTree(root: string, day: number, random: () => number): void {
  // regular files only, not through the symlink; listed afresh for each pick as the day's changes move things
  const files = (): string[] => [...recordTree(root)].filter(([, v]) => v.startsWith('file ')).map(([k]) => k);
  const pick = (): string => {
    const all = files();
    return all[Math.floor(random() * all.length)]!;
  };
  for (let i = 0; i < 2; i++) fs.appendFileSync(path.join(root, pick()), `changed on day ${day}\n`);
  put(root, `dir${day % 4}/new-${day}.txt`, `born on day ${day}\n`);
  if (day % 2 === 1) fs.rmSync(path.join(root, pick()), { force: true });
  if (day % 5 === 4) {
    const from = pick();
    fs.renameSync(path.join(root, from), path.join(root, `dir${(day + 1) % 4}`, `renamed-${day}.txt`));
  }
  if (day % 3 === 0) {
    fs.rmSync(path.join(root, 'link'), { force: true });
    fs.symlinkSync(`dir${day % 4}`, path.join(root, 'link'));
  }
  fs.chmodSync(path.join(root, pick()), day % 2 ? 0o600 : 0o644);
}

/** Independently of core/retention: each backup at most TTL old, and what each of those needs. */
function expectedOnMedium(backups: Sidecar[], now: number): { promised: Sidecar[]; needed: Set<string> } {
  const byId = new Map(backups.map((b) => [b.id, b]));
  const promised = backups.filter((b) => now - timeOfId(b.id).getTime() <= TTL_DAYS * DAY_MS);
  const needed = new Set<string>();
  for (const p of promised) {
    for (let cur: Sidecar | undefined = p; cur; cur = cur.base ? byId.get(cur.base) : undefined) {
      needed.add(cur.id);
      if (cur.kind === 'full') break;
    }
  }
  return { promised, needed };
}

test(`${DAYS} nightly runs, TTL ${TTL_DAYS}, a full every ${FULL_EVERY_DAYS} days, pruned after each: every promised restore point restores exactly`, async (t) => {
  const scratch = memoryScratchDir(t, 'prune-sixty');
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  seedTree(source);
  const random = prng(5);
  const dayRecords = new Map<string, TreeRecord>(); // backup id -> the tree that night
  const rules = { ttlDays: TTL_DAYS, keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0 };

  let promisedTotal = 0;
  let restoredTotal = 0;
  let peakBytesBeforePrune = 0;
  let peakBytesAfterPrune = 0;
  let peakBackupsBeforePrune = 0;
  let peakBackupsAfterPrune = 0;
  let longestChain = 0;
  let deletedTotal = 0;
  // backup-manager's purge on the same nights: what it keeps, and how many of its restore points could be restored
  const oldTool: Sidecar[] = [];
  let oldOffered = 0;
  let oldRestorable = 0;

  for (let day = 0; day < DAYS; day++) {
    if (day > 0) changeTree(source, day, random);
    const night = FIRST_NIGHT + day * DAY_MS;
    const record = recordTree(source);
    const sidecar = await backupAt(source, medium, VOLUME, new Date(night), { fullIntervalDays: FULL_EVERY_DAYS });
    dayRecords.set(sidecar.id, record);
    assert.equal(sidecar.kind, day % FULL_EVERY_DAYS === 0 ? 'full' : 'incremental', `night ${day}: ${sidecar.id}`);
    const store = storeOf(medium, VOLUME);
    peakBytesBeforePrune = Math.max(peakBytesBeforePrune, folderBytes(medium, VOLUME));
    peakBackupsBeforePrune = Math.max(peakBackupsBeforePrune, (await store.list()).length);

    const pruneAt = night + 3_600_000; // an hour after the backup started
    const result = await pruneVolume(store, rules, { dryRun: false, now: new Date(pruneAt) });
    assert.deepEqual(result.errors, [], `night ${day}`);
    deletedTotal += result.deleted.length;

    const onMedium = await store.list();
    const { promised, needed } = expectedOnMedium(onMedium, pruneAt);
    assert.deepEqual(
      onMedium.map((b) => b.id),
      [...needed].sort(),
      `night ${day}: the medium holds exactly what the promised restore points need`,
    );
    const chains = new Map<string, number>();
    for (const b of onMedium) chains.set(b.chain, (chains.get(b.chain) ?? 0) + 1);
    longestChain = Math.max(longestChain, ...chains.values());
    assert.ok(onMedium.length <= promised.length + FULL_EVERY_DAYS, `night ${day}: ${onMedium.length} backups held for ${promised.length} promised: more than the policy needs plus one chain`);
    assert.deepEqual(
      fs.readdirSync(store.dir).sort(),
      onMedium.flatMap((b) => [b.archive, b.manifest, `${b.id}.${b.kind === 'full' ? 'full' : 'incr'}.json`]).sort(),
      `night ${day}: no files but those of the listed backups`,
    );
    peakBytesAfterPrune = Math.max(peakBytesAfterPrune, folderBytes(medium, VOLUME));
    peakBackupsAfterPrune = Math.max(peakBackupsAfterPrune, onMedium.length);

    for (const p of promised) {
      promisedTotal += 1;
      const got = await restoredRecord(medium, VOLUME, p.id, scratch);
      const diff = recordDiff(dayRecords.get(p.id)!, got);
      assert.deepEqual(diff, [], `night ${day}: restore point ${p.id} differs from its night's tree`);
      restoredTotal += 1;
    }

    // backup-manager: delete every archive older than the TTL, whatever needs it
    oldTool.push(sidecar);
    const oldKept = oldTool.filter((b) => pruneAt - timeOfId(b.id).getTime() <= TTL_DAYS * DAY_MS);
    oldTool.splice(0, oldTool.length, ...oldKept);
    const oldIds = new Set(oldKept.map((b) => b.id));
    for (const b of oldKept) {
      oldOffered += 1;
      if (oldIds.has(b.chain)) oldRestorable += 1;
    }
  }

  assert.equal(restoredTotal, promisedTotal);
  assert.ok(oldRestorable < oldOffered, 'the age purge breaks restore points (else this test proves nothing)');
  const numbers = {
    nights: DAYS,
    ttlDays: TTL_DAYS,
    fullEveryDays: FULL_EVERY_DAYS,
    restorePointsPromised: promisedTotal,
    restorePointsRestoredExactly: restoredTotal,
    backupsDeleted: deletedTotal,
    peakBackupsAfterPrune,
    peakBackupsBeforePrune,
    peakBytesAfterPrune,
    peakBytesBeforePrune,
    longestChainHeld: longestChain,
    oldAgePurge: { restorePointsOffered: oldOffered, restorable: oldRestorable, broken: oldOffered - oldRestorable },
  };
  t.diagnostic(`sixty-day simulation: ${JSON.stringify(numbers)}`);
});
