/**
 * `xenbackup check` as a real process against real devices (a loop device,
 * a loop-mounted ext4 medium, missing paths), and the pure snapshot-space
 * rule it applies. No LVM volumes exist here (no device-mapper in this
 * kernel): the "is an LV, VG has room" path runs in the VM suite; here the
 * rule itself is tested directly, and every way a device can fail to be an
 * LV that this host can show.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readMountinfo } from '../../src/host/mountinfo.js';
import { peakSnapshotBytes, whyNotCreatable } from '../../src/run/preflight.js';
import { listing, makeRunEnv, repoRoot, sh } from './run-fixtures.js';
import { startSmtpServer } from '../report/smtp-fixture.js';

const GiB = 2 ** 30;

test('peakSnapshotBytes: per VG, the CONCURRENCY largest snapshots at once (with 1: the largest alone)', () => {
  const needs = [
    { volume: 'web1/root', vg: 'vgxen', bytes: 7 * GiB },
    { volume: 'web1/var', vg: 'vgxen', bytes: 2 * GiB },
    { volume: 'mail/spool', vg: 'vgxen', bytes: 5 * GiB },
    { volume: 'db/data', vg: 'vgdata', bytes: 20 * GiB },
  ];
  assert.deepEqual(peakSnapshotBytes(needs, 1), [
    { vg: 'vgdata', bytes: 20 * GiB, volumes: ['db/data'] },
    { vg: 'vgxen', bytes: 7 * GiB, volumes: ['web1/root'] },
  ]);
  assert.deepEqual(peakSnapshotBytes(needs, 2), [
    { vg: 'vgdata', bytes: 20 * GiB, volumes: ['db/data'] },
    { vg: 'vgxen', bytes: 12 * GiB, volumes: ['web1/root', 'mail/spool'] },
  ]);
  assert.equal(peakSnapshotBytes(needs, 16).find((p) => p.vg === 'vgxen')!.bytes, 14 * GiB, 'never more than all of them');
  assert.deepEqual(peakSnapshotBytes([], 1), []);
});

test('whyNotCreatable: a file in the way, a read-only filesystem; fine where mkdir -p would work', async (t) => {
  const env = makeRunEnv(t);
  const file = path.join(env.dir, 'a-file');
  fs.writeFileSync(file, '');
  const ro = path.join(env.dir, 'ro');
  fs.mkdirSync(ro);
  sh('mount', ['-t', 'ext4', '-o', 'ro', env.device, ro]);
  const mounts = await readMountinfo();
  assert.equal(await whyNotCreatable(path.join(file, 'web1/root'), mounts), `${file} exists and is not a directory`);
  assert.match((await whyNotCreatable(path.join(ro, 'web1/root'), mounts))!, new RegExp(`^${ro} is on a read-only filesystem \\(${env.device} .*\\)$`));
  assert.equal(await whyNotCreatable(path.join(env.dir, 'new/web1/root'), mounts), undefined);
  assert.equal(await whyNotCreatable(env.dir, mounts), undefined);
  assert.ok(!fs.existsSync(path.join(env.dir, 'new')), 'nothing was made');
  sh('umount', [ro]);
});

test('check against devices that do not exist: exit 2, every problem listed, the plan printed, nothing touched', async (t) => {
  const env = makeRunEnv(t);
  fs.writeFileSync(path.join(env.dir, 'a-file'), '');
  fs.writeFileSync(
    env.volumes,
    ['web1|root|/dev/xenbackup-test/web1-root|ext4|ro', 'web1|var|/dev/mapper/xenbackup--test-web1--var|xfs|ro|snapsize=2G', `loopy|disk|${env.device}|ext4|ro`].join('\n') + '\n',
  );
  const missing = '/dev/xenbackup-test-no-such-disk';
  const conf = env.writeConfig({
    BCKDEV: missing,
    BCKMNTP: path.join(env.dir, 'no-such-mountpoint'),
    MNTSOURCEDIR: path.join(env.dir, 'a-file/4backup'),
    REPORT_WHEN: 'always',
    BIN_SENDMAIL: path.join(env.dir, 'no-such-sendmail'),
    DOM0_ROOT: path.join(env.dir, 'no-such-root'),
  });
  const before = listing(env.dir);
  const r = await env.cli(['check', '-c', conf]);
  assert.equal(r.code, 2, r.stderr);
  const lineOf = (key: string): number => fs.readFileSync(conf, 'utf8').split('\n').findIndex((l) => l.startsWith(`${key}=`)) + 1;
  const inTheWay = `${env.dir}/a-file exists and is not a directory`;
  const expected = [
    `web1/root (${env.volumes}:1): device /dev/xenbackup-test/web1-root does not exist`,
    `web1/root: snapshot mountpoint ${env.dir}/a-file/4backup/web1/root cannot be made: ${inTheWay}`,
    `web1/var (${env.volumes}:2): device /dev/mapper/xenbackup--test-web1--var does not exist`,
    `web1/var: snapshot mountpoint ${env.dir}/a-file/4backup/web1/var cannot be made: ${inTheWay}`,
    `loopy/disk (${env.volumes}:3): ${env.device} is not an LVM logical volume (not a device-mapper device)`,
    `loopy/disk: snapshot mountpoint ${env.dir}/a-file/4backup/loopy/disk cannot be made: ${inTheWay}`,
    `BCKDEV ${missing} does not exist (is the backup disk attached?)`,
    `BCKMNTP ${env.dir}/no-such-mountpoint does not exist (create it: mkdir -p ${env.dir}/no-such-mountpoint)`,
    `BIN_SENDMAIL ${env.dir}/no-such-sendmail (set at ${conf}:${lineOf('BIN_SENDMAIL')}) does not exist: install a sendmail (e.g. msmtp-mta) or set SMTP_URL`,
    `DOM0_ROOT ${env.dir}/no-such-root does not exist`,
  ];
  assert.equal(r.stderr, `xenbackup check: ${expected.length} problems:\n${expected.map((p) => `  - ${p}\n`).join('')}`);
  assert.match(r.stdout, /^plan:$/m);
  assert.match(r.stdout, /^ {2}1\. web1\/root: snapshot of \/dev\/xenbackup-test\/web1-root \(7168 MiB\), mount -t ext4 -o ro on /m);
  assert.match(r.stdout, /^ {2}2\. web1\/var: snapshot of \S+ \(2048 MiB\), mount -t xfs -o ro,nouuid on /m);
  assert.match(r.stdout, /^ {2}4\. dom0\/root: /m);
  assert.deepEqual(listing(env.dir), before, 'check made nothing: no mountpoint, no log, no lock');
});

test('check on a ready host: exit 0 and the plan; a medium mounted there is recognised, a wrong one is a problem', async (t) => {
  const env = makeRunEnv(t);
  // check connects to the SMTP server (EHLO, nothing sent): a real one, on 127.0.0.1
  const smtp = await startSmtpServer();
  t.after(() => smtp.close());
  const conf = env.writeConfig({ REPORT_WHEN: 'always', SMTP_URL: smtp.url, EMAIL_TO: 'admin@example.org' });
  const before = listing(env.dir);
  const ready = await env.cli(['check', '-c', conf]);
  assert.equal(ready.code, 0, ready.stderr);
  assert.equal(ready.stderr, '');
  assert.match(ready.stdout, /note: the medium is not mounted now; a run mounts/);
  assert.match(ready.stdout, new RegExp(`1\\. dom0/root: ${env.root} \\(one filesystem, no snapshot\\), full or incremental \\(medium not mounted: chains unknown\\)`));
  assert.match(ready.stdout, /report: always to admin@example\.org via SMTP/);
  assert.match(ready.stdout, /xenbackup check: no problems found\n$/);
  assert.match(ready.stdout, new RegExp(`note: SMTP_URL smtp://127\\.0\\.0\\.1:${smtp.port}/?: the server answered EHLO`));
  assert.equal(smtp.mails.length, 0, 'check sends nothing');
  assert.deepEqual(listing(env.dir), before);
  assert.deepEqual(env.mediumMounts(), []);

  sh('mount', ['-t', 'ext4', env.device, env.mediumDir]);
  const mounted = await env.cli(['check', '-c', conf]);
  assert.equal(mounted.code, 0, mounted.stderr);
  assert.match(mounted.stdout, /note: the medium is mounted now \(.*\); a run uses it and leaves it mounted/);
  assert.match(mounted.stdout, /dom0\/root: .* full \(first backup of this volume\)/);
  sh('umount', [env.mediumDir]);

  const other = env.otherDevice();
  sh('mount', ['-t', 'ext4', other.device, env.mediumDir]);
  const wrong = await env.cli(['check', '-c', conf]);
  assert.equal(wrong.code, 2);
  assert.equal(
    wrong.stderr,
    `xenbackup check: 1 problem:\n  - BCKMNTP: ${env.mediumDir} is a mountpoint of ${other.device} (${wrongDev(other.device)}, ext4), not of ${env.device} (${wrongDev(env.device)}); a run would refuse to write to it (exit 4)\n`,
  );
  sh('umount', [env.mediumDir]);
});

/** major:minor of a block device, from sysfs. */
function wrongDev(device: string): string {
  return fs.readFileSync(`/sys/class/block/${path.basename(device)}/dev`, 'utf8').trim();
}

test('check with a config error: exit 2 with the file:line message', async (t) => {
  const env = makeRunEnv(t);
  const table = path.join(repoRoot, 'test/fixtures/config/bad/41-readme-example.xenback_vols');
  const expected = fs.readFileSync(path.join(repoRoot, 'test/fixtures/config/bad/41-readme-example.expect'), 'utf8').trimEnd().replaceAll('{file}', table);
  const r = await env.cli(['check', '-c', env.writeConfig(), '--volumes', table]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, `xenbackup: ${expected}\n`);
  assert.equal(r.stdout, '');
});

test('check --help explains what is checked, with examples', async (t) => {
  const env = makeRunEnv(t);
  const r = await env.cli(['check', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /Examples:\n {2}xenbackup check\n/);
  assert.match(r.stdout, /with CONCURRENCY 1: its largest snapshot/);
});

test('check names what only the mount would find: ufs without ufstype=, remove_hiberfile, a missing ntfs-3g or btrfstune', async (t) => {
  const env = makeRunEnv(t);
  fs.writeFileSync(
    env.volumes,
    ['bsd|root|/dev/xenbackup-test/bsd|ufs|ro', 'win|c|/dev/xenbackup-test/win|ntfs|ro,remove_hiberfile', 'arch|root|/dev/xenbackup-test/arch|btrfs|ro'].join('\n') + '\n',
  );
  const conf = env.writeConfig({ REPORT_WHEN: 'always' });
  const r = await env.cli(['check', '-c', conf]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`bsd/root \\(${env.volumes}:1\\): ufs needs ufstype= in the mount options`));
  assert.match(r.stderr, new RegExp(`win/c \\(${env.volumes}:2\\): remove_hiberfile would delete the hibernation file`));
  assert.doesNotMatch(r.stderr, /which is not installed/, 'ntfs-3g and btrfs-progs are installed here (setup-host.sh)');
  // A dom0 without those packages: a PATH of one empty folder (ntfs-3g, ntfsinfo, btrfstune live in /usr/bin).
  const bin = path.join(env.dir, 'empty-bin');
  fs.mkdirSync(bin);
  const bare = await env.cli(['check', '-c', conf], { PATH: bin });
  assert.equal(bare.code, 2, bare.stderr);
  assert.match(bare.stderr, new RegExp(`win/c \\(${env.volumes}:2\\): fstype ntfs needs ntfs-3g, which is not installed \\(apt-get install ntfs-3g\\)`));
  assert.match(bare.stderr, new RegExp(`arch/root \\(${env.volumes}:3\\): fstype btrfs needs btrfstune, which is not installed \\(apt-get install btrfs-progs\\)`));
});
