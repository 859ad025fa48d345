/**
 * For `check`: can the report go out? For SMTP_URL, a real connection: the
 * server greets, answers EHLO (and, for smtps:// or when it offers it,
 * STARTTLS; and AUTH when the URL has a user), all within a bounded time,
 * through nodemailer's transporter.verify(). Nothing is sent. For the
 * sendmail, the binary is a file and executable (running it would send).
 */
import { access, constants, stat } from 'node:fs/promises';
import { formatDuration } from './format.js';
import { redactUrl } from './mail.js';

export const DEFAULT_PROBE_TIMEOUT_MS = 10_000;

/** Why the SMTP server of `url` cannot take the report, or undefined when it answered. */
export async function smtpProblem(url: string, timeoutMs = DEFAULT_PROBE_TIMEOUT_MS): Promise<string | undefined> {
  if (!/^smtps?:\/\/[^/]/i.test(url)) return `${redactUrl(url)} is not an smtp:// or smtps:// URL`;
  const { default: nodemailer } = await import('nodemailer');
  const { default: SMTPTransport } = await import('nodemailer/lib/smtp-transport/index.js');
  // Constructed directly, as mail.ts does: createTransport({url, ...}) would drop the time-outs.
  const transporter = nodemailer.createTransport(
    new SMTPTransport({ url, connectionTimeout: timeoutMs, greetingTimeout: timeoutMs, socketTimeout: timeoutMs, dnsTimeout: timeoutMs }),
  );
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      transporter.verify(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${formatDuration(timeoutMs)}`)), timeoutMs);
      }),
    ]);
    return undefined;
  } catch (e) {
    // The password must not reach the output even if nodemailer quotes the URL.
    const text = (e as Error).message.split(url).join(redactUrl(url));
    return `the SMTP server of ${redactUrl(url)} did not accept a connection: ${text}`;
  } finally {
    clearTimeout(timer);
    transporter.close();
  }
}

/** Why the sendmail at `file` cannot be run, or undefined when it is an executable file. */
export async function sendmailProblem(file: string): Promise<string | undefined> {
  const st = await stat(file).catch(() => undefined);
  if (!st) return 'does not exist: install a sendmail (e.g. msmtp-mta) or set SMTP_URL';
  if (!st.isFile()) return 'is not a file';
  const runnable = await access(file, constants.X_OK).then(() => true, () => false);
  return runnable ? undefined : 'is not executable';
}
