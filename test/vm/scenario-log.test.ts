/**
 * The reading of guest-driver.sh's marker lines, on host-made text: the VM suite's verdicts hang on it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDriverOutput, describeResult } from './scenario-log.js';

test('each scenario gets its own log, status and duration; driver lines stay apart', () => {
  const out = parseDriverOutput(
    [
      'driver says hi',
      '@@xenbackup-vm begin 10-a',
      'line 1',
      '  line 2 mentions @@xenbackup-vm end 10-a status=0 seconds=1 but not alone on its line',
      '@@xenbackup-vm end 10-a status=0 seconds=12.5',
      '@@xenbackup-vm begin 20-b',
      'FAIL: it broke',
      '@@xenbackup-vm end 20-b status=3 seconds=4.0',
      '@@xenbackup-vm summary total=2 passed=1 failed=1',
      '',
    ].join('\n'),
  );
  assert.deepEqual(out.scenarios, [
    {
      name: '10-a',
      status: 0,
      seconds: 12.5,
      finished: true,
      log: 'line 1\n  line 2 mentions @@xenbackup-vm end 10-a status=0 seconds=1 but not alone on its line',
    },
    { name: '20-b', status: 3, seconds: 4, finished: true, log: 'FAIL: it broke' },
  ]);
  assert.deepEqual(out.summary, { total: 2, passed: 1, failed: 1 });
  assert.equal(out.other, 'driver says hi');
  assert.equal(describeResult(out.scenarios[0]!), '10-a: passed (12.5 s)');
  assert.equal(describeResult(out.scenarios[1]!), '20-b: FAILED (exit 3) (4 s)');
});

test('a scenario cut short by a dead VM is unfinished, and there is no summary', () => {
  const out = parseDriverOutput('@@xenbackup-vm begin 10-a\nworking\n@@xenbackup-vm begin 20-b\nstill working');
  assert.deepEqual(
    out.scenarios.map((s) => [s.name, s.finished, s.status, s.log]),
    [
      ['10-a', false, undefined, 'working'],
      ['20-b', false, undefined, 'still working'],
    ],
  );
  assert.equal(out.summary, undefined);
  assert.equal(describeResult(out.scenarios[0]!), '10-a: did not finish');
});

test('an end marker of another scenario does not close the current one', () => {
  const out = parseDriverOutput('@@xenbackup-vm begin 10-a\n@@xenbackup-vm end 99-x status=0 seconds=1\n');
  assert.equal(out.scenarios.length, 1);
  assert.equal(out.scenarios[0]!.finished, false);
  assert.match(out.scenarios[0]!.log, /99-x/);
});
