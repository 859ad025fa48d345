/**
 * Real `xenbackup run` processes against each other and against signals.
 * DOM0_ROOT holds 100 MiB of random (incompressible) data, so archiving it
 * takes seconds; the tests wait for the run's `.partial` archive to appear
 * on the medium (it is then mid-archive and holds the lock) and act then.
 * To make "the lock is held" a fact rather than a race, the holder is
 * frozen with SIGSTOP while the contenders run, and resumed with SIGCONT.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { lockHolder } from '../../src/host/lock.js';
import { parseMail, startSmtpServer } from '../report/smtp-fixture.js';
import { dom0Folder, FQDN, listing, makeRunEnv, mountsFrom, waitFor, writeIncompressible, type RunEnv } from './run-fixtures.js';

function bigEnv(t: { after(fn: () => unknown): void }): RunEnv {
  const env = makeRunEnv(t, { mediumMiB: 512 });
  writeIncompressible(path.join(env.root, 'big'), 2, 50);
  return env;
}

/** Whether a run is writing dom0/root's archive on the medium now. */
function archiving(env: RunEnv): boolean {
  const folder = dom0Folder(env.mediumDir);
  return fs.existsSync(folder) && fs.readdirSync(folder).some((n) => n.endsWith('.tar.zst.partial'));
}

test('two runs contend for the lock: the second exits 3 at once; with --lock-wait it waits, then runs; SIGTERM ends the wait', async (t) => {
  const env = bigEnv(t);
  const conf = env.writeConfig();
  const first = env.start(['run', '-c', conf]);
  await waitFor('the first run to be archiving', () => archiving(env));
  process.kill(first.pid, 'SIGSTOP');

  const second = await env.cli(['run', '-c', conf]);
  assert.equal(second.code, 3, second.stderr);
  assert.match(second.stderr, new RegExp(`ERROR another xenbackup run holds the lock ${env.lockDir}: pid ${first.pid} since `));
  assert.match(second.stderr, new RegExp(`outcome: \\[xenbackup\\] LOCKED ${FQDN.replace(/\./g, '\\.')}: another xenbackup run holds the lock`));
  assert.ok(!/exec: mount/.test(second.stderr), 'the loser did not touch the medium');
  assert.equal(first.child.exitCode, null, 'the holder is still there (stopped)');

  // SIGTERM while waiting ends the wait at once (the holder is frozen, so the lock cannot have come free)
  const impatient = env.start(['run', '-c', conf, '--lock-wait', '600']);
  await impatient.waitForStderr(new RegExp(`lock ${env.lockDir} held by pid ${first.pid}; waiting up to 600 s`));
  impatient.child.kill('SIGTERM');
  const gaveUp = await impatient.done;
  assert.equal(gaveUp.code, 1, gaveUp.stderr);
  assert.match(gaveUp.stderr, /ERROR interrupted by SIGTERM while waiting for the lock: .*; nothing was backed up/);
  assert.match(gaveUp.stderr, /outcome: \[xenbackup\] INTERRUPTED .*SIGTERM/);
  assert.equal(first.child.exitCode, null);

  const patient = env.start(['run', '-c', conf, '--lock-wait', '600']);
  await patient.waitForStderr(new RegExp(`lock ${env.lockDir} held by pid ${first.pid}; waiting up to 600 s`));
  process.kill(first.pid, 'SIGCONT');
  const a = await first.done;
  assert.equal(a.code, 0, a.stderr);
  const b = await patient.done;
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stderr, /dom0\/root: incremental backup/, 'it ran after the first one, on its backup');
  assert.equal(await lockHolder(env.lockDir), undefined);
  assert.deepEqual(env.mediumMounts(), []);
});

test('SIGTERM mid-archive: exit 1, every mount gone, nothing of it kept, the report says interrupted; the next run works', async (t) => {
  const smtp = await startSmtpServer();
  t.after(() => smtp.close());
  const env = bigEnv(t);
  const conf = env.writeConfig({ REPORT_WHEN: 'always', SMTP_URL: smtp.url, EMAIL_FROM: 'xenbackup@testhost.example.org', EMAIL_TO: 'admin@example.org' });
  const run = env.start(['run', '-c', conf]);
  await waitFor('the run to be archiving', () => archiving(env));
  run.child.kill('SIGTERM');
  const r = await run.done;
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /WARN  received SIGTERM: stopping after releasing snapshots and mounts/);
  assert.match(r.stderr, /ERROR dom0\/root: .*interrupted/);

  assert.deepEqual(mountsFrom(env.dir), [], `no mount below the test directory or of its loop devices; run:\n${r.stderr}`);
  assert.deepEqual(env.mediumMounts(), [], 'the medium is unmounted (checked in /proc/self/mountinfo)');
  assert.equal(await lockHolder(env.lockDir), undefined, 'the lock is free');

  assert.equal(smtp.mails.length, 1, r.stderr);
  const mail = parseMail(smtp.mails[0]!.raw);
  assert.match(mail.subject, /^\[xenbackup\] INTERRUPTED testhost\.example\.org: 0\/1 volumes ok, .*, SIGTERM$/);
  assert.match(mail.body, /Interrupted by SIGTERM before the run finished\./);
  assert.match(mail.body, /^dom0\/root +interrupted /m);

  await env.inspectMedium((mnt) => {
    assert.deepEqual(listing(dom0Folder(mnt)), [], `no archive, manifest, sidecar or .partial of the interrupted backup; run:\n${r.stderr}`);
  });

  const next = await env.cli(['run', '-c', conf]);
  assert.equal(next.code, 0, next.stderr);
  assert.match(next.stderr, /dom0\/root: full backup .* \(first backup of this volume\)/);
  assert.equal(smtp.mails.length, 2, next.stderr);
  assert.match(parseMail(smtp.mails[1]!.raw).subject, /^\[xenbackup\] OK testhost\.example\.org: 1\/1 volumes ok, 100 MiB/);
  await env.inspectMedium((mnt) => {
    const names = listing(dom0Folder(mnt));
    assert.equal(names.filter((n) => n.endsWith('.json')).length, 1, names.join(' '));
    assert.ok(!names.some((n) => n.endsWith('.partial')), names.join(' '));
  });
});

test('kill -9 mid-archive: the next run takes over the stale lock, removes the debris, and succeeds', async (t) => {
  const env = bigEnv(t);
  const conf = env.writeConfig();
  const killed = env.start(['run', '-c', conf]);
  await waitFor('the run to be archiving', () => archiving(env));
  killed.child.kill('SIGKILL');
  assert.equal((await killed.done).signal, 'SIGKILL');
  // what a killed run leaves: the medium mounted, the lock naming a dead pid, .partial files
  assert.deepEqual(env.mediumMounts(), [env.mediumDir]);
  assert.ok(listing(dom0Folder(env.mediumDir)).some((n) => n.endsWith('.partial')));

  const next = await env.cli(['run', '-c', conf]);
  assert.equal(next.code, 0, next.stderr);
  assert.match(next.stderr, new RegExp(`WARN  took over the stale lock ${env.lockDir}: pid ${killed.pid} \\(since .*\\) is no longer running`));
  assert.match(next.stderr, /already mounted on .*; using it and leaving it mounted/);
  assert.match(next.stderr, /WARN  dom0\/root: removed \d{8}T\d{6}Z\.full\.tar\.zst\.partial, left by an interrupted run/);
  const names = listing(dom0Folder(env.mediumDir));
  assert.ok(!names.some((n) => n.endsWith('.partial')), names.join(' '));
  assert.equal(names.filter((n) => n.endsWith('.json')).length, 1, names.join(' '));
  assert.equal(await lockHolder(env.lockDir), undefined);
});
