/**
 * repo/prune.ts on real backups made by the engine: a deleted backup loses
 * its sidecar, archive and manifest together; a dry run deletes nothing; a
 * prune killed (SIGKILL, a real child process) between the sidecar and the
 * archive leaves debris that `list` does not show and the next prune
 * removes; a failed deletion stops before any base of what is left; a
 * volume whose runs failed keeps its last good chain, which still restores;
 * a damaged sidecar stops the volume's prune.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeScratchDir, withLoopFs } from '../helpers/scratch.js';
import { xenbackup, show } from '../engine/engine-fixtures.js';
import { backupFiles, pruneVolume, pruneVolumeLocked, type PruneStep } from '../../src/repo/prune.js';
import { VOLUME_LOCK_NAME } from '../../src/repo/volume-lock.js';
import { createLogger, MemorySink } from '../../src/util/log.js';
import type { Sidecar } from '../../src/medium/sidecar.js';
import type { Compression } from '../../src/engines/compression.js';
import { backupAt, DAY_MS, folderNames, HOST, put, recordDiff, recordTree, restoredRecord, storeOf, type TreeRecord } from './prune-fixtures.js';

const VOLUME = 'web1/root';
const START = Date.UTC(2026, 2, 2, 12); // noon UTC
const TTL5 = { ttlDays: 5, keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0 };
const CRASH_CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crash-child.js');

interface Nights {
  source: string;
  medium: string;
  backups: Sidecar[];
  trees: Map<string, TreeRecord>;
}

/** `count` nightly backups from START (a full every 7), the tree changing a little each night. */
async function nights(scratch: string, count: number, compression: Compression = 'none', medium = path.join(scratch, 'medium')): Promise<Nights> {
  const source = path.join(scratch, 'source');
  fs.mkdirSync(medium, { recursive: true });
  const backups: Sidecar[] = [];
  const trees = new Map<string, TreeRecord>();
  for (let n = 0; n < count; n++) {
    put(source, `etc/night-${n}`, `night ${n}\n`);
    put(source, 'var/log/messages', `line ${n}\n`.repeat(n + 1));
    if (n > 1) fs.rmSync(path.join(source, `etc/night-${n - 2}`));
    const record = recordTree(source);
    const s = await backupAt(source, medium, VOLUME, new Date(START + n * DAY_MS), { compression });
    trees.set(s.id, record);
    backups.push(s);
  }
  return { source, medium, backups, trees };
}

const idsOf = (bs: Sidecar[]): string[] => bs.map((b) => b.id);
const sidecarName = (s: Sidecar): string => `${s.id}.${s.kind === 'full' ? 'full' : 'incr'}.json`;
const pruneAt = (night: number): Date => new Date(START + night * DAY_MS + 3_600_000);

test('deleting a backup removes its sidecar first, then its archive and manifest; what stays restores', async (t) => {
  const scratch = makeScratchDir(t, 'prune-delete');
  const { medium, backups, trees } = await nights(scratch, 10, 'zstd'); // fulls on nights 0 and 7
  const store = storeOf(medium, VOLUME);
  const seen: string[] = [];
  const r = await pruneVolume(store, TTL5, {
    dryRun: false,
    now: pruneAt(9 + 3), // nights 7.. are within 5 days
    afterStep: (step: PruneStep, s: Sidecar) => {
      const present = (name: string): string => (fs.existsSync(store.pathOf(name)) ? '+' : '-');
      seen.push(`${s.id} ${step}: sidecar${present(sidecarName(s))} archive${present(s.archive)} manifest${present(s.manifest)}`);
    },
  });
  assert.deepEqual(r.errors, []);
  assert.deepEqual(idsOf(await store.list()), idsOf(backups.slice(7)));
  assert.deepEqual(r.deleted.map((d) => d.id), idsOf(backups.slice(0, 7)).reverse(), 'newest first');
  for (const d of r.deleted) assert.match(d.files[1]!, /\.(full|incr)\.tar\.zst$/);
  assert.deepEqual(seen.slice(0, 3), [
    `${backups[6]!.id} sidecar-removed: sidecar- archive+ manifest+`,
    `${backups[6]!.id} archive-removed: sidecar- archive- manifest+`,
    `${backups[6]!.id} manifest-removed: sidecar- archive- manifest-`,
  ]);
  assert.deepEqual(folderNames(medium, VOLUME), backups.slice(7).flatMap(backupFiles).sort(), 'nothing of the deleted backups is left');
  const freed = r.deleted.reduce((n, d) => n + d.bytes, 0);
  assert.ok(freed > 0);
  for (const b of backups.slice(7)) assert.deepEqual(recordDiff(trees.get(b.id)!, await restoredRecord(medium, VOLUME, b.id, scratch)), [], b.id);
});

test('a dry run deletes nothing and names exactly what the real prune then deletes', async (t) => {
  const scratch = makeScratchDir(t, 'prune-dry');
  const { medium } = await nights(scratch, 9);
  const store = storeOf(medium, VOLUME);
  const before = folderNames(medium, VOLUME).map((n) => `${n} ${fs.statSync(store.pathOf(n)).mtimeMs}`);
  const dry = await pruneVolume(store, TTL5, { dryRun: true, now: pruneAt(12) });
  assert.deepEqual(folderNames(medium, VOLUME).map((n) => `${n} ${fs.statSync(store.pathOf(n)).mtimeMs}`), before);
  assert.ok(dry.deleted.length > 0);
  assert.deepEqual(dry.debris, [], 'the files of what a dry run would delete are not debris');
  const cli = xenbackup(['prune', '--medium', medium, '--host', HOST, '--ttl', '5', '--dry-run']);
  assert.equal(cli.code, 0, show(cli));
  assert.deepEqual(folderNames(medium, VOLUME).map((n) => `${n} ${fs.statSync(store.pathOf(n)).mtimeMs}`), before, 'the CLI dry run neither');
  const real = await pruneVolume(store, TTL5, { dryRun: false, now: pruneAt(12) });
  assert.deepEqual(real.deleted, dry.deleted);
});

test('a prune killed between sidecar and archive leaves debris that list ignores and the next prune removes', async (t) => {
  const scratch = makeScratchDir(t, 'prune-crash');
  const { medium, backups, trees } = await nights(scratch, 10, 'zstd');
  const victim = backups[6]!; // the newest to go: deleted first
  const child = spawnSync(process.execPath, [CRASH_CHILD, medium, HOST, VOLUME, pruneAt(12).toISOString(), '5', 'sidecar-removed'], { encoding: 'utf8', env: { ...process.env, XENBACKUP_CRASH_CHILD: '1' } });
  assert.equal(child.signal, 'SIGKILL', `the child died where it was told to:\n${child.stdout}${child.stderr}`);
  const names = folderNames(medium, VOLUME);
  assert.ok(!names.includes(sidecarName(victim)), 'its sidecar is gone');
  assert.ok(names.includes(victim.archive) && names.includes(victim.manifest), 'its archive and manifest are still there');

  // Nothing that looks complete but is not: list shows every backup that has a sidecar, and each restores.
  const listed = xenbackup(['list', VOLUME, '--medium', medium, '--host', HOST, '--json']);
  assert.equal(listed.code, 0, show(listed));
  const shown = (JSON.parse(listed.stdout) as Array<{ backups: Array<{ id: string; restorable: boolean }> }>)[0]!.backups;
  assert.deepEqual(shown.map((b) => b.id), idsOf(backups.filter((b) => b !== victim)));
  assert.ok(shown.every((b) => b.restorable));
  for (const b of [backups[5]!, backups[9]!]) assert.deepEqual(recordDiff(trees.get(b.id)!, await restoredRecord(medium, VOLUME, b.id, scratch)), [], b.id);

  assert.ok(folderNames(medium, VOLUME).includes(VOLUME_LOCK_NAME), 'the dead prune\'s volume lock is still there');
  const sink = new MemorySink();
  const again = await pruneVolumeLocked(storeOf(medium, VOLUME), TTL5, { dryRun: false, now: pruneAt(12), logger: createLogger([sink.sink]) });
  assert.deepEqual(again.errors, []);
  assert.match(sink.records.map((r) => r.message).join('\n'), /taking over .*\.backup\.lock from pid \d+ .*no longer running/);
  assert.deepEqual(again.debris.sort(), [victim.archive, victim.manifest].sort());
  assert.deepEqual(folderNames(medium, VOLUME), backups.slice(7).flatMap(backupFiles).sort());
});

test('prune leaves unclaimed files younger than the newest backup alone: they may be a backup being committed', async (t) => {
  const scratch = makeScratchDir(t, 'prune-young-debris');
  const { medium, backups } = await nights(scratch, 3);
  const store = storeOf(medium, VOLUME);
  const committing = `${backups[2]!.id.replace(/^2026/, '2027')}.incr.tar`; // newer than every sidecar
  fs.writeFileSync(store.pathOf(committing), 'being renamed into place');
  fs.writeFileSync(store.pathOf(`${backups[2]!.id.slice(0, 9)}000001Z.incr.tar.partial`), 'being written');
  const r = await pruneVolume(store, TTL5, { dryRun: false, now: pruneAt(3) });
  assert.deepEqual(r.debris, []);
  assert.ok(fs.existsSync(store.pathOf(committing)));
  assert.equal(folderNames(medium, VOLUME).length, 3 * 3 + 2);
});

test('a deletion that fails stops the volume\'s prune before any base of what is left', async (t) => {
  const scratch = makeScratchDir(t, 'prune-fail');
  const ext4 = withLoopFs(t, { fsType: 'ext4', sizeMiB: 32 }); // for chattr, whatever /tmp is
  const { medium, backups } = await nights(scratch, 10, 'none', ext4.dir);
  const store = storeOf(medium, VOLUME);
  const stuck = backups[4]!;
  // An immutable archive (an ext4 attribute): unlink fails with EPERM even for root.
  execFileSync('chattr', ['+i', store.pathOf(stuck.archive)]);
  let r: Awaited<ReturnType<typeof pruneVolume>>;
  try {
    r = await pruneVolume(store, TTL5, { dryRun: false, now: pruneAt(12) });
  } finally {
    execFileSync('chattr', ['-i', store.pathOf(stuck.archive)]); // before the scratch dir is removed
  }
  assert.equal(r.errors.length, 1, r.errors.join('\n'));
  assert.match(r.errors[0]!, new RegExp(`^web1/root: removing .*${stuck.archive}: .*; stopped pruning this volume \\(5 backups left to delete\\)$`));
  assert.deepEqual(r.deleted.map((d) => d.id), [backups[6]!.id, backups[5]!.id]);
  const left = await store.list();
  assert.deepEqual(idsOf(left), idsOf([...backups.slice(0, 4), ...backups.slice(7)]), 'its own sidecar went first, the older ones stay whole');
  const listed = JSON.parse(xenbackup(['list', VOLUME, '--medium', medium, '--host', HOST, '--json']).stdout) as Array<{ backups: Array<{ restorable: boolean }> }>;
  assert.ok(listed[0]!.backups.every((b) => b.restorable), 'every listed backup can still be restored');
});

test('a volume whose runs failed keeps its last good chain, which restores, however long the failures last', async (t) => {
  const scratch = makeScratchDir(t, 'prune-failed-runs');
  const { medium, backups, trees } = await nights(scratch, 10); // then nothing: the runs fail
  const store = storeOf(medium, VOLUME);
  for (const daysLater of [3, 10, 60, 365]) {
    const r = await pruneVolume(store, TTL5, { dryRun: false, now: pruneAt(9 + daysLater) });
    assert.deepEqual(r.errors, []);
    assert.deepEqual(idsOf(await store.list()), idsOf(backups.slice(7)), `${daysLater} days after the last good run`);
  }
  const last = backups[9]!;
  assert.deepEqual(recordDiff(trees.get(last.id)!, await restoredRecord(medium, VOLUME, last.id, scratch)), []);
  const item = (await pruneVolume(store, TTL5, { dryRun: true, now: pruneAt(400) })).decision.items.find((i) => i.backup.id === last.id)!;
  assert.deepEqual(item.reasons, ['the newest complete restore point (never deleted)']);
});

test('a damaged sidecar stops the prune of its volume: no deletion while we cannot tell which files it claims', async (t) => {
  const scratch = makeScratchDir(t, 'prune-bad-sidecar');
  const { medium, backups } = await nights(scratch, 9);
  const store = storeOf(medium, VOLUME);
  fs.writeFileSync(store.pathOf(sidecarName(backups[8]!)), '{"format": "xenbackup-backup", "trunc');
  const before = folderNames(medium, VOLUME);
  const r = await pruneVolume(store, TTL5, { dryRun: false, now: pruneAt(20) });
  assert.equal(r.deleted.length, 0);
  assert.match(r.errors.join('\n'), /not valid JSON/);
  assert.match(r.errors.join('\n'), /not pruned while a sidecar cannot be read/);
  assert.deepEqual(folderNames(medium, VOLUME), before);
});
