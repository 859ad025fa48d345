/**
 * Reads shell-assignment files (/etc/xenbackup.conf, /etc/backup-manager.conf)
 * WITHOUT running a shell. The old tool sourced its config with `. file` as
 * root; we only understand the subset of sh such files use, and everything
 * else is an error that names the line and is never executed.
 *
 * Understood:
 *   - blank lines, `# comments` (also after a value), `\`-newline continuations
 *   - `KEY=value`, `export KEY=value`, `export KEY ...`, `declare -a KEY`, `KEY[i]=value`
 *   - values: unquoted, '...', "..." (closed on the same line), backslash escapes,
 *     `$KEY` / `${KEY}` for keys assigned earlier in the file (then the environment)
 *   - the command substitutions the old config ships, as `$(...)` or backquotes:
 *       hostname, /bin/hostname           -> the node name       (see host-identity.ts)
 *       hostname -d, /bin/hostname -d     -> the DNS domain or ''
 *       which NAME                        -> PATH lookup in code (see which.ts), '' if absent
 *   - `|| alternative` after a value: `KEY=$(which sendmail) || $(which ssmtp)`,
 *     `KEY=$(which x) || true`.
 *
 * On `||`: to sh, `A=$(which sendmail) || $(which ssmtp)` assigns '' when
 * sendmail is missing and then RUNS the ssmtp binary as a command. The old
 * config's author plainly meant a fallback, so that is how we read it: when
 * the last substitution in the value found nothing, the value becomes the
 * alternative's. `|| true` keeps the (empty) value, exactly as sh does.
 *
 * Not understood, each a ConfigError `file:line: found ..., expected ...`:
 * any other command or substitution, `;`, `&&`, pipes, redirections, `&`,
 * arithmetic, `${X:-y}` and other parameter operators, `$1`/`$?`..., `~`,
 * array literals, unquoted spaces inside a value, spaces around `=`.
 */
import { readFileSync } from 'node:fs';
import { answerSubstitution, UNDERSTOOD_SUBSTITUTIONS, type SubstitutionContext } from './command-substitutions.js';
import { ConfigError } from './config-error.js';
import { hostIdentity, type HostIdentity } from './host-identity.js';
import { TextCursor } from './text-cursor.js';
import { whichSync } from './which.js';

export interface Assignment {
  /** Variable name; `NAME[index]` for an array element. */
  key: string;
  value: string;
  /** Line of the key (1-based). */
  line: number;
  exported: boolean;
}

/** A statement left out because it could not be understood (only with `onError: 'skip'`). */
export interface SkippedStatement {
  line: number;
  /** The key the statement assigned, when that much was read before the problem. */
  key?: string;
  error: ConfigError;
}

export interface ShellAssignments {
  file: string;
  /** Every assignment in file order (a key assigned twice appears twice). */
  assignments: Assignment[];
  skipped: SkippedStatement[];
  /** The last assignment of `key`, as the shell would leave it. */
  get(key: string): Assignment | undefined;
}

export interface ShellParseOptions {
  /** For `$VAR` not assigned in the file, and PATH for `which`. Default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Answers for `hostname` / `hostname -d`. Default: hostIdentity(), computed on first use. */
  host?: HostIdentity;
  /** Answers for `which NAME`. Default: whichSync over env.PATH. */
  which?: (name: string) => string | undefined;
  /** `$VAR` that is neither assigned above nor in env: an error (default; catches typos) or '' as sh does. */
  undefinedVariables?: 'error' | 'empty';
  /** Throw on the first problem (default), or skip that statement and record it (for foreign files we only mine). */
  onError?: 'throw' | 'skip';
}

interface WordResult {
  value: string;
  /** Outcome of the last command substitution in the word, as its exit status would be seen by `||`. */
  failed: boolean;
  substitutions: number;
  literalChars: number;
}

export function parseShellAssignments(text: string, file: string, opts: ShellParseOptions = {}): ShellAssignments {
  return new Parser(text, file, opts).parse();
}

/** Reads and parses `file`; an unreadable file is a ConfigError naming it. */
export function readShellAssignments(file: string, opts: ShellParseOptions = {}): ShellAssignments {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, undefined, `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return parseShellAssignments(text, file, opts);
}

class Parser extends TextCursor {
  private readonly env: Readonly<Record<string, string | undefined>>;
  private readonly vars = new Map<string, string>();
  private readonly assignments: Assignment[] = [];
  private readonly skipped: SkippedStatement[] = [];
  private readonly substitutions: SubstitutionContext;
  private currentKey: string | undefined;

  constructor(
    text: string,
    file: string,
    private readonly opts: ShellParseOptions,
  ) {
    // A BOM or Windows line endings would end up inside values under sh; nobody means that.
    super(text.replace(/^\uFEFF/, '').replace(/\r\n/g, '\n'), file);
    this.env = opts.env ?? process.env;
    let host = opts.host;
    this.substitutions = {
      host: () => (host ??= hostIdentity()),
      which: opts.which ?? ((name) => whichSync(name, this.env.PATH)),
    };
  }

  parse(): ShellAssignments {
    while (!this.eof()) {
      this.skipBlanks();
      if (this.eof()) break;
      const c = this.peek();
      if (c === '\n') {
        this.advance();
        continue;
      }
      if (c === '#') {
        this.skipToEol();
        continue;
      }
      const startLine = this.line;
      this.currentKey = undefined;
      try {
        this.statement();
      } catch (err) {
        if (!(err instanceof ConfigError) || this.opts.onError !== 'skip') throw err;
        this.skipped.push({ line: startLine, key: this.currentKey, error: err });
        this.skipToEol();
      }
    }
    const assignments = this.assignments;
    return {
      file: this.file,
      assignments,
      skipped: this.skipped,
      get: (key) => {
        for (let i = assignments.length - 1; i >= 0; i--) if (assignments[i]!.key === key) return assignments[i];
        return undefined;
      },
    };
  }

  // --- statements -------------------------------------------------------------------------------

  private statement(): void {
    const name = this.readName();
    if (name === '') throw this.error(`found \`${this.snippet()}\`, expected KEY=value, \`export KEY=value\` or a # comment`);
    const next = this.peek();
    if ((name === 'export' || name === 'declare' || name === 'typeset') && (next === ' ' || next === '\t' || next === '\n' || this.eof())) {
      this.declaration(name);
      return;
    }
    if (next === '=' || next === '[') {
      this.assignment(name, false);
      this.endOfStatement(name);
      return;
    }
    if (next === ' ' || next === '\t') {
      const afterName = this.mark();
      this.skipBlanks();
      if (this.peek() === '=') throw this.error(`found \`${name} =\`, expected \`${name}=value\` with no space before \`=\``);
      this.rewind(afterName);
    }
    this.pos -= name.length; // show the whole command in the message
    throw this.error(`found command \`${this.snippet()}\`, expected KEY=value (xenbackup runs no commands from its config)`);
  }

  /** `export A=1`, `export A B`, `declare -a A`: at most one assignment, any number of bare names. */
  private declaration(keyword: string): void {
    this.skipBlanks();
    if (keyword !== 'export') {
      while (this.peek() === '-') {
        const flags = this.readWhile((ch) => /[-a-zA-Z]/.test(ch));
        if (!/^-[aAxrgi]+$/.test(flags)) throw this.error(`found \`${keyword} ${flags}\`, expected only the flags -a, -A, -x, -r, -g or -i`);
        this.skipBlanks();
      }
    }
    let names = 0;
    while (!this.atEndOfStatement()) {
      const name = this.readName();
      if (name === '') throw this.error(`found \`${this.snippet()}\` after \`${keyword}\`, expected a variable name`);
      names++;
      if (this.peek() === '=' || this.peek() === '[') {
        if (names > 1) throw this.error(`found a second name before \`${name}=\`, expected one assignment per line`);
        this.assignment(name, keyword === 'export');
        this.endOfStatement(name);
        return;
      }
      const c = this.peek();
      if (!(c === ' ' || c === '\t' || c === '\n' || c === '#' || this.eof())) {
        throw this.error(`found \`${this.snippet()}\` after \`${keyword} ${name}\`, expected end of line`);
      }
      this.skipBlanks();
    }
    if (names === 0) throw this.error(`found a bare \`${keyword}\`, expected \`${keyword} KEY=value\``);
    this.skipComment();
  }

  private assignment(name: string, exported: boolean): void {
    const line = this.line;
    let key = name;
    if (this.peek() === '[') {
      this.advance();
      const index = this.readWhile((ch) => /[A-Za-z0-9_]/.test(ch));
      if (index === '' || this.peek() !== ']') throw this.error(`found \`${name}[${this.snippet()}\`, expected \`${name}[INDEX]=value\` with a plain index`);
      this.advance();
      key = `${name}[${index}]`;
      if (this.peek() !== '=') throw this.error(`found \`${key}${this.snippet()}\`, expected \`${key}=value\``);
    }
    this.currentKey = key;
    this.advance(); // '='
    if (this.peek() === '(') throw this.error(`found an array literal \`${key}=(\`, expected a single value`);
    if (this.peek() === ' ' || this.peek() === '\t') {
      const afterEquals = this.mark();
      this.skipBlanks();
      const rest = this.atEndOfStatement() ? '' : this.snippet();
      this.rewind(afterEquals);
      if (rest !== '') {
        throw this.error(`found a space after \`${key}=\`, expected the value right after \`=\` (sh would run \`${rest}\` as a command)`);
      }
    }
    let word = this.word();
    this.skipBlanks();
    while (this.startsWith('||')) {
      this.pos += 2;
      this.skipBlanks();
      const alternative = this.alternative(key);
      if (word.failed) word = { ...word, value: alternative.value, failed: alternative.failed };
      this.skipBlanks();
    }
    if (!key.includes('[')) this.vars.set(key, word.value);
    this.assignments.push({ key, value: word.value, line, exported });
  }

  /** What may follow `||`: `true`, `:`, or one command substitution on its own. */
  private alternative(key: string): { value: string; failed: boolean } {
    for (const noop of ['true', ':']) {
      if (this.startsWith(noop)) {
        const after = this.text[this.pos + noop.length];
        if (after === undefined || after === ' ' || after === '\t' || after === '\n' || after === '#' || after === '|') {
          this.pos += noop.length;
          return { value: '', failed: false };
        }
      }
    }
    const start = this.mark();
    const word = this.word();
    if (word.substitutions !== 1 || word.literalChars !== 0) {
      this.rewind(start);
      throw this.error(`found \`|| ${this.snippet()}\` after the value of ${key}, expected \`|| true\` or \`|| $(which NAME)\``);
    }
    return { value: word.value, failed: word.failed };
  }

  private endOfStatement(key: string): void {
    this.skipBlanks();
    if (this.eof() || this.peek() === '\n') return;
    if (this.peek() === '#') {
      this.skipToEol();
      return;
    }
    const found = this.snippet();
    const c = this.peek();
    let what: string;
    let expected = 'expected end of line';
    if (this.startsWith('&&')) what = '`&&` (a second command)';
    else if (c === ';') {
      what = '`;` (a second command)';
      expected = 'expected one assignment per line';
    } else if (c === '|') what = 'a pipe';
    else if (c === '&') what = '`&` (a background job)';
    else if (c === '<' || c === '>') what = 'a redirection';
    else if (c === '(' || c === ')') what = `a \`${c}\``;
    else if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(found)) throw this.error(`found a second assignment \`${found}\` on the line of ${key}, expected one assignment per line`);
    else throw this.error(`found \`${found}\` after the value of ${key}, expected end of line (quote a value that contains spaces)`);
    throw this.error(`found ${what} in \`${found}\`, ${expected}`);
  }

  // --- words ------------------------------------------------------------------------------------

  /** One shell word (no field splitting or globbing: assignments get neither). */
  private word(): WordResult {
    const out: WordResult = { value: '', failed: false, substitutions: 0, literalChars: 0 };
    const wordStart = this.pos;
    while (!this.eof()) {
      const c = this.peek();
      if (c === ' ' || c === '\t' || c === '\n' || c === ';' || c === '&' || c === '|' || c === '<' || c === '>' || c === '(' || c === ')') break;
      if (c === "'") {
        out.value += this.singleQuoted();
        out.literalChars++;
      } else if (c === '"') {
        this.doubleQuoted(out);
      } else if (c === '\\') {
        this.advance();
        if (this.eof()) throw this.error('found a `\\` at the end of the file, expected an escaped character');
        if (this.peek() === '\n') {
          this.advance(); // line continuation
        } else {
          out.value += this.advance();
          out.literalChars++;
        }
      } else if (c === '$') {
        this.dollar(out);
      } else if (c === '`') {
        this.backquoted(out);
      } else if (c === '~' && this.pos === wordStart) {
        throw this.error(`found \`${this.snippet()}\` (tilde expansion), expected the path written out, e.g. /root/...`);
      } else {
        out.value += this.advance();
        out.literalChars++;
      }
    }
    return out;
  }

  private singleQuoted(): string {
    const end = this.findOnLine("'", this.pos + 1);
    if (end < 0) throw this.error("found a ' that is not closed on its line, expected a closing ' (values cannot span lines)");
    const s = this.text.slice(this.pos + 1, end);
    this.moveTo(end + 1);
    return s;
  }

  private doubleQuoted(out: WordResult): void {
    const openLine = this.line;
    this.advance();
    for (;;) {
      const c = this.peek();
      // sh would let the value run on into the next lines; a forgotten quote is far likelier, so say where it opened.
      if (this.eof() || c === '\n') {
        throw new ConfigError(this.file, openLine, 'found a " that is not closed on its line, expected a closing " (values cannot span lines)');
      }
      if (c === '"') {
        this.advance();
        return;
      }
      if (c === '\\') {
        const n = this.text[this.pos + 1];
        if (n === '$' || n === '`' || n === '"' || n === '\\') {
          this.advance();
          out.value += this.advance();
          out.literalChars++;
        } else {
          out.value += this.advance(); // sh keeps other backslashes inside double quotes
          out.literalChars++;
        }
      } else if (c === '$') {
        this.dollar(out);
      } else if (c === '`') {
        this.backquoted(out);
      } else {
        out.value += this.advance();
        out.literalChars++;
      }
    }
  }

  private dollar(out: WordResult): void {
    const next = this.text[this.pos + 1];
    if (next === '(') {
      if (this.text[this.pos + 2] === '(') throw this.error(`found arithmetic \`${this.snippet()}\`, expected a plain value`);
      const close = this.findOnLine(')', this.pos + 2);
      if (close < 0) throw this.error(`found \`${this.snippet()}\` with no closing \`)\` on this line, expected $(command)`);
      const command = this.text.slice(this.pos + 2, close);
      this.substitute(command, `$(${command})`, out);
      this.moveTo(close + 1);
      return;
    }
    if (next === '{') {
      const close = this.findOnLine('}', this.pos + 2);
      const inner = close < 0 ? '' : this.text.slice(this.pos + 2, close);
      if (close < 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(inner)) {
        const shown = close < 0 ? this.snippet() : '${' + inner + '}';
        throw this.error(`found \`${shown}\`, expected \${NAME} (parameter operators such as :- are not understood)`);
      }
      out.value += this.lookup(inner);
      out.literalChars++;
      this.moveTo(close + 1);
      return;
    }
    if (next !== undefined && /[A-Za-z_]/.test(next)) {
      this.advance();
      const name = this.readName();
      out.value += this.lookup(name);
      out.literalChars++;
      return;
    }
    if (next !== undefined && /[0-9@*#?$!-]/.test(next)) {
      throw this.error(`found the special parameter \`$${next}\`, expected $NAME of a key assigned above`);
    }
    // A lone `$` (end of word, before a quote or `/`) is a literal dollar to sh.
    out.value += this.advance();
    out.literalChars++;
  }

  private backquoted(out: WordResult): void {
    const close = this.findOnLine('`', this.pos + 1);
    if (close < 0) throw this.error(`found \`${this.snippet()}\` with no closing backquote on this line, expected \`command\``);
    const command = this.text.slice(this.pos + 1, close);
    this.substitute(command, '`' + command + '`', out);
    this.moveTo(close + 1);
  }

  /** Answers one of the understood command substitutions; anything else is an error, never run. */
  private substitute(command: string, shown: string, out: WordResult): void {
    const result = answerSubstitution(command, this.substitutions);
    if (result === undefined) {
      const quoted = shown.startsWith('`') ? `"${shown}"` : `\`${shown}\``;
      throw this.error(`found the command substitution ${quoted}, expected ${UNDERSTOOD_SUBSTITUTIONS} (nothing is executed; write the value itself)`);
    }
    out.value += result.value;
    out.failed = result.failed;
    out.substitutions++;
  }

  private lookup(name: string): string {
    const own = this.vars.get(name);
    if (own !== undefined) return own;
    const fromEnv = this.env[name];
    if (fromEnv !== undefined) return fromEnv;
    if (this.opts.undefinedVariables === 'empty') return '';
    throw this.error(`found \`$${name}\`, expected a key assigned above it in this file (or an environment variable)`);
  }
}
