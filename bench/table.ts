/**
 * The bench's verdicts and its printed tables: each work's xenbackup median
 * against the reference(s), the ratio, the target from issue 2 item 10 and
 * PASS/MISS; and the same works in CPU seconds, which still compare when
 * other work on the machine stretches wall times. Rendered as Markdown
 * tables so they can be pasted into a note.
 */
import type { Measured, WorkResult } from './scenarios.js';

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

/** The rows of the table, one per work measured, with their verdicts (wall time; CPU time for `cpu`). */
export function verdicts(results: WorkResult[], metric: 'wall' | 'cpu' = 'wall'): Row[] {
  const of = (m: Measured): number => (metric === 'wall' ? m.median : m.cpuMedian);
  const rows: Row[] = [];
  const full = byWork(results, 'full backup');
  if (full) {
    const gnu = full.references[0]!;
    const ratio = of(full.xenbackup) / of(gnu);
    rows.push({
      work: 'full backup',
      xenbackup: secs(of(full.xenbackup)),
      references: `GNU tar + zstd -1 -T0: ${secs(of(gnu))}`,
      ratio: times(ratio),
      target: '<= 1.5x GNU tar+zstd',
      pass: ratio <= 1.5,
    });
  }
  const none = byWork(results, 'no-change incremental');
  if (none) {
    const [gnu, walk] = none.references as [Measured, Measured];
    const vsWalk = of(none.xenbackup) / of(walk);
    const vsGnu = of(none.xenbackup) / of(gnu);
    rows.push({
      work: 'no-change incremental',
      xenbackup: secs(of(none.xenbackup)),
      references: `GNU tar -g: ${secs(of(gnu))}; stat walk: ${secs(of(walk))}`,
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
      xenbackup: secs(of(pct.xenbackup)),
      references: `GNU tar -g: ${secs(of(gnu))}`,
      ratio: times(of(pct.xenbackup) / of(gnu)),
      target: '-',
      pass: undefined,
    });
  }
  const restore = byWork(results, 'one-file restore');
  if (restore) {
    const gnu = restore.references[0]!;
    rows.push({
      work: 'one-file restore (near the end)',
      xenbackup: secs(of(restore.xenbackup)),
      references: `GNU tar --zstd -x member: ${secs(of(gnu))}`,
      ratio: times(of(restore.xenbackup) / of(gnu)),
      target: '-',
      pass: undefined,
    });
  }
  if (full && metric === 'wall') {
    const gnu = full.references[0]!.maxRssKiB;
    const ours = full.xenbackup.maxRssKiB;
    rows.push({
      work: 'peak RSS, full backup',
      xenbackup: mb(ours),
      references: `GNU tar + zstd: ${mb(gnu)}`,
      ratio: times(ours / gnu),
      target: '< 300 MB',
      pass: (ours * 1024) / 1e6 < 300,
    });
  }
  return rows;
}

/** A Markdown table with padded columns; without the target and result columns when `withVerdicts` is false. */
export function renderTable(rows: Row[], withVerdicts = true, headers: { xenbackup?: string; references?: string } = {}): string {
  const header = [
    'work',
    headers.xenbackup ?? 'xenbackup',
    headers.references ?? 'reference(s)',
    'ratio',
    ...(withVerdicts ? ['target', 'result'] : []),
  ];
  const cells = rows.map((r) => [
    r.work,
    r.xenbackup,
    r.references,
    r.ratio,
    ...(withVerdicts ? [r.target, r.pass === undefined ? '-' : r.pass ? 'PASS' : 'MISS'] : []),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]): string => `| ${c.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}
