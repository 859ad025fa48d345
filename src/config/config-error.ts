/**
 * The one error type of the configuration layer. Every problem found in
 * /etc/xenbackup.conf, /etc/xenback_vols or /etc/backup-manager.conf becomes a
 * ConfigError whose message starts with `file:line:` so an admin reading the
 * mailed report (or `xenbackup check`) can go straight to the offending line.
 * The CLI maps it to exit code 2.
 */
export class ConfigError extends Error {
  /** The file the problem is in. */
  readonly file: string;
  /** 1-based line number, or undefined when the problem is not tied to one line (missing file, missing key). */
  readonly line: number | undefined;
  /** The message without the `file:line:` prefix. */
  readonly detail: string;

  constructor(file: string, line: number | undefined, detail: string) {
    super(line === undefined ? `${file}: ${detail}` : `${file}:${line}: ${detail}`);
    this.name = 'ConfigError';
    this.file = file;
    this.line = line;
    this.detail = detail;
  }
}

/** `file:line` as used at the start of warnings and in "first defined at" notes. */
export function location(file: string, line: number | undefined): string {
  return line === undefined ? file : `${file}:${line}`;
}
