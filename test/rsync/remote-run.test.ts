/**
 * `xenbackup run -c CONF` with RSYNC_TARGET, end to end as real processes:
 * a real OpenSSH server on 127.0.0.1 (sshd-fixture.ts) holds the remote
 * target, a loop-mounted ext4 image is the local medium (BCKDEV), and the
 * run backs up one guest volume with engine=rsync (to the remote target)
 * and dom0/root with tar (to the local medium).
 *
 * The guest volume's snapshot comes from a FAKE LVM (fake-lvm.ts): this
 * kernel has no device-mapper, so real LVM cannot run here (the VM suite
 * runs it). The fake's snapshot is a copy of an ext4 image on a loop
 * device; mount, rsync, ssh and everything after are real.
 *
 * Proves: two runs make two remote trees whose unchanged files are
 * hardlinks, the tar volume stays local, the report names the remote
 * target, and list/ls/restore/verify/prune --medium user@host:/path read,
 * restore, check and prune what the run wrote; an unreachable target fails
 * only its volume (exit 1) and leaves nothing that looks complete; with
 * every volume remote and BACKUP_DOM0=no, BCKDEV is neither needed nor
 * mounted, and VERIFY_AFTER_RUN checks the remote volume.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { HOST, makeRunEnv, sh, type RunEnv } from '../run/run-fixtures.js';
import { installFakeLvm, type FakeLvm } from './fake-lvm.js';
import { ensureRunSshd, startSshd, type Sshd } from './sshd-fixture.js';

const VOLUME = 'web1/root';

/** A guest filesystem's content, the fake LVM with it as an LV, and a volume table naming it engine=rsync. */
function guest(env: RunEnv): { src: string; lvm: FakeLvm; image: string } {
  const src = path.join(env.dir, 'guest-src');
  fs.mkdirSync(path.join(src, 'etc/app'), { recursive: true });
  fs.writeFileSync(path.join(src, 'keep'), 'the same every night\n'.repeat(200));
  fs.writeFileSync(path.join(src, 'change'), 'first\n');
  fs.writeFileSync(path.join(src, 'gone'), 'deleted before the second run\n');
  fs.writeFileSync(path.join(src, 'etc/app/conf'), 'key=value\n');
  fs.chmodSync(path.join(src, 'etc/app/conf'), 0o640);
  fs.symlinkSync('app/conf', path.join(src, 'etc/conf-link'));
  const lvm = installFakeLvm(env.dir);
  const { device, image } = lvm.addExt4Volume('web1-root', src);
  fs.writeFileSync(env.volumes, `web1|root|${device}|ext4|ro,noatime|engine=rsync|snapsize=64M\n`);
  return { src, lvm, image };
}

/** Changes the guest's filesystem between runs (the origin image, mounted read-write for a moment). */
function changeGuest(env: RunEnv, image: string, fn: (root: string) => void): void {
  const mnt = fs.mkdtempSync(path.join(env.dir, 'origin-'));
  sh('mount', ['-o', 'loop', image, mnt]);
  try {
    fn(mnt);
  } finally {
    sh('umount', [mnt]);
    fs.rmdirSync(mnt);
  }
}

function remoteKeys(sshd: Sshd, remoteDir: string): Record<string, string> {
  return {
    RSYNC_TARGET: `root@127.0.0.1:${remoteDir}`,
    RSYNC_SSH_KEY: sshd.ssh.identityFile!,
    RSYNC_SSH_PORT: String(sshd.port),
    RSYNC_SSH_KNOWN_HOSTS: sshd.ssh.knownHostsFile!,
  };
}

function sshArgs(sshd: Sshd): string[] {
  return ['--ssh-key', sshd.ssh.identityFile!, '--ssh-port', String(sshd.port), '--known-hosts', sshd.ssh.knownHostsFile!];
}

function names(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

test('run with RSYNC_TARGET: the rsync volume goes over ssh (hardlinked trees), tar stays local; list, ls, restore, verify and prune --medium user@host:/path', async (t) => {
  const env = makeRunEnv(t);
  ensureRunSshd(t);
  const sshd = await startSshd(t);
  const { src, lvm, image } = guest(env);
  const remoteDir = path.join(env.dir, 'remote store');
  const spec = `root@127.0.0.1:${remoteDir}`;
  // KEEP_LAST=2 with no TTL: the run's prune runs on the remote volume and keeps both trees.
  const conf = env.writeConfig({ ...remoteKeys(sshd, remoteDir), ARCHIVE_TTL_DAYS: '0', KEEP_LAST: '2' });

  const first = await env.cli(['run', '-c', conf], lvm.env);
  assert.equal(first.code, 0, first.stderr);
  changeGuest(env, image, (root) => {
    fs.writeFileSync(path.join(root, 'change'), 'second\n');
    fs.writeFileSync(path.join(root, 'new'), 'new file\n');
    fs.rmSync(path.join(root, 'gone'));
  });
  const second = await env.cli(['run', '-c', conf], lvm.env);
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(lvm.lvNames(), ['web1-root'], 'every snapshot was removed');
  assert.deepEqual(env.mediumMounts(), [], 'the local medium was unmounted');

  // The remote volume folder: two complete trees, nothing else; unchanged files are hardlinks.
  const vdir = path.join(remoteDir, HOST, 'web1', 'root');
  const sidecars = names(vdir).filter((n) => n.endsWith('.tree.json'));
  assert.equal(sidecars.length, 2, names(vdir).join(' '));
  const [id1, id2] = sidecars.map((n) => n.slice(0, -'.tree.json'.length));
  assert.deepEqual(names(vdir), [`${id1}.tree`, `${id1}.tree.json`, `${id1}.tree.manifest`, `${id2}.tree`, `${id2}.tree.json`, `${id2}.tree.manifest`]);
  const ino = (id: string, rel: string): number => fs.statSync(path.join(vdir, `${id}.tree`, rel)).ino;
  assert.equal(ino(id1!, 'keep'), ino(id2!, 'keep'), 'an unchanged file is a hardlink into the previous tree');
  assert.notEqual(ino(id1!, 'change'), ino(id2!, 'change'));
  assert.equal(fs.readFileSync(path.join(vdir, `${id2}.tree`, 'change'), 'utf8'), 'second\n');

  // The local medium holds dom0/root (tar) only.
  await env.inspectMedium((mnt) => {
    assert.deepEqual(names(path.join(mnt, HOST)), ['dom0']);
    assert.equal(names(path.join(mnt, HOST, 'dom0', 'root')).filter((n) => n.endsWith('.json')).length, 2);
  });

  // The report (its body is in the log file) names the remote target; the log names the tree.
  const log = fs.readFileSync(env.logFile, 'utf8');
  assert.match(log, new RegExp(`rsync mirror ${id2} of .* to ${spec.replace(/[.]/g, '\\.')}/${HOST}/web1/root`));
  assert.match(log, new RegExp(`report: +prune web1/root on ${spec.replace(/[.]/g, '\\.')}: nothing to delete; kept 2 backups`));
  assert.match(log, /report: .*web1\/root .*ok/);

  const remote = ['--medium', spec, '--host', HOST, ...sshArgs(sshd)];
  // list: the two trees, named as on the remote host.
  const listed = await env.cli(['list', VOLUME, ...remote, '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  const volumes = JSON.parse(listed.stdout) as Array<{ volume: string; backups: Array<{ id: string; archive: string; sizeBytes: number }> }>;
  assert.deepEqual(volumes.map((v) => v.volume), [VOLUME]);
  assert.deepEqual(volumes[0]!.backups.map((b) => [b.id, b.archive]), [id1, id2].map((id) => [id, `${spec}/${HOST}/web1/root/${id}.tree`]));
  // Measured on the remote host: each tree's own directories and files, not just its sidecar.
  assert.ok(volumes[0]!.backups.every((b) => b.sizeBytes > 4 * 4096), JSON.stringify(volumes[0]!.backups.map((b) => b.sizeBytes)));

  // ls: the newest tree, and the first one with --at.
  const ls = await env.cli(['ls', VOLUME, '', ...remote]);
  assert.equal(ls.code, 0, ls.stderr);
  assert.deepEqual(ls.stdout.trim().split('\n').sort(), ['change', 'etc', 'keep', 'lost+found', 'new']);
  const lsFirst = await env.cli(['ls', VOLUME, '', ...remote, '--at', idTime(id1!)]);
  assert.equal(lsFirst.code, 0, lsFirst.stderr);
  assert.deepEqual(lsFirst.stdout.trim().split('\n').sort(), ['change', 'etc', 'gone', 'keep', 'lost+found']);

  // restore: everything, as of the newest tree, equal to the guest's files; one file as of the first.
  const all = path.join(env.dir, 'restored-all');
  const r = await env.cli(['restore', VOLUME, ...remote, '--to', all]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.readFileSync(path.join(all, 'change'), 'utf8'), 'second\n');
  assert.equal(fs.readFileSync(path.join(all, 'new'), 'utf8'), 'new file\n');
  assert.deepEqual(fs.readFileSync(path.join(all, 'keep')), fs.readFileSync(path.join(src, 'keep')));
  assert.equal(fs.statSync(path.join(all, 'etc/app/conf')).mode & 0o7777, 0o640);
  assert.equal(fs.readlinkSync(path.join(all, 'etc/conf-link')), 'app/conf');
  assert.ok(!fs.existsSync(path.join(all, 'gone')));
  const one = path.join(env.dir, 'restored-one');
  const old = await env.cli(['restore', VOLUME, 'gone', ...remote, '--at', idTime(id1!), '--to', one]);
  assert.equal(old.code, 0, old.stderr);
  assert.deepEqual(names(one), ['gone']);
  assert.equal(fs.readFileSync(path.join(one, 'gone'), 'utf8'), 'deleted before the second run\n');

  // verify (full: the trees are copied down and compared with their manifests).
  const verified = await env.cli(['verify', ...remote]);
  assert.equal(verified.code, 0, verified.stderr);
  assert.match(verified.stdout, /web1\/root: full verify of 2 backup\(s\) .*: all good/);

  // prune: the dry run deletes nothing; the real one keeps what the rules say (the newest) and the hardlinked file.
  const dry = await env.cli(['prune', ...remote, '--ttl', '0', '--keep-last', '1', '--dry-run', '--lock-file', env.lockDir]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, new RegExp(`WOULD DELETE +${id1} full`));
  assert.equal(names(vdir).length, 6);
  const pruned = await env.cli(['prune', ...remote, '--ttl', '0', '--keep-last', '1', '--lock-file', env.lockDir, '--json']);
  assert.equal(pruned.code, 0, pruned.stderr);
  const pj = JSON.parse(pruned.stdout) as { volumes: Array<{ delete: Array<{ id: string; bytes: number }> }> };
  assert.deepEqual(pj.volumes[0]!.delete.map((d) => d.id), [id1]);
  assert.ok(pj.volumes[0]!.delete[0]!.bytes > 0, 'the bytes only that tree held were counted on the remote host');
  assert.deepEqual(names(vdir), [`${id2}.tree`, `${id2}.tree.json`, `${id2}.tree.manifest`]);
  assert.deepEqual(fs.readFileSync(path.join(vdir, `${id2}.tree`, 'keep')), fs.readFileSync(path.join(src, 'keep')));

  // verify finds damage on the remote host and names the remote file.
  fs.writeFileSync(path.join(vdir, `${id2}.tree`, 'new'), 'tampered\n');
  const damaged = await env.cli(['verify', ...remote]);
  assert.equal(damaged.code, 1, damaged.stderr);
  assert.match(damaged.stderr, new RegExp(`${spec.replace(/[.]/g, '\\.')}/${HOST}/web1/root/${id2}\\.tree.*new`));
});

/** The time a backup id names, as --at takes it. */
function idTime(id: string): string {
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(id)!;
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`;
}

test('run with RSYNC_TARGET unreachable (sshd stopped): that volume fails with a clear message, exit 1, tar still backed up; all-remote without BCKDEV mounts nothing', async (t) => {
  const env = makeRunEnv(t);
  ensureRunSshd(t);
  const sshd = await startSshd(t);
  const { lvm } = guest(env);
  const remoteDir = path.join(env.dir, 'remote');
  const spec = `root@127.0.0.1:${remoteDir}`;
  const conf = env.writeConfig(remoteKeys(sshd, remoteDir));
  await sshd.kill();

  const r = await env.cli(['run', '-c', conf], lvm.env);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`web1/root: xenbackup-mkdir on ${spec.replace(/[.]/g, '\\.')}/${HOST}/web1/root failed: .*Connection refused`));
  assert.match(r.stderr, /dom0\/root: ok \(full\)/);
  assert.match(r.stderr, /outcome: \[xenbackup\] FAILED testhost\.example\.org: 1\/2 volumes ok/);
  assert.deepEqual(lvm.lvNames(), ['web1-root'], 'the snapshot was removed');
  assert.ok(!fs.existsSync(remoteDir), 'nothing was written on the remote side');
  await env.inspectMedium((mnt) => {
    assert.equal(names(path.join(mnt, HOST, 'dom0', 'root')).filter((n) => n.endsWith('.json')).length, 1, 'dom0/root was backed up');
    assert.ok(!fs.existsSync(path.join(mnt, HOST, 'web1')), 'the rsync volume did not fall back to the local medium');
  });

  // Every volume remote and no dom0: no BCKDEV in the config, nothing mounted, a complete tree.
  await sshd.restart();
  const remoteOnly = env.writeConfig({ ...remoteKeys(sshd, remoteDir), BCKDEV: undefined, BACKUP_DOM0: 'no', VERIFY_AFTER_RUN: 'quick' }, 'remote-only.conf');
  const ok = await env.cli(['run', '-c', remoteOnly], lvm.env);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /no local medium needed/);
  assert.doesNotMatch(ok.stderr, new RegExp(`exec: mount .*${env.device}`), 'BCKDEV is not mounted');
  assert.match(fs.readFileSync(env.logFile, 'utf8'), /report: +web1\/root: quick verify of 1 backup\(s\) in 1 chain\(s\), .*: all good/, 'VERIFY_AFTER_RUN checked the remote volume');
  const vdir = path.join(remoteDir, HOST, 'web1', 'root');
  assert.equal(names(vdir).filter((n) => n.endsWith('.tree.json')).length, 1, names(vdir).join(' '));
  assert.ok(!names(vdir).some((n) => n.endsWith('.partial') || n === '.backup.lock'), names(vdir).join(' '));
});
