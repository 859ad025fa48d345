/**
 * `xenbackup run -c CONF` with an fstype raw volume, end to end as real
 * processes: the snapshot is read as a block device (never mounted), the
 * changed chunks go to the local medium (a loop-mounted ext4 image, BCKDEV),
 * and the report says what was stored.
 *
 * The snapshot comes from a FAKE LVM (test/rsync/fake-lvm.ts): this
 * kernel has no device-mapper, so real LVM cannot run here (the VM
 * scenario test/vm/scenarios/45-run-raw.sh runs the real one, with a
 * writer on the origin). The fake's snapshot is a copy of the origin's
 * image taken at lvcreate, on a loop device; everything after is real.
 *
 * Proves: a full, then an incremental that stores exactly the chunks that
 * changed (counted here with plain reads of saved copies), report and log
 * lines, no snapshot or mount left; `restore --to FILE` of each backup
 * equals the image as it was at that backup; switching the fstype to ext4
 * makes a plain full (no "unusable manifest" warning), and back to raw
 * another full.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { HOST, makeRunEnv, rawMounts, sh, type RunEnv } from '../run/run-fixtures.js';
import { installFakeLvm } from '../rsync/fake-lvm.js';
import { chunkFacts, MiB, saveImage, seededBytes } from './raw-fixtures.js';

const VOLUME = 'win1/disk';
const CHUNK = 4 * MiB; // raw mode's default chunk size
const SIZE_MIB = 64;

/** Changes the origin's filesystem between runs (its image, mounted read-write for a moment). */
function changeOrigin(env: RunEnv, image: string, fn: (root: string) => void): void {
  const mnt = fs.mkdtempSync(path.join(env.dir, 'origin-'));
  sh('mount', ['-o', 'loop', image, mnt]);
  try {
    fn(mnt);
  } finally {
    sh('umount', [mnt]);
    fs.rmdirSync(mnt);
  }
}

function sidecarsOf(mnt: string): Array<{ id: string; kind: string; engine: string; raw?: { storedChunks: number; zeroChunks: number; unchangedChunks: number; chunks: number } }> {
  const dir = path.join(mnt, HOST, 'win1', 'disk');
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.json'))
    .sort()
    .map((n) => JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')));
}

test('run with an fstype raw volume: full then incremental of the snapshot device (never mounted), report lines, restore --to FILE equals the image of each backup; fstype changes make fulls', async (t) => {
  const env = makeRunEnv(t, { mediumMiB: 160 });
  const src = path.join(env.dir, 'guest-src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'random.bin'), seededBytes(10 * MiB, 45));
  fs.writeFileSync(path.join(src, 'text.txt'), 'a raw volume is read as blocks\n'.repeat(20_000));
  const lvm = installFakeLvm(env.dir);
  const { device, image } = lvm.addExt4Volume('win1-disk', src, SIZE_MIB);
  const table = (fstype: string, options: string): void => fs.writeFileSync(env.volumes, `win1|disk|${device}|${fstype}|${options}|snapsize=64M\n`);
  table('raw', '');
  const conf = env.writeConfig({ BACKUP_DOM0: 'no' });
  const noSnapshotMounts = (): string[] => rawMounts().filter((m) => m.mountPoint.startsWith(env.snapDir)).map((m) => m.mountPoint);

  // 1: a full. The fake snapshot copies the origin at lvcreate and nothing writes to it, so the origin now is what it held.
  const first = await env.cli(['run', '-c', conf], lvm.env);
  assert.equal(first.code, 0, first.stderr);
  const copy1 = path.join(env.dir, 'copy1.img');
  saveImage(image, copy1);
  assert.match(first.stderr, /win1\/disk: ok \(full\)/);
  const facts1 = chunkFacts(copy1, CHUNK);
  const nonZero1 = facts1.filter((f) => f !== 'zero').length;
  assert.match(first.stderr, new RegExp(`win1/disk: raw image of 64\\.0 MiB in 16 chunks of 4\\.0 MiB: ${nonZero1} stored, ${16 - nonZero1} zero, 0 unchanged`));
  assert.deepEqual(lvm.lvNames(), ['win1-disk'], 'the snapshot was removed');
  assert.deepEqual(noSnapshotMounts(), [], 'nothing was mounted for a raw volume');
  assert.doesNotMatch(fs.readFileSync(env.logFile, 'utf8'), /exec: mount .*win1/, 'the snapshot was never mounted');

  // 2: change a few chunks, then an incremental.
  changeOrigin(env, image, (root) => {
    fs.writeFileSync(path.join(root, 'new.bin'), seededBytes(3 * MiB, 46));
    fs.rmSync(path.join(root, 'text.txt'));
  });
  const copy2 = path.join(env.dir, 'copy2.img');
  saveImage(image, copy2);
  const facts2 = chunkFacts(copy2, CHUNK);
  const changed = facts2.filter((f, i) => f !== 'zero' && f !== facts1[i]).length;
  const unchanged = facts2.filter((f, i) => f !== 'zero' && f === facts1[i]).length;
  assert.ok(changed > 0 && unchanged > 0, `the change touches some chunks, not all (${changed} changed, ${unchanged} unchanged)`);
  const second = await env.cli(['run', '-c', conf], lvm.env);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /win1\/disk: ok \(incremental\)/);
  assert.match(second.stderr, new RegExp(`win1/disk: raw image of 64\\.0 MiB in 16 chunks of 4\\.0 MiB: ${changed} stored, ${16 - changed - unchanged} zero, ${unchanged} unchanged`));
  assert.deepEqual(lvm.lvNames(), ['win1-disk']);
  assert.deepEqual(noSnapshotMounts(), []);
  assert.deepEqual(env.mediumMounts(), [], 'the medium was unmounted');

  // The report (logged with "report:" lines): the volume's row with its kind and stored chunks, and where it went.
  const log = fs.readFileSync(env.logFile, 'utf8');
  assert.match(log, new RegExp(`report: +win1/disk +ok +incremental +${changed} `));
  assert.match(log, new RegExp(`report: +win1/disk: .*/${HOST}/win1/disk/\\d{8}T\\d{6}Z\\.incr\\.raw\\.zst`));
  assert.match(second.stderr, /outcome: \[xenbackup\] OK testhost\.example\.org: 1\/1 volumes ok/);

  // 3: the admin switches the volume to ext4: a plain full of the tree, without calling the raw manifest damaged.
  table('ext4', 'ro');
  const asTar = await env.cli(['run', '-c', conf], lvm.env);
  assert.equal(asTar.code, 0, asTar.stderr);
  assert.match(asTar.stderr, /win1\/disk: full backup \d{8}T\d{6}Z of .* \(the previous backup \d{8}T\d{6}Z is a raw image, not a file tree\)/);
  assert.doesNotMatch(asTar.stderr, /unusable/);
  // 4: and back to raw: a full again (raw never builds on a tar backup).
  table('raw', '');
  const backToRaw = await env.cli(['run', '-c', conf], lvm.env);
  assert.equal(backToRaw.code, 0, backToRaw.stderr);
  assert.match(backToRaw.stderr, /win1\/disk: ok \(full\)/);
  assert.match(backToRaw.stderr, /is a tar backup, not raw/);
  assert.deepEqual(lvm.lvNames(), ['win1-disk']);

  await env.inspectMedium(async (mnt) => {
    const sidecars = sidecarsOf(mnt);
    assert.deepEqual(sidecars.map((s) => [s.engine, s.kind]), [['raw', 'full'], ['raw', 'incremental'], ['tar', 'full'], ['raw', 'full']]);
    assert.equal(sidecars[1]!.raw!.storedChunks, changed);
    // restore --to FILE of each raw backup: byte for byte the image as it was at that backup.
    const medium = ['--medium', mnt, '--host', HOST];
    for (const [s, copy] of [[sidecars[0]!, copy1], [sidecars[1]!, copy2], [sidecars[3]!, copy2]] as const) {
      const to = path.join(env.dir, `restored-${s.id}.img`);
      const at = s.id.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z');
      const r = await env.cli(['restore', VOLUME, ...medium, '--at', at, '--to', to]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`restored the raw image of backup ${s.id} \\(64\\.0 MiB, xxh64 [0-9a-f]{16} as recorded\\) to the file ${to.replace(/[.]/g, '\\.')}`));
      assert.ok(fs.readFileSync(to).equals(fs.readFileSync(copy)), `backup ${s.id} restores the image as it was`);
      fs.rmSync(to);
    }
  });
});
