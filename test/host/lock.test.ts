/**
 * The run lock between real node processes: each contender is a child
 * process running the compiled lock module, reporting what happened as JSON
 * lines on stdout and releasing when told on stdin (so the tests sequence
 * events by messages, never by sleeping).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createLogger, MemorySink } from '../../src/util/log.js';
import { acquireLock, lockHolder, holderAlive, LockHeldError, type LockHolder } from '../../src/host/lock.js';
import { scratch } from './host-fixtures.js';

const LOCK_MODULE = fileURLToPath(new URL('../../src/host/lock.js', import.meta.url));
const LOG_MODULE = fileURLToPath(new URL('../../src/util/log.js', import.meta.url));

const CHILD = `
import { acquireLock } from ${JSON.stringify(LOCK_MODULE)};
import { createLogger } from ${JSON.stringify(LOG_MODULE)};
import { createInterface } from 'node:readline';
const say = (o) => process.stdout.write(JSON.stringify({ pid: process.pid, ...o }) + '\\n');
const logger = createLogger([(r) => say({ event: 'log', level: r.level, message: r.message })]);
const [lockPath, wait] = process.argv.slice(2);
try {
  const h = await acquireLock(lockPath, { waitSeconds: Number(wait), pollMs: 20, logger });
  say({ event: 'acquired', generation: h.generation });
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'release') { await h.release(); say({ event: 'released' }); process.exit(0); }
    if (line === 'die') process.kill(process.pid, 'SIGKILL');
  }
} catch (e) {
  say({ event: 'failed', name: e.name, message: e.message, holderPid: e.holder?.pid });
  process.exit(3);
}
`;

interface Message {
  pid: number;
  event: 'acquired' | 'released' | 'failed' | 'log';
  level?: string;
  message?: string;
  name?: string;
  holderPid?: number;
  generation?: number;
}

class Contender {
  readonly child: ChildProcessWithoutNullStreams;
  readonly messages: Message[] = [];
  private waiters: { pred: (m: Message) => boolean; resolve: (m: Message) => void }[] = [];
  readonly exited: Promise<number | null>;

  constructor(script: string, lockPath: string, waitSeconds: number) {
    this.child = spawn(process.execPath, [script, lockPath, String(waitSeconds)], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((r) => this.child.on('exit', (code) => r(code)));
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const m = JSON.parse(line) as Message;
      this.messages.push(m);
      this.waiters = this.waiters.filter((w) => (w.pred(m) ? (w.resolve(m), false) : true));
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The first message (already received or still to come) matching `pred`. */
  next(pred: (m: Message) => boolean): Promise<Message> {
    const seen = this.messages.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  outcome(): Promise<Message> {
    return this.next((m) => m.event === 'acquired' || m.event === 'failed');
  }

  send(line: string): void {
    this.child.stdin.write(`${line}\n`);
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

function setup(t: { after(fn: () => unknown): void }) {
  const dir = scratch(t, 'xb-lock');
  const script = path.join(dir, 'contender.mjs');
  fs.writeFileSync(script, CHILD);
  const contenders: Contender[] = [];
  t.after(() => contenders.forEach((c) => c.kill()));
  const start = (waitSeconds = 0) => {
    const c = new Contender(script, path.join(dir, 'xenbackup.lock'), waitSeconds);
    contenders.push(c);
    return c;
  };
  return { dir, lockPath: path.join(dir, 'xenbackup.lock'), start };
}

test('a second process fails at once, naming the holder; after release the lock is free again', async (t) => {
  const { lockPath, start } = setup(t);
  const first = start();
  assert.equal((await first.outcome()).event, 'acquired');
  assert.equal((await lockHolder(lockPath))?.pid, first.pid);

  const second = start();
  const out = await second.outcome();
  assert.equal(out.event, 'failed');
  assert.equal(out.name, 'LockHeldError');
  assert.equal(out.holderPid, first.pid);
  assert.match(out.message!, new RegExp(`^another xenbackup run holds the lock ${lockPath}: pid ${first.pid} since \\d{4}-`));
  assert.equal(await second.exited, 3);

  first.send('release');
  await first.next((m) => m.event === 'released');
  assert.equal(await first.exited, 0);
  assert.equal(await lockHolder(lockPath), undefined);
  const third = start();
  assert.equal((await third.outcome()).event, 'acquired');
  third.send('release');
  await third.exited;
  // generations don't pile up
  assert.ok(fs.readdirSync(lockPath).length <= 2, fs.readdirSync(lockPath).join(' '));
});

test('with a wait, the second process gets the lock once the first releases it', async (t) => {
  const { start } = setup(t);
  const first = start();
  await first.outcome();
  const second = start(60);
  const waiting = await second.next((m) => m.event === 'log' && /waiting up to 60 s/.test(m.message ?? ''));
  assert.match(waiting.message!, new RegExp(`held by pid ${first.pid}`));
  first.send('release');
  const out = await second.outcome();
  assert.equal(out.event, 'acquired');
  second.send('release');
  assert.equal(await second.exited, 0);
});

test('with a wait that runs out, the error says how long it waited', async (t) => {
  const { lockPath } = setup(t);
  const mine = await acquireLock(lockPath);
  t.after(() => mine.release());
  await assert.rejects(acquireLock(lockPath, { waitSeconds: 0.2, pollMs: 20 }), (e: unknown) => {
    assert.ok(e instanceof LockHeldError);
    assert.equal(e.holder.pid, process.pid);
    assert.match(e.message, /\(waited \d+(\.\d)? s\)$/);
    return true;
  });
});

test('a wait is cut short by its abort signal (SIGTERM to a waiting run)', async (t) => {
  const { lockPath } = setup(t);
  const mine = await acquireLock(lockPath);
  t.after(() => mine.release());
  const stop = new AbortController();
  const waiting = acquireLock(lockPath, { waitSeconds: 600, pollMs: 60_000, signal: stop.signal });
  stop.abort();
  await assert.rejects(waiting, (e: unknown) => e instanceof LockHeldError && e.holder.pid === process.pid);
});

test('the lock of a killed process is taken over with a warning naming it', async (t) => {
  const { lockPath, start } = setup(t);
  const dead = start();
  await dead.outcome();
  dead.send('die');
  await dead.exited;
  const mem = new MemorySink();
  const h = await acquireLock(lockPath, { logger: createLogger([mem.sink]) });
  t.after(() => h.release());
  const warnings = mem.records.filter((r) => r.level === 'warn').map((r) => r.message);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, new RegExp(`^took over the stale lock ${lockPath}: pid ${dead.pid} \\(since .*\\) is no longer running; the earlier run did not finish cleanly$`));
  await h.release();
});

test('many processes racing for one stale lock: exactly one wins, the others name it', async (t) => {
  const { start } = setup(t);
  const dead = start();
  await dead.outcome();
  dead.send('die');
  await dead.exited;

  const racers = Array.from({ length: 6 }, () => start());
  const outcomes = await Promise.all(racers.map((r) => r.outcome()));
  const winners = outcomes.filter((o) => o.event === 'acquired');
  assert.equal(winners.length, 1, JSON.stringify(outcomes));
  for (const o of outcomes.filter((x) => x.event === 'failed')) {
    assert.equal(o.name, 'LockHeldError');
    assert.equal(o.holderPid, winners[0]!.pid);
  }
  const winner = racers.find((r) => r.pid === winners[0]!.pid)!;
  winner.send('release');
  assert.equal(await winner.exited, 0);
});

test('twenty interleaved attempts in one process on a stale lock: one winner', async (t) => {
  const { lockPath } = setup(t);
  fs.mkdirSync(lockPath);
  fs.writeFileSync(path.join(lockPath, 'gen-000000000007'), 'garbage');
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => acquireLock(lockPath)));
  const won = results.filter((r) => r.status === 'fulfilled');
  assert.equal(won.length, 1);
  for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof LockHeldError, String(r.reason));
  await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireLock>>>).value.release();
});

test('a recorded holder whose pid now belongs to another process (pid reuse), or to an earlier boot, is dead', async (t) => {
  const { lockPath } = setup(t);
  const h = await acquireLock(lockPath);
  const me: LockHolder = h.holder;
  assert.equal(await holderAlive(me), true);
  assert.equal(await holderAlive({ ...me, startTime: String(Number(me.startTime) + 1) }), false);
  assert.equal(await holderAlive({ ...me, bootId: 'another-boot' }), false);
  await h.release();

  // a lock file left with our pid but someone else's start time is taken over
  fs.writeFileSync(path.join(lockPath, 'gen-000000000099'), JSON.stringify({ ...me, startTime: '1' }));
  const mem = new MemorySink();
  const again = await acquireLock(lockPath, { logger: createLogger([mem.sink]) });
  t.after(() => again.release());
  assert.equal(again.generation, 100);
  assert.match(mem.records.find((r) => r.level === 'warn')?.message ?? '', new RegExp(`pid ${process.pid} .* is no longer running`));
  await again.release();
});

test('a damaged lock file is taken over with a warning naming it; a lock path that is a file is a clear error', async (t) => {
  const { dir, lockPath } = setup(t);
  fs.mkdirSync(lockPath);
  fs.writeFileSync(path.join(lockPath, 'gen-000000000003'), 'garbage');
  const mem = new MemorySink();
  const h = await acquireLock(lockPath, { logger: createLogger([mem.sink]) });
  assert.equal(h.generation, 4);
  assert.match(mem.records.find((r) => r.level === 'warn')?.message ?? '', /gen-000000000003 is unreadable/);
  await h.release();

  const plain = path.join(dir, 'plain-file');
  fs.writeFileSync(plain, '');
  await assert.rejects(acquireLock(plain), { name: 'LockError', message: new RegExp(`^lock ${plain}: cannot create the lock directory: `) });
});
