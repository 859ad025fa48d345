/**
 * The full/incremental calendar (FULL_WEEKDAY, FULL_MONTHDAY) in
 * core/chain.ts decideKind, and a year of the old tool's own settings (a full
 * every Saturday, TTL 5 days) run through decideKind and retention with
 * nights that fail at random: pure, no files, so it can cover a year.
 */
process.env.TZ = 'UTC'; // the calendar is the host's local one; make it the same everywhere

import test from 'node:test';
import assert from 'node:assert/strict';
import { decideKind, needs, scheduledFullDay, type BackupSummary, type FullPolicy } from '../../src/core/chain.js';
import { decideRetention } from '../../src/core/retention.js';
import { backupIdFor, timeOfId } from '../../src/repo/volume-store.js';
import { DAY_MS, prng } from './prune-fixtures.js';

const SAT = Date.UTC(2026, 0, 3, 2, 30); // Saturday 2026-01-03, 02:30 (a cron.daily time)
const policy = (p: Partial<FullPolicy>): FullPolicy => ({ forceFull: false, fullIntervalDays: Infinity, maxChainLength: 1000, ...p });

/** Runs decideKind night after night and records the backups it asks for. */
function nights(count: number, p: FullPolicy, start = SAT, fails: (n: number) => boolean = () => false): BackupSummary[] {
  const out: BackupSummary[] = [];
  for (let n = 0; n < count; n++) {
    if (fails(n)) continue;
    const at = new Date(start + n * DAY_MS);
    const d = decideKind(out, at, p, timeOfId);
    const id = backupIdFor(at);
    out.push({ id, kind: d.kind, base: d.kind === 'incremental' ? d.base : null, chain: d.kind === 'full' ? id : out[out.length - 1]!.chain, status: 'complete' });
  }
  return out;
}

const fullDays = (bs: BackupSummary[]): string[] => bs.filter((b) => b.kind === 'full').map((b) => b.id.slice(0, 8));

test('FULL_WEEKDAY: a full every Saturday, incrementals between', () => {
  const bs = nights(22, policy({ fullWeekday: 6 }));
  assert.deepEqual(fullDays(bs), ['20260103', '20260110', '20260117', '20260124']);
  assert.equal(decideKind(bs.slice(0, 7), new Date(SAT + 7 * DAY_MS), policy({ fullWeekday: 6 }), timeOfId).reason, 'Saturday is the full backup day (FULL_WEEKDAY)');
  assert.equal(scheduledFullDay(new Date(SAT), { fullWeekday: 6 }), 'Saturday is the full backup day (FULL_WEEKDAY)');
  assert.equal(scheduledFullDay(new Date(SAT + DAY_MS), { fullWeekday: 6 }), undefined);
});

test('FULL_WEEKDAY: a second run on the full day builds on that day\'s full', () => {
  const bs = nights(1, policy({ fullWeekday: 6 }));
  const again = decideKind(bs, new Date(SAT + 6 * 3_600_000), policy({ fullWeekday: 6 }), timeOfId);
  assert.equal(again.kind, 'incremental');
});

test('FULL_WEEKDAY with a failed Saturday: the age limit makes Sunday the full, without it the next Saturday', () => {
  const failSecondSaturday = (n: number): boolean => n === 7;
  assert.deepEqual(fullDays(nights(15, policy({ fullWeekday: 6, fullIntervalDays: 7 }), SAT, failSecondSaturday)), ['20260103', '20260111', '20260117']);
  assert.deepEqual(fullDays(nights(15, policy({ fullWeekday: 6 }), SAT, failSecondSaturday)), ['20260103', '20260117']);
});

test('FULL_MONTHDAY: that day of each month, the last day of shorter months', () => {
  const jan31 = Date.UTC(2026, 0, 31, 2, 30);
  assert.deepEqual(fullDays(nights(100, policy({ fullMonthday: 31 }), jan31)), ['20260131', '20260228', '20260331', '20260430']);
  assert.deepEqual(fullDays(nights(40, policy({ fullMonthday: 1 }), jan31)), ['20260131', '20260201', '20260301'], 'the first backup is always a full');
  assert.match(scheduledFullDay(new Date(Date.UTC(2026, 1, 28)), { fullMonthday: 30 })!, /^day 28 is the full backup day of the month \(FULL_MONTHDAY=30\)$/);
});

test('without FULL_WEEKDAY/FULL_MONTHDAY the age and length rules decide as before', () => {
  assert.deepEqual(fullDays(nights(15, policy({ fullIntervalDays: 7 }))), ['20260103', '20260110', '20260117']);
  assert.deepEqual(fullDays(nights(9, policy({ maxChainLength: 4 }))), ['20260103', '20260107', '20260111']);
  assert.equal(decideKind(nights(3, policy({})), new Date(SAT + 3 * DAY_MS), policy({ forceFull: true }), timeOfId).reason, 'full requested');
});

test('FULL_WEEKDAY is the local weekday, as cron and `date +%w` count', () => {
  const fridayEveningInNewYork = new Date(Date.UTC(2026, 0, 3, 2, 30)); // Sat 02:30 UTC = Fri 21:30 EST
  try {
    process.env.TZ = 'America/New_York';
    assert.equal(scheduledFullDay(fridayEveningInNewYork, { fullWeekday: 6 }), undefined);
    assert.ok(scheduledFullDay(fridayEveningInNewYork, { fullWeekday: 5 }));
  } finally {
    process.env.TZ = 'UTC';
  }
  assert.ok(scheduledFullDay(fridayEveningInNewYork, { fullWeekday: 6 }));
});

test('a year of the old settings (full every Saturday, TTL 5) with failed nights: every promise restorable, the age purge is not', (t) => {
  const random = prng(7);
  const fails = new Set(Array.from({ length: 365 }, (_, n) => n).filter(() => random() < 0.1));
  const p = policy({ fullWeekday: 6, fullIntervalDays: 7, maxChainLength: 14 });
  const rules = { ttlDays: 5, keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0 };
  let held: BackupSummary[] = [];
  let oldHeld: BackupSummary[] = [];
  let promised = 0;
  let oldOffered = 0;
  let oldRestorable = 0;
  let peak = 0;
  for (let n = 0; n < 365; n++) {
    const at = SAT + n * DAY_MS;
    if (!fails.has(n)) {
      const d = decideKind(held, new Date(at), p, timeOfId);
      const id = backupIdFor(new Date(at));
      const b: BackupSummary = { id, kind: d.kind, base: d.kind === 'incremental' ? d.base : null, chain: d.kind === 'full' ? id : held[held.length - 1]!.chain, status: 'complete' };
      held.push(b);
      // The old tool chained on its own (unpruned-by-chain) history the same way.
      oldHeld.push({ ...b });
    }
    const now = new Date(at + 3_600_000);
    const decision = decideRetention(held, now, rules, timeOfId);
    held = decision.keep;
    peak = Math.max(peak, held.length);
    for (const i of decision.items.filter((x) => x.promised)) {
      promised += 1;
      assert.doesNotThrow(() => needs(held, i.backup), `night ${n}: ${i.backup.id}`);
    }
    if (held.length) assert.ok(held.some((b) => b.id === decision.newestComplete?.id), `night ${n}: the newest restore point stays`);
    oldHeld = oldHeld.filter((b) => now.getTime() - timeOfId(b.id).getTime() <= rules.ttlDays * DAY_MS);
    for (const b of oldHeld) {
      oldOffered += 1;
      try {
        needs(oldHeld, b);
        oldRestorable += 1;
      } catch {
        /* broken by the age purge */
      }
    }
  }
  assert.ok(oldRestorable < oldOffered);
  t.diagnostic(`a year, full every Saturday, TTL 5, ${fails.size} failed nights: ${promised} restore points promised, all restorable, peak ${peak} backups held; age purge: ${oldRestorable} of ${oldOffered} restorable`);
});
