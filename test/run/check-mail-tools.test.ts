/**
 * `check` tries what a run will need instead of reading the config alone
 * (issue 14 item 9): the SMTP server of SMTP_URL must answer EHLO within a
 * bounded time (a real server on 127.0.0.1 passes, a closed port is a
 * problem), and every program the config needs must be installed (a PATH
 * without one is a problem per program). `run --dry-run` finds the same
 * problems and exits 2 too, having touched nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { listing, makeRunEnv } from './run-fixtures.js';
import { startSmtpServer } from '../report/smtp-fixture.js';
import { toolsNeeded } from '../../src/run/tools.js';
import { loadConfig } from '../../src/config/settings.js';

/** A port on 127.0.0.1 where nothing listens: one the kernel gave out and that was closed again. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('check and run --dry-run: an SMTP_URL where nothing listens is a problem (exit 2); a real server passes and gets no mail', async (t) => {
  const env = makeRunEnv(t);
  const port = await closedPort();
  const conf = env.writeConfig({ REPORT_WHEN: 'always', SMTP_URL: `smtp://127.0.0.1:${port}`, EMAIL_TO: 'admin@example.org' });
  const line = fs.readFileSync(conf, 'utf8').split('\n').findIndex((l) => l.startsWith('SMTP_URL=')) + 1;
  const before = listing(env.dir);
  const started = Date.now();
  const r = await env.cli(['check', '-c', conf]);
  assert.equal(r.code, 2, r.stderr);
  assert.ok(Date.now() - started < 30_000, 'the probe is bounded');
  assert.match(r.stderr, /^xenbackup check: 1 problem:\n/);
  assert.match(r.stderr, new RegExp(`^  - SMTP_URL \\(${conf}:${line}\\): the SMTP server of smtp://127\\.0\\.0\\.1:${port}/? did not accept a connection: .*ECONNREFUSED`, 'm'));
  assert.doesNotMatch(r.stdout, /no problems found/);

  const dry = await env.cli(['run', '-c', conf, '--dry-run']);
  assert.equal(dry.code, 2, dry.stderr);
  assert.match(dry.stdout, /nothing will be touched/);
  assert.match(dry.stderr, /^xenbackup run --dry-run: the run would fail; 1 problem \(as xenbackup check finds them\):\n {2}- SMTP_URL .*ECONNREFUSED/);
  assert.deepEqual(listing(env.dir), before, 'neither made anything');

  const smtp = await startSmtpServer();
  t.after(() => smtp.close());
  const good = env.writeConfig({ REPORT_WHEN: 'always', SMTP_URL: smtp.url, EMAIL_TO: 'admin@example.org' }, 'good.conf');
  const ok = await env.cli(['check', '-c', good]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /the server answered EHLO/);
  const okDry = await env.cli(['run', '-c', good, '--dry-run']);
  assert.equal(okDry.code, 0, okDry.stderr);
  assert.equal(okDry.stderr, '');
  assert.equal(smtp.mails.length, 0, 'nothing was sent');

  // REPORT_WHEN=never: no transport to try
  const never = await env.cli(['check', '-c', env.writeConfig({ REPORT_WHEN: 'never', SMTP_URL: `smtp://127.0.0.1:${port}`, EMAIL_TO: 'admin@example.org' }, 'never.conf')]);
  assert.equal(never.code, 0, never.stderr);
});

test('check: a sendmail that is not executable, and every program the config needs that is missing from PATH', async (t) => {
  const env = makeRunEnv(t);
  const sendmail = path.join(env.dir, 'sendmail');
  fs.writeFileSync(sendmail, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
  const conf = env.writeConfig({ REPORT_WHEN: 'always', BIN_SENDMAIL: sendmail, EMAIL_TO: 'admin@example.org', VERIFY_AFTER_RUN: 'full', COMPRESSION: 'zstd' });
  const r = await env.cli(['check', '-c', conf]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`^  - BIN_SENDMAIL ${sendmail} \\(set at ${conf}:\\d+\\) is not executable$`, 'm'));
  assert.doesNotMatch(r.stderr, /is not installed/, 'every program is installed on this host');

  // A dom0 whose PATH lacks /usr/bin: mount, umount (the medium) and zstd (VERIFY_AFTER_RUN=full) live there;
  // lvs lives in /usr/sbin, which a run always searches.
  fs.chmodSync(sendmail, 0o755);
  const bin = path.join(env.dir, 'empty-bin');
  fs.mkdirSync(bin);
  const bare = await env.cli(['check', '-c', conf], { PATH: bin });
  assert.equal(bare.code, 2, bare.stderr);
  const missing = bare.stderr.split('\n').filter((l) => l.includes('is not installed'));
  assert.deepEqual(missing, [
    '  - mount is not installed (or not on PATH), and mounting the medium BCKDEV needs it (apt-get install mount)',
    '  - umount is not installed (or not on PATH), and unmounting the medium needs it (apt-get install mount)',
    '  - zstd is not installed (or not on PATH), and VERIFY_AFTER_RUN=full reading zstd archives back needs it (apt-get install zstd)',
  ]);
  assert.match(bare.stderr, /^xenbackup check: 3 problems:\n/);
  const dry = await env.cli(['run', '-c', conf, '--dry-run'], { PATH: bin });
  assert.equal(dry.code, 2, dry.stderr);
  assert.match(dry.stderr, /3 problems/);
});

test('the programs a config needs: by volume kind, engine, medium and report', async (t) => {
  const env = makeRunEnv(t);
  const programs = (keys: Record<string, string | undefined>, table: string): string[] => {
    fs.writeFileSync(env.volumes, table);
    return toolsNeeded(loadConfig({ configPath: env.writeConfig(keys, 'tools.conf') })).map((x) => x.program);
  };
  assert.deepEqual(programs({}, ''), ['lvs', 'mount', 'umount']);
  assert.deepEqual(programs({ BCKDEV: 'UUID=0b1e0b1e-0000-4000-8000-000000000001' }, 'web1|root|/dev/vg/web1|ext4|ro\n'), ['lvs', 'lvcreate', 'lvremove', 'mount', 'umount', 'findfs']);
  assert.deepEqual(programs({}, 'win1|disk|/dev/vg/win1|raw||partition=2\n'), ['lvs', 'lvcreate', 'lvremove', 'mount', 'umount', 'losetup', 'partx']);
  assert.deepEqual(programs({ VERIFY_AFTER_RUN: 'full', COMPRESSION: 'gzip' }, 'web1|root|/dev/vg/web1|ext4|ro|engine=rsync\n'), ['lvs', 'lvcreate', 'lvremove', 'mount', 'umount', 'rsync']);
  assert.deepEqual(programs({ VERIFY_AFTER_RUN: 'full' }, ''), ['lvs', 'mount', 'umount', 'zstd']);
});
