/**
 * Makes untrusted text safe for one line of a log, a terminal, a mail header
 * or a report table: control characters are shown escaped (`\n`, `\t`, `\r`,
 * `\xNN`). Guests' file names may contain newlines and commands' stderr may
 * contain ANSI sequences; neither may break a line or reach a terminal raw.
 */
export function escapeControls(text: string, opts: { keepNewlines?: boolean } = {}): string {
  return text.replace(opts.keepNewlines ? /[\x00-\x09\x0b-\x1f\x7f]/g : /[\x00-\x1f\x7f]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}
