/**
 * Prune on the remote target (repo/prune.ts over storage/ssh-storage.ts) against a real sshd on
 * 127.0.0.1: the dry run measures and removes nothing; a real prune keeps
 * what the rules say and the newest restore point; a deletion that fails
 * half way (a file made immutable with chattr +i, so rm -rf of its tree
 * fails on the remote side) stops after the sidecar went, so the backup is
 * no longer listed, the lock is released, and the next prune removes the
 * rest as debris.
 */
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { prepareMirror } from '../../src/engines/rsync/rsync-backup.js';
import { parseRemoteTarget } from '../../src/host/remote-target.js';
import { pruneVolumeLocked } from '../../src/repo/prune.js';
import { VolumeStore } from '../../src/repo/volume-store.js';
import { SshStorage } from '../../src/storage/ssh-storage.js';
import { createLogger, MemorySink } from '../../src/util/log.js';
import { makeScratchDir, type CleanupContext } from '../helpers/scratch.js';
import { ensureRunSshd, startSshd } from './sshd-fixture.js';

const HOST = 'test-host';
const VOLUME = 'web1/root';
const DAY = 86_400_000;

const cleanups: Array<() => unknown> = [];
const shared: CleanupContext = { after: (fn) => void cleanups.push(fn) };
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

test('remote prune: dry run, the rules and the newest kept, a deletion that fails half way leaves nothing listed and is finished by the next prune', async () => {
  ensureRunSshd(shared);
  const sshd = await startSshd(shared);
  // On the shared list, whose cleanups run newest first: the chattr -i below runs before the removal.
  const dir = makeScratchDir(shared, 'remote-prune');
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'shared'), 'in every tree\n'.repeat(1000));
  const remote = path.join(dir, 'remote');
  const sink = new MemorySink();
  const log = createLogger([sink.sink], 'debug');
  const storage = new SshStorage(parseRemoteTarget(`root@127.0.0.1:${remote}`), sshd.ssh, log);
  const store = new VolumeStore(storage, HOST, VOLUME);
  // Three nightly trees, a day apart.
  let clock = Date.UTC(2026, 10, 1, 3, 0, 0);
  const now = (): Date => new Date(clock);
  const ids: string[] = [];
  for (let night = 0; night < 3; night++) {
    fs.writeFileSync(path.join(src, 'nightly'), `night ${night}\n`.repeat(100));
    const sc = await (await prepareMirror({ medium: storage, sourceDir: src, host: HOST, volume: VOLUME, logger: log, now })).commit();
    ids.push(sc.id);
    clock += DAY;
  }
  const vdir = path.join(remote, HOST, VOLUME); // the volume's folder on the server, <path>/<host>/<domU>/<part>
  const names = (): string[] => fs.readdirSync(vdir).sort();
  const all = names();
  const rules = { ttlDays: 0, keepLast: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0 };

  const dry = await pruneVolumeLocked(store, rules, { dryRun: true, now: now(), logger: log });
  assert.deepEqual(dry.deleted.map((d) => d.id), [ids[1], ids[0]], 'newest first');
  assert.ok(dry.deleted.every((d) => d.bytes > 0 && d.bytes < 100_000), 'only what each tree holds alone (the shared file is a hardlink)');
  assert.deepEqual(dry.decision.keep.map((s) => s.id), [ids[2]]);
  assert.deepEqual(names(), all, 'a dry run removes nothing');

  // The oldest tree cannot be removed: rm -rf fails on an immutable file inside it.
  const stuck = path.join(vdir, `${ids[0]}.tree`, 'nightly');
  execFileSync('chattr', ['+i', stuck]);
  shared.after(() => {
    if (fs.existsSync(stuck)) execFileSync('chattr', ['-i', stuck], { stdio: 'ignore' });
  });
  const failed = await pruneVolumeLocked(store, rules, { dryRun: false, now: now(), logger: log });
  assert.deepEqual(failed.deleted.map((d) => d.id), [ids[1]]);
  assert.equal(failed.errors.length, 1);
  assert.match(failed.errors[0]!, new RegExp(`web1/root: removing root@127\\.0\\.0\\.1:.*/${ids[0]}\\.tree: .* failed: .*; stopped pruning this volume \\(1 backups left to delete\\)`));
  assert.deepEqual((await store.list()).map((s) => s.id), [ids[2]], 'the half-deleted backup is no longer listed: its sidecar went first');
  assert.ok(!names().includes('.backup.lock'), 'the lock was released');
  assert.ok(!names().includes(`${ids[0]}.tree.json`));

  execFileSync('chattr', ['-i', stuck]);
  const next = await pruneVolumeLocked(store, rules, { dryRun: false, now: now(), logger: log });
  assert.deepEqual(next.errors, []);
  assert.deepEqual(next.deleted, []);
  assert.ok(next.debris.includes(`${ids[0]}.tree`), next.debris.join(' '));
  assert.deepEqual(names(), [`${ids[2]}.tree`, `${ids[2]}.tree.json`, `${ids[2]}.tree.manifest`], 'the newest, complete, and nothing else');
  assert.equal(fs.readFileSync(path.join(vdir, `${ids[2]}.tree`, 'shared'), 'utf8'), 'in every tree\n'.repeat(1000));
});
