/**
 * The log sinks: the LOGFILE keeps every line (also when the process is
 * SIGKILLed right after logging, and when the disk is full it reports rather
 * than throws); the terminal sink prints plain control-free lines when stderr
 * is a pipe (cron) and a single updating status line on a real pty (via
 * util-linux `script`). Exact escape sequences and the redraw throttle are
 * checked against a collecting stream standing in for a terminal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTerminalSink, minLevelFor, oneLine, openLogFile, type TerminalStream } from '../../src/report/sinks.js';
import { createLogger, formatRecord, type LogRecord } from '../../src/util/log.js';

const SINKS_JS = fileURLToPath(new URL('../../src/report/sinks.js', import.meta.url));
const LOG_JS = fileURLToPath(new URL('../../src/util/log.js', import.meta.url));

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'xenbackup-sinks-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function record(level: LogRecord['level'], message: string, second = 0): LogRecord {
  return { time: new Date(Date.UTC(2026, 10, 27, 2, 0, second)), level, message };
}

/** Writes a child program that imports the compiled sinks; returns its path. */
function childScript(dir: string, body: string): string {
  const path = join(dir, 'child.mjs');
  writeFileSync(
    path,
    `import { createTerminalSink, openLogFile } from ${JSON.stringify(SINKS_JS)};\n` +
      `import { createLogger } from ${JSON.stringify(LOG_JS)};\n${body}\n`,
  );
  return path;
}

test('oneLine escapes newlines and control characters', () => {
  assert.equal(oneLine('a\nb\tc\x1b[31md\x7f'), 'a\\nb\\tc\\x1b[31md\\x7f');
  assert.equal(oneLine('plain ünïcode'), 'plain ünïcode');
});

test('verbosity maps to the lowest level shown', () => {
  assert.equal(minLevelFor('quiet'), 'warn');
  assert.equal(minLevelFor('normal'), 'info');
  assert.equal(minLevelFor('verbose'), 'debug');
});

test('log file: created 0640, appended, one line per record, every line kept', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'xenbackup.log');
  const oldUmask = process.umask(0o022);
  t.after(() => process.umask(oldUmask));

  const first = openLogFile(path);
  first.sink(record('info', 'first run'));
  first.close();
  assert.equal(statSync(path).mode & 0o777, 0o640);

  const file = openLogFile(path);
  const records: LogRecord[] = [];
  for (let i = 0; i < 2000; i++) records.push(record(i % 7 === 0 ? 'debug' : 'info', `file ${i}`, i % 60));
  records.push(record('warn', 'name with\na newline'));
  for (const r of records) file.sink(r);
  file.close();
  file.sink(record('info', 'after close is dropped'));

  const lines = readFileSync(path, 'utf8').split('\n');
  assert.equal(lines.pop(), '', 'ends with a newline');
  assert.equal(lines.length, 1 + records.length);
  assert.equal(lines[0], formatRecord(record('info', 'first run')));
  records.forEach((r, i) => assert.equal(lines[i + 1], oneLine(formatRecord(r))));
  assert.equal(lines.at(-1), '2026-11-27T02:00:00.000Z WARN  name with\\na newline');
  assert.equal(file.error, null);
});

test('log file: minLevel filters records', (t) => {
  const path = join(tempDir(t), 'x.log');
  const file = openLogFile(path, { minLevel: 'warn' });
  file.sink(record('info', 'no'));
  file.sink(record('error', 'yes'));
  file.close();
  assert.equal(readFileSync(path, 'utf8'), `${formatRecord(record('error', 'yes'))}\n`);
});

test('log file: every line logged before a SIGKILL is on disk', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'killed.log');
  const child = childScript(
    dir,
    `const file = openLogFile(${JSON.stringify(path)});
const log = createLogger([file.sink], 'debug');
for (let i = 0; i < 5000; i++) log.info('line ' + i);
process.kill(process.pid, 'SIGKILL');`,
  );
  const result = spawnSync(process.execPath, [child], { encoding: 'utf8' });
  assert.equal(result.signal, 'SIGKILL', result.stderr);
  const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
  assert.equal(lines.length, 5000);
  assert.match(lines[4999]!, / INFO  line 4999$/);
});

test('log file: a full disk is reported on the sink, not thrown into the run', () => {
  const file = openLogFile('/dev/full');
  file.sink(record('info', 'cannot be written'));
  file.sink(record('info', 'nor this'));
  file.close();
  assert.match(file.error?.message ?? '', /^cannot write log file \/dev\/full: ENOSPC/);
});

test('log file: a directory that does not exist is a clear error at open', (t) => {
  const path = join(tempDir(t), 'missing', 'x.log');
  assert.throws(() => openLogFile(path), { message: new RegExp(`^cannot open log file ${path}: ENOENT`) });
});

test('terminal under cron (stderr a pipe): plain lines, no control characters, no progress', (t) => {
  const dir = tempDir(t);
  const child = childScript(
    dir,
    `const term = createTerminalSink({ verbosity: 'normal' });
const log = createLogger([term.sink], 'debug');
log.debug('hidden at normal verbosity');
log.info('snapshot web1/root');
term.progress('web1/root: 10 files');
log.warn('odd \\x1b[2J name\\n here');
term.progress('web1/root: 20 files');
log.error('failed');
term.close();`,
  );
  const result = spawnSync(process.execPath, [child], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  assert.equal(result.status, 0, result.stderr);
  const stderr = result.stderr;
  const lines = stderr.trimEnd().split('\n');
  assert.equal(lines.length, 3, stderr);
  assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  snapshot web1\/root$/);
  assert.match(lines[1]!, /Z WARN  odd \\x1b\[2J name\\n here$/);
  assert.match(lines[2]!, /Z ERROR failed$/);
  assert.doesNotMatch(stderr, /[\x00-\x09\x0b-\x1f\x7f]/);
});

test('terminal on a real pty: records on their own lines, progress on one updating line', (t) => {
  const dir = tempDir(t);
  const child = childScript(
    dir,
    `const term = createTerminalSink({ progressIntervalMs: 0, color: false });
if (!term.tty) { console.log('NOT A TTY'); process.exit(3); }
const log = createLogger([term.sink]);
log.info('start');
term.progress('web1/root: 1 files');
term.progress('web1/root: 2 files');
log.warn('changed while read');
term.close();`,
  );
  const out = execFileSync('script', ['-qec', `${process.execPath} ${child}`, '/dev/null'], { encoding: 'utf8' });
  assert.doesNotMatch(out, /NOT A TTY/);
  // The pty turns \n into \r\n.
  const text = out.replace(/\r\n/g, '\n');
  assert.match(
    text,
    /^\d\d:\d\d:\d\d start\n\r\x1b\[2Kweb1\/root: 1 files\r\x1b\[2Kweb1\/root: 2 files\r\x1b\[2K\d\d:\d\d:\d\d warning: changed while read\n\r\x1b\[2Kweb1\/root: 2 files\r\x1b\[2K$/,
  );
});

/** A stand-in for a terminal that only records what was written (exact sequences, fixed width). */
class CollectingTerminal implements TerminalStream {
  isTTY = true;
  columns = 30;
  output = '';
  write(text: string): boolean {
    this.output += text;
    return true;
  }
}

test('terminal status line: throttled, cut to the width, escaped, cleared around records', () => {
  const stream = new CollectingTerminal();
  let clock = 1000;
  const term = createTerminalSink({ stream, color: false, progressIntervalMs: 100, now: () => clock });
  term.progress('a');
  clock += 50;
  term.progress('b'); // within the interval: not drawn yet
  clock += 60;
  term.progress('c');
  term.progress('d\ne 0123456789012345678901234567890'); // pending, shown with the next record
  term.sink(record('info', 'record', 5));
  term.clearProgress();
  term.sink(record('error', 'after clear', 6));
  term.close();
  assert.equal(
    stream.output,
    '\r\x1b[2Ka' +
      '\r\x1b[2Kc' +
      '\r\x1b[2K02:00:05 record\n' +
      '\r\x1b[2Kd\\ne 012345678901234567890...' + // 29 columns: one spare
      '\r\x1b[2K' +
      '02:00:06 error: after clear\n',
  );
});

test('terminal: quiet shows only warnings and errors and no progress; colours only when asked', () => {
  const stream = new CollectingTerminal();
  const term = createTerminalSink({ stream, verbosity: 'quiet', color: true });
  const log = createLogger([term.sink], 'debug');
  log.info('not shown');
  term.progress('not shown either');
  log.warn('careful');
  log.error('broken');
  term.close();
  assert.match(stream.output, /^\x1b\[33m\d\d:\d\d:\d\d warning: careful\x1b\[39m\n\x1b\[31m\d\d:\d\d:\d\d error: broken\x1b\[39m\n$/);
});

test('terminal: verbose shows debug lines', () => {
  const stream = new CollectingTerminal();
  stream.isTTY = false;
  const term = createTerminalSink({ stream, verbosity: 'verbose' });
  term.sink(record('debug', 'exec: lvs', 1));
  assert.equal(stream.output, '2026-11-27T02:00:01.000Z DEBUG exec: lvs\n');
});
