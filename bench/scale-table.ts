/**
 * The verdicts of `bench --scale`: one row per work with xenbackup's time
 * and peak RSS beside GNU tar's, the ratio, and issue 16's target at a
 * million files with PASS/MISS. Rendered by table.ts as a Markdown table.
 */
import type { Row } from './table.js';
import type { Measured, WorkResult } from './scenarios.js';
import type { AddedBytes } from './scale-works.js';

/** Issue 16's targets at 1,000,000 files / 10,100 directories. */
export const SCALE_TARGETS = {
  maxRssMB: 150,
  noChangeAddsMB: 2,
  /** A 1%-change incremental adds at most the changed files' compressed bytes plus this. */
  onePercentExtraMB: 2,
  restoreSeconds: 0.3,
  lsSeconds: 0.2,
  noChangeVsTar: 1.0,
};

const MB = 1e6;
const secs = (s: number): string => `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
const rssMB = (m: Measured): number => (m.maxRssKiB * 1024) / MB;
const timeAndRss = (m: Measured): string => `${secs(m.median)}, ${rssMB(m).toFixed(0)} MB`;
const size = (bytes: number): string => (bytes >= 10 * MB ? `${(bytes / MB).toFixed(0)} MB` : bytes >= 0.1 * MB ? `${(bytes / MB).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(0)} kB`);
const times = (r: number): string => `${r.toFixed(2)}x`;

interface GnuBytes {
  archive: number;
  snapshot: number;
}

/** A row's verdict from its checks: MISS when any fails. */
function verdict(checks: boolean[]): boolean | undefined {
  return checks.length ? checks.every(Boolean) : undefined;
}

function rssCheck(m: Measured): { text: string; ok: boolean } {
  return { text: `RSS <= ${SCALE_TARGETS.maxRssMB} MB`, ok: rssMB(m) <= SCALE_TARGETS.maxRssMB };
}

/** A timed row: xenbackup against the first reference (if any), with its time target (if any) and the RSS target. */
function timedRow(r: WorkResult, label: string, timeTarget?: { text: string; ok: (xb: Measured, ref?: Measured) => boolean }): Row {
  const ref = r.references[0];
  const rss = rssCheck(r.xenbackup);
  const targets = [...(timeTarget ? [timeTarget.text] : []), rss.text];
  const checks = [...(timeTarget ? [timeTarget.ok(r.xenbackup, ref)] : []), rss.ok];
  return {
    work: label,
    xenbackup: timeAndRss(r.xenbackup),
    references: ref ? `${ref.tool}: ${timeAndRss(ref)}` : '-',
    ratio: ref ? `${times(r.xenbackup.median / ref.median)} time, ${times(rssMB(r.xenbackup) / rssMB(ref))} RSS` : '-',
    target: targets.join('; '),
    pass: verdict(checks),
  };
}

/** The bytes an incremental added to the medium: xenbackup's files vs GNU tar's level-1 archive and the snapshot file it leaves. */
function bytesRow(label: string, xb: AddedBytes, gnu: GnuBytes, limit: number, limitText: string): Row {
  const other = xb.other ? ` + ${size(xb.other)} other` : '';
  return {
    work: label,
    xenbackup: `${size(xb.total)} (${size(xb.archive)} archive + ${size(xb.manifest)} manifest + ${size(xb.sidecar)} sidecar${other})`,
    references: `${size(gnu.archive + gnu.snapshot)} (${size(gnu.archive)} archive + ${size(gnu.snapshot)} snapshot file)`,
    ratio: times(xb.total / (gnu.archive + gnu.snapshot)),
    target: limitText,
    pass: xb.total <= limit,
  };
}

/** The table's rows, in the order. */
export function scaleVerdicts(results: WorkResult[]): Row[] {
  const by = (work: string): WorkResult | undefined => results.find((r) => r.work === work);
  const rows: Row[] = [];
  const full = by('full backup');
  if (full) rows.push({ ...timedRow(full, 'full backup'), target: `RSS <= ${SCALE_TARGETS.maxRssMB} MB (1.2x tar is on the bench tree)` });
  const none = by('no-change incremental');
  if (none) {
    const walk = none.references[1];
    const row = timedRow(none, 'no-change incremental', {
      text: `<= ${SCALE_TARGETS.noChangeVsTar.toFixed(1)}x tar -g`,
      ok: (xb, ref) => xb.median <= SCALE_TARGETS.noChangeVsTar * ref!.median,
    });
    if (walk) row.references += ` (find stat walk ${secs(walk.median)})`;
    rows.push(row);
    const limit = SCALE_TARGETS.noChangeAddsMB * MB;
    rows.push(bytesRow('bytes a no-change incremental adds', none.facts.xenbackup as AddedBytes, none.facts.gnu as GnuBytes, limit, `<= ${SCALE_TARGETS.noChangeAddsMB} MB`));
  }
  const pct = by('1%-change incremental');
  if (pct) {
    rows.push(timedRow(pct, '1%-change incremental (10,000 files)'));
    // The changed files' compressed bytes, as GNU tar's level 1 holds them (their content and the dumpdirs).
    const gnu = pct.facts.gnu as GnuBytes;
    const limit = gnu.archive + SCALE_TARGETS.onePercentExtraMB * MB;
    rows.push(bytesRow('bytes a 1%-change incremental adds', pct.facts.xenbackup as AddedBytes, gnu, limit, `<= changed (tar's level 1, ${size(gnu.archive)}) + ${SCALE_TARGETS.onePercentExtraMB} MB`));
  }
  const restore = by('one-file restore');
  if (restore) {
    rows.push(timedRow(restore, 'one-file restore', { text: `<= ${SCALE_TARGETS.restoreSeconds} s`, ok: (xb) => xb.median <= SCALE_TARGETS.restoreSeconds }));
  }
  const ls = by('ls of one directory');
  if (ls) rows.push(timedRow(ls, '`ls` of one directory', { text: `<= ${SCALE_TARGETS.lsSeconds} s`, ok: (xb) => xb.median <= SCALE_TARGETS.lsSeconds }));
  const verify = by('verify --quick');
  if (verify) rows.push(timedRow(verify, '`verify --quick`'));
  const prune = by('prune --dry-run');
  if (prune) rows.push(timedRow(prune, '`prune --dry-run`'));
  return rows;
}
