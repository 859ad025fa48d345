/**
 * lvm.ts against real LVM 2.03 tools on a PV on a loop device.
 *
 * This machine's kernel has no device-mapper, so LVM runs in a sandbox
 * configuration (LVM_SYSTEM_DIR pointing at a private lvm.conf) with
 * activation disabled and only our loop device visible: volume groups and
 * LVs are real metadata, read back by real lvs/vgs, but nothing can be
 * activated and snapshots can't be created. That covers path resolution,
 * free-space checks, tag lookups and the refusal to remove a non-snapshot;
 * snapshot creation, health and removal are proven in the VM suite.
 * Skipped when the lvm2 tools are not installed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LvmSize } from '../../src/host/lvm-size.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import {
  createSnapshot,
  isLogicalVolume,
  listLogicalVolumes,
  listOurSnapshots,
  listVolumeGroups,
  removeSnapshot,
  resolveLogicalVolume,
  vgFree,
  InsufficientSpaceError,
  LvmError,
  NotALogicalVolumeError,
  SNAPSHOT_TAG,
} from '../../src/host/lvm.js';
import { sweepLeftovers } from '../../src/host/sweep.js';
import { createLogger } from '../../src/util/log.js';
import { attach, commandExists, scratch } from './host-fixtures.js';

const absolute = (bytes: number): LvmSize => ({ kind: 'absolute', text: `${bytes}b`, bytes });
const percentOfOrigin = (percent: number): LvmSize => ({ kind: 'origin-percent', text: `${percent}%ORIGIN`, percent });

const HAVE_LVM = commandExists('lvs');
const VG = 'xbtest-vg';

interface Sandbox {
  dir: string;
  pv: string;
  lvm(args: string[]): string;
}

/** A 64 MiB PV on a loop device with VG `xbtest-vg`; LVs `web-root` (12 MiB) and `tagged-plain` (4 MiB, our tag, not a snapshot). */
function sandbox(t: { after(fn: () => unknown): void }): Sandbox {
  let pv = '';
  const env = () => ({ ...process.env, LVM_SUPPRESS_FD_WARNINGS: '1', LC_ALL: 'C' });
  const lvm = (args: string[]) => execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: env() });
  const dir = scratch(t, 'xb-lvm', () => {
    try {
      if (pv) {
        lvm(['vgremove', '-f', VG]);
        lvm(['pvremove', '-ff', '-y', pv]);
      }
    } finally {
      delete process.env.LVM_SYSTEM_DIR;
    }
  });
  const image = path.join(dir, 'pv.img');
  fs.writeFileSync(image, '');
  fs.truncateSync(image, 64 * 2 ** 20);
  pv = attach(image);
  fs.mkdirSync(path.join(dir, 'etc'));
  fs.writeFileSync(
    path.join(dir, 'etc', 'lvm.conf'),
    [
      'global { activation = 0 }',
      `devices { use_devicesfile = 0 global_filter = [ "a|^${pv}$|", "r|.*|" ] obtain_device_list_from_udev = 0 }`,
      'backup { backup = 0 archive = 0 }',
      'activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }',
      '',
    ].join('\n'),
  );
  // exec.ts hands the process environment to lvs/vgs/lvcreate, so the code under test sees the sandbox too
  process.env.LVM_SYSTEM_DIR = path.join(dir, 'etc');
  lvm(['pvcreate', pv]);
  lvm(['vgcreate', VG, pv]);
  lvm(['lvcreate', '-an', '-Zn', '-n', 'web-root', '-L', '12m', VG]);
  lvm(['lvcreate', '-an', '-Zn', '-n', 'tagged-plain', '-L', '4m', '--addtag', SNAPSHOT_TAG, VG]);
  return { dir, pv, lvm };
}

test('volume groups and free space, as real vgs reports them', { skip: !HAVE_LVM && 'lvm2 not installed' }, async (t) => {
  const { lvm } = sandbox(t);
  const [vg, ...others] = await listVolumeGroups([VG]);
  assert.equal(others.length, 0);
  assert.equal(vg!.name, VG);
  assert.equal(vg!.extentSizeBytes, 4 * 2 ** 20);
  assert.equal(vg!.lvCount, 2);
  // 64 MiB minus metadata is 15 extents; 3 + 1 are used
  assert.equal(vg!.freeBytes, (vg!.extentCount - 4) * vg!.extentSizeBytes);
  assert.equal(await vgFree(VG), vg!.freeBytes);
  const pfree = Number(lvm(['vgs', '--noheadings', '--units', 'b', '--nosuffix', '-o', 'vg_free', VG]).trim());
  assert.equal(vg!.freeBytes, pfree);
  await assert.rejects(vgFree('xb-no-such-vg'), { name: 'LvmError', message: /^vgs .* xb-no-such-vg: exit 5: Volume group "xb-no-such-vg" not found$/ });
});

test('device paths resolve to logical volumes; other paths do not', { skip: !HAVE_LVM && 'lvm2 not installed' }, async (t) => {
  const { pv } = sandbox(t);
  const lv = await resolveLogicalVolume(`/dev/${VG}/web-root`);
  assert.equal(lv.vg, VG);
  assert.equal(lv.name, 'web-root');
  assert.equal(lv.sizeBytes, 12 * 2 ** 20);
  assert.equal(lv.dmPath, '/dev/mapper/xbtest--vg-web--root');
  assert.equal(lv.vgFreeBytes, await vgFree(VG), 'the VG\'s free space comes with the LV (createSnapshot needs no vgs)');
  assert.equal((await resolveLogicalVolume('/dev/mapper/xbtest--vg-web--root')).uuid, lv.uuid);
  assert.equal(await isLogicalVolume(`/dev/${VG}/web-root`), true);
  assert.equal(await isLogicalVolume(`/dev/${VG}/nope`), false);
  assert.equal(await isLogicalVolume(pv), false);
  assert.equal(await isLogicalVolume('/srv/not/a/device'), false);
  await assert.rejects(resolveLogicalVolume('/dev/xb-no-vg/x'), { message: '/dev/xb-no-vg/x is not an LVM logical volume: Volume group "xb-no-vg" not found' });
  await assert.rejects(resolveLogicalVolume(`/dev/${VG}/nope`), (e: unknown) => {
    assert.ok(e instanceof NotALogicalVolumeError);
    assert.equal(e.message, `/dev/${VG}/nope is not an LVM logical volume: Failed to find logical volume "${VG}/nope"`);
    return true;
  });
  assert.deepEqual((await listLogicalVolumes([VG])).map((l) => l.name).sort(), ['tagged-plain', 'web-root']);
});

test('our tag on something that is not a snapshot: not listed, not removed, not swept', { skip: !HAVE_LVM && 'lvm2 not installed' }, async (t) => {
  const { dir } = sandbox(t);
  assert.deepEqual(await listOurSnapshots(), []);
  await assert.rejects(removeSnapshot(`${VG}/tagged-plain`), (e: unknown) => {
    assert.ok(e instanceof LvmError);
    assert.equal(e.message, `refusing to remove ${VG}/tagged-plain: not a snapshot tagged ${SNAPSHOT_TAG} (attr -wi-XX----, tags ${SNAPSHOT_TAG})`);
    return true;
  });
  await assert.rejects(removeSnapshot(`${VG}/web-root`), { message: /^refusing to remove xbtest-vg\/web-root: not a snapshot/ });
  assert.equal(await removeSnapshot(`${VG}/gone-xbsnap`), false, 'already gone is fine');
  fs.mkdirSync(path.join(dir, 'mnt'));
  const swept = await sweepLeftovers({ mntSourceDir: path.join(dir, 'mnt') });
  assert.deepEqual(swept, { unmounted: [], detachedLoops: [], removedSnapshots: [], errors: [] });
  assert.equal(await isLogicalVolume(`/dev/${VG}/tagged-plain`), true);
});

test('createSnapshot checks the VG has room before lvcreate, and names VG, needed and free bytes', { skip: !HAVE_LVM && 'lvm2 not installed' }, async (t) => {
  sandbox(t);
  const free = await vgFree(VG);
  const calls: string[] = [];
  const log = createLogger([(rec) => calls.push(rec.message)], 'debug');
  await assert.rejects(createSnapshot(`/dev/${VG}/web-root`, { size: absolute(free + 1), logger: log }), (e: unknown) => {
    assert.ok(e instanceof InsufficientSpaceError);
    assert.equal(e.vg, VG);
    assert.equal(e.freeBytes, free);
    assert.equal(e.neededBytes, free + 4 * 2 ** 20, 'rounded up to whole extents');
    return true;
  });
  const commands = calls.filter((m) => /^exec: (lvs|vgs|lvcreate) /.test(m) && !m.includes(' finished in '));
  assert.deepEqual(commands.map((m) => m.split(' ')[1]), ['lvs'], 'one lvs, no vgs, no lvcreate');
  assert.deepEqual((await listLogicalVolumes([VG])).map((l) => l.name).sort(), ['tagged-plain', 'web-root']);
  await assert.rejects(createSnapshot('/srv/not/a/device', { size: absolute(2 ** 20) }), { name: 'NotALogicalVolumeError' });
});

test('a failing lvcreate (here: no device-mapper) is a clear error and leaves no LV behind', { skip: !HAVE_LVM && 'lvm2 not installed' }, async (t) => {
  sandbox(t);
  await assert.rejects(createSnapshot(`/dev/${VG}/web-root`, { size: percentOfOrigin(50) }), (e: unknown) => {
    assert.ok(e instanceof LvmError);
    assert.match(e.message, new RegExp(`^cannot snapshot ${VG}/web-root: lvcreate -s -n web-root-xbsnap -l 50%ORIGIN --addtag ${SNAPSHOT_TAG} ${VG}/web-root: exit \\d+: Can't create snapshot without using device-mapper kernel driver\\.$`));
    return true;
  });
  assert.deepEqual((await listLogicalVolumes([VG])).map((l) => l.name).sort(), ['tagged-plain', 'web-root']);
});
