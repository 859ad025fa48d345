import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dealScenarios, scenarioNames, selectScenarios, MEASURED_SECONDS } from './scenario-plan.js';

test('scenario names come from NN-name.{sh,mjs,ts} files, in name order', () => {
  assert.deepEqual(scenarioNames(['31-b.sh', 'README', '10-a.mjs', '20-c.ts', '20-c.d.ts', 'lib.sh']), ['10-a', '20-c', '31-b']);
});

test('filters select by name or name prefix, like guest-driver.sh', () => {
  const names = ['10-a', '30-b', '31-c', '45-d'];
  assert.deepEqual(selectScenarios(names, []), names);
  assert.deepEqual(selectScenarios(names, ['3']), ['30-b', '31-c']);
  assert.deepEqual(selectScenarios(names, ['45-d', '10']), ['10-a', '45-d']);
});

test('every scenario lands in exactly one VM, each VM in name order, loads balanced', () => {
  const names = Object.keys(MEASURED_SECONDS);
  const groups = dealScenarios(names, 2);
  assert.equal(groups.length, 2);
  assert.deepEqual(groups.flat().sort(), [...names].sort());
  for (const g of groups) assert.deepEqual(g, [...g].sort());
  const loads = groups.map((g) => g.reduce((s, n) => s + MEASURED_SECONDS[n]!, 0));
  const total = loads[0]! + loads[1]!;
  // Longest-first dealing is within the longest scenario of a perfect split.
  assert.ok(Math.abs(loads[0]! - loads[1]!) <= Math.max(...Object.values(MEASURED_SECONDS)), `loads ${loads} of ${total}`);
});

test('never more VMs than scenarios, never an empty VM, at least one VM', () => {
  assert.deepEqual(dealScenarios(['10-a'], 4), [['10-a']]);
  assert.deepEqual(dealScenarios(['10-a', '20-b'], 0), [['10-a', '20-b']]);
  assert.deepEqual(dealScenarios([], 2), []);
  assert.equal(dealScenarios(['x1', 'x2', 'x3'], 3).length, 3);
});
