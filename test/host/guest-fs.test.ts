/**
 * Guest filesystems other than ext4/xfs (issue 6), on this host's real
 * drivers with loop devices: NTFS through ntfs-3g (FUSE; clean, dirty and
 * hibernated volumes) and btrfs (a block copy of a mounted origin standing
 * in for an LVM snapshot, which this kernel cannot make: no device-mapper).
 * Each is mounted by `mountReadOnly` as a run mounts a snapshot, backed up
 * through the engine (`prepareBackup`), restored, and compared with what
 * the driver showed. Images the mount must not change are hashed before and
 * after. ufs has no driver on this host: its mount runs in the VM suite
 * (scenario 40); here only what happens before the mount is tested.
 *
 * This host's kernel (6.18) tells btrfs filesystems with one fsid apart
 * (temp-fsid), so the confusion itself only shows in the VM's 6.1 kernel;
 * here the test proves the tune lands on the copy and never on the origin.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mountArgs, mountOptionLadder, mountReadOnly, MountError } from '../../src/host/mount.js';
import { guestFsOptionProblem, mountTypeFor } from '../../src/host/guest-fs.js';
import { isHibernationHeader, ntfsIsDirty, parseNtfsVolumeFlags } from '../../src/host/ntfs.js';
import { btrfsFsid } from '../../src/host/btrfs.js';
import { restore } from '../../src/engines/restore.js';
import { apiBackup, HOST, memoryLogger } from '../engine/engine-fixtures.js';
import { snapshotTree } from '../helpers/tree-snapshot.js';
import { assertTreesEqual, type CompareOptions } from '../helpers/tree-compare.js';
import { attach, isMountpointNow, scratch, sh } from './host-fixtures.js';

const MiB = 2 ** 20;

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function sparseImage(dir: string, name: string, sizeMiB: number): string {
  const image = path.join(dir, name);
  fs.writeFileSync(image, '');
  fs.truncateSync(image, sizeMiB * MiB);
  return image;
}

/** Deterministic bytes (not all zero, not trivially compressible). */
function pattern(bytes: number, seed: number): Buffer {
  const b = Buffer.alloc(bytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** A small guest tree: nested directories, a non-ASCII name, a symlink, a hardlink, an empty directory, set mtimes. */
function fillGuestTree(root: string): void {
  fs.mkdirSync(path.join(root, 'Users/Åsa Öberg/Documents'), { recursive: true });
  fs.mkdirSync(path.join(root, 'Program Files/app'), { recursive: true });
  fs.mkdirSync(path.join(root, 'empty'));
  fs.writeFileSync(path.join(root, 'Users/Åsa Öberg/Documents/notes.txt'), 'meeting at 10\n');
  fs.writeFileSync(path.join(root, 'Program Files/app/data.bin'), pattern(300_000, 7));
  fs.writeFileSync(path.join(root, 'readme.txt'), 'hello from the guest\n');
  fs.linkSync(path.join(root, 'readme.txt'), path.join(root, 'readme-hardlink.txt'));
  fs.symlinkSync('Users/Åsa Öberg/Documents/notes.txt', path.join(root, 'notes-link'));
  // an old mtime with sub-second digits NTFS can hold (100 ns)
  sh('touch', ['-m', '-d', '2001-02-03 04:05:06.1234567 UTC', path.join(root, 'Program Files/app/data.bin')]);
  sh('touch', ['-m', '-d', '2019-12-31 23:59:59 UTC', path.join(root, 'Users/Åsa Öberg')]);
}

/** Backs up `mountpoint` through the engine, restores it into a new directory and returns that directory. */
async function backupAndRestore(dir: string, mountpoint: string, volume: string, otherFilesystems: string[] = []): Promise<string> {
  const medium = path.join(dir, 'medium');
  fs.mkdirSync(medium, { recursive: true });
  const b = await apiBackup(mountpoint, medium, volume, { oneFileSystem: true });
  assert.deepEqual(b.prepared.unreadable, []);
  assert.deepEqual(b.prepared.otherFilesystems, otherFilesystems, 'directories kept empty as another filesystem');
  const target = path.join(dir, `restored-${volume.replace('/', '-')}`);
  fs.mkdirSync(target);
  const r = await restore({ medium, host: HOST, volume, paths: [], targetDir: target, force: false, logger: memoryLogger().log });
  assert.deepEqual(r.errors, []);
  return target;
}

// The restore target's root directory is made by the test, not restored.
const ROOT_IS_OURS: CompareOptions = { ignoreWhere: [{ paths: ['.'], fields: ['mode', 'uid', 'gid', 'mtime', 'xattrs', 'acl'] }] };

/** An NTFS image made with mkntfs and filled through ntfs-3g, as a Windows guest's volume would be. */
function makeNtfs(dir: string, name: string): string {
  const image = sparseImage(dir, name, 64);
  const dev = attach(image);
  try {
    sh('mkntfs', ['-Q', '-F', '-L', 'guest', dev]);
    const mnt = path.join(dir, `${name}.fill`);
    fs.mkdirSync(mnt);
    sh('mount', ['-t', 'ntfs-3g', dev, mnt]);
    try {
      fillGuestTree(mnt);
    } finally {
      sh('umount', [mnt]);
    }
    fs.rmdirSync(mnt);
  } finally {
    sh('losetup', ['-d', dev]);
  }
  return image;
}

test('the mount plan per guest fstype: ntfs means ntfs-3g, ufs gets no journal options and needs ufstype=', () => {
  assert.equal(mountTypeFor('ntfs'), 'ntfs-3g');
  assert.equal(mountTypeFor('ntfs-3g'), 'ntfs-3g');
  assert.equal(mountTypeFor('ntfs3'), 'ntfs3');
  assert.equal(mountTypeFor('ufs'), 'ufs');
  assert.deepEqual(mountArgs('/dev/x', '/m', 'ntfs', ['ro']), ['-t', 'ntfs-3g', '-o', 'ro', '/dev/x', '/m']);
  // the old tool's own example line, and a UFS2 one: ro first, nothing added
  assert.deepEqual(mountOptionLadder('ufs', 'ro,ufstype=44bsd'), [{ options: ['ro', 'ufstype=44bsd'] }]);
  assert.deepEqual(mountOptionLadder('ufs', 'ufstype=ufs2,noload,norecovery'), [{ options: ['ro', 'ufstype=ufs2'] }]);
  assert.deepEqual(mountOptionLadder('btrfs', 'ro,nologreplay'), [
    { options: ['ro'] },
    { options: ['ro', 'rescue=nologreplay'], fallbackReason: 'rescue=nologreplay skips the btrfs log tree (data fsynced since the last commit) and can show stale data' },
  ]);
  assert.match(guestFsOptionProblem('ufs', ['ro']) ?? '', /ufstype=44bsd for UFS1, ufstype=ufs2 for UFS2/);
  assert.equal(guestFsOptionProblem('ufs', ['ro', 'ufstype=44bsd']), undefined);
  assert.match(guestFsOptionProblem('ntfs', ['ro', 'remove_hiberfile']) ?? '', /remove_hiberfile would delete the hibernation file/);
  assert.equal(guestFsOptionProblem('ntfs-3g', ['ro']), undefined);
  assert.equal(parseNtfsVolumeFlags('Volume Information\n\tVolume Flags: 0x0001 DIRTY\n'), 1);
  assert.equal(parseNtfsVolumeFlags('\tVolume Flags: 0x0000\n'), 0);
  assert.equal(parseNtfsVolumeFlags('Failed to open /dev/x'), undefined);
  assert.equal(isHibernationHeader(Buffer.from('HIBRxyz')), true);
  assert.equal(isHibernationHeader(Buffer.from('hibr')), true);
  assert.equal(isHibernationHeader(Buffer.from('wake')), false);
  assert.equal(isHibernationHeader(Buffer.alloc(4)), false);
});

test('a ufs volume without ufstype= is refused before mount with a clear message (makefs -t ffs image)', async (t) => {
  const dir = scratch(t, 'xb-guestfs-ufs');
  const tree = path.join(dir, 'tree');
  fs.mkdirSync(tree);
  fs.writeFileSync(path.join(tree, 'hello'), 'bsd\n');
  const image = path.join(dir, 'ufs1.img');
  sh('makefs', ['-t', 'ffs', '-o', 'version=1', '-s', '8m', image, tree]);
  const dev = attach(image, true);
  const mnt = path.join(dir, 'mnt');
  await assert.rejects(mountReadOnly(dev, mnt, 'ufs', 'ro'), (e: unknown) => {
    assert.ok(e instanceof MountError);
    assert.match(e.message, new RegExp(`^cannot mount ${dev} on .*: ufs needs ufstype= in the mount options`));
    return true;
  });
  assert.equal(fs.existsSync(mnt), false, 'the mountpoint it made is removed again');
  // blkid knows the type, so a wrong fstype is named as such
  await assert.rejects(mountReadOnly(dev, mnt, 'ext4', 'ro'), /holds a filesystem of type ufs \(blkid\), not ext4/);
});

test('a clean NTFS volume mounts read-only through ntfs-3g, without warnings, and backs up and restores exactly', async (t) => {
  const dir = scratch(t, 'xb-guestfs-ntfs');
  const image = makeNtfs(dir, 'win.img');
  const before = sha256(image);
  const dev = attach(image); // writable, as a snapshot LV is
  assert.equal(await ntfsIsDirty(dev), false);
  const { log } = memoryLogger();
  const h = await mountReadOnly(dev, path.join(dir, 'snap/win/c'), 'ntfs', 'ro', log);
  let restored: string;
  let shown;
  try {
    assert.equal(h.entry.fsType, 'fuseblk');
    assert.ok(h.entry.mountOptions.includes('ro'), h.entry.mountOptions.join(','));
    assert.deepEqual(h.warnings, []);
    shown = await snapshotTree(h.mountpoint);
    assert.equal(fs.readFileSync(path.join(h.mountpoint, 'readme.txt'), 'utf8'), 'hello from the guest\n');
    restored = await backupAndRestore(dir, h.mountpoint, 'win/c');
  } finally {
    await h.release();
  }
  assert.equal(isMountpointNow(h.mountpoint), false);
  assert.equal(fs.existsSync(path.join(dir, 'snap')), false, 'the mountpoint directories are removed');
  assertTreesEqual(shown, await snapshotTree(restored), ROOT_IS_OURS);
  assert.equal(sha256(image), before, 'the read-only mount wrote nothing to the volume');
});

test('a dirty and hibernated NTFS volume still backs up read-only, with a warning for each state and nothing written', async (t) => {
  const dir = scratch(t, 'xb-guestfs-ntfs-dirty');
  const image = makeNtfs(dir, 'hib.img');
  const dev = attach(image);
  // What Windows leaves: the volume's dirty flag, set the way ntfs-3g's own tools set it (ntfsfix schedules a check) ...
  sh('ntfsfix', [dev]);
  assert.equal(await ntfsIsDirty(dev), true);
  // ... and hiberfil.sys starting with "HIBR" (hibernation or fast startup); ntfs-3g keeps the dirty flag
  const fill = path.join(dir, 'fill');
  fs.mkdirSync(fill);
  sh('mount', ['-t', 'ntfs-3g', dev, fill]);
  fs.writeFileSync(path.join(fill, 'hiberfil.sys'), Buffer.concat([Buffer.from('HIBR'), pattern(64 * 1024, 3)]));
  sh('umount', [fill]);
  assert.equal(await ntfsIsDirty(dev), true);
  // ntfs-3g itself refuses it read-write: it falls back to read-only
  const probe = path.join(dir, 'probe');
  fs.mkdirSync(probe);
  const rw = sh('sh', ['-c', `mount -t ntfs-3g ${dev} ${probe} 2>&1; umount ${probe}`]);
  assert.match(rw, /Windows is hibernated/);
  const before = sha256(image);

  const { log, sink } = memoryLogger();
  const h = await mountReadOnly(dev, path.join(dir, 'snap/win/d'), 'ntfs-3g', 'ro,noatime', log);
  let restored: string;
  let shown;
  try {
    assert.equal(h.warnings.length, 2, h.warnings.join('\n'));
    assert.match(h.warnings[0]!, /^the NTFS volume is marked dirty .*backed up read-only as it is on disk$/);
    assert.match(h.warnings[1]!, /^Windows is hibernated on this NTFS volume .*backed up read-only as it is on disk/);
    assert.ok(h.entry.mountOptions.includes('ro'));
    shown = await snapshotTree(h.mountpoint);
    restored = await backupAndRestore(dir, h.mountpoint, 'win/d');
  } finally {
    await h.release();
  }
  assertTreesEqual(shown, await snapshotTree(restored), ROOT_IS_OURS);
  assert.ok(fs.existsSync(path.join(restored, 'hiberfil.sys')));
  assert.equal(sha256(image), before, 'neither ntfsinfo nor the read-only mount changed the volume');
  assert.ok(sink.records.some((r) => /exec: ntfsinfo -f -m/.test(r.message)));

  await assert.rejects(mountReadOnly(dev, path.join(dir, 'x'), 'ntfs', 'ro,remove_hiberfile', log), /remove_hiberfile would delete/);
  assert.equal(sha256(image), before);
});

test('btrfs: the snapshot copy gets its own fsid before the mount, the mounted origin is never touched, the backup holds the snapshot', async (t) => {
  const dir = scratch(t, 'xb-guestfs-btrfs');
  const origin = sparseImage(dir, 'origin.img', 128);
  sh('mkfs.btrfs', ['-q', origin]);
  const originDev = attach(origin);
  const live = path.join(dir, 'live');
  fs.mkdirSync(live);
  sh('mount', [originDev, live]);
  fillGuestTree(live);
  sh('btrfs', ['subvolume', 'create', path.join(live, 'home')]);
  fs.writeFileSync(path.join(live, 'home/in-a-subvolume.txt'), 'subvolume content\n');
  sh('sync', ['-f', live]);
  const atSnapshot = await snapshotTree(live);

  // The "snapshot": a block copy while the origin is frozen, as lvcreate -s freezes it.
  const copy = path.join(dir, 'snap.img');
  sh('fsfreeze', ['-f', live]);
  try {
    sh('cp', ['--sparse=always', origin, copy]);
  } finally {
    sh('fsfreeze', ['-u', live]);
  }
  // The guest goes on writing to its origin.
  fs.writeFileSync(path.join(live, 'readme.txt'), 'changed after the snapshot\n');
  fs.writeFileSync(path.join(live, 'new-after-snapshot.txt'), 'not in the backup\n');
  sh('sync', ['-f', live]);

  const superOf = (dev: string) =>
    sh('btrfs', ['inspect-internal', 'dump-super', dev])
      .split('\n')
      .filter((l) => /^(fsid|metadata_uuid|incompat_flags|dev_item\.uuid)\s/.test(l))
      .join('\n');
  const originSuper = superOf(originDev);
  const fsid = await btrfsFsid(originDev);
  assert.ok(fsid);
  const snapDev = attach(copy);
  assert.equal(await btrfsFsid(snapDev), fsid, 'the copy starts with the origin fsid, as an LVM snapshot does');

  const { log, sink } = memoryLogger();
  const h = await mountReadOnly(snapDev, path.join(dir, 'snap/linux/root'), 'btrfs', 'ro', log);
  let restored: string;
  let shown;
  try {
    const snapFsid = await btrfsFsid(snapDev);
    assert.notEqual(snapFsid, fsid, 'the snapshot has its own fsid');
    assert.match(superOf(snapDev), new RegExp(`metadata_uuid\\s+${fsid}`), 'the old fsid lives on as metadata_uuid');
    assert.equal(superOf(originDev), originSuper, "the origin's superblock ids and flags are unchanged");
    assert.equal(await btrfsFsid(originDev), fsid);
    assert.ok(sink.records.some((r) => r.message.includes(`btrfs snapshot fsid ${fsid} -> ${snapFsid}`)));
    assert.deepEqual(h.warnings, []);
    assert.equal(fs.readFileSync(path.join(h.mountpoint, 'readme.txt'), 'utf8'), 'hello from the guest\n');
    assert.equal(fs.existsSync(path.join(h.mountpoint, 'new-after-snapshot.txt')), false);
    shown = await snapshotTree(h.mountpoint);
    restored = await backupAndRestore(dir, h.mountpoint, 'linux/root', ['home']);
  } finally {
    await h.release();
  }
  // A nested subvolume is another st_dev: with one-file-system (as a run backs up guests) it is kept as an empty directory.
  assertTreesEqual(atSnapshot, shown, { ignorePaths: ['home'] });
  assertTreesEqual(atSnapshot, await snapshotTree(restored), { ...ROOT_IS_OURS, ignorePaths: ['home'] });
  assert.deepEqual(fs.readdirSync(path.join(restored, 'home')), []);
  // ... and a volume-table line of its own with subvol= backs the subvolume up (the fsid is changed again: harmless)
  const sub = await mountReadOnly(snapDev, path.join(dir, 'snap/linux/home'), 'btrfs', 'ro,subvol=home', log);
  try {
    assert.deepEqual(fs.readdirSync(sub.mountpoint), ['in-a-subvolume.txt']);
  } finally {
    await sub.release();
  }
  assert.equal(fs.readFileSync(path.join(live, 'readme.txt'), 'utf8'), 'changed after the snapshot\n', 'the origin is as the guest left it');
  sh('umount', [live]);
  assert.equal(superOf(originDev), originSuper);
  sh('btrfs', ['check', '--readonly', originDev]);
});
