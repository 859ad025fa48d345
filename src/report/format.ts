/**
 * Turns a RunReport into what a person reads: the mail subject (the outcome
 * at a glance in an inbox list) and the plain-text body (what happened to each
 * volume, every warning and error, the medium's free space, where the log is).
 * Pure and deterministic: the same report always gives the same text, times
 * are shown in UTC like the log lines, so tests compare exact strings.
 */
import {
  errorCount,
  outcomeOf,
  runDurationMs,
  totalBytes,
  volumeCounts,
  warningCount,
  type RunOutcome,
  type RunReport,
  type VolumeReport,
} from './run-report.js';
import { escapeControls } from './escape.js';
import { formatBytes, formatCount, formatDuration, formatUtc } from '../util/human-format.js';

export { formatBytes, formatCount, formatDuration, formatUtc } from '../util/human-format.js';

function printable(text: string, keepNewlines = false): string {
  return escapeControls(text, { keepNewlines });
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

const OUTCOME_WORD: Record<RunOutcome, string> = {
  ok: 'OK',
  partial: 'PARTIAL',
  failed: 'FAILED',
  interrupted: 'INTERRUPTED',
  'medium-unavailable': 'MEDIUM UNAVAILABLE',
  locked: 'LOCKED',
  'usage-error': 'CONFIG ERROR',
};

const SUBJECT_REASON_MAX = 120;

/** E.g. `[xenbackup] FAILED host.example.org: 5/6 volumes ok, 2.1 GiB, 14 min, 1 error`. */
export function formatSubject(report: RunReport): string {
  const outcome = outcomeOf(report);
  const host = printable(report.host) + (report.dryRun ? ' (dry run)' : '');
  const head = `[xenbackup] ${OUTCOME_WORD[outcome]} ${host}`;
  if (report.aborted) {
    let reason = printable(report.aborted.message);
    if (reason.length > SUBJECT_REASON_MAX) reason = `${reason.slice(0, SUBJECT_REASON_MAX - 3)}...`;
    return `${head}: ${reason}`;
  }
  const counts = volumeCounts(report);
  const parts = [
    `${counts.ok}/${counts.attempted} volumes ok`,
    formatBytes(totalBytes(report)),
    formatDuration(runDurationMs(report)),
  ];
  if (counts.skipped) parts.push(`${counts.skipped} skipped`);
  const warnings = warningCount(report);
  if (warnings) parts.push(plural(warnings, 'warning'));
  const errors = errorCount(report);
  if (errors) parts.push(plural(errors, 'error'));
  if (outcome === 'interrupted' && report.interruptSignal) parts.push(printable(report.interruptSignal));
  return `${head}: ${parts.join(', ')}`;
}

/** The plain-text mail body (also fit for the terminal), ending in a newline. */
export function formatBody(report: RunReport): string {
  const outcome = outcomeOf(report);
  const sections: string[][] = [];

  sections.push([
    `xenbackup on ${printable(report.host)}: ${OUTCOME_WORD[outcome]}`,
    ...summaryLines(report, outcome),
    `Started  ${formatUtc(report.startedAt)}`,
    `Finished ${formatUtc(report.finishedAt)} (${formatDuration(runDurationMs(report))})`,
  ]);
  if (report.volumes.length) sections.push(volumeTable(report.volumes));
  // Where each backup went: the admin's first question when a restore is needed, and for an
  // RSYNC_TARGET volume the only place the mail names the other host.
  const stored = report.volumes.filter((v) => v.archivePath && (v.status === 'ok' || v.status === 'partial'));
  if (stored.length) sections.push(['Stored at:', ...stored.map((v) => `  ${printable(v.volume)}: ${printable(v.archivePath!)}`)]);
  const notes = report.volumes.flatMap((v) => (v.notes ?? []).map((n) => `  ${printable(v.volume)}: ${printable(n)}`));
  if (notes.length) sections.push(['Notes:', ...notes]);
  const errors = groupedMessages(report, 'errors');
  if (errors.length) sections.push(['Errors:', ...errors]);
  const warnings = groupedMessages(report, 'warnings');
  if (warnings.length) sections.push(['Warnings:', ...warnings]);
  if (report.swept.length) {
    sections.push(['Leftovers of an earlier run, removed before this one:', ...report.swept.map((s) => `  ${printable(s)}`)]);
  }
  if (report.prune?.length) sections.push(['Prune:', ...report.prune.map((s) => `  ${printable(s)}`)]);
  if (report.verify?.length) sections.push(['Verify:', ...report.verify.map((s) => `  ${printable(s)}`)]);
  if (report.medium) {
    const m = report.medium;
    const of = m.total === null ? '' : ` of ${formatBytes(m.total)}`;
    const free = (n: number | null): string => (n === null ? 'unknown' : `${formatBytes(n)}${of}`);
    sections.push([
      `Backup medium: ${printable(m.device)} on ${printable(m.path)}`,
      `  free before: ${free(m.freeBefore)}`,
      `  free after:  ${free(m.freeAfter)}`,
    ]);
  }
  if (report.logFile) sections.push([`Full log: ${printable(report.logFile)}`]);

  return sections.map((lines) => lines.map((l) => l.trimEnd()).join('\n')).join('\n\n') + '\n';
}

function summaryLines(report: RunReport, outcome: RunOutcome): string[] {
  const lines: string[] = [];
  if (report.dryRun) lines.push('Dry run: nothing was touched.');
  if (report.aborted) {
    const what = { usage: 'Configuration error', lock: 'Not started', medium: 'Backup medium unavailable' }[
      report.aborted.kind
    ];
    lines.push(`${what}: ${printable(report.aborted.message)}`);
    lines.push(report.aborted.kind === 'medium' ? 'Nothing was written anywhere.' : 'Nothing was backed up.');
    return lines;
  }
  if (outcome === 'interrupted') {
    lines.push(`Interrupted${report.interruptSignal ? ` by ${printable(report.interruptSignal)}` : ''} before the run finished.`);
  }
  const c = volumeCounts(report);
  const extra: string[] = [];
  if (c.partial) extra.push(`${c.partial} partial`);
  if (c.failed) extra.push(`${c.failed} failed`);
  if (c.interrupted) extra.push(`${c.interrupted} interrupted`);
  if (c.skipped) extra.push(`${c.skipped} skipped`);
  const done = c.ok === c.attempted && c.attempted > 0 ? `All ${plural(c.attempted, 'volume')} backed up` : `${c.ok} of ${plural(c.attempted, 'volume')} backed up`;
  lines.push(`${done}${extra.length ? ` (${extra.join(', ')})` : ''}; ${formatBytes(totalBytes(report))} written.`);
  if (report.errors.length) lines.push(`The run itself had ${plural(report.errors.length, 'error')} (see Errors).`);
  return lines;
}

const KIND_LABEL = { full: 'full', incremental: 'incremental', mirror: 'mirror' } as const;

function volumeTable(volumes: VolumeReport[]): string[] {
  const header = ['Volume', 'Status', 'Kind', 'Files', 'Source', 'Written', 'Time'];
  const rightAligned = [false, false, false, true, true, true, true];
  const rows = volumes.map((v) => [
    printable(v.volume),
    v.status,
    v.kind ? KIND_LABEL[v.kind] : '-',
    formatCount(v.files),
    formatBytes(v.sourceBytes),
    formatBytes(v.bytes),
    formatDuration(v.durationMs),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((cell, i) => (rightAligned[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)];
}

/** Messages grouped under `run` (not tied to a volume) and then each volume in report order. */
function groupedMessages(report: RunReport, which: 'errors' | 'warnings'): string[] {
  const groups: Array<[string, string[]]> = [['run', report[which]], ...report.volumes.map((v): [string, string[]] => [v.volume, v[which]])];
  const lines: string[] = [];
  for (const [name, messages] of groups) {
    if (!messages.length) continue;
    lines.push(`  ${printable(name)}:`);
    for (const message of messages) {
      const [first, ...rest] = printable(message, true).split('\n');
      lines.push(`    ${first}`, ...rest.map((l) => `      ${l}`));
    }
  }
  return lines;
}
