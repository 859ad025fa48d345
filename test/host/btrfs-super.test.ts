/**
 * A btrfs snapshot's own fsid written into its superblocks only (src/host/btrfs-super.ts), on real
 * btrfs images: the layout and checksum as btrfs-progs read them back, and the case it exists for,
 * a snapshot holding a log tree (data the guest fsync()ed since the last commit), which the
 * read-only mount must replay. A block copy of the image while it is mounted stands in for the LVM
 * snapshot (this host has no device-mapper); the origin is mounted with commit=300 so no periodic
 * commit empties the log before the copy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32c, parseSuper, readPrimarySuper, withOwnFsid, writeOwnFsid, SUPER_OFFSETS, SUPER_SIZE } from '../../src/host/btrfs-super.js';
import { mountReadOnly } from '../../src/host/mount.js';
import { memoryLogger } from '../engine/engine-fixtures.js';
import { attach, scratch, sh } from './host-fixtures.js';

const MiB = 2 ** 20;

function image(dir: string, name: string, sizeMiB: number): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, '');
  fs.truncateSync(file, sizeMiB * MiB);
  sh('mkfs.btrfs', ['-q', file]);
  return file;
}

function dumpSuper(dev: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of sh('btrfs', ['inspect-internal', 'dump-super', dev]).split('\n')) {
    const m = /^(\S+)\s+(.*)$/.exec(line);
    if (m) fields[m[1]!] ??= m[2]!.trim();
  }
  return fields;
}

function primary(file: string): Buffer {
  const buf = Buffer.alloc(SUPER_SIZE);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, buf, 0, SUPER_SIZE, SUPER_OFFSETS[0]);
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}

test('crc32c: the Castagnoli check value', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
});

test('superblock: read as btrfs-progs reads it; a damaged one is refused; a second change keeps the first metadata_uuid', (t) => {
  const dir = scratch(t, 'xb-btrfs-super');
  const file = image(dir, 'a.img', 128);
  const sb = primary(file);
  const parsed = parseSuper(sb);
  const progs = dumpSuper(file);
  assert.equal(parsed.fsid, progs.fsid);
  assert.equal(String(parsed.generation), progs.generation);
  assert.equal(parsed.logRoot, 0n);
  assert.equal(parsed.metadataUuid, undefined);

  const bad = Buffer.from(sb);
  bad[300] = bad[300]! ^ 1;
  assert.throws(() => parseSuper(bad), /checksum mismatch/);
  assert.throws(() => parseSuper(Buffer.alloc(SUPER_SIZE)), /magic/);

  const once = withOwnFsid(sb, Buffer.alloc(16, 0x11));
  const twice = withOwnFsid(once, Buffer.alloc(16, 0x22));
  assert.equal(parseSuper(once).metadataUuid, parsed.fsid);
  assert.equal(parseSuper(twice).metadataUuid, parsed.fsid);
  assert.equal(parseSuper(twice).fsid, '22222222-2222-2222-2222-222222222222');
  assert.equal(parseSuper(twice).generation, parsed.generation);
});

test('a snapshot holding a btrfs log tree: own fsid in the superblocks only, and the read-only mount replays what the guest fsynced', async (t) => {
  const dir = scratch(t, 'xb-btrfs-log');
  const origin = image(dir, 'origin.img', 128);
  const originDev = attach(origin);
  const live = path.join(dir, 'live');
  fs.mkdirSync(live);
  sh('mount', ['-o', 'commit=300', originDev, live]);
  fs.writeFileSync(path.join(live, 'committed.txt'), 'in a transaction commit\n');
  sh('btrfs', ['filesystem', 'sync', live]);
  // What a database does: append, fsync. btrfs puts it in the log tree, not in a commit.
  const fd = fs.openSync(path.join(live, 'fsynced.txt'), 'a');
  for (let i = 1; i <= 20; i++) fs.writeSync(fd, `${String(i).padStart(8, '0')}\n`);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  const copy = path.join(dir, 'snap.img');
  const tuned = path.join(dir, 'tuned.img');
  sh('cp', ['--sparse=always', origin, copy]);
  sh('cp', ['--sparse=always', origin, tuned]);
  sh('umount', [live]);
  const fsid = dumpSuper(origin).fsid!;

  const before = await readPrimarySuper(copy);
  assert.notEqual(before.logRoot, 0n, 'precondition: the copy holds a log tree');
  const snapDev = attach(copy);
  const { log, sink } = memoryLogger();
  const h = await mountReadOnly(snapDev, path.join(dir, 'snap'), 'btrfs', 'ro', log);
  try {
    assert.ok(
      sink.records.some((r) => r.message.includes('superblock only, keeping the log tree for the mount to replay')),
      sink.records.map((r) => r.message).join('\n'),
    );
    assert.deepEqual(h.options, ['ro']);
    assert.equal(fs.readFileSync(path.join(h.mountpoint, 'committed.txt'), 'utf8'), 'in a transaction commit\n');
    const lines = fs.readFileSync(path.join(h.mountpoint, 'fsynced.txt'), 'utf8').split('\n').filter(Boolean);
    assert.equal(lines.length, 20, 'every fsynced line is in the snapshot as mounted');
  } finally {
    await h.release();
  }
  const after = dumpSuper(snapDev);
  assert.notEqual(after.fsid, fsid);
  assert.equal(after.metadata_uuid, fsid);
  assert.equal(dumpSuper(origin).fsid, fsid, 'the origin keeps its fsid');

  // Why not btrfstune -m here: its own commits raise the generation, and the log no longer replays.
  const tunedDev = attach(tuned);
  sh('btrfstune', ['-m', tunedDev]);
  const mnt = path.join(dir, 'tuned');
  fs.mkdirSync(mnt);
  assert.throws(() => sh('mount', ['-o', 'ro', tunedDev, mnt]), 'btrfstune -m leaves a log the kernel cannot replay');
});

test('a log tree under a checksum xenbackup cannot rewrite (xxhash): btrfstune -m, then the mount falls back to rescue=nologreplay with a warning', async (t) => {
  const dir = scratch(t, 'xb-btrfs-xxhash');
  const file = path.join(dir, 'origin.img');
  fs.writeFileSync(file, '');
  fs.truncateSync(file, 128 * MiB);
  sh('mkfs.btrfs', ['-q', '--csum', 'xxhash', file]);
  const originDev = attach(file);
  const live = path.join(dir, 'live');
  fs.mkdirSync(live);
  sh('mount', ['-o', 'commit=300', originDev, live]);
  fs.writeFileSync(path.join(live, 'committed.txt'), 'in a transaction commit\n');
  sh('btrfs', ['filesystem', 'sync', live]);
  const fd = fs.openSync(path.join(live, 'fsynced.txt'), 'a');
  fs.writeSync(fd, 'only in the log tree\n');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  const copy = path.join(dir, 'snap.img');
  sh('cp', ['--sparse=always', file, copy]);
  sh('umount', [live]);
  assert.notEqual((await readPrimarySuper(copy)).logRoot, 0n, 'precondition: the copy holds a log tree');

  const { log, sink } = memoryLogger();
  const h = await mountReadOnly(attach(copy), path.join(dir, 'snap'), 'btrfs', 'ro', log);
  try {
    assert.deepEqual(h.options, ['ro', 'rescue=nologreplay']);
    assert.match(h.fallbackReason ?? '', /skips the btrfs log tree/);
    assert.ok(sink.records.some((r) => r.level === 'warn' && /checksum type 1, which xenbackup cannot rewrite/.test(r.message)));
    assert.equal(fs.readFileSync(path.join(h.mountpoint, 'committed.txt'), 'utf8'), 'in a transaction commit\n');
  } finally {
    await h.release();
  }
});

test('writeOwnFsid: every superblock copy is changed alike and btrfs check accepts the result', async (t) => {
  const dir = scratch(t, 'xb-btrfs-mirrors');
  const file = image(dir, 'b.img', 300); // big enough for the copy at 64 MiB
  const old = dumpSuper(file).fsid!;
  const fsid = await writeOwnFsid(file);
  const copies = SUPER_OFFSETS.filter((o) => o + SUPER_SIZE <= 300 * MiB).map((o) => {
    const buf = Buffer.alloc(SUPER_SIZE);
    const fd = fs.openSync(file, 'r');
    fs.readSync(fd, buf, 0, SUPER_SIZE, o);
    fs.closeSync(fd);
    return parseSuper(buf);
  });
  assert.equal(copies.length, 2);
  for (const c of copies) {
    assert.equal(c.fsid, fsid);
    assert.equal(c.metadataUuid, old);
  }
  sh('btrfs', ['check', '--readonly', file]);
});
