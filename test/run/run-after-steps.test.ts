/**
 * What a run does after its backups: prune by the config's rules (never
 * before the backups) and, with VERIFY_AFTER_RUN, verify the volumes it
 * backed up; both end up in the log and the report, and damage that verify
 * finds fails the run. Real medium (loop ext4), real runs.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { dom0Folder, makeRunEnv } from './run-fixtures.js';

const lines = (file: string): string[] => fs.readFileSync(file, 'utf8').split('\n');
const lastIndex = (ls: string[], re: RegExp): number => ls.reduce((found, l, i) => (re.test(l) ? i : found), -1);
const pause = (): Promise<void> => new Promise((r) => setTimeout(r, 1100)); // backup ids are per second

test('a run prunes after its backups and verifies with VERIFY_AFTER_RUN=full; damage found by verify fails the run', async (t) => {
  const env = makeRunEnv(t);
  // Every backup a full (chains of one); no age rule; keep the newest two.
  const conf = env.writeConfig({ VERIFY_AFTER_RUN: 'full', ARCHIVE_TTL_DAYS: '0', KEEP_LAST: '2', MAX_CHAIN_LENGTH: '1' });
  for (let i = 0; i < 3; i++) {
    const r = await env.cli(['run', '-c', conf]);
    assert.equal(r.code, 0, r.stderr);
    await pause();
  }
  const log = lines(env.logFile);
  const pruned = lastIndex(log, /prune dom0\/root: deleted 1 backup/);
  assert.ok(pruned > lastIndex(log, /dom0\/root: ok \(full\)/), 'the third run pruned the first backup, after backing up');
  assert.ok(lastIndex(log, /report: +dom0\/root: full verify of 2 backup\(s\).*all good/) > pruned, 'verify ran after prune and is in the report');

  await env.inspectMedium((mnt) => {
    const folder = dom0Folder(mnt);
    const sidecars = fs.readdirSync(folder).filter((n) => n.endsWith('.json'));
    assert.equal(sidecars.length, 2, sidecars.join(' '));
    const newest = fs.readdirSync(folder).filter((n) => n.endsWith('.tar.zst')).sort().pop()!;
    const file = path.join(folder, newest);
    const bytes = fs.readFileSync(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    fs.writeFileSync(file, bytes);
  });
  // The damaged backup is still kept (KEEP_LAST=2) after the next run: its verify must fail the run.
  const damaged = await env.cli(['run', '-c', conf]);
  assert.equal(damaged.code, 1, damaged.stderr);
  assert.match(damaged.stderr, /verify dom0\/root: .*\.tar\.zst/);
  assert.match(damaged.stderr, /outcome: \[xenbackup\] FAILED/);
});
