/**
 * A failed step of a run is never an OK (issue 14 item 8): a real run on a
 * loop-mounted medium whose sweep of leftovers cannot list snapshots (lvs
 * cannot run) backs dom0 up, and still says FAILED in the mailed subject, in
 * the outcome line and in its exit code (1), with the sweep's error in the
 * body. The verdict rule itself: a kept volume whose snapshot would not
 * unmount or lvremove is a failed run too; unreadable files stay PARTIAL.
 *
 * host/exec.ts always appends the sbin directories to PATH, so a PATH
 * without /usr/sbin still finds lvs there: the test puts an `lvs` that
 * fails as a missing program does (exit 127) first on PATH instead.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatSubject } from '../../src/report/format.js';
import { exitCodeFor, outcomeOf, type RunReport, type VolumeReport } from '../../src/report/run-report.js';
import { parseMail, startSmtpServer } from '../report/smtp-fixture.js';
import { dom0Folder, makeRunEnv } from './run-fixtures.js';

test('a run whose sweep failed (lvs cannot run) reports FAILED and exits 1, and keeps its backup', async (t) => {
  const smtp = await startSmtpServer();
  t.after(() => smtp.close());
  const env = makeRunEnv(t);
  const bin = path.join(env.dir, 'bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'lvs'), '#!/bin/sh\necho "lvs: not found" >&2\nexit 127\n', { mode: 0o755 });
  const conf = env.writeConfig({ REPORT_WHEN: 'always', SMTP_URL: smtp.url, EMAIL_TO: 'admin@example.org' });
  const r = await env.cli(['run', '-c', conf], { PATH: `${bin}:${process.env.PATH ?? ''}` });
  assert.equal(r.code, 1, r.stderr);
  assert.equal(smtp.mails.length, 1);
  const mail = parseMail(smtp.mails[0]!.raw);
  assert.match(mail.subject, /^\[xenbackup\] FAILED testhost\.example\.org: 1\/1 volumes ok, .*, 1 error$/);
  assert.equal(mail.headers.get('x-xenbackup-outcome'), 'failed');
  assert.match(mail.body, /^xenbackup on testhost\.example\.org: FAILED\n/);
  assert.match(mail.body, /The run itself had 1 error \(see Errors\)\./);
  assert.match(mail.body, /^Errors:\n {2}run:\n {4}sweep of leftovers: could not clean up: listing snapshots tagged as ours: lvs .*127.*$/m);
  assert.doesNotMatch(mail.body, /Leftovers of an earlier run, removed/, 'a failure to list is not a removed leftover');
  assert.ok(r.stderr.includes(`outcome: ${mail.subject}\n`), r.stderr);
  assert.match(fs.readFileSync(env.logFile, 'utf8'), /xenbackup run finished: exit 1/);
  // the backup itself was made and kept: the failure is the sweep's, and it is not hidden
  await env.inspectMedium((mnt) => {
    assert.ok(fs.readdirSync(dom0Folder(mnt)).some((f) => f.endsWith('.full.json')), 'dom0/root was backed up');
  });
});

const base = (volumes: VolumeReport[], errors: string[] = []): RunReport => ({
  host: 'h.example.org',
  startedAt: new Date('2026-12-01T02:00:00Z'),
  finishedAt: new Date('2026-12-01T02:10:00Z'),
  volumes,
  warnings: [],
  errors,
  medium: null,
  interrupted: false,
  swept: [],
});
const vol = (status: VolumeReport['status'], errors: string[] = []): VolumeReport => ({ volume: 'web1/root', status, kind: 'full', files: 3, bytes: 100, sourceBytes: 300, durationMs: 1000, warnings: [], errors });

test('the verdict: any error of a step is FAILED; unreadable files of a partial volume are PARTIAL', () => {
  assert.equal(outcomeOf(base([vol('ok')])), 'ok');
  assert.equal(exitCodeFor(base([vol('ok')])), 0);
  // the archive was kept, but the snapshot was not released: the next run's sweep has work, the admin must know
  const lvremove = base([vol('ok', ['web1/root: lvremove failed: exit 5: Logical volume in use'])]);
  assert.equal(outcomeOf(lvremove), 'failed');
  assert.equal(exitCodeFor(lvremove), 1);
  assert.match(formatSubject(lvremove), /^\[xenbackup\] FAILED h\.example\.org: 1\/1 volumes ok, .*, 1 error$/);
  assert.equal(outcomeOf(base([vol('ok')], ['releasing the lock: EACCES'])), 'failed');
  assert.equal(outcomeOf(base([vol('partial', ['web1/root: etc/shadow: Permission denied'])])), 'partial');
  assert.equal(exitCodeFor(base([vol('partial', ['x'])])), 1);
  assert.equal(outcomeOf(base([vol('skipped', ['web1/root: not started: no device'])])), 'failed');
});
