// The native path for unchanged directories (native/unchanged-dir.c) must write exactly what the general
// path writes (tar/write.ts encodeHeader, core/manifest.ts encodeDirLine and the children's previous
// lines), and decline, writing nothing, whatever it does not handle. The previous manifest is a real one:
// a full backup of the tree by the CLI.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { DirScan, MergeBuffers } from '../../src/engines/dir-scan.js';
import { manifestEntryOf } from '../../src/engines/metadata.js';
import { archiveUnchangedDirRaw, manifestIndex } from '../../src/native/xbfs.js';
import { archiveMember, encodeDirLine, encodeEntry } from '../../src/core/manifest.js';
import { baseName, parentOf } from '../../src/core/path-order.js';
import { encodeHeader } from '../../src/tar/write.js';
import { PreviousBlock } from '../../src/medium/manifest-file.js';
import { openManifest } from '../../src/medium/manifest-reader.js';
import { makeScratchDir } from '../helpers/scratch.js';
import { HOST, show, xenbackup } from './engine-fixtures.js';

const BACKUP_ID = '20261127T120000Z';
const OFFSET = 123456789012;

interface Outcome {
  tar: Buffer;
  manifest: Buffer;
  out: Float64Array;
  subdirs: string[];
}

/** The native path on directory `rel` of `root` against its block of the previous manifest; null when it declines. */
function nativeUnchanged(root: string, rel: string, previous: PreviousBlock, segRoom = 1 << 20): Outcome | null {
  const parent = DirScan.list(Buffer.from(path.join(root, parentOf(Buffer.from(rel)).toString())));
  const at = [...Array(parent.count).keys()].find((i) => parent.name(i).equals(baseName(Buffer.from(rel))))!;
  const scan = DirScan.list(Buffer.from(path.join(root, rel)));
  const seg = Buffer.alloc(segRoom, 0xee);
  const man = Buffer.alloc(1 << 20, 0xee);
  const out = new Float64Array(7).fill(-7);
  const dirs = new Int32Array(scan.count);
  const ok = archiveUnchangedDirRaw(
    parent.records, parent.recordOffset(at), scan.records, scan.count, previous.data, previous.index, previous.first, previous.end,
    Buffer.from(rel), archiveMember(BACKUP_ID), OFFSET, seg, man, new Int32Array(scan.count), out, dirs,
  );
  if (!ok) {
    assert.ok(out.every((v) => v === -7), `a decline of ${rel} leaves out untouched`);
    return null;
  }
  return {
    tar: seg.subarray(0, out[0]),
    manifest: man.subarray(0, out[1]),
    out,
    subdirs: [...dirs.subarray(0, out[6])].map((i) => scan.name(i).toString()),
  };
}

/** What the general path writes for the same directory (tree-archiver.ts directoryMembers with every child unchanged). */
function generalPath(root: string, rel: string, previous: PreviousBlock): { tar: Buffer; manifest: Buffer } {
  const abs = path.join(root, rel);
  const st = fs.lstatSync(abs, { bigint: true });
  const scan = DirScan.list(Buffer.from(abs));
  const merged = scan.merge(new Uint8Array(scan.count).fill(1), previous, new MergeBuffers());
  const tar = encodeHeader({
    path: Buffer.from(rel),
    type: 'dir',
    mode: Number(st.mode) & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: 0,
    mtimeNs: st.mtimeNs,
    dumpdir: Buffer.from(merged.dumpdir),
  });
  const self = { ...manifestEntryOf(baseName(Buffer.from(rel)), st, 'dir', BACKUP_ID), offset: OFFSET };
  const lines = [encodeDirLine(Buffer.from(rel), self)];
  for (let i = 0; i < scan.count; i++) {
    const m = merged.match[i]!;
    if (m >= 0) lines.push(previous.data.toString('utf8', previous.index[(m >> 1) * 8]!, previous.index[(m >> 1) * 8 + 1]!));
  }
  return { tar: Buffer.from(tar), manifest: Buffer.from(lines.map((l) => l + '\n').join('')) };
}

test('an unchanged directory: the native path writes the bytes the general path writes, and declines what it does not handle', (t) => {
  const scratch = makeScratchDir(t, 'xb-unchanged-');
  const root = path.join(scratch, 'tree');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  const mk = (rel: string): string => {
    fs.mkdirSync(path.join(root, rel), { recursive: true });
    return path.join(root, rel);
  };
  // Every kind of child, a hardlink, nanosecond and whole-second mtimes, a path over 100 bytes, ids and link counts.
  const plain = mk('plain');
  fs.writeFileSync(path.join(plain, 'empty'), '');
  fs.writeFileSync(path.join(plain, 'data'), 'some content');
  fs.writeFileSync(path.join(plain, 'linked'), 'two names');
  mk('other');
  fs.linkSync(path.join(plain, 'linked'), path.join(root, 'other', 'second-name'));
  fs.symlinkSync('../other/second-name', path.join(plain, 'symlink'));
  execFileSync('mkfifo', [path.join(plain, 'fifo')]);
  execFileSync('mknod', [path.join(plain, 'null-dev'), 'c', '1', '3']);
  mk('plain/sub-a');
  mk('plain/sub-b');
  fs.utimesSync(plain, new Date('2024-05-06T07:08:09.123Z'), new Date('2024-05-06T07:08:09.123Z'));
  const whole = mk('whole-seconds');
  fs.writeFileSync(path.join(whole, 'f'), 'x');
  fs.utimesSync(whole, 1700000000, 1700000000);
  const long = `long-${'a'.repeat(60)}/${'b'.repeat(50)}`;
  fs.writeFileSync(path.join(mk(long), 'f'), 'deep');
  // 99 bytes: the ustar name holds the path and its '/'; 100: the '/' no longer fits, a pax path record holds it.
  const rel99 = `e99-${'x'.repeat(95)}`;
  const rel100 = `e100-${'x'.repeat(95)}`;
  fs.writeFileSync(path.join(mk(rel99), 'f'), '99');
  fs.writeFileSync(path.join(mk(rel100), 'f'), '100');
  const owned = mk('owned');
  fs.writeFileSync(path.join(owned, 'f'), 'x');
  fs.chownSync(owned, 4000, 5000);
  mk('empty-dir');
  // Those the native path declines, and one it takes although a child is gone.
  fs.writeFileSync(path.join(mk('changed'), 'f'), 'before');
  fs.writeFileSync(path.join(mk('new-child'), 'f'), 'x');
  fs.writeFileSync(path.join(mk('q"uote'), 'f'), 'x');
  fs.writeFileSync(path.join(mk('bad-id'), 'f'), 'x');
  fs.chownSync(path.join(root, 'bad-id'), 3000000, 0);
  fs.writeFileSync(path.join(mk('lost-one'), 'kept'), 'x');
  fs.writeFileSync(path.join(root, 'lost-one', 'gone'), 'x');
  mk('socket-dir');

  const r = xenbackup(['backup', root, '--volume', 'dom/disk', '--medium', medium, '--host', HOST, '-q', '--compress', 'none']);
  assert.equal(r.code, 0, show(r));
  const volume = path.join(medium, HOST, 'dom', 'disk');
  const manifestFile = path.join(volume, fs.readdirSync(volume).find((f) => f.endsWith('.manifest'))!);
  const blocks = new Map<string, PreviousBlock>();
  const reader = openManifest(manifestFile);
  t.after(() => reader.close());
  for (const b of reader.storedBlocks()) blocks.set(b.dir.toString(), b);

  fs.writeFileSync(path.join(root, 'changed', 'f'), 'after!');
  fs.writeFileSync(path.join(root, 'new-child', 'g'), 'new');
  fs.rmSync(path.join(root, 'lost-one', 'gone'));
  execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path.join(root, 'socket-dir', 'sock')]);

  const taken: Record<string, { children: number; deleted: number; subdirs: string[] }> = {
    plain: { children: 6, deleted: 0, subdirs: ['sub-a', 'sub-b'] },
    'plain/sub-a': { children: 0, deleted: 0, subdirs: [] },
    other: { children: 1, deleted: 0, subdirs: [] },
    'whole-seconds': { children: 1, deleted: 0, subdirs: [] },
    [long]: { children: 1, deleted: 0, subdirs: [] },
    [rel99]: { children: 1, deleted: 0, subdirs: [] },
    [rel100]: { children: 1, deleted: 0, subdirs: [] },
    owned: { children: 1, deleted: 0, subdirs: [] },
    'empty-dir': { children: 0, deleted: 0, subdirs: [] },
    'lost-one': { children: 1, deleted: 1, subdirs: [] },
  };
  for (const [rel, want] of Object.entries(taken)) {
    const previous = blocks.get(rel);
    assert.ok(previous, `a block for ${rel}`);
    const got = nativeUnchanged(root, rel, previous);
    assert.ok(got, `the native path takes ${rel}`);
    const expected = generalPath(root, rel, previous);
    assert.equal(got.manifest.toString(), expected.manifest.toString(), `manifest block of ${rel}`);
    assert.ok(got.tar.equals(expected.tar), `tar member of ${rel}: ${got.tar.length} bytes against ${expected.tar.length}`);
    assert.equal(got.out[2], 1 + want.children, `manifest lines of ${rel}`);
    assert.equal(got.out[3], want.children, `unchanged children of ${rel}`);
    assert.equal(got.out[5], want.deleted, `children gone from ${rel}`);
    assert.deepEqual(got.subdirs, want.subdirs, `subdirectories of ${rel}`);
  }
  assert.equal(nativeUnchanged(root, 'plain', blocks.get('plain')!)!.out[4], 'some content'.length + 'two names'.length, 'apparent bytes of the regular files');
  // GNU tar reads the member the native path wrote for the long path as the directory it is.
  const member = nativeUnchanged(root, long, blocks.get(long)!)!.tar;
  const tarFile = path.join(scratch, 'long.tar');
  fs.writeFileSync(tarFile, Buffer.concat([member, Buffer.alloc(1024)]));
  assert.equal(execFileSync('tar', ['-tf', tarFile], { encoding: 'utf8' }), `${long}/\n`);

  for (const rel of ['changed', 'new-child', 'q"uote', 'bad-id', 'socket-dir']) {
    assert.equal(nativeUnchanged(root, rel, blocks.get(rel)!), null, `the native path declines ${rel}`);
  }
  const exact = nativeUnchanged(root, 'plain', blocks.get('plain')!)!.tar.length;
  assert.ok(nativeUnchanged(root, 'plain', blocks.get('plain')!, exact), 'a segment with just the room needed takes it');
  assert.equal(nativeUnchanged(root, 'plain', blocks.get('plain')!, exact - 1), null, 'no room in the segment: declined');
  assert.equal(nativeUnchanged(root, 'plain', blocks.get('plain')!, 1024), null);
  for (const rel of [rel99, rel100]) {
    const names = execFileSync('tar', ['-tf', '-'], { input: Buffer.concat([nativeUnchanged(root, rel, blocks.get(rel)!)!.tar, Buffer.alloc(1024)]), encoding: 'utf8' });
    assert.equal(names, `${rel}/\n`, `GNU tar reads the ${rel.length}-byte path whole`);
  }
});

test('a child whose previous line is marked unread ("bad") is read again: the native path declines its directory', (t) => {
  const root = makeScratchDir(t, 'xb-unchanged-bad-');
  fs.mkdirSync(path.join(root, 'bad-line'));
  fs.writeFileSync(path.join(root, 'bad-line', 'f'), 'content');
  const dirSt = fs.lstatSync(path.join(root, 'bad-line'), { bigint: true });
  const st = fs.lstatSync(path.join(root, 'bad-line', 'f'), { bigint: true });
  const block = (unread: boolean): PreviousBlock => {
    const dirLine = encodeDirLine(Buffer.from('bad-line'), { ...manifestEntryOf(Buffer.from('bad-line'), dirSt, 'dir', 'PREV'), offset: 0 });
    const child = encodeEntry({ ...manifestEntryOf(Buffer.from('f'), st, 'file', 'PREV'), hash: '0123456789abcdef', offset: 512, unread });
    const data = Buffer.from(`${dirLine}\n${child}\n`);
    const index = manifestIndex(data);
    return new PreviousBlock(data, index, Buffer.from('bad-line'), 1, 2, { dirData: data, dirIndex: index, dirLine: 0 });
  };
  assert.ok(nativeUnchanged(root, 'bad-line', block(false)), 'the same line without the mark is taken');
  assert.equal(nativeUnchanged(root, 'bad-line', block(true)), null);
});
