/**
 * The volume table: every line the old tool accepted still works as it did,
 * and the extensions (snapsize=, engine=, partition=, fstype raw) are read.
 * Malformed lines are covered by the corpus in bad-corpus.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseVolumeTable, readVolumeTable } from '../../src/config/volume-table.js';
import { fixture } from './fixtures.js';

const short = (t: ReturnType<typeof parseVolumeTable>) =>
  t.volumes.map((v) => ({ name: `${v.domU}/${v.part}`, device: v.device, fstype: v.fstype, options: v.mountOptions, line: v.line }));

test("the old tool's shipped table parses unchanged", () => {
  const table = readVolumeTable(fixture('old-xenback_vols'));
  assert.deepEqual(short(table), [
    { name: 'mydomu1/root', device: '/dev/vgxen/mydomu1-root', fstype: 'ext4', options: ['ro', 'noatime'], line: 1 },
    { name: 'mynetbsd2/root', device: '/dev/vgxen/mynetbsd2-root', fstype: 'ufs', options: ['ro', 'ufstype=44bsd'], line: 2 },
  ]);
  assert.deepEqual(table.warnings, []);
});

test('what the old tool tolerated: blanks around fields, tabs, a trailing |, no final newline', () => {
  const text = '  web | root |\t/dev/vg/web-root\t| xfs | ro,noatime  \r\nweb|var|/dev/vg/web-var|ext4|ro|\nweb|srv|/dev/vg/web-srv|ext4|ro,,noatime';
  assert.deepEqual(short(parseVolumeTable(text, 'vols')), [
    { name: 'web/root', device: '/dev/vg/web-root', fstype: 'xfs', options: ['ro', 'noatime'], line: 1 },
    { name: 'web/var', device: '/dev/vg/web-var', fstype: 'ext4', options: ['ro'], line: 2 },
    { name: 'web/srv', device: '/dev/vg/web-srv', fstype: 'ext4', options: ['ro', 'noatime'], line: 3 },
  ]);
});

test('blank lines and # comments are allowed; line numbers stay true', () => {
  const table = parseVolumeTable('# guests\n\n   # indented comment\nweb|root|/dev/vg/web-root|ext4|ro\n', 'vols');
  assert.deepEqual(table.volumes.map((v) => v.line), [4]);
});

test('empty mount options: skipped as the old tool did, now with a warning', () => {
  const table = parseVolumeTable('web|root|/dev/vg/web-root|ext4|ro\nold|root|/dev/vg/old-root|ext4|\n', '/etc/xenback_vols');
  assert.deepEqual(table.volumes.map((v) => v.domU), ['web']);
  assert.deepEqual(table.warnings, [
    '/etc/xenback_vols:2: volume old/root skipped: its mount options (field 5) are empty, and the old tool skipped such lines; write e.g. `ro` to back it up',
  ]);
});

test('extensions: snapsize, engine, partition, in any order; raw volumes need no options', () => {
  const text = [
    'web|root|/dev/vg/web-root|ext4|ro|snapsize=2G|engine=rsync',
    'web|data|/dev/vg/web-data|xfs|ro|engine=tar|snapsize=20%ORIGIN',
    'winhvm|c|/dev/vg/winhvm-disk|ntfs|ro|partition=2|snapsize=512m',
    'appliance|disk|/dev/vg/appliance|raw|',
    'appliance|disk2|/dev/vg/appliance2|raw||partition=1',
  ].join('\n');
  const table = parseVolumeTable(text, 'vols');
  assert.deepEqual(table.warnings, []);
  const [root, data, win, raw, raw2] = table.volumes;
  assert.deepEqual(root!.snapshotSize, { kind: 'absolute', text: '2G', bytes: 2 * 1024 ** 3 });
  assert.equal(root!.engine, 'rsync');
  assert.equal(root!.partition, undefined);
  assert.deepEqual(data!.snapshotSize, { kind: 'origin-percent', text: '20%ORIGIN', percent: 20 });
  assert.equal(data!.engine, 'tar');
  assert.equal(win!.partition, 2);
  assert.equal(win!.snapshotSize?.kind === 'absolute' && win!.snapshotSize.bytes, 512 * 1024 ** 2);
  assert.equal(win!.engine, undefined, 'unset: settings fills in ENGINE');
  assert.equal(raw!.fstype, 'raw');
  assert.deepEqual(raw!.mountOptions, []);
  assert.equal(raw2!.partition, 1);
});

test('notes that do not stop a run: options on a raw volume, one device listed twice', () => {
  const table = parseVolumeTable('a|disk|/dev/vg/a|raw|ro\nb|root|/dev/vg/b|ext4|ro\nc|root|/dev/vg/b|ext4|ro\n', 'vols');
  assert.equal(table.volumes.length, 3);
  assert.deepEqual(table.warnings, [
    'vols:1: volume a/disk is raw (not mounted): its mount options `ro` are not used',
    'vols:3: device /dev/vg/b is also backed up as b/root (line 2)',
  ]);
});

test('two partitions of one disk are not a duplicate device', () => {
  const table = parseVolumeTable('h|boot|/dev/vg/h|ext4|ro|partition=1\nh|root|/dev/vg/h|ext4|ro|partition=2\n', 'vols');
  assert.deepEqual(table.warnings, []);
});

test('an unreadable table is a ConfigError naming it', () => {
  assert.throws(() => readVolumeTable('/nonexistent/xenback_vols'), {
    name: 'ConfigError',
    message: '/nonexistent/xenback_vols: cannot read the volume table: ENOENT',
  });
});
