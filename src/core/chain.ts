/**
 * Chains: a full backup and the incrementals that build on it, each naming
 * its base. Pure functions over sidecar summaries: which backup a restore
 * "as of" a time uses, whether the next backup must be a full (by age, chain
 * length, or the FULL_WEEKDAY/FULL_MONTHDAY calendar), and which backups a
 * restore point needs. Retention (core/retention.ts) builds on `needs`.
 */
export interface BackupSummary {
  id: string;
  kind: 'full' | 'incremental';
  base: string | null;
  chain: string;
  status: 'complete' | 'partial';
}

/** The newest backup at or before `at` (ids are UTC times and sort as text). */
export function restorePointAt<T extends BackupSummary>(backups: T[], atId?: string): T | undefined {
  let found: T | undefined;
  for (const b of backups) if (atId === undefined || b.id <= atId) found = b;
  return found;
}

/** The backups a restore point needs, oldest first: its full and every incremental up to it. */
export function needs<T extends BackupSummary>(backups: T[], point: T): T[] {
  const byId = new Map(backups.map((b) => [b.id, b]));
  const out: T[] = [];
  let cur: T | undefined = point;
  while (cur) {
    out.unshift(cur);
    if (cur.kind === 'full') return out;
    // A base must be older: damaged sidecars naming each other would otherwise loop forever.
    const base: T | undefined = cur.base ? byId.get(cur.base) : undefined;
    if (base && base.id >= cur.id) throw new Error(`backup ${cur.id} names ${base.id} as its base, which is not older (damaged sidecar?)`);
    cur = base;
  }
  throw new Error(`backup ${point.id} is missing part of its chain`);
}

export interface FullPolicy {
  forceFull: boolean;
  fullIntervalDays: number;
  maxChainLength: number;
  /** FULL_WEEKDAY: also a full on this weekday, 0-6 (0 = Sunday), in the host's local time as `date +%w`. */
  fullWeekday?: number;
  /** FULL_MONTHDAY: also a full on this day of the month, 1-31 (in shorter months: their last day). */
  fullMonthday?: number;
}

const WEEKDAY_NAMES = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/**
 * Why `now` is a scheduled full day (FULL_WEEKDAY/FULL_MONTHDAY), or undefined.
 * Local time: the admin who writes "Saturday" means the host's Saturday, as cron does.
 */
export function scheduledFullDay(now: Date, policy: Pick<FullPolicy, 'fullWeekday' | 'fullMonthday'>): string | undefined {
  if (policy.fullWeekday !== undefined && now.getDay() === policy.fullWeekday % 7) {
    return `${WEEKDAY_NAMES[now.getDay()]} is the full backup day (FULL_WEEKDAY)`;
  }
  if (policy.fullMonthday !== undefined) {
    const lastDay = new Date(now.getFullYear(), now.getMonth() + 1, 0).getDate();
    const day = Math.min(policy.fullMonthday, lastDay);
    if (now.getDate() === day) {
      return `day ${now.getDate()} is the full backup day of the month (FULL_MONTHDAY=${policy.fullMonthday})`;
    }
  }
  return undefined;
}

function sameLocalDay(a: Date, b: Date): boolean {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

export type KindDecision = { kind: 'full'; reason: string } | { kind: 'incremental'; base: string; reason: string };

/** Full or incremental for the next backup, with the reason (for the log and the report). */
export function decideKind(backups: BackupSummary[], now: Date, policy: FullPolicy, timeOfId: (id: string) => Date): KindDecision {
  if (policy.forceFull) return { kind: 'full', reason: 'full requested' };
  const last = backups[backups.length - 1];
  if (!last) return { kind: 'full', reason: 'first backup of this volume' };
  let chain: BackupSummary[];
  try {
    chain = needs(backups, last);
  } catch {
    return { kind: 'full', reason: `the chain of ${last.id} is incomplete` };
  }
  const scheduled = scheduledFullDay(now, policy);
  // one full per scheduled day: a second run that day builds on the day's full
  if (scheduled !== undefined && !sameLocalDay(timeOfId(chain[0]!.id), now)) return { kind: 'full', reason: scheduled };
  const ageDays = (now.getTime() - timeOfId(chain[0]!.id).getTime()) / 86_400_000;
  if (ageDays >= policy.fullIntervalDays) {
    return { kind: 'full', reason: `the last full is ${ageDays.toFixed(1)} days old (limit ${policy.fullIntervalDays})` };
  }
  if (chain.length >= policy.maxChainLength) {
    return { kind: 'full', reason: `the chain holds ${chain.length} backups (limit ${policy.maxChainLength})` };
  }
  return { kind: 'incremental', base: last.id, reason: `incremental on ${last.id}` };
}
