/**
 * The run's log: every module reports through a Logger so that the same lines
 * reach the terminal, the LOGFILE and the mailed report. Lines are plain text
 * with a UTC timestamp and a level; nothing here decides where they go.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface LogRecord {
  time: Date;
  level: Level;
  message: string;
}

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export type LogSink = (record: LogRecord) => void;

const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** A logger that hands each record at or above `minLevel` to every sink. */
export function createLogger(sinks: LogSink[], minLevel: Level = 'info'): Logger {
  const emit = (level: Level, message: string): void => {
    if (ORDER[level] < ORDER[minLevel]) return;
    const record = { time: new Date(), level, message };
    for (const sink of sinks) sink(record);
  };
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
  };
}

export function formatRecord(r: LogRecord): string {
  return `${r.time.toISOString()} ${r.level.toUpperCase().padEnd(5)} ${r.message}`;
}

/** Collects records in memory (for the report and for tests). */
export class MemorySink {
  readonly records: LogRecord[] = [];
  readonly sink: LogSink = (r) => {
    this.records.push(r);
  };
}

export const silentLogger: Logger = createLogger([]);
