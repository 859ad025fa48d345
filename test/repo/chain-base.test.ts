// openBase: the base of an incremental, opened by the engine's own reader; a full, with the reason,
// when the engine cannot build on it or its manifest does not open (and then a warning, logged).
import test from 'node:test';
import assert from 'node:assert/strict';
import { openBase } from '../../src/repo/chain-base.js';
import type { Sidecar } from '../../src/medium/sidecar.js';
import { createLogger, MemorySink } from '../../src/util/log.js';

const base = { id: '20261127T010000Z', engine: 'tar', manifest: '20261127T010000Z.manifest' } as Sidecar;
const incremental = { kind: 'incremental', base: base.id, reason: 'chain continues' } as const;

function logger(): { sink: MemorySink; log: ReturnType<typeof createLogger> } {
  const sink = new MemorySink();
  return { sink, log: createLogger([sink.sink], 'debug') };
}

test('a full stays a full and opens nothing', () => {
  const { log } = logger();
  const r = openBase({ kind: 'full', reason: 'first backup' }, [base], 'v/p', () => undefined, () => assert.fail('opened'), log);
  assert.deepEqual(r, { decision: { kind: 'full', reason: 'first backup' }, previous: null });
});

test('an incremental gets its base opened by the engine', () => {
  const { log } = logger();
  const r = openBase(incremental, [base], 'v/p', () => undefined, (b) => `opened ${b.manifest}`, log);
  assert.deepEqual(r, { decision: incremental, previous: 'opened 20261127T010000Z.manifest' });
});

test("another engine's base makes a full with the engine's reason, without opening it", () => {
  const { log } = logger();
  const r = openBase(incremental, [base], 'v/p', (b) => `${b.id} is a ${b.engine} backup, not raw`, () => assert.fail('opened'), log);
  assert.deepEqual(r, { decision: { kind: 'full', reason: '20261127T010000Z is a tar backup, not raw' }, previous: null });
});

test('a base whose manifest does not open makes a full, with a warning naming the base and the reason', () => {
  const { sink, log } = logger();
  const r = openBase(incremental, [base], 'v/p', () => undefined, () => {
    throw new Error('checksum mismatch (damaged)');
  }, log);
  assert.deepEqual(r.decision, { kind: 'full', reason: 'previous manifest unusable' });
  assert.equal(r.previous, null);
  assert.equal(r.warning, 'v/p: the manifest of 20261127T010000Z is unusable (checksum mismatch (damaged)); making a full backup instead');
  assert.ok(sink.records.some((rec) => rec.level === 'warn' && rec.message === r.warning), 'logged as a warning');
});
