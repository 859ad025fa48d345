/**
 * The bench's verdicts and its printed table: each work's xenbackup median
 * against the reference(s), the ratio, the target from issue 2 item 10 and
 * PASS/MISS. Rendered as a Markdown table so it can be pasted into a note.
 */
import type { WorkResult } from './scenarios.js';

export interface Row {
  work: string;
  xenbackup: string;
  references: string;
  ratio: string;
  target: string;
  /** true PASS, false MISS, undefined: the issue sets no target. */
  pass: boolean | undefined;
}

const secs = (s: number): string => `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
const times = (r: number): string => `${r.toFixed(2)}x`;
const mb = (kib: number): string => `${((kib * 1024) / 1e6).toFixed(0)} MB`;

function byWork(results: WorkResult[], work: string): WorkResult | undefined {
  return results.find((r) => r.work === work);
}

/** The rows of the table, one per work measured, with their verdicts. */
export function verdicts(results: WorkResult[]): Row[] {
  const rows: Row[] = [];
  const full = byWork(results, 'full backup');
  if (full) {
    const gnu = full.references[0]!;
    const ratio = full.xenbackup.median / gnu.median;
    rows.push({
      work: 'full backup',
      xenbackup: secs(full.xenbackup.median),
      references: `GNU tar + zstd -1 -T0: ${secs(gnu.median)}`,
      ratio: times(ratio),
      target: '<= 1.5x GNU tar+zstd',
      pass: ratio <= 1.5,
    });
  }
  const none = byWork(results, 'no-change incremental');
  if (none) {
    const [gnu, walk] = none.references as [WorkResult['xenbackup'], WorkResult['xenbackup']];
    const vsWalk = none.xenbackup.median / walk.median;
    const vsGnu = none.xenbackup.median / gnu.median;
    rows.push({
      work: 'no-change incremental',
      xenbackup: secs(none.xenbackup.median),
      references: `GNU tar -g: ${secs(gnu.median)}; stat walk: ${secs(walk.median)}`,
      ratio: `${times(vsWalk)} walk, ${times(vsGnu)} tar`,
      target: '<= 2x stat walk and < GNU tar -g',
      pass: vsWalk <= 2 && vsGnu < 1,
    });
  }
  const pct = byWork(results, '1%-change incremental');
  if (pct) {
    const gnu = pct.references[0]!;
    rows.push({
      work: '1%-change incremental',
      xenbackup: secs(pct.xenbackup.median),
      references: `GNU tar -g: ${secs(gnu.median)}`,
      ratio: times(pct.xenbackup.median / gnu.median),
      target: '-',
      pass: undefined,
    });
  }
  const restore = byWork(results, 'one-file restore');
  if (restore) {
    const gnu = restore.references[0]!;
    rows.push({
      work: 'one-file restore (near the end)',
      xenbackup: secs(restore.xenbackup.median),
      references: `GNU tar --zstd -x member: ${secs(gnu.median)}`,
      ratio: times(restore.xenbackup.median / gnu.median),
      target: '-',
      pass: undefined,
    });
  }
  if (full?.xenbackup.maxRssKiB !== undefined) {
    const gnu = full.references[0]!.maxRssKiB;
    const ours = full.xenbackup.maxRssKiB;
    rows.push({
      work: 'peak RSS, full backup',
      xenbackup: mb(ours),
      references: gnu !== undefined ? `GNU tar + zstd: ${mb(gnu)}` : '-',
      ratio: gnu ? times(ours / gnu) : '-',
      target: '< 300 MB',
      pass: (ours * 1024) / 1e6 < 300,
    });
  }
  return rows;
}

/** A Markdown table with padded columns. */
export function renderTable(rows: Row[]): string {
  const header = ['work', 'xenbackup', 'reference(s)', 'ratio', 'target', 'result'];
  const cells = rows.map((r) => [r.work, r.xenbackup, r.references, r.ratio, r.target, r.pass === undefined ? '-' : r.pass ? 'PASS' : 'MISS']);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]): string => `| ${c.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}
