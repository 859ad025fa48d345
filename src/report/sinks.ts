/**
 * Where the run's log lines go (see util/log.ts for the Logger that feeds
 * them): the LOGFILE, written synchronously line by line so that whatever
 * happens later — the mail fails, the process is killed — the log up to that
 * moment is on disk; and the terminal, which on a TTY shows one updating
 * status line for per-file progress between ordinary lines, and under cron
 * (stderr not a TTY) plain timestamped lines with no control characters and
 * no progress chatter.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { escapeControls } from './escape.js';
import { formatRecord, type Level, type LogRecord, type LogSink } from '../util/log.js';

export type Verbosity = 'quiet' | 'normal' | 'verbose';

const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** quiet: warnings and errors; normal: info and up; verbose: everything. */
export function minLevelFor(verbosity: Verbosity): Level {
  return verbosity === 'quiet' ? 'warn' : verbosity === 'verbose' ? 'debug' : 'info';
}

/** One record, one line: newlines and other control characters escaped. */
export function oneLine(text: string): string {
  return escapeControls(text);
}

function logLine(record: LogRecord): string {
  return `${oneLine(formatRecord(record))}\n`;
}

export interface LogFileSink {
  readonly path: string;
  readonly sink: LogSink;
  /** The first write error (disk full, I/O error); after it the sink stops writing. */
  readonly error: Error | null;
  /** fsyncs and closes the file; records arriving later are dropped. */
  close(): void;
}

/**
 * Opens LOGFILE for appending (created 0640: it names guests' paths, not for
 * every local user). Throws a one-line error naming the file if it cannot be
 * opened, so a bad LOGFILE is caught before anything is touched.
 */
export function openLogFile(path: string, opts: { minLevel?: Level } = {}): LogFileSink {
  let fd: number | null;
  try {
    fd = openSync(path, 'a', 0o640);
  } catch (err) {
    throw new Error(`cannot open log file ${path}: ${(err as Error).message}`);
  }
  const minLevel = opts.minLevel ?? 'debug';
  let error: Error | null = null;
  const sink: LogSink = (record) => {
    if (fd === null || error || ORDER[record.level] < ORDER[minLevel]) return;
    const bytes = Buffer.from(logLine(record));
    try {
      // writeSync, not a stream: the line is in the kernel before the next
      // statement runs, so a SIGKILL right after cannot lose it.
      let offset = 0;
      while (offset < bytes.length) offset += writeSync(fd, bytes, offset);
    } catch (err) {
      error = new Error(`cannot write log file ${path}: ${(err as Error).message}`);
    }
  };
  return {
    path,
    sink,
    get error() {
      return error;
    },
    close() {
      if (fd === null) return;
      try {
        fsyncSync(fd);
      } catch {
        // fsync is best effort on close; the lines were already written.
      }
      closeSync(fd);
      fd = null;
    },
  };
}

/** The part of a stream the terminal sink needs (process.stderr fits). */
export interface TerminalStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface TerminalSinkOptions {
  /** Default process.stderr. */
  stream?: TerminalStream;
  /** Default stream.isTTY. */
  tty?: boolean;
  verbosity?: Verbosity;
  /** ANSI colours for warnings and errors on a TTY; default on unless NO_COLOR is set or TERM=dumb. */
  color?: boolean;
  /** The status line is redrawn at most this often (ms); default 100. */
  progressIntervalMs?: number;
  /** Clock for the redraw throttle; default Date.now. */
  now?: () => number;
}

export interface TerminalSink {
  readonly tty: boolean;
  readonly sink: LogSink;
  /** Sets the status line (TTY only; ignored under cron and when quiet). */
  progress(text: string): void;
  /** Removes the status line. */
  clearProgress(): void;
  close(): void;
}

const ERASE_LINE = '\r\x1b[2K';
const COLOR: Partial<Record<Level, [string, string]>> = {
  debug: ['\x1b[2m', '\x1b[22m'],
  warn: ['\x1b[33m', '\x1b[39m'],
  error: ['\x1b[31m', '\x1b[39m'],
};
const TTY_PREFIX: Record<Level, string> = { debug: '', info: '', warn: 'warning: ', error: 'error: ' };

export function createTerminalSink(opts: TerminalSinkOptions = {}): TerminalSink {
  const stream = opts.stream ?? process.stderr;
  const tty = opts.tty ?? Boolean(stream.isTTY);
  const minLevel = minLevelFor(opts.verbosity ?? 'normal');
  const quiet = opts.verbosity === 'quiet';
  const color = tty && (opts.color ?? (!process.env.NO_COLOR && process.env.TERM !== 'dumb'));
  const interval = opts.progressIntervalMs ?? 100;
  const now = opts.now ?? Date.now;

  let status: string | null = null; // latest progress text
  let shown = false; // whether a status line is on screen
  let lastDraw = -Infinity;

  const fit = (text: string): string => {
    // One column spare: a line that fills the width wraps on some terminals, and \r then erases only the wrap.
    const width = Math.max(10, (stream.columns || 80) - 1); // a pty may report 0 columns
    const chars = Array.from(oneLine(text));
    return chars.length > width ? `${chars.slice(0, width - 3).join('')}...` : chars.join('');
  };
  const draw = (): void => {
    if (status === null) return;
    stream.write(`${ERASE_LINE}${fit(status)}`);
    shown = true;
    lastDraw = now();
  };
  const erase = (): void => {
    if (!shown) return;
    stream.write(ERASE_LINE);
    shown = false;
  };

  const sink: LogSink = (record) => {
    if (ORDER[record.level] < ORDER[minLevel]) return;
    if (!tty) {
      stream.write(logLine(record));
      return;
    }
    erase();
    const text = `${record.time.toISOString().slice(11, 19)} ${TTY_PREFIX[record.level]}${oneLine(record.message)}`;
    const paint = color ? COLOR[record.level] : undefined;
    stream.write(paint ? `${paint[0]}${text}${paint[1]}\n` : `${text}\n`);
    draw();
  };

  return {
    tty,
    sink,
    progress(text) {
      if (!tty || quiet) return;
      status = text;
      if (now() - lastDraw >= interval) draw();
    },
    clearProgress() {
      erase();
      status = null;
    },
    close() {
      erase();
      status = null;
    },
  };
}
