/**
 * Retention: which backups of one volume to keep and which may go, with the
 * reason for each. Pure: the caller lists the sidecars and passes `now`;
 * repo/prune.ts carries the decision out.
 *
 * The old tool (backup-manager) purged by age alone and so deleted fulls
 * that younger incrementals still needed. Here a backup is a *restore point*
 * only when its whole chain (its full and the incrementals before it) is on
 * the medium, and the rules choose restore points, never files:
 *
 *   - TTL: every backup at most `ttlDays` old;
 *   - keep-last N: the newest N restore points;
 *   - keep-daily/weekly/monthly N: the newest restore point of each of the
 *     newest N days/weeks/months that have one (as restic and borg count;
 *     days, ISO weeks and months of the host's local calendar);
 *   - the newest complete restore point, whatever the rules, so a volume
 *     whose recent runs failed keeps its last good chain;
 *   - and everything a kept backup needs ("needed by <id>").
 *
 * The kept set is therefore closed under "needs", and the deleted set under
 * "is needed by": deleting it newest first never leaves a backup whose base
 * is gone. Rules that would keep nothing are refused (RetentionRulesError).
 */
import { needs, type BackupSummary } from './chain.js';

export interface RetentionRules {
  /** Keep every backup at most this many days old; 0: no TTL rule. */
  ttlDays: number;
  keepLast: number;
  keepDaily: number;
  keepWeekly: number;
  keepMonthly: number;
}

export class RetentionRulesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RetentionRulesError';
  }
}

/** Throws RetentionRulesError for counts that are not whole numbers >= 0, or rules that keep nothing. */
export function checkRules(rules: RetentionRules): void {
  for (const [name, v] of Object.entries(rules) as Array<[keyof RetentionRules, number]>) {
    if (!Number.isInteger(v) || v < 0) throw new RetentionRulesError(`retention rule ${RULE_NAMES[name]} must be a whole number >= 0, not ${v}`);
  }
  if (Object.values(rules).every((v) => v === 0)) {
    throw new RetentionRulesError(
      'the retention rules keep nothing (TTL 0 and no keep-last/daily/weekly/monthly rule): refusing to prune; set a TTL or a keep rule',
    );
  }
}

const RULE_NAMES: Record<keyof RetentionRules, string> = {
  ttlDays: 'TTL (days)',
  keepLast: 'keep-last',
  keepDaily: 'keep-daily',
  keepWeekly: 'keep-weekly',
  keepMonthly: 'keep-monthly',
};

/** The rules as one short phrase, for headers and reports: "TTL 5 days, keep-daily 7". */
export function describeRules(rules: RetentionRules): string {
  const parts: string[] = [];
  if (rules.ttlDays > 0) parts.push(`TTL ${rules.ttlDays} day${rules.ttlDays === 1 ? '' : 's'}`);
  for (const k of ['keepLast', 'keepDaily', 'keepWeekly', 'keepMonthly'] as const) if (rules[k] > 0) parts.push(`${RULE_NAMES[k]} ${rules[k]}`);
  return parts.length ? parts.join(', ') : 'no rules';
}

export interface RetentionItem<T extends BackupSummary> {
  backup: T;
  keep: boolean;
  /** Why it stays (for a kept backup), or one line why it may go. */
  reasons: string[];
  /** Its whole chain is on the medium, so it can be restored. */
  restorable: boolean;
  /** A restore point the rules promise (chosen by a rule, restorable): what a test must be able to restore. */
  promised: boolean;
  /** The ids it needs to be restored, oldest first, itself last (empty when its chain is broken). */
  needs: string[];
  /** Why it cannot be restored, when it cannot. */
  problem?: string;
}

export interface RetentionDecision<T extends BackupSummary> {
  /** One item per backup, oldest first. */
  items: RetentionItem<T>[];
  keep: T[];
  /** What may be deleted, newest first: the safe deletion order. */
  drop: T[];
  newestComplete: T | undefined;
}

export interface RetentionOptions {
  /** The calendar of keep-daily/weekly/monthly: the host's local time (default) or UTC. */
  utc?: boolean;
}

const DAY_MS = 86_400_000;

/**
 * Decides keep/delete for one volume's backups (any order; ids are UTC
 * times that sort as text). Throws RetentionRulesError for rules that keep nothing.
 */
export function decideRetention<T extends BackupSummary>(
  backups: readonly T[],
  now: Date,
  rules: RetentionRules,
  timeOfId: (id: string) => Date,
  opts: RetentionOptions = {},
): RetentionDecision<T> {
  checkRules(rules);
  const sorted = [...backups].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const chainOf = new Map<string, T[]>();
  const problems = new Map<string, string>();
  for (const b of sorted) {
    try {
      chainOf.set(b.id, needs(sorted, b));
    } catch {
      problems.set(b.id, brokenChainReason(sorted, b));
    }
  }
  const reasons = new Map<string, string[]>(sorted.map((b) => [b.id, []]));
  const chosen = new Set<string>();
  const choose = (b: T, why: string): void => {
    reasons.get(b.id)!.push(why);
    chosen.add(b.id);
  };

  if (rules.ttlDays > 0) {
    for (const b of sorted) {
      const ageDays = (now.getTime() - timeOfId(b.id).getTime()) / DAY_MS;
      if (ageDays <= rules.ttlDays) choose(b, `within the ${rules.ttlDays}-day TTL (${Math.max(0, ageDays).toFixed(1)} days old)`);
    }
  }

  const points = sorted.filter((b) => chainOf.has(b.id)).reverse(); // restore points, newest first
  points.slice(0, rules.keepLast).forEach((b, i) => choose(b, `keep-last ${rules.keepLast} (the ${ordinal(i + 1)} newest restore point)`));
  const cal = calendar(opts.utc ?? false);
  const buckets: Array<[number, string, (d: Date) => string]> = [
    [rules.keepDaily, 'keep-daily', cal.day],
    [rules.keepWeekly, 'keep-weekly', cal.week],
    [rules.keepMonthly, 'keep-monthly', cal.month],
  ];
  for (const [count, rule, bucketOf] of buckets) {
    const seen = new Set<string>();
    for (const b of points) {
      if (seen.size >= count) break;
      const bucket = bucketOf(timeOfId(b.id));
      if (seen.has(bucket)) continue;
      seen.add(bucket);
      choose(b, `${rule} ${count} (the newest of ${bucket})`);
    }
  }

  const newestComplete = points.find((b) => b.status === 'complete');
  if (newestComplete && !chosen.has(newestComplete.id)) choose(newestComplete, 'the newest complete restore point (never deleted)');

  // Everything a chosen backup needs stays; name the newest backup that needs it.
  const neededBy = new Map<string, string[]>();
  for (const b of sorted) {
    if (!chosen.has(b.id)) continue;
    for (const dep of chainOf.get(b.id) ?? []) {
      if (dep.id !== b.id) neededBy.set(dep.id, [...(neededBy.get(dep.id) ?? []), b.id]);
    }
  }
  const items = sorted.map((b): RetentionItem<T> => {
    const own = reasons.get(b.id)!;
    const by = neededBy.get(b.id);
    const keep = own.length > 0 || by !== undefined;
    const why = [...own];
    if (by) why.push(`needed by ${by[by.length - 1]}${by.length > 1 ? ` (and ${by.length - 1} more)` : ''}`);
    const problem = problems.get(b.id);
    if (!keep) {
      why.push(
        problem
          ? `cannot be restored (${problem}) and chosen by no rule`
          : `chosen by no rule${rules.ttlDays > 0 ? ` (older than the ${rules.ttlDays}-day TTL)` : ''} and needed by no kept backup`,
      );
    }
    return {
      backup: b,
      keep,
      reasons: why,
      restorable: chainOf.has(b.id),
      promised: chosen.has(b.id) && chainOf.has(b.id),
      needs: (chainOf.get(b.id) ?? []).map((x) => x.id),
      ...(problem ? { problem } : {}),
    };
  });
  return {
    items,
    keep: items.filter((i) => i.keep).map((i) => i.backup),
    drop: items.filter((i) => !i.keep).map((i) => i.backup).reverse(),
    newestComplete,
  };
}

function brokenChainReason<T extends BackupSummary>(sorted: readonly T[], b: T): string {
  const byId = new Map(sorted.map((x) => [x.id, x]));
  let cur: T | undefined = b;
  while (cur && cur.kind !== 'full') {
    const base: T | undefined = cur.base ? byId.get(cur.base) : undefined;
    if (!base) return cur.base ? `its base ${cur.base} is missing` : `incremental ${cur.id} names no base`;
    cur = base;
  }
  return 'its chain is broken';
}

function ordinal(n: number): string {
  const s = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${s}`;
}

const pad = (n: number): string => String(n).padStart(2, '0');

/** Day, ISO week and month labels of a time, in local time or UTC. */
function calendar(utc: boolean): { day: (d: Date) => string; week: (d: Date) => string; month: (d: Date) => string } {
  const parts = (d: Date): [number, number, number] =>
    utc ? [d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()] : [d.getFullYear(), d.getMonth(), d.getDate()];
  return {
    day: (d) => {
      const [y, m, day] = parts(d);
      return `${y}-${pad(m + 1)}-${pad(day)}`;
    },
    month: (d) => {
      const [y, m] = parts(d);
      return `${y}-${pad(m + 1)}`;
    },
    week: (d) => {
      // ISO 8601: the week belongs to the year of its Thursday
      const [y, m, day] = parts(d);
      const date = new Date(Date.UTC(y, m, day));
      const weekday = date.getUTCDay() || 7;
      date.setUTCDate(date.getUTCDate() + 4 - weekday);
      const yearStart = Date.UTC(date.getUTCFullYear(), 0, 1);
      const week = Math.ceil(((date.getTime() - yearStart) / DAY_MS + 1) / 7);
      return `${date.getUTCFullYear()}-W${pad(week)}`;
    },
  };
}
