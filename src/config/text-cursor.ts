/**
 * A read position in a text that knows its line number: the scanner under the
 * shell-assignment parser. Positions only move forward through advance() /
 * moveTo() when a newline may be crossed, so `line` is always the line of `pos`
 * and every error names the right line.
 */
import { ConfigError } from './config-error.js';

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*/;

export class TextCursor {
  protected pos = 0;
  protected line = 1;

  constructor(
    protected readonly text: string,
    protected readonly file: string,
  ) {}


  /** The current position, to rewind() to after looking ahead. */
  protected mark(): { pos: number; line: number } {
    return { pos: this.pos, line: this.line };
  }

  protected rewind(to: { pos: number; line: number }): void {
    this.pos = to.pos;
    this.line = to.line;
  }

  protected eof(): boolean {
    return this.pos >= this.text.length;
  }

  protected peek(): string {
    return this.text[this.pos] ?? '';
  }

  protected advance(): string {
    const c = this.text[this.pos++] ?? '';
    if (c === '\n') this.line++;
    return c;
  }

  protected moveTo(pos: number): void {
    while (this.pos < pos) this.advance();
  }

  protected startsWith(s: string): boolean {
    return this.text.startsWith(s, this.pos);
  }

  protected readName(): string {
    const m = NAME_RE.exec(this.text.slice(this.pos, this.pos + 256));
    if (!m) return '';
    this.pos += m[0].length;
    return m[0];
  }

  protected readWhile(pred: (ch: string) => boolean): string {
    const start = this.pos;
    while (!this.eof() && pred(this.peek())) this.pos++;
    return this.text.slice(start, this.pos);
  }

  protected skipBlanks(): void {
    for (;;) {
      const c = this.peek();
      if (c === ' ' || c === '\t') this.pos++;
      else if (c === '\\' && this.text[this.pos + 1] === '\n') {
        this.advance();
        this.advance();
      } else return;
    }
  }

  protected atEndOfStatement(): boolean {
    return this.eof() || this.peek() === '\n' || this.peek() === '#';
  }

  protected skipComment(): void {
    if (this.peek() === '#') this.skipToEol();
  }

  protected skipToEol(): void {
    const nl = this.text.indexOf('\n', this.pos);
    this.pos = nl < 0 ? this.text.length : nl;
  }

  protected findOnLine(ch: string, from: number): number {
    for (let i = from; i < this.text.length; i++) {
      if (this.text[i] === ch) return i;
      if (this.text[i] === '\n') return -1;
    }
    return -1;
  }

  /** The rest of the current line from the scan position, shortened, for "found ..." messages. */
  protected snippet(): string {
    const nl = this.text.indexOf('\n', this.pos);
    const rest = this.text.slice(this.pos, nl < 0 ? undefined : nl).trimEnd();
    return rest.length > 40 ? rest.slice(0, 37) + '...' : rest;
  }

  protected error(detail: string): ConfigError {
    return new ConfigError(this.file, this.line, detail);
  }
}
