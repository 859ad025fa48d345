/**
 * LVM command construction and report parsing, without running LVM.
 *
 * Fixtures in test/fixtures/lvm/:
 *  - lvs-host-nodm-*.json, vgs-host-nodm-*.json: real output of LVM 2.03.16
 *    (Debian bookworm) on this kind of machine, a PV on a loop device with
 *    activation disabled (the kernel has no device-mapper), run with exactly
 *    lvsArgs()/vgsArgs(). Real format, but no snapshots (they need dm).
 *  - lvs-documented-snapshots.json: hand-written for snapshots, in the
 *    layout of the real captures, with attr/percent/invalid values as lvs(8)
 *    documents them (`swi-aos---`, `swi-I-s---` + 100.00 + 1 for an
 *    overflowed one). Real snapshot output comes from the VM suite.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LvmSize } from '../../src/host/lvm-size.js';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  LV_FIELDS,
  lvsArgs,
  vgsArgs,
  parseLvsReport,
  parseVgsReport,
  assessSnapshot,
  isSnapshotAttr,
  LvmReportError,
  type LogicalVolume,
} from '../../src/host/lvm-report.js';
import {
  lvcreateSnapshotArgs,
  lvremoveArgs,
  parseLvDevicePath,
  snapshotExtents,
  snapshotNameFor,
  InsufficientSpaceError,
  SNAPSHOT_TAG,
} from '../../src/host/lvm.js';

const absolute = (bytes: number): LvmSize => ({ kind: 'absolute', text: `${bytes}b`, bytes });
const percentOfOrigin = (percent: number): LvmSize => ({ kind: 'origin-percent', text: `${percent}%ORIGIN`, percent });

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/lvm/', import.meta.url));
const fixture = (name: string) => fs.readFileSync(FIXTURES + name, 'utf8');

test('lvs and vgs are asked for JSON, bytes without suffix, binary flags, and our fields', () => {
  assert.deepEqual(lvsArgs(['@xenbackup-snapshot']), [
    '--reportformat', 'json', '--units', 'b', '--nosuffix', '--binary',
    '-o', 'lv_name,vg_name,lv_uuid,lv_path,lv_dm_path,lv_attr,lv_size,origin,origin_size,snap_percent,lv_snapshot_invalid,lv_tags,lv_time,vg_extent_size,vg_free',
    '@xenbackup-snapshot',
  ]);
  assert.deepEqual(vgsArgs(['vgxen']).slice(-3), ['-o', 'vg_name,vg_uuid,vg_attr,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count,lv_count,snap_count,vg_tags', 'vgxen']);
  assert.deepEqual(lvsArgs(), lvsArgs([]));
});

test('real lvs output (LVM 2.03.16) parses into typed records', () => {
  const lvs = parseLvsReport(fixture('lvs-host-nodm-two-lvs.json'));
  assert.equal(lvs.length, 2);
  assert.deepEqual(lvs[0], {
    name: 'my-dom-u',
    vg: 'vgxen',
    uuid: 'Re7goF-lP4O-Sg9h-yIBV-Hd0X-zPH9-zlfqGb',
    path: '/dev/vgxen/my-dom-u',
    dmPath: '/dev/mapper/vgxen-my--dom--u',
    attr: '-wi-XX----',
    sizeBytes: 12582912,
    origin: '',
    originSizeBytes: undefined,
    snapPercent: undefined,
    snapshotInvalid: undefined, // "-1": unknown, activation was off
    tags: ['sometag'],
    created: '2026-11-27 01:45:16 +0000',
    extentSizeBytes: 4194304,
  });
  assert.deepEqual(lvs[1]!.tags, []);
  assert.equal(isSnapshotAttr(lvs[1]!.attr), false);
  assert.deepEqual(parseLvsReport(fixture('lvs-host-nodm-empty.json')), []);
  assert.deepEqual(parseLvsReport(fixture('lvs-host-nodm-not-found.json')), []);
});

test('real vgs output parses; free space in bytes', () => {
  const [vg, ...rest] = parseVgsReport(fixture('vgs-host-nodm-vgxen.json'));
  assert.equal(rest.length, 0);
  assert.deepEqual(vg, {
    name: 'vgxen',
    uuid: 'DeGCAc-bDcs-rG6o-hwRk-MhWA-9ocP-FeU83n',
    attr: 'wz--n-',
    sizeBytes: 205520896,
    freeBytes: 150994944,
    extentSizeBytes: 4194304,
    extentCount: 49,
    freeExtents: 36,
    lvCount: 2,
    snapCount: 0,
    tags: [],
  });
  assert.equal(vg!.freeBytes, vg!.freeExtents * vg!.extentSizeBytes);
});

test('json_std style numbers (newer LVM) are accepted as well', () => {
  const json = JSON.stringify({ report: [{ vg: [{ vg_name: 'v', vg_uuid: 'u', vg_attr: 'wz--n-', vg_size: 100, vg_free: 50, vg_extent_size: 4, vg_extent_count: 25, vg_free_count: 12, lv_count: 1, snap_count: 0, vg_tags: '' }] }] });
  assert.equal(parseVgsReport(json)[0]!.freeBytes, 50);
});

test('snapshots: healthy, overflowed, someone else\'s', () => {
  const lvs = parseLvsReport(fixture('lvs-documented-snapshots.json'));
  const by = (name: string) => lvs.find((l) => l.name === name)!;
  const good = by('web-root-xbsnap');
  assert.equal(good.origin, 'web-root');
  assert.equal(good.snapPercent, 12.5);
  assert.equal(good.snapshotInvalid, false);
  assert.deepEqual(good.tags, [SNAPSHOT_TAG]);
  assert.deepEqual(assessSnapshot(good), { ok: true, percentUsed: 12.5 });

  const full = assessSnapshot(by('mail-var-xbsnap'));
  assert.equal(full.ok, false);
  assert.equal(full.problem, 'snapshot vgxen/mail-var-xbsnap is invalid: its copy-on-write space overflowed (attr swi-I-s---, 100% used)');

  assert.equal(assessSnapshot(by('web-root')).problem, 'snapshot vgxen/web-root is not a snapshot (attr owi-aos---)');
  assert.deepEqual(lvs.filter((l) => isSnapshotAttr(l.attr) && l.tags.includes(SNAPSHOT_TAG)).map((l) => l.name), ['web-root-xbsnap', 'mail-var-xbsnap']);
});

test('each sign of a bad snapshot is caught on its own', () => {
  const base: LogicalVolume = parseLvsReport(fixture('lvs-documented-snapshots.json')).find((l) => l.name === 'web-root-xbsnap')!;
  const verdict = (over: Partial<LogicalVolume>) => assessSnapshot({ ...base, ...over });
  assert.match(verdict({ snapshotInvalid: true }).problem!, /is invalid/);
  assert.match(verdict({ attr: 'swi-I-s---', snapshotInvalid: undefined }).problem!, /is invalid/);
  assert.match(verdict({ attr: 'Swi-a-s---' }).problem!, /is invalid/);
  assert.match(verdict({ attr: 'swi-S-s---' }).problem!, /is invalid/);
  assert.match(verdict({ snapPercent: 100 }).problem!, /is full \(100% used\)/);
  assert.match(verdict({ attr: 'swi---s---' }).problem!, /is not active/);
  assert.match(verdict({ attr: 'swi-m-s---' }).problem!, /failed merge/);
  assert.equal(verdict({ snapPercent: 99.99 }).ok, true);
});

test('malformed reports are errors that name the command', () => {
  assert.throws(() => parseLvsReport('  WARNING: something\n', 'lvs vgxen'), (e: unknown) => e instanceof LvmReportError && /^lvs vgxen: unexpected report: not JSON/.test(e.message));
  assert.throws(() => parseLvsReport('{"x":1}', 'lvs'), { message: 'lvs: unexpected report: no "report" array' });
  assert.throws(() => parseLvsReport('{"report":[{"lv":[{"lv_name":"a"}]}]}', 'lvs'), { message: /^lvs: unexpected report: field vg_name missing/ });
  const row = Object.fromEntries(LV_FIELDS.map((f) => [f, '']));
  assert.throws(() => parseLvsReport(JSON.stringify({ report: [{ lv: [{ ...row, lv_size: 'big' }] }] }), 'lvs'), { message: /field lv_size is not a number: "big"/ });
});

test('snapshot extents round up to whole extents', () => {
  const ext = 4 * 2 ** 20;
  assert.deepEqual(snapshotExtents(absolute(2 ** 30), 10 * 2 ** 30, ext), { extents: 256, bytes: 2 ** 30 });
  assert.deepEqual(snapshotExtents(absolute(2 ** 30 + 1), 10 * 2 ** 30, ext), { extents: 257, bytes: 257 * ext });
  assert.deepEqual(snapshotExtents(percentOfOrigin(10), 10 * 2 ** 30, ext), { extents: 256, bytes: 2 ** 30 });
  assert.deepEqual(snapshotExtents(percentOfOrigin(1), 12 * 2 ** 20, ext), { extents: 1, bytes: ext });
});

test('lvcreate and lvremove command lines', () => {
  assert.deepEqual(lvcreateSnapshotArgs('vgxen/web-root', 'web-root-xbsnap', absolute(2 ** 30), 2 ** 30), [
    '-s', '-n', 'web-root-xbsnap', '-L', '1073741824b', '--addtag', 'xenbackup-snapshot', 'vgxen/web-root',
  ]);
  assert.deepEqual(lvcreateSnapshotArgs('vgxen/web-root', 'web-root-xbsnap', percentOfOrigin(20), 123), [
    '-s', '-n', 'web-root-xbsnap', '-l', '20%ORIGIN', '--addtag', 'xenbackup-snapshot', 'vgxen/web-root',
  ]);
  assert.deepEqual(lvremoveArgs('vgxen/web-root-xbsnap'), ['-f', 'vgxen/web-root-xbsnap']);
});

test('snapshot names: <origin>-xbsnap, within LVM\'s 127 characters', () => {
  assert.equal(snapshotNameFor('web-root'), 'web-root-xbsnap');
  const long = snapshotNameFor('x'.repeat(127));
  assert.equal(long.length, 127);
  assert.ok(long.endsWith('-xbsnap'));
});

test('device paths to VG/LV: /dev/VG/LV and /dev/mapper with doubled dashes', () => {
  assert.deepEqual(parseLvDevicePath('/dev/vgxen/mydomu1-var'), { vg: 'vgxen', lv: 'mydomu1-var' });
  assert.deepEqual(parseLvDevicePath('/dev/mapper/vgxen-mydomu1--var'), { vg: 'vgxen', lv: 'mydomu1-var' });
  assert.deepEqual(parseLvDevicePath('/dev/mapper/vg--xen-a--b--c'), { vg: 'vg-xen', lv: 'a-b-c' });
  assert.equal(parseLvDevicePath('/dev/mapper/control'), undefined);
  assert.equal(parseLvDevicePath('/dev/sda1'), undefined);
  assert.equal(parseLvDevicePath('/dev/disk/by-uuid'), undefined);
  assert.equal(parseLvDevicePath('/srv/images/x.img'), undefined);
});

test('the not-enough-room error names the VG, needed and free bytes', () => {
  const e = new InsufficientSpaceError('vgxen', 2 ** 31, 2 ** 30, 'vgxen/web-root-xbsnap');
  assert.equal(e.message, 'volume group vgxen has 1073741824 bytes (1.00 GiB) free, snapshot vgxen/web-root-xbsnap needs 2147483648 bytes (2.00 GiB)');
});
