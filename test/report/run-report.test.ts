/**
 * The exit code is derived from the report alone: these pin the documented
 * codes (0 ok, 1 failed/partial/interrupted, 2 usage, 3 lock, 4 medium) and
 * the rule that an unsent mail turns 0 into 1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exitCodeFor, outcomeOf, volumeCounts } from '../../src/report/run-report.js';
import {
  configErrorReport,
  failedReport,
  interruptedReport,
  lockedReport,
  mediumUnavailableReport,
  okReport,
  partialReport,
} from './sample-reports.js';

test('exit codes follow the documented table', () => {
  assert.equal(exitCodeFor(okReport()), 0);
  assert.equal(exitCodeFor(partialReport()), 1);
  assert.equal(exitCodeFor(failedReport()), 1);
  assert.equal(exitCodeFor(interruptedReport()), 1);
  assert.equal(exitCodeFor(configErrorReport()), 2);
  assert.equal(exitCodeFor(lockedReport()), 3);
  assert.equal(exitCodeFor(mediumUnavailableReport()), 4);
});

test('a mail that could not be sent turns 0 into 1 and leaves other codes alone', () => {
  assert.equal(exitCodeFor(okReport(), { status: 'failed' }), 1);
  assert.equal(exitCodeFor(okReport(), { status: 'sent' }), 0);
  assert.equal(exitCodeFor(okReport(), { status: 'skipped' }), 0);
  assert.equal(exitCodeFor(mediumUnavailableReport(), { status: 'failed' }), 4);
  assert.equal(exitCodeFor(lockedReport(), { status: 'failed' }), 3);
});

test('a run-level error fails an otherwise good run; warnings and skipped volumes do not', () => {
  const withError = okReport();
  withError.errors.push('prune: cannot remove an archive');
  assert.equal(outcomeOf(withError), 'failed');
  assert.equal(exitCodeFor(withError), 1);

  const withWarnings = okReport();
  withWarnings.warnings.push('medium is 90% full');
  withWarnings.volumes[1]!.status = 'skipped';
  assert.equal(exitCodeFor(withWarnings), 0);
  assert.deepEqual(volumeCounts(withWarnings), { attempted: 5, ok: 5, partial: 0, failed: 0, interrupted: 0, skipped: 1 });
});

test('an interrupted volume makes the run interrupted even if the flag was not set', () => {
  const r = okReport();
  r.volumes[0]!.status = 'interrupted';
  assert.equal(outcomeOf(r), 'interrupted');
  assert.equal(exitCodeFor(r), 1);
});

test('interruption outranks failures, and an abort outranks everything', () => {
  const r = failedReport();
  r.interrupted = true;
  assert.equal(outcomeOf(r), 'interrupted');
  r.aborted = { kind: 'medium', message: 'gone' };
  assert.equal(exitCodeFor(r), 4);
});
