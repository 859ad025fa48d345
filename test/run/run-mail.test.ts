/**
 * The report of a real `xenbackup run` reaching a real SMTP server on
 * 127.0.0.1 (the smtp-server package): through the SMTP transport
 * (SMTP_URL), and through a real sendmail (msmtp, apt package msmtp, behind
 * a wrapper script set as BIN_SENDMAIL, as an admin would) relaying to the
 * same server. Subject and body are checked; REPORT_WHEN=failure skips an OK
 * run's mail and still mails a failed one; a mail that cannot be sent turns
 * exit 0 into 1 and is in the log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseMail, startSmtpServer } from '../report/smtp-fixture.js';
import { FQDN, makeRunEnv, type RunEnv } from './run-fixtures.js';

const FROM = 'xenbackup@testhost.example.org';
const TO = 'admin@example.org';

/** The body of an OK run of the test tree: the parts that do not depend on sizes and times. */
function assertOkBody(body: string, env: RunEnv): void {
  assert.match(body, new RegExp(`^xenbackup on ${FQDN}: OK\n`));
  assert.match(body, /All 1 volume backed up; \S+ \S+ written\./);
  assert.match(body, /^Volume +Status +Kind +Files +Source +Written +Time$/m);
  assert.match(body, /^dom0\/root +ok +full +\d+ +/m);
  assert.ok(body.includes(`Backup medium: ${env.device} on ${env.mediumDir}\n  free before: `), body);
  assert.match(body, /free after: +\d+(\.\d)? MiB of \d+(\.\d)? MiB/);
  assert.ok(body.includes(`Full log: ${env.logFile}`), body);
}

test('the report goes out by SMTP (SMTP_URL) with the outcome in the subject', async (t) => {
  const smtp = await startSmtpServer();
  t.after(() => smtp.close());
  const env = makeRunEnv(t);
  const conf = env.writeConfig({ REPORT_WHEN: 'always', SMTP_URL: smtp.url, EMAIL_FROM: FROM, EMAIL_TO: TO });
  const r = await env.cli(['run', '-c', conf]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(smtp.mails.length, 1);
  const mail = smtp.mails[0]!;
  assert.equal(mail.envelopeFrom, FROM);
  assert.deepEqual(mail.envelopeTo, [TO]);
  const parsed = parseMail(mail.raw);
  assert.match(parsed.subject, /^\[xenbackup\] OK testhost\.example\.org: 1\/1 volumes ok, \d+(\.\d)? (B|KiB), \d+(\.\d)? (s|min)( \d+ s)?$/);
  assert.equal(parsed.headers.get('x-xenbackup-outcome'), 'ok');
  assertOkBody(parsed.body, env);
  // the log says where the report went, and the terminal's outcome line is the mail's subject
  assert.ok(r.stderr.includes(`outcome: ${parsed.subject}\n`), r.stderr);
  assert.match(fs.readFileSync(env.logFile, 'utf8'), new RegExp(`mail: report sent to ${TO} via smtp`));
});

test('the report goes out through a real sendmail (msmtp) set as BIN_SENDMAIL', async (t) => {
  const smtp = await startSmtpServer();
  t.after(() => smtp.close());
  const env = makeRunEnv(t);
  const rc = path.join(env.dir, 'msmtprc');
  fs.writeFileSync(rc, `defaults\nauth off\ntls off\naccount default\nhost 127.0.0.1\nport ${smtp.port}\nfrom ${FROM}\n`, { mode: 0o600 });
  const sendmail = path.join(env.dir, 'sendmail');
  fs.writeFileSync(sendmail, `#!/bin/sh\nexec /usr/bin/msmtp -C ${rc} "$@"\n`, { mode: 0o755 });
  const conf = env.writeConfig({ REPORT_WHEN: 'always', BIN_SENDMAIL: sendmail, EMAIL_FROM: FROM, EMAIL_TO: `${TO} ops@example.org` });
  const r = await env.cli(['run', '-c', conf]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(smtp.mails.length, 1);
  const mail = smtp.mails[0]!;
  assert.equal(mail.envelopeFrom, FROM);
  assert.deepEqual(mail.envelopeTo, [TO, 'ops@example.org']);
  const parsed = parseMail(mail.raw);
  assert.match(parsed.subject, /^\[xenbackup\] OK testhost\.example\.org: 1\/1 volumes ok, /);
  assertOkBody(parsed.body, env);
  assert.ok(r.stderr.includes(`exec: ${sendmail} -i -f ${FROM} ${TO} ops@example.org`), 'sendmail is run through host/exec and logged');
});

test('REPORT_WHEN=failure: no mail for an OK run; a missing medium is mailed with the reason in the subject', async (t) => {
  const smtp = await startSmtpServer();
  t.after(() => smtp.close());
  const env = makeRunEnv(t);
  const keys = { REPORT_WHEN: 'failure', SMTP_URL: smtp.url, EMAIL_FROM: FROM, EMAIL_TO: TO };
  const ok = await env.cli(['run', '-c', env.writeConfig(keys)]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /mail: run succeeded and report-when is failure: no mail/);
  assert.equal(smtp.mails.length, 0);

  const missing = '/dev/xenbackup-test-no-such-disk';
  const failed = await env.cli(['run', '-c', env.writeConfig({ ...keys, BCKDEV: missing })]);
  assert.equal(failed.code, 4, failed.stderr);
  assert.equal(smtp.mails.length, 1);
  const parsed = parseMail(smtp.mails[0]!.raw);
  assert.equal(parsed.subject, `[xenbackup] MEDIUM UNAVAILABLE ${FQDN}: device ${missing} does not exist`);
  assert.match(parsed.body, new RegExp(`Backup medium unavailable: device ${missing} does not exist\nNothing was written anywhere\\.`));
  assert.ok(parsed.body.includes(`Backup medium: ${missing} on ${env.mediumDir}`), parsed.body);
});

test('a report that cannot be sent turns exit 0 into 1, and the log file has everything', async (t) => {
  const env = makeRunEnv(t);
  const conf = env.writeConfig({ REPORT_WHEN: 'always', BIN_SENDMAIL: path.join(env.dir, 'no-such-sendmail'), EMAIL_TO: TO });
  const r = await env.cli(['run', '-c', conf]);
  assert.equal(r.code, 1, r.stderr);
  const log = fs.readFileSync(env.logFile, 'utf8');
  assert.match(log, /outcome: \[xenbackup\] OK testhost\.example\.org: 1\/1 volumes ok/);
  assert.match(log, /ERROR mail: report not sent: .*no-such-sendmail/);
  assert.match(log, /xenbackup run finished: exit 1\n$/);
});
