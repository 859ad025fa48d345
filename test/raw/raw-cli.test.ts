/**
 * The commands on raw backups, as real processes (bin/xenbackup): two raw
 * backups of an ext4 image on a real loop device (made with
 * prepareRawBackup, at fixed times), then
 *   ls        says it is an image and how to loop-mount it (exit 0);
 *   restore   refuses paths (exit 2), writes a file equal to the image of
 *             the chosen backup, refuses a loop device without --force
 *             (exit 2, the device untouched) and writes it with --force;
 *   verify    quick and full say all good; a bit flipped in a container is
 *             found by both (exit 1, the file named), and restore of a
 *             backup needing it fails with one line (exit 1);
 *   list      shows image size and chunk counts, and --json the documented
 *             engine and raw fields;
 *   run --dry-run  shows the raw volume as an image, not mounted;
 *   check     no longer calls raw or rsync volumes "not available", and with
 *             RSYNC_TARGET tries the ssh login (a real sshd on 127.0.0.1).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { prepareRawBackup } from '../../src/engines/raw/raw-backup.js';
import type { RawSidecar } from '../../src/medium/sidecar.js';
import { makeScratchDir } from '../helpers/scratch.js';
import { makeRunEnv, XENBACKUP } from '../run/run-fixtures.js';
import { ensureRunSshd, startSshd } from '../rsync/sshd-fixture.js';
import { attachLoop, MiB, quietLogger, saveImage, seededBytes, sh, writeAt } from './raw-fixtures.js';

const VOLUME = 'win1/disk';
const HOST = 'dom0';
const CHUNK = 1 * MiB;
const SIZE = 32 * MiB;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [XENBACKUP, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const atOf = (id: string): string => id.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z');

test('ls, restore, verify and list on raw backups; restore onto a device needs --force; a flipped bit is found', async (t) => {
  const dir = makeScratchDir(t, 'xenbackup-raw-cli');
  const image = path.join(dir, 'guest.img');
  const medium = path.join(dir, 'medium');
  fs.closeSync(fs.openSync(image, 'w'));
  fs.truncateSync(image, SIZE);
  sh('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard', image]);
  const dev = attachLoop(t, image);
  writeAt(dev, 20 * MiB, seededBytes(3 * MiB, 1)); // past the filesystem's few used blocks: raw data, as a raw volume may hold

  let clock = Date.parse('2026-11-20T01:00:00Z');
  const backup = async (): Promise<RawSidecar> => {
    const p = await prepareRawBackup({ device: dev, medium, host: HOST, volume: VOLUME, chunkSize: CHUNK, forceFull: false, fullIntervalDays: 30, maxChainLength: 10, logger: quietLogger, now: () => new Date(clock) });
    const s = await p.commit();
    clock += 86_400_000;
    return s;
  };
  const full = await backup();
  const copy1 = path.join(dir, 'copy1.img');
  saveImage(dev, copy1);
  writeAt(dev, 28 * MiB + 4096, seededBytes(100_000, 2));
  const incr = await backup();
  const copy2 = path.join(dir, 'copy2.img');
  saveImage(dev, copy2);
  assert.equal(incr.kind, 'incremental');
  assert.equal(incr.raw.storedChunks, 1, 'one chunk changed');
  const on = ['--medium', medium, '--host', HOST];

  // ls: no listing, but how to get at the files; exit 0.
  const ls = await cli(['ls', VOLUME, ...on]);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, new RegExp(`${VOLUME}: backup ${incr.id} is a raw image of ${dev} \\(32 MiB, incremental\\), not a file tree`));
  assert.match(ls.stdout, /xenbackup restore win1\/disk --to \/var\/tmp\/win1-disk\.img --at /);
  assert.match(ls.stdout, /losetup --find --show --read-only --partscan/);

  // restore with paths: refused, nothing written.
  const withPath = await cli(['restore', VOLUME, 'etc/passwd', ...on, '--to', path.join(dir, 'x.img')]);
  assert.equal(withPath.code, 2, withPath.stderr);
  assert.match(withPath.stderr, /raw image of a block device, not a file tree: it is restored whole .* without paths/);
  assert.equal(withPath.stderr.trim().split('\n').length, 1, 'one line');
  assert.ok(!fs.existsSync(path.join(dir, 'x.img')));

  // restore --to FILE: the newest, and the full with --at; an existing file needs --force.
  const to = path.join(dir, 'restored.img');
  const r2 = await cli(['restore', VOLUME, ...on, '--to', to]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.match(r2.stderr, /chunks written, \d+ zero chunks left as holes, .* from 2 container\(s\)/);
  assert.ok(fs.readFileSync(to).equals(fs.readFileSync(copy2)));
  const again = await cli(['restore', VOLUME, ...on, '--to', to, '--at', atOf(full.id)]);
  assert.equal(again.code, 2, again.stderr);
  assert.match(again.stderr, /exists; nothing was written \(use --force to replace it\)/);
  const r1 = await cli(['restore', VOLUME, ...on, '--to', to, '--at', atOf(full.id), '--force']);
  assert.equal(r1.code, 0, r1.stderr);
  assert.ok(fs.readFileSync(to).equals(fs.readFileSync(copy1)));

  // restore onto a block device: refused without --force (untouched), done with it.
  const targetFile = path.join(dir, 'target.img');
  fs.closeSync(fs.openSync(targetFile, 'w'));
  fs.truncateSync(targetFile, SIZE);
  const target = attachLoop(t, targetFile);
  const refused = await cli(['restore', VOLUME, ...on, '--to', target]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, new RegExp(`${target} is a block device: restoring onto it overwrites it; nothing was written \\(use --force to do so\\)`));
  assert.equal(sh('cmp', ['-n', String(SIZE), target, '/dev/zero']).trim(), '', 'the device still holds only zeros');
  const forced = await cli(['restore', VOLUME, ...on, '--to', target, '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(forced.stderr, /to the block device .* zero chunks written as zeros/);
  assert.ok(fs.readFileSync(target).equals(fs.readFileSync(copy2)));

  // list: text and JSON.
  const list = await cli(['list', VOLUME, ...on]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, new RegExp(`${full.id}  full  raw image 32\\.0 MiB: 32 chunks \\(${full.raw.storedChunks} stored, ${full.raw.zeroChunks} zero, 0 unchanged\\)`));
  assert.match(list.stdout, new RegExp(`${incr.id}   incr raw image 32\\.0 MiB: 32 chunks \\(1 stored, ${incr.raw.zeroChunks} zero, ${incr.raw.unchangedChunks} unchanged\\)`));
  const json = await cli(['list', VOLUME, ...on, '--json']);
  assert.equal(json.code, 0, json.stderr);
  const listed = JSON.parse(json.stdout) as Array<{ backups: Array<{ id: string; engine: string; files: number; bytes: number; needs: string[]; raw: unknown }> }>;
  assert.deepEqual(
    listed[0]!.backups.map((b) => [b.id, b.engine, b.bytes, b.needs, b.raw]),
    [full, incr].map((s) => [
      s.id,
      'raw',
      SIZE,
      s === full ? [full.id] : [full.id, incr.id],
      { imageBytes: SIZE, chunkSize: CHUNK, chunks: 32, storedChunks: s.raw.storedChunks, zeroChunks: s.raw.zeroChunks, unchangedChunks: s.raw.unchangedChunks },
    ]),
  );

  // verify, quick and full: all good.
  for (const depth of [['--quick'], []]) {
    const v = await cli(['verify', VOLUME, ...on, ...depth]);
    assert.equal(v.code, 0, v.stderr + v.stdout);
    assert.match(v.stdout, new RegExp(`${VOLUME}: ${depth.length ? 'quick' : 'full'} verify of 2 backup\\(s\\) in 1 chain\\(s\\), .*: all good`));
    if (!depth.length) assert.match(v.stdout, new RegExp(`, ${full.raw.storedChunks + 1} chunks read`), 'every stored chunk decoded');
  }

  // A bit flipped inside the full's first frame: both depths find it and name the container; restore fails in one line.
  const container = path.join(medium, HOST, 'win1', 'disk', full.archive);
  const fd = fs.openSync(container, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, 100);
  b[0]! ^= 0x10;
  fs.writeSync(fd, b, 0, 1, 100);
  fs.closeSync(fd);
  for (const depth of [['--quick'], []]) {
    const v = await cli(['verify', VOLUME, ...on, ...depth]);
    assert.equal(v.code, 1, v.stderr + v.stdout);
    assert.match(v.stderr + v.stdout, new RegExp(`${container.replace(/[.]/g, '\\.')}: xxh64 [0-9a-f]{16} does not match the sidecar's`));
  }
  const damaged = await cli(['restore', VOLUME, ...on, '--to', path.join(dir, 'damaged.img')]);
  assert.equal(damaged.code, 1, damaged.stderr);
  assert.match(damaged.stderr, new RegExp(`xenbackup: backup of ${VOLUME}: ${container.replace(/[.]/g, '\\.')}: does not decode \\(zstd: .*, frame of chunk \\d+ at offset \\d+\\): the container is damaged`));
  assert.equal(damaged.stderr.split('\n').filter((l) => l.startsWith('xenbackup: ')).length, 1, damaged.stderr);
  assert.ok(!fs.existsSync(path.join(dir, 'damaged.img')) && !fs.existsSync(path.join(dir, 'damaged.img.partial')), 'nothing left behind');
});

test('run --dry-run shows a raw volume as an image that is not mounted', async (t) => {
  const env = makeRunEnv(t);
  fs.writeFileSync(env.volumes, 'win1|disk|/dev/vgxen/win1-disk|raw||snapsize=2G\nhvm1|c|/dev/vgxen/hvm1-disk|raw||partition=2\n');
  const r = await cli(['run', '-c', env.writeConfig({ BACKUP_DOM0: 'no' }), '--dry-run']);
  // the plan is printed; the devices do not exist here, so a dry run, like check, says the run would fail (exit 2)
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^ {2}- win1\/disk \(.*:1\): device \/dev\/vgxen\/win1-disk does not exist$/m);
  assert.match(r.stdout, /1\. win1\/disk: snapshot of \/dev\/vgxen\/win1-disk \(2048 MiB\), raw image, not mounted \(changed chunks stored\), full or incremental .* -> .*\/win1\/disk/);
  assert.match(r.stdout, /2\. hvm1\/c: snapshot of \/dev\/vgxen\/hvm1-disk \(.*\), partition 2, raw image, not mounted/);
  assert.doesNotMatch(r.stdout, /mount -t raw/);
});

test('check: raw and rsync volumes are checked like the others, not "not available"; with RSYNC_TARGET the ssh login is tried', async (t) => {
  const env = makeRunEnv(t);
  ensureRunSshd(t);
  const sshd = await startSshd(t);
  const missing = '/dev/vgxen-missing/win1-disk';
  fs.writeFileSync(env.volumes, `win1|disk|${missing}|raw|\nweb1|root|/dev/vgxen-missing/web1-root|ext4|ro|engine=rsync\n`);
  const spec = `root@127.0.0.1:${path.join(env.dir, 'remote')}`;
  const conf = env.writeConfig({
    RSYNC_TARGET: spec,
    RSYNC_SSH_KEY: sshd.ssh.identityFile!,
    RSYNC_SSH_PORT: String(sshd.port),
    RSYNC_SSH_KNOWN_HOSTS: sshd.ssh.knownHostsFile!,
  });
  const ok = await cli(['check', '-c', conf]);
  assert.equal(ok.code, 2, 'the devices are missing');
  assert.match(ok.stderr, new RegExp(`win1/disk \\(.*:1\\): device ${missing} does not exist`));
  assert.doesNotMatch(ok.stderr, /not available/);
  assert.match(ok.stdout, new RegExp(`note: RSYNC_TARGET ${spec.replace(/[.]/g, '\\.')}: ssh login works`));
  assert.match(ok.stdout, new RegExp(`web1/root: .* dated tree -> ${spec.replace(/[.]/g, '\\.')}/testhost/web1/root \\(RSYNC_TARGET\\)`));
  await sshd.kill();
  const down = await cli(['check', '-c', conf]);
  assert.equal(down.code, 2);
  assert.match(down.stderr, new RegExp(`RSYNC_TARGET ${spec.replace(/[.]/g, '\\.')}: ssh login failed: .*Connection refused`));
});
