/**
 * A volume's folder, its lock, the backup skeleton and prune, over the
 * in-memory storage (src/storage/memory-storage.ts). This is a fake by
 * design: these rules are the core's and must hold on any storage, also on
 * one without rename (an object store, which cannot run here), so the same
 * tests run with rename and without. The real storages are held to the
 * same behaviour by test/storage/conformance.ts.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { backupFileNames } from '../../src/medium/layout.js';
import { sidecarText, type TarSidecar } from '../../src/medium/sidecar.js';
import { MediumDamage } from '../../src/medium/medium-error.js';
import { prepareTwoPhase } from '../../src/engines/two-phase.js';
import { pruneVolume, pruneVolumeLocked, type PruneStep } from '../../src/repo/prune.js';
import { VolumeBusyError } from '../../src/repo/volume-lock.js';
import { backupIdFor, VolumeStore } from '../../src/repo/volume-store.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { silentLogger } from '../../src/util/log.js';

const HOST = 'host1';
const VOLUME = 'web1/root';
const FOLDER = [HOST, 'web1', 'root'];
const DAY = 86_400_000;

function tarSidecar(id: string, kind: 'full' | 'incremental', base: string | null, chain: string): TarSidecar {
  const names = backupFileNames(id, kind, 'tar', 'none');
  const stats = { entries: 1, stored: 1, unchanged: 0, deleted: 0, filesRead: 1, bytesRead: 4, sourceBytes: 4 };
  return {
    format: 'xenbackup-backup',
    version: 1,
    volume: VOLUME,
    host: HOST,
    id,
    kind,
    base,
    chain,
    engine: 'tar',
    compression: 'none',
    archive: names.archive,
    manifest: names.manifest,
    startedAt: new Date().toISOString(),
    finishedAt: new Date().toISOString(),
    status: 'complete',
    stats,
    tarBytes: 10240,
    archiveBytes: 10240,
    archiveXxh64: '0123456789abcdef',
    manifestXxh64: 'fedcba9876543210',
    frames: [[0, 0]],
    warnings: [],
    unreadable: [],
  };
}

/** A backup as the skeleton leaves it on the storage: archive, manifest, then the sidecar. */
async function putBackup(storage: MemoryStorage, s: TarSidecar): Promise<void> {
  await storage.write(FOLDER, s.archive, Buffer.alloc(s.archiveBytes));
  await storage.write(FOLDER, s.manifest, Buffer.from('manifest\n'));
  await storage.write(FOLDER, `${s.manifest.replace(/\.manifest$/, '.json')}`, Buffer.from(sidecarText(s)));
}

/** Thirty nightly backups of one volume: a full every seventh night, incrementals between. */
async function nights(storage: MemoryStorage, start: number, count: number): Promise<TarSidecar[]> {
  const out: TarSidecar[] = [];
  for (let n = 0; n < count; n++) {
    const id = backupIdFor(new Date(start + n * DAY));
    const full = n % 7 === 0;
    const prev = out[out.length - 1];
    const s = tarSidecar(id, full ? 'full' : 'incremental', full ? null : prev!.id, full ? id : prev!.chain);
    await putBackup(storage, s);
    out.push(s);
  }
  return out;
}

for (const rename of [true, false]) {
  const kind = rename ? 'with rename' : 'without rename (an object store)';

  test(`two phases ${kind}: nothing counts before commit, the sidecar is written last, abort leaves nothing`, async () => {
    const storage = new MemoryStorage({ rename });
    const store = new VolumeStore(storage, HOST, VOLUME);
    let clock = Date.UTC(2026, 11, 1, 2, 0, 0);
    const now = (): Date => new Date((clock += 1000));
    const prepare = () =>
      prepareTwoPhase<TarSidecar, { note: string }>(store, silentLogger, now, async ({ id, backups }) => {
        const s = tarSidecar(id, backups.length ? 'incremental' : 'full', backups.at(-1)?.id ?? null, backups.at(-1)?.chain ?? id);
        for (const name of [s.archive, s.manifest]) await storage.write(FOLDER, storage.stagedName(name), Buffer.from(name));
        return {
          report: { note: 'written' },
          staged: {
            names: [s.archive, s.manifest],
            seal: async () => undefined,
            sidecar: () => s,
            discard: async () => undefined,
          },
        };
      });

    const first = await prepare();
    assert.equal(first.note, 'written');
    // Staged, not committed: no backup exists, and a second backup of the volume is refused.
    assert.deepEqual(await store.list(), []);
    await assert.rejects(prepare(), VolumeBusyError);
    const sidecar = await first.commit();
    assert.deepEqual((await store.list()).map((b) => b.id), [sidecar.id]);
    const names = (await storage.list(FOLDER))!.map((i) => i.name);
    assert.ok(names.includes(sidecar.archive) && names.includes(sidecar.manifest), names.join(' '));
    assert.ok(!names.some((n) => n.endsWith('.partial')), names.join(' '));
    assert.ok(!names.includes('.backup.lock'), 'the lock is released by commit');

    const second = await prepare();
    await second.abort();
    assert.deepEqual((await store.list()).map((b) => b.id), [sidecar.id], 'an aborted backup leaves no backup');
    assert.deepEqual((await storage.list(FOLDER))!.map((i) => i.name).sort(), names.sort(), 'and no file');
  });

  test(`debris ${kind}: files no sidecar claims are removed by the next backup, claimed ones never`, async () => {
    const storage = new MemoryStorage({ rename });
    const store = new VolumeStore(storage, HOST, VOLUME);
    const [full] = await nights(storage, Date.UTC(2026, 10, 1, 2), 1);
    // A backup that crashed before its sidecar: its archive and manifest are there, unclaimed.
    const crashed = tarSidecar(backupIdFor(new Date(Date.UTC(2026, 10, 2, 2))), 'incremental', full!.id, full!.id);
    await storage.write(FOLDER, crashed.archive, Buffer.from('half'));
    await storage.write(FOLDER, crashed.manifest, Buffer.from('half'));
    assert.deepEqual((await store.tidy()).removed, [crashed.archive, crashed.manifest].sort());
    assert.deepEqual((await store.list()).map((b) => b.id), [full!.id]);
    const left = (await storage.list(FOLDER))!.map((i) => i.name);
    assert.ok(left.includes(full!.archive) && left.includes(full!.manifest));
  });

  test(`prune ${kind}: newest first, each sidecar before its files, never what a kept backup needs`, async () => {
    const storage = new MemoryStorage({ rename });
    const store = new VolumeStore(storage, HOST, VOLUME);
    const start = Date.UTC(2026, 10, 1, 2);
    const all = await nights(storage, start, 30);
    const steps: Array<[PruneStep, string]> = [];
    const r = await pruneVolume(store, { ttlDays: 5, keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0 }, {
      dryRun: false,
      now: new Date(start + 29 * DAY + 3600_000),
      afterStep: (step, b) => steps.push([step, b.id]),
    });
    assert.deepEqual(r.errors, []);
    const kept = (await store.list()).map((b) => b.id);
    // The TTL keeps nights 25 to 29; nights 25 to 27 need the chain from the full of night 21.
    assert.deepEqual(kept, all.slice(21).map((b) => b.id));
    const deleted = r.deleted.map((d) => d.id);
    assert.deepEqual(deleted, [...deleted].sort().reverse(), 'newest first');
    assert.equal(steps.length, deleted.length * 3);
    for (let i = 0; i < steps.length; i += 3) {
      assert.deepEqual(steps.slice(i, i + 3), [['sidecar-removed', deleted[i / 3]], ['archive-removed', deleted[i / 3]], ['manifest-removed', deleted[i / 3]]]);
    }
    for (const b of all.slice(0, 21)) {
      const names = (await storage.list(FOLDER))!.map((i) => i.name);
      assert.ok(!names.includes(b.archive) && !names.includes(b.manifest), `${b.id} gone with its files`);
    }
  });
}

test('prune stops at a sidecar it cannot read and touches nothing of that folder', async () => {
  const storage = new MemoryStorage();
  const store = new VolumeStore(storage, HOST, VOLUME);
  const start = Date.UTC(2026, 10, 1, 2);
  await nights(storage, start, 10);
  storage.plant(FOLDER, '20261101T020000Z.full.json', 'file', Buffer.from('{"format": "not ours"'));
  const before = (await storage.list(FOLDER))!.map((i) => i.name);
  const r = await pruneVolumeLocked(store, { ttlDays: 2, keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0 }, { dryRun: false, now: new Date(start + 9 * DAY) });
  assert.ok(r.errors.some((e) => /not pruned while a sidecar cannot be read/.test(e)), r.errors.join('\n'));
  assert.deepEqual((await storage.list(FOLDER))!.map((i) => i.name), before);
});

test('a folder of the volume planted as a symlink is damage for list, backup and prune', async () => {
  const storage = new MemoryStorage();
  storage.plant([HOST], 'web1', 'symlink');
  const store = new VolumeStore(storage, HOST, VOLUME);
  await assert.rejects(store.list(), MediumDamage);
  await assert.rejects(store.ensure(), MediumDamage);
  await assert.rejects(pruneVolumeLocked(store, { ttlDays: 2, keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0 }, { dryRun: false, now: new Date() }), MediumDamage);
});

test('a damaged sidecar is reported, and the files of its backup are not taken for debris', async () => {
  const storage = new MemoryStorage();
  const store = new VolumeStore(storage, HOST, VOLUME);
  const [full, incr] = await nights(storage, Date.UTC(2026, 10, 1, 2), 2);
  // Bit rot in the incremental's sidecar: it no longer parses.
  storage.plant(FOLDER, `${incr!.manifest.replace(/\.manifest$/, '.json')}`, 'file', Buffer.from('{"format": "xenbackup-backup", "vers'));
  const problems: string[] = [];
  const { removed, backups } = await store.tidy((m) => problems.push(m));
  assert.deepEqual(removed, []);
  assert.deepEqual(backups.map((b) => b.id), [full!.id]);
  assert.equal(problems.length, 1, problems.join('\n'));
  const left = (await storage.list(FOLDER))!.map((i) => i.name);
  assert.ok(left.includes(incr!.archive) && left.includes(incr!.manifest), left.join(' '));
});
