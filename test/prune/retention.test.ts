/**
 * core/retention.ts, pure: each rule, the reasons it gives, the newest
 * complete restore point, a volume whose runs failed, broken chains, the
 * refusal of rules that keep nothing, and randomized histories checked for
 * the invariants prune relies on (the kept set holds everything a kept
 * backup needs; deleting in the given order never strands a backup).
 */
process.env.TZ = 'UTC'; // keep-daily/weekly/monthly use the local calendar; make it the same everywhere

import test from 'node:test';
import assert from 'node:assert/strict';
import { needs, type BackupSummary } from '../../src/core/chain.js';
import { checkRules, decideRetention, describeRules, RetentionRulesError, type RetentionRules } from '../../src/core/retention.js';
import { backupIdFor, timeOfId } from '../../src/repo/volume-store.js';
import { DAY_MS, prng } from './prune-fixtures.js';

const NOON = Date.UTC(2026, 0, 5, 12); // a Monday
const RULES: RetentionRules = { ttlDays: 0, keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0 };
const rules = (r: Partial<RetentionRules>): RetentionRules => ({ ...RULES, ...r });

/** Backups at the given times: 'F' a full, 'I' an incremental on the previous backup, 'P' a partial incremental. */
function history(spec: Array<[number, 'F' | 'I' | 'P']>): BackupSummary[] {
  const out: BackupSummary[] = [];
  let chain = '';
  for (const [t, k] of spec) {
    const id = backupIdFor(new Date(t));
    if (k === 'F') chain = id;
    out.push({ id, kind: k === 'F' ? 'full' : 'incremental', base: k === 'F' ? null : out[out.length - 1]!.id, chain, status: k === 'P' ? 'partial' : 'complete' });
  }
  return out;
}

/** One backup a night at noon from NOON, a full every `fullEvery` nights. */
function nightly(nights: number, fullEvery = 7, start = NOON): BackupSummary[] {
  return history(Array.from({ length: nights }, (_, i) => [start + i * DAY_MS, i % fullEvery === 0 ? 'F' : 'I'] as [number, 'F' | 'I']));
}

const ids = (bs: BackupSummary[]): string[] => bs.map((b) => b.id);
const decide = (bs: BackupSummary[], now: number, r: Partial<RetentionRules>) => decideRetention(bs, new Date(now), rules(r), timeOfId);

test('TTL: backups at most TTL days old stay, with the chains they need; the rest goes, newest first', () => {
  const bs = nightly(14); // fulls on nights 0 and 7
  const d = decide(bs, NOON + 13 * DAY_MS + 3_600_000, { ttlDays: 5 });
  // nights 9..13 are within 5 days; they need the full of night 7 and night 8
  assert.deepEqual(ids(d.keep), ids(bs.slice(7)));
  assert.deepEqual(ids(d.drop), ids(bs.slice(0, 7)).reverse(), 'newest first: dependents before their bases');
  const reasons = new Map(d.items.map((i) => [i.backup.id, i.reasons]));
  assert.deepEqual(reasons.get(bs[7]!.id), [`needed by ${bs[13]!.id} (and 4 more)`]);
  assert.deepEqual(reasons.get(bs[12]!.id), ['within the 5-day TTL (1.0 days old)', `needed by ${bs[13]!.id}`]);
  assert.deepEqual(reasons.get(bs[13]!.id), ['within the 5-day TTL (0.0 days old)']);
  assert.deepEqual(reasons.get(bs[0]!.id), ['chosen by no rule (older than the 5-day TTL) and needed by no kept backup']);
  assert.deepEqual(d.items.filter((i) => i.promised).map((i) => i.backup.id), ids(bs.slice(9)));
  assert.deepEqual(d.items[10]!.needs, ids(bs.slice(7, 11)));
  assert.equal(d.newestComplete?.id, bs[13]!.id);
});

test('TTL boundary: exactly TTL days old stays, a second older goes', () => {
  const bs = history([[NOON, 'F'], [NOON + DAY_MS, 'F']]);
  assert.deepEqual(ids(decide(bs, NOON + 5 * DAY_MS, { ttlDays: 5 }).keep), ids(bs));
  assert.deepEqual(ids(decide(bs, NOON + 5 * DAY_MS + 1000, { ttlDays: 5 }).keep), [bs[1]!.id]);
});

test('keep-last N: the newest N restore points and what they need', () => {
  const bs = nightly(10, 4); // fulls on nights 0, 4, 8
  const d = decide(bs, NOON + 100 * DAY_MS, { keepLast: 3 });
  assert.deepEqual(ids(d.keep), ids(bs.slice(4)), 'nights 7, 8, 9, and 4..6 that night 7 needs');
  assert.match(d.items[9]!.reasons[0]!, /^keep-last 3 \(the 1st newest restore point\)$/);
  assert.match(d.items[7]!.reasons[0]!, /^keep-last 3 \(the 3rd newest/);
});

test('keep-daily counts the days that have a backup, and keeps the newest of each', () => {
  // three backups on Jan 5, none on Jan 6-8, two on Jan 9, one on Jan 10
  const t = (day: number, h: number): number => Date.UTC(2026, 0, day, h);
  const bs = history([[t(5, 1), 'F'], [t(5, 9), 'I'], [t(5, 20), 'I'], [t(9, 2), 'I'], [t(9, 22), 'I'], [t(10, 3), 'I']]);
  const d = decide(bs, t(30, 0), { keepDaily: 3 });
  assert.deepEqual(d.items.filter((i) => i.promised).map((i) => i.backup.id), ids([bs[2]!, bs[4]!, bs[5]!]));
  assert.deepEqual(d.items[2]!.reasons.slice(0, 1), ['keep-daily 3 (the newest of 2026-01-05)']);
  assert.deepEqual(ids(d.keep), ids(bs), 'all of it is one chain the chosen points need');
  const two = decide(bs, t(30, 0), { keepDaily: 2 });
  assert.deepEqual(two.items.filter((i) => i.promised).map((i) => i.backup.id), ids([bs[4]!, bs[5]!]));
});

test('keep-weekly (ISO weeks) and keep-monthly', () => {
  const bs = nightly(70, 7, Date.UTC(2025, 11, 27, 12)); // Sat 2025-12-27 .. 2026-03-06
  const weekly = decide(bs, Date.UTC(2026, 5, 1), { keepWeekly: 3 });
  const chosen = weekly.items.filter((i) => i.promised);
  assert.deepEqual(chosen.map((i) => i.reasons[0]), [
    'keep-weekly 3 (the newest of 2026-W08)',
    'keep-weekly 3 (the newest of 2026-W09)',
    'keep-weekly 3 (the newest of 2026-W10)',
  ]);
  assert.deepEqual(chosen.map((i) => new Date(timeOfId(i.backup.id)).getUTCDay()), [0, 0, 5], 'Sundays end ISO weeks; the last week ends on Friday Mar 6');
  const monthly = decide(bs, Date.UTC(2026, 5, 1), { keepMonthly: 12 });
  assert.deepEqual(monthly.items.filter((i) => i.promised).map((i) => i.backup.id), ['20251231T120000Z', '20260131T120000Z', '20260228T120000Z', '20260306T120000Z']);
  // The ISO year of Dec 29 2025 is 2026 (week 1).
  const newYear = decide(history([[Date.UTC(2025, 11, 29, 12), 'F']]), Date.UTC(2026, 5, 1), { keepWeekly: 1 });
  assert.equal(newYear.items[0]!.reasons[0], 'keep-weekly 1 (the newest of 2026-W01)');
});

test('the newest complete restore point is never deleted: a volume whose runs failed keeps its last good chain', () => {
  const bs = nightly(10, 7); // fulls on nights 0 and 7; then the runs fail
  for (const daysLater of [1, 6, 30, 400]) {
    const d = decide(bs, NOON + (9 + daysLater) * DAY_MS, { ttlDays: 5 });
    const kept = ids(d.keep);
    assert.deepEqual(kept.slice(-3), ids(bs.slice(7)), `${daysLater} days later: the whole last chain`);
    if (daysLater > 5) {
      assert.deepEqual(kept, ids(bs.slice(7)));
      assert.deepEqual(d.items[9]!.reasons, ['the newest complete restore point (never deleted)']);
      assert.deepEqual(d.items[7]!.reasons, [`needed by ${bs[9]!.id}`]);
    }
  }
});

test('a partial newest backup does not count as the newest complete restore point', () => {
  const bs = history([[NOON, 'F'], [NOON + DAY_MS, 'I'], [NOON + 2 * DAY_MS, 'P']]);
  const d = decide(bs, NOON + 50 * DAY_MS, { ttlDays: 5 });
  assert.equal(d.newestComplete?.id, bs[1]!.id);
  assert.deepEqual(ids(d.keep), ids(bs.slice(0, 2)));
  assert.deepEqual(ids(d.drop), [bs[2]!.id]);
});

test('a broken chain: not a restore point, kept within the TTL, said why', () => {
  const bs = nightly(6, 7);
  const broken = bs.filter((_, i) => i !== 2); // night 2 is gone (the old tool's purge, or by hand)
  const d = decide(broken, NOON + 5 * DAY_MS + 3_600_000, { ttlDays: 3 });
  const byId = new Map(d.items.map((i) => [i.backup.id, i]));
  for (const b of broken.slice(2)) {
    assert.equal(byId.get(b.id)!.restorable, false);
    assert.equal(byId.get(b.id)!.problem, `its base ${bs[2]!.id} is missing`);
  }
  assert.deepEqual(ids(d.keep), ids([bs[0]!, bs[1]!, bs[3]!, bs[4]!, bs[5]!]), 'within the TTL (nights 3..5), and the newest complete restore point (night 1) with its full');
  assert.deepEqual(byId.get(bs[1]!.id)!.reasons, ['the newest complete restore point (never deleted)']);
  assert.deepEqual(byId.get(bs[0]!.id)!.reasons, [`needed by ${bs[1]!.id}`]);
  const later = decide(broken, NOON + 40 * DAY_MS, { ttlDays: 3 });
  assert.deepEqual(ids(later.keep), ids(bs.slice(0, 2)));
  assert.match(later.items.find((i) => i.backup.id === bs[5]!.id)!.reasons[0]!, /^cannot be restored \(its base \d{8}T\d{6}Z is missing\) and chosen by no rule$/);
});

test('rules that keep nothing, or are not whole numbers, are refused', () => {
  assert.throws(() => checkRules(RULES), (e: unknown) => e instanceof RetentionRulesError && /keep nothing.*refusing to prune/.test(e.message));
  assert.throws(() => decide(nightly(3), NOON, {}), RetentionRulesError);
  assert.throws(() => checkRules(rules({ ttlDays: -1 })), /TTL \(days\) must be a whole number >= 0, not -1/);
  assert.throws(() => checkRules(rules({ keepDaily: 1.5 })), /keep-daily must be a whole number/);
  assert.doesNotThrow(() => checkRules(rules({ keepMonthly: 1 })));
  assert.equal(describeRules(rules({ ttlDays: 5, keepWeekly: 4 })), 'TTL 5 days, keep-weekly 4');
  assert.equal(describeRules(rules({ ttlDays: 1 })), 'TTL 1 day');
});

test('no backups: nothing to keep, nothing to delete', () => {
  const d = decide([], NOON, { ttlDays: 5 });
  assert.deepEqual([d.keep, d.drop, d.items, d.newestComplete], [[], [], [], undefined]);
});

/** Random histories: nights with failures, gaps, partials, fulls at random; random rules and times. */
test('randomized histories: the kept set is closed under "needs", deletion order never strands a backup, promises hold', () => {
  const random = prng(42);
  const int = (n: number): number => Math.floor(random() * n);
  for (let round = 0; round < 400; round++) {
    const spec: Array<[number, 'F' | 'I' | 'P']> = [];
    let t = NOON;
    for (let n = 0, count = 1 + int(40); n < count; n++) {
      t += (int(10) === 0 ? 1 + int(5) : 1) * DAY_MS + int(3) * 3_600_000;
      spec.push([t, n === 0 || int(6) === 0 ? 'F' : int(8) === 0 ? 'P' : 'I']);
    }
    let bs = history(spec);
    if (int(4) === 0 && bs.length > 2) bs = bs.filter((_, i) => i !== 1 + int(bs.length - 1)); // a hole in a chain
    const r = rules({ ttlDays: int(8), keepLast: int(4), keepDaily: int(5), keepWeekly: int(3), keepMonthly: int(3) });
    if (Object.values(r).every((v) => v === 0)) r.ttlDays = 1;
    const now = t + int(20) * DAY_MS;
    const d = decideRetention(bs, new Date(now), r, timeOfId);
    const what = `round ${round}: ${JSON.stringify(r)}`;
    const keep = new Set(ids(d.keep));
    const restorable = (b: BackupSummary, present: BackupSummary[]): boolean => {
      try {
        needs(present, b);
        return true;
      } catch {
        return false;
      }
    };
    assert.equal(keep.size + d.drop.length, bs.length, what);
    for (const i of d.items) {
      if (i.keep && i.restorable) for (const n of i.needs) assert.ok(keep.has(n), `${what}: ${i.backup.id} needs ${n}`);
      if (i.promised) assert.ok(restorable(i.backup, d.keep), `${what}: promised ${i.backup.id} restores from the kept set`);
      if (r.ttlDays > 0 && now - timeOfId(i.backup.id).getTime() <= r.ttlDays * DAY_MS) assert.ok(i.keep, `${what}: ${i.backup.id} is within the TTL`);
    }
    const newestComplete = [...bs].reverse().find((b) => b.status === 'complete' && restorable(b, bs));
    if (newestComplete) assert.ok(keep.has(newestComplete.id), `${what}: newest complete restore point kept`);
    // Delete one by one in the given order: every backup still present that was restorable stays restorable.
    let present = [...bs];
    for (const gone of d.drop) {
      present = present.filter((b) => b.id !== gone.id);
      for (const b of present) if (restorable(b, bs)) assert.ok(restorable(b, present), `${what}: deleting ${gone.id} stranded ${b.id}`);
    }
    assert.deepEqual(ids(present), ids(d.keep), what);
  }
});

test('needs() refuses sidecars that name a base that is not older instead of looping forever', () => {
  const a = { id: '20261101T000000Z', kind: 'incremental' as const, base: '20261102T000000Z', chain: 'x', status: 'complete' as const };
  const b = { id: '20261102T000000Z', kind: 'incremental' as const, base: '20261101T000000Z', chain: 'x', status: 'complete' as const };
  assert.throws(() => needs([a, b], b), /not older/);
});
