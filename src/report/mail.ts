/**
 * Mails the run report. nodemailer composes the message; delivery is either
 * SMTP (when an SMTP URL is configured) or the local sendmail (BIN_SENDMAIL,
 * default /usr/sbin/sendmail, as the old tool did).
 *
 * For sendmail we let nodemailer build the RFC 5322 message and pipe it to the
 * binary through host/exec.ts rather than use nodemailer's sendmail transport:
 * that transport spawns the binary itself, with no timeout and no log line,
 * and a sendmail that hangs would hang the nightly run with it. The argv is
 * the one nodemailer would use (`-i -f <from> <to>...`).
 *
 * Nothing here throws: a mail that cannot be sent comes back as
 * `{status: 'failed'}` and is logged, so the caller can still exit with the
 * right code (exitCodeFor turns 0 into 1) after the log file has everything.
 */
// Types only: nodemailer is loaded when a report is mailed (~0.05 s of every start otherwise).
import type { SendMailOptions } from 'nodemailer';
import { run } from '../host/exec.js';
import type { Logger } from '../util/log.js';
import { silentLogger } from '../util/log.js';
import { formatBody, formatDuration, formatSubject } from './format.js';
import { exitCodeFor, outcomeOf, type RunReport } from './run-report.js';

export type ReportWhen = 'always' | 'failure' | 'never';

export interface MailOptions {
  /** EMAIL_FROM; default `root@<host>`. */
  from?: string;
  /** EMAIL_TO: one or more addresses, separated by commas and/or spaces as in the old config. */
  to: string | string[];
  /** BIN_SENDMAIL; default /usr/sbin/sendmail. Ignored when smtpUrl is set. */
  sendmailPath?: string;
  /** `smtp://[user:pass@]host[:port]` or `smtps://...`; when set, mail goes out by SMTP. */
  smtpUrl?: string;
  /** always (default): every run; failure: only when the exit code is not 0; never. */
  when?: ReportWhen;
  logger?: Logger;
  /** Upper bound for the whole delivery, in ms. Default 60 s. */
  timeoutMs?: number;
}

export type MailTransportKind = 'smtp' | 'sendmail';

export type MailResult =
  | { status: 'sent'; transport: MailTransportKind; recipients: string[]; subject: string }
  | { status: 'skipped'; reason: string }
  | { status: 'failed'; transport: MailTransportKind | null; error: string };

export const DEFAULT_SENDMAIL = '/usr/sbin/sendmail';
export const DEFAULT_MAIL_TIMEOUT_MS = 60_000;

/**
 * Splits EMAIL_TO into addresses: commas, semicolons and whitespace separate
 * them, except inside a `Name <addr>` form, which stays whole.
 */
export function parseRecipients(to: string | string[]): string[] {
  const pieces = (Array.isArray(to) ? to : [to]).flatMap((s) => s.split(/[,;]/));
  const out: string[] = [];
  for (const piece of pieces) {
    const trimmed = piece.trim();
    if (!trimmed) continue;
    if (trimmed.includes('<')) out.push(trimmed);
    else out.push(...trimmed.split(/\s+/));
  }
  return out;
}

/** The SMTP URL with any password masked, for logs and error messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable SMTP URL)';
  }
}

/** Decides, composes and delivers the report mail. Never throws. */
export async function sendReport(report: RunReport, opts: MailOptions): Promise<MailResult> {
  const log = opts.logger ?? silentLogger;
  const when = opts.when ?? 'always';
  if (when === 'never') return { status: 'skipped', reason: 'report mail is off (report-when never)' };
  if (when === 'failure' && exitCodeFor(report) === 0) {
    log.info('mail: run succeeded and report-when is failure: no mail');
    return { status: 'skipped', reason: 'run succeeded and report-when is failure' };
  }

  const transport: MailTransportKind = opts.smtpUrl ? 'smtp' : 'sendmail';
  const fail = (error: string): MailResult => {
    log.error(`mail: report not sent: ${error}`);
    return { status: 'failed', transport, error };
  };

  const recipients = parseRecipients(opts.to);
  if (!recipients.length) return fail('no recipient (EMAIL_TO is empty)');
  const from = opts.from?.trim() || `root@${report.host}`;
  // sendmail would read a leading dash as an option.
  const bad = [from, ...recipients].find((r) => r.startsWith('-'));
  if (bad) return fail(`invalid address ${JSON.stringify(bad)}`);
  const subject = formatSubject(report);
  const message = {
    from,
    to: recipients,
    subject,
    text: formatBody(report),
    headers: { 'Auto-Submitted': 'auto-generated', 'X-Xenbackup-Outcome': outcomeOf(report) },
  };
  const timeoutMs = opts.timeoutMs ?? DEFAULT_MAIL_TIMEOUT_MS;

  try {
    if (opts.smtpUrl) {
      await sendBySmtp(opts.smtpUrl, message, timeoutMs, log);
    } else {
      await sendBySendmail(opts.sendmailPath || DEFAULT_SENDMAIL, message, timeoutMs, log);
    }
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    if (!opts.smtpUrl) return fail(text); // a CommandError already names the sendmail command line
    // The password must not reach the log even if nodemailer quotes the URL.
    return fail(`via SMTP ${redactUrl(opts.smtpUrl)}: ${text.split(opts.smtpUrl).join(redactUrl(opts.smtpUrl))}`);
  }
  log.info(`mail: report sent to ${recipients.join(', ')} via ${transport}: ${subject}`);
  return { status: 'sent', transport, recipients, subject };
}

type Message = SendMailOptions & { to: string[] };

async function sendBySmtp(url: string, message: Message, timeoutMs: number, log: Logger): Promise<void> {
  if (!/^smtps?:\/\//i.test(url)) throw new Error(`SMTP URL must start with smtp:// or smtps://, got ${redactUrl(url)}`);
  log.info(`mail: sending report by SMTP to ${redactUrl(url)}`);
  // Constructed directly: nodemailer.createTransport({url, ...}) drops every
  // option but the URL, and the timeouts would silently fall back to 30 s / 10 min.
  const { default: nodemailer } = await import('nodemailer');
  const { default: SMTPTransport } = await import('nodemailer/lib/smtp-transport/index.js');
  const transporter = nodemailer.createTransport(
    new SMTPTransport({
      url,
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
      dnsTimeout: timeoutMs,
    }),
  );
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      transporter.sendMail(message),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${formatDuration(timeoutMs)}`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    transporter.close();
  }
}

async function sendBySendmail(path: string, message: Message, timeoutMs: number, log: Logger): Promise<void> {
  const { default: nodemailer } = await import('nodemailer');
  const composer = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
  const composed = await composer.sendMail(message);
  const envelope = composed.envelope as { from: string | false; to: string[] };
  // -i: a line with a single dot must not end the message.
  const args = ['-i', ...(envelope.from ? ['-f', envelope.from] : []), ...envelope.to];
  await run(path, args, { input: composed.message as Buffer, timeoutMs, logger: log });
}
