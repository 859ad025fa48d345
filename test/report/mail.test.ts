/**
 * The report mail end to end with real parts: nodemailer's SMTP transport to
 * a real SMTP server on 127.0.0.1, and the sendmail path through Debian's
 * msmtp (apt package msmtp) relaying to that same server. Failures — a
 * sendmail that exits 1, one that hangs, an SMTP port nobody listens on, a
 * server that never greets — come back as results, are logged, and turn exit
 * code 0 into 1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatBody, formatSubject } from '../../src/report/format.js';
import { parseRecipients, redactUrl, sendReport } from '../../src/report/mail.js';
import { exitCodeFor } from '../../src/report/run-report.js';
import { createLogger, MemorySink } from '../../src/util/log.js';
import { failedReport, okReport } from './sample-reports.js';
import { parseMail, startSmtpServer } from './smtp-fixture.js';

const FROM = 'xenbackup@host.example.org';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'xenbackup-mail-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function script(dir: string, name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

/** A port that refuses connections: bound once to learn a free number, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('parseRecipients splits EMAIL_TO the way the old config allowed', () => {
  assert.deepEqual(parseRecipients('a@x.org'), ['a@x.org']);
  assert.deepEqual(parseRecipients('a@x.org, b@x.org  c@x.org;d@x.org'), ['a@x.org', 'b@x.org', 'c@x.org', 'd@x.org']);
  assert.deepEqual(parseRecipients('Backup Admin <a@x.org>, b@x.org'), ['Backup Admin <a@x.org>', 'b@x.org']);
  assert.deepEqual(parseRecipients(['a@x.org b@x.org', ' ']), ['a@x.org', 'b@x.org']);
  assert.deepEqual(parseRecipients('  '), []);
});

test('redactUrl hides the SMTP password', () => {
  assert.equal(redactUrl('smtp://user:secret@mail.example.org:587'), 'smtp://user:***@mail.example.org:587');
  assert.equal(redactUrl('smtp://mail.example.org'), 'smtp://mail.example.org');
});

test('report goes out by SMTP to every recipient with the outcome in the subject', async (t) => {
  const smtp = await startSmtpServer();
  t.after(() => smtp.close());
  const report = failedReport();
  const memory = new MemorySink();
  const result = await sendReport(report, {
    from: FROM,
    to: 'admin@example.org, ops@example.org root@example.org',
    smtpUrl: smtp.url,
    logger: createLogger([memory.sink]),
  });
  assert.deepEqual(result, {
    status: 'sent',
    transport: 'smtp',
    recipients: ['admin@example.org', 'ops@example.org', 'root@example.org'],
    subject: '[xenbackup] FAILED host.example.org: 5/6 volumes ok, 1.6 GiB, 14 min, 1 warning, 1 error',
  });
  assert.equal(smtp.mails.length, 1);
  const mail = smtp.mails[0]!;
  assert.equal(mail.envelopeFrom, FROM);
  assert.deepEqual(mail.envelopeTo, ['admin@example.org', 'ops@example.org', 'root@example.org']);
  const parsed = parseMail(mail.raw);
  assert.equal(parsed.subject, formatSubject(report));
  assert.equal(parsed.body, formatBody(report));
  assert.equal(parsed.headers.get('auto-submitted'), 'auto-generated');
  assert.equal(parsed.headers.get('x-xenbackup-outcome'), 'failed');
  assert.ok(memory.records.some((r) => r.level === 'info' && r.message.includes('report sent')));
  assert.equal(exitCodeFor(report, result), 1);
});

test('report goes out through a real sendmail (msmtp) relaying to the SMTP server', async (t) => {
  const smtp = await startSmtpServer();
  t.after(() => smtp.close());
  const dir = tempDir(t);
  const rc = join(dir, 'msmtprc');
  writeFileSync(rc, `defaults\nauth off\ntls off\naccount default\nhost 127.0.0.1\nport ${smtp.port}\nfrom ${FROM}\n`, { mode: 0o600 });
  // BIN_SENDMAIL is one path, so msmtp's config comes through a wrapper, as an admin would do it.
  const sendmail = script(dir, 'sendmail', `exec /usr/bin/msmtp -C ${rc} "$@"`);
  const report = okReport();
  const memory = new MemorySink();
  const result = await sendReport(report, {
    from: FROM,
    to: 'admin@example.org ops@example.org',
    sendmailPath: sendmail,
    logger: createLogger([memory.sink]),
  });
  assert.equal(result.status, 'sent', JSON.stringify(result));
  assert.equal(smtp.mails.length, 1);
  const mail = smtp.mails[0]!;
  assert.equal(mail.envelopeFrom, FROM);
  assert.deepEqual(mail.envelopeTo, ['admin@example.org', 'ops@example.org']);
  const parsed = parseMail(mail.raw);
  assert.equal(parsed.subject, '[xenbackup] OK host.example.org: 6/6 volumes ok, 2.1 GiB, 14 min');
  assert.equal(parsed.body, formatBody(report));
  assert.ok(
    memory.records.some((r) => r.message === `exec: ${sendmail} -i -f ${FROM} admin@example.org ops@example.org`),
    'the sendmail command is logged through host/exec',
  );
  assert.equal(exitCodeFor(report, result), 0);
});

test('a sendmail that exits 1 is logged, returned as failure, and makes the exit code 1', async (t) => {
  const dir = tempDir(t);
  const sendmail = script(dir, 'sendmail', 'cat >/dev/null; echo "sendmail: cannot connect to mailhub" >&2; exit 1');
  const memory = new MemorySink();
  const report = okReport();
  const result = await sendReport(report, { from: FROM, to: 'admin@example.org', sendmailPath: sendmail, logger: createLogger([memory.sink]) });
  assert.equal(result.status, 'failed');
  assert.ok(result.status === 'failed' && result.error.includes('exit 1: sendmail: cannot connect to mailhub'), JSON.stringify(result));
  const errors = memory.records.filter((r) => r.level === 'error');
  assert.equal(errors.length, 1);
  assert.match(errors[0]!.message, /^mail: report not sent: \S+\/sendmail -i -f xenbackup@host\.example\.org admin@example\.org: exit 1: sendmail: cannot connect to mailhub$/);
  assert.equal(exitCodeFor(report, result), 1);
});

test('a missing sendmail binary is a failure, not a crash', async () => {
  const result = await sendReport(okReport(), { to: 'admin@example.org', sendmailPath: '/nonexistent/sendmail' });
  assert.equal(result.status, 'failed');
  assert.ok(result.status === 'failed' && result.error.includes('/nonexistent/sendmail'), JSON.stringify(result));
});

test('a sendmail that hangs is stopped after the timeout', async (t) => {
  const dir = tempDir(t);
  const sendmail = script(dir, 'sendmail', 'exec sleep 60');
  const result = await sendReport(okReport(), { to: 'admin@example.org', sendmailPath: sendmail, timeoutMs: 300 });
  assert.equal(result.status, 'failed');
  assert.ok(result.status === 'failed' && result.error.includes('timed out'), JSON.stringify(result));
});

test('an unreachable SMTP server is logged, returned as failure, and makes the exit code 1', async () => {
  const port = await closedPort();
  const memory = new MemorySink();
  const report = okReport();
  const result = await sendReport(report, {
    from: FROM,
    to: 'admin@example.org',
    smtpUrl: `smtp://user:secret@127.0.0.1:${port}`,
    logger: createLogger([memory.sink]),
  });
  assert.equal(result.status, 'failed');
  assert.ok(result.status === 'failed' && /ECONNREFUSED/.test(result.error), JSON.stringify(result));
  const errors = memory.records.filter((r) => r.level === 'error');
  assert.equal(errors.length, 1);
  assert.match(errors[0]!.message, new RegExp(`via SMTP smtp://user:\\*\\*\\*@127\\.0\\.0\\.1:${port}`));
  assert.ok(!memory.records.some((r) => r.message.includes('secret')), 'the password never reaches the log');
  assert.equal(exitCodeFor(report, result), 1);
});

test('an SMTP server that never greets is given up after the timeout', async (t) => {
  const sockets: Socket[] = [];
  const silent = createServer((s) => sockets.push(s));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const { port } = silent.address() as AddressInfo;
  const result = await sendReport(okReport(), { to: 'admin@example.org', smtpUrl: `smtp://127.0.0.1:${port}`, timeoutMs: 300 });
  assert.equal(result.status, 'failed', JSON.stringify(result));
});

test('report-when failure skips a successful run and mails a failed one; never mails nothing', async (t) => {
  const smtp = await startSmtpServer();
  t.after(() => smtp.close());
  const ok = okReport();
  const skipped = await sendReport(ok, { from: FROM, to: 'admin@example.org', smtpUrl: smtp.url, when: 'failure' });
  assert.equal(skipped.status, 'skipped');
  assert.equal(exitCodeFor(ok, skipped), 0);
  const never = await sendReport(failedReport(), { from: FROM, to: 'admin@example.org', smtpUrl: smtp.url, when: 'never' });
  assert.equal(never.status, 'skipped');
  assert.equal(smtp.mails.length, 0);

  const sent = await sendReport(failedReport(), { from: FROM, to: 'admin@example.org', smtpUrl: smtp.url, when: 'failure' });
  assert.equal(sent.status, 'sent');
  assert.equal(smtp.mails.length, 1);
  assert.match(parseMail(smtp.mails[0]!.raw).subject, /^\[xenbackup\] FAILED /);
});

test('an empty EMAIL_TO, a dash address or a non-SMTP URL is a failure with a clear reason', async () => {
  const empty = await sendReport(okReport(), { to: ' , ' });
  assert.deepEqual(empty, { status: 'failed', transport: 'sendmail', error: 'no recipient (EMAIL_TO is empty)' });
  const dash = await sendReport(okReport(), { to: '-oQ/tmp/x' });
  assert.deepEqual(dash, { status: 'failed', transport: 'sendmail', error: 'invalid address "-oQ/tmp/x"' });
  const url = await sendReport(okReport(), { to: 'a@x.org', smtpUrl: 'http://mail.example.org' });
  assert.ok(url.status === 'failed' && url.error.includes('must start with smtp:// or smtps://'), JSON.stringify(url));
});
