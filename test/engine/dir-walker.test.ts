// The walker lists directories ahead of the archiver on its own thread
// (native/walker.c): it must enter exactly the directories the archiver
// enters, in the same order, hand over correct content and hashes when it
// reads ahead, and leave nothing open when stopped early.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { DirWalker, WalkOutOfStep } from '../../src/engines/tar/dir-walker.js';
import { DirScan } from '../../src/engines/dir-scan.js';
import { comparePaths, joinRel } from '../../src/core/path-order.js';
import { xxh64 } from '../../src/native/xxh.js';
import { makeScratchDir, type CleanupContext } from '../helpers/scratch.js';

function tempDir(t: CleanupContext): string {
  return makeScratchDir(t, 'xb-walk');
}

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** The directories the archiver would enter, in its order, by the same rules; each taken from the walker. */
function walkAll(root: string, walker: DirWalker, enters: (rel: Buffer, scan: DirScan, i: number) => boolean): Buffer[] {
  const seen: Buffer[] = [];
  const visit = (rel: Buffer): void => {
    seen.push(rel);
    const scan = walker.next(rel);
    const subdirs: Buffer[] = [];
    try {
      for (let i = 0; i < scan.count; i++) {
        if ((scan.mode(i) & 0o170000) === 0o040000 && scan.errorCode(i) === undefined && enters(rel, scan, i)) subdirs.push(joinRel(rel, scan.name(i)));
      }
    } finally {
      scan.close();
    }
    for (const d of subdirs) visit(d);
  };
  visit(Buffer.alloc(0));
  return seen;
}

test('the walker lists every directory in walk order (depth first, by name bytes), with the same listings as DirScan', (t) => {
  const root = tempDir(t);
  // Names chosen so that walk order differs from plain path sorting ("a/x" before "a-b").
  for (const d of ['a/x/deep/er', 'a-b', 'a/y', 'b', 'Z', 'b/\u00e9t\u00e9', 'empty']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.mkdirSync(Buffer.concat([Buffer.from(root + '/b/'), Buffer.from([0x6e, 0xe9])])); // Latin-1 name, not UTF-8
  for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(root, 'a/y', `f${i}`), String(i));
  fs.writeFileSync(path.join(root, 'top'), 'top');
  const walker = new DirWalker(Buffer.from(root), { excludes: [], oneFileSystem: true, prefetchMax: 0, verifyAfterRead: false });
  try {
    const listings: Array<[Buffer, Buffer[]]> = [];
    const seen = walkAll(root, walker, (rel, scan, i) => {
      if (i === 0) listings.push([rel, Array.from({ length: scan.count }, (_, k) => Buffer.from(scan.name(k)))]);
      return true;
    });
    const sorted = [...seen].sort(comparePaths);
    assert.deepEqual(seen, sorted, 'walk order');
    assert.equal(seen.length, 12);
    for (const [rel, names] of listings) {
      const sync = DirScan.list(Buffer.concat([Buffer.from(root + '/'), rel]));
      assert.deepEqual(names, Array.from({ length: sync.count }, (_, k) => sync.name(k)), `listing of ${rel}`);
    }
    assert.throws(() => walker.next(Buffer.from('after')), WalkOutOfStep, 'the walk is over');
  } finally {
    walker.stop();
  }
});

test('the walker skips excluded directories and, with one filesystem, other mounts; the archiver is told when out of step', (t) => {
  const root = makeScratchDir(t, 'xb-walk'); // unmounts what is mounted inside at cleanup
  for (const d of ['keep/sub', 'skip/inner', 'mnt', 'z']) fs.mkdirSync(path.join(root, d), { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'xb-walk', path.join(root, 'mnt')]);
  fs.mkdirSync(path.join(root, 'mnt/inside'));
  const rootDev = fs.statSync(root).dev;
  const walker = new DirWalker(Buffer.from(root), { excludes: [Buffer.from('skip')], oneFileSystem: true, prefetchMax: 0, verifyAfterRead: false });
  try {
    const seen = walkAll(root, walker, (rel, scan, i) => joinRel(rel, scan.name(i)).toString() !== 'skip' && Number(scan.stat(i).dev) === rootDev);
    assert.deepEqual(seen.map(String), ['', 'keep', 'keep/sub', 'z']);
  } finally {
    walker.stop();
  }
  const crossing = new DirWalker(Buffer.from(root), { excludes: [], oneFileSystem: false, prefetchMax: 0, verifyAfterRead: false });
  try {
    crossing.next(Buffer.alloc(0)).close();
    crossing.next(Buffer.from('keep')).close();
    crossing.next(Buffer.from('keep/sub')).close();
    crossing.next(Buffer.from('mnt')).close(); // entered: another filesystem, but one-file-system is off
    // The archiver skipping a directory the walker entered is a bug, reported as such (not as an unreadable directory).
    assert.throws(() => crossing.next(Buffer.from('skip')), (e: Error) => e instanceof WalkOutOfStep && /listed mnt\/inside, the archiver entered skip/.test(e.message));
  } finally {
    crossing.stop();
  }
});

test('a directory the walker cannot list comes with its errno code, like DirScan.list', (t) => {
  const root = tempDir(t);
  const failed = new DirWalker(Buffer.from(path.join(root, 'missing')), { excludes: [], oneFileSystem: false, prefetchMax: 0, verifyAfterRead: false });
  try {
    assert.throws(() => failed.next(Buffer.alloc(0)), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && /^ENOENT: /.test(e.message));
    assert.throws(() => failed.next(Buffer.from('x')), WalkOutOfStep, 'nothing after a root that cannot be listed');
  } finally {
    failed.stop();
  }
});

test('prefetch: small plain files come with their content and xxh64; hardlinked, xattr-carrying and large files are left to the archiver', (t) => {
  const root = tempDir(t);
  const files: Record<string, Buffer> = {
    empty: Buffer.alloc(0),
    small: Buffer.from('hello world\n'),
    edge: Buffer.alloc(64 * 1024, 7),
    large: Buffer.alloc(64 * 1024 + 1, 8),
    xattr: Buffer.from('with a note'),
    linked: Buffer.from('two names'),
  };
  for (const [n, c] of Object.entries(files)) fs.writeFileSync(path.join(root, n), c);
  execFileSync('setfattr', ['-n', 'user.note', '-v', 'x', path.join(root, 'xattr')]);
  fs.linkSync(path.join(root, 'linked'), path.join(root, 'linked2'));
  fs.symlinkSync('small', path.join(root, 'link'));
  const walker = new DirWalker(Buffer.from(root), { excludes: [], oneFileSystem: true, prefetchMax: 64 * 1024, verifyAfterRead: true });
  try {
    const scan = walker.next(Buffer.alloc(0));
    try {
      const got = new Map<string, { content: Buffer; hash: string } | undefined>();
      for (let i = 0; i < scan.count; i++) got.set(scan.name(i).toString(), scan.prefetched(i));
      for (const n of ['empty', 'small', 'edge']) {
        assert.deepEqual(got.get(n)?.content, files[n], `${n} prefetched`);
        assert.equal(got.get(n)?.hash, xxh64(files[n]!), `${n} hash`);
      }
      for (const n of ['large', 'xattr', 'linked', 'linked2', 'link']) assert.equal(got.get(n), undefined, `${n} left to the archiver`);
    } finally {
      scan.close();
    }
  } finally {
    walker.stop();
  }
});

test('prefetch keeps at most 8 MiB of content per directory; the rest is read by the archiver', (t) => {
  const root = tempDir(t);
  const chunk = Buffer.alloc(60 * 1024, 1);
  for (let i = 0; i < 200; i++) fs.writeFileSync(path.join(root, `f${String(i).padStart(3, '0')}`), chunk); // ~11.7 MiB
  const walker = new DirWalker(Buffer.from(root), { excludes: [], oneFileSystem: true, prefetchMax: 64 * 1024, verifyAfterRead: false });
  try {
    const scan = walker.next(Buffer.alloc(0));
    let ahead = 0;
    for (let i = 0; i < scan.count; i++) {
      const p = scan.prefetched(i);
      if (p) {
        ahead += p.content.length;
        assert.ok(p.content.equals(chunk));
      }
    }
    scan.close();
    assert.ok(ahead > 0 && ahead <= 8 * 1024 * 1024, `${ahead} bytes read ahead`);
  } finally {
    walker.stop();
  }
});

test('stopping a walker early closes every directory it held open and ends its thread; stop is idempotent', (t) => {
  const root = tempDir(t);
  for (let i = 0; i < 200; i++) fs.mkdirSync(path.join(root, `d${i}`, 'sub'), { recursive: true });
  const before = openFds();
  // Prefetching listings hold their directory open (for the archiver's openAt of the files not read ahead).
  const walker = new DirWalker(Buffer.from(root), { excludes: [], oneFileSystem: true, prefetchMax: 64 * 1024, verifyAfterRead: false, threads: 2 });
  walker.next(Buffer.alloc(0)).close();
  // Let the thread fill its queue (up to 64 listings, each holding its directory open).
  const deadline = Date.now() + 2000;
  while (openFds() < before + 32 && Date.now() < deadline) execFileSync('sleep', ['0.01']);
  assert.ok(openFds() > before, 'listings are queued with their directories open');
  walker.stop();
  walker.stop();
  assert.equal(openFds(), before, 'nothing left open');
  assert.throws(() => walker.next(Buffer.from('d0')), /after stop/);
});

test('without prefetching, listings hold no directory open; the archiver opens one when a child needs it, and closes it', (t) => {
  const root = tempDir(t);
  fs.mkdirSync(path.join(root, 'd'));
  fs.writeFileSync(path.join(root, 'd', 'f'), 'content');
  execFileSync('setfattr', ['-n', 'user.note', '-v', 'x', path.join(root, 'd')]);
  const before = openFds();
  const walker = new DirWalker(Buffer.from(root), { excludes: [], oneFileSystem: true, prefetchMax: 0, verifyAfterRead: false, threads: 2 });
  try {
    const top = walker.next(Buffer.alloc(0));
    assert.equal(top.fd, -1);
    assert.equal(top.dirWithoutXattrs, true, 'the root has no xattrs');
    top.close();
    const d = walker.next(Buffer.from('d'));
    assert.equal(d.fd, -1);
    assert.equal(d.dirWithoutXattrs, false, 'd has one');
    const fd = d.openDirectory(Buffer.from(path.join(root, 'd')));
    assert.ok(fd >= 0 && d.openDirectory(Buffer.from('/elsewhere')) === fd, 'opened once');
    d.close();
    assert.equal(d.fd, -1);
  } finally {
    walker.stop();
  }
  assert.equal(openFds(), before);
});

test('with two threads the walk order and the listings are the same as with one', (t) => {
  const root = tempDir(t);
  for (let i = 0; i < 40; i++) {
    for (let j = 0; j < (i % 5) + 1; j++) fs.mkdirSync(path.join(root, `d${i}`, `s${j}`, 'x'), { recursive: true });
    fs.writeFileSync(path.join(root, `d${i}`, 'file'), String(i));
  }
  const runs = [1, 2, 4].map((threads) => {
    const walker = new DirWalker(Buffer.from(root), { excludes: [Buffer.from('d3/s0')], oneFileSystem: true, prefetchMax: 0, verifyAfterRead: false, threads });
    try {
      const names: string[] = [];
      const seen = walkAll(root, walker, (rel, scan, i) => {
        names.push(`${rel}/${scan.name(i)}`);
        return joinRel(rel, scan.name(i)).toString() !== 'd3/s0';
      });
      return { seen: seen.map(String), names };
    } finally {
      walker.stop();
    }
  });
  assert.deepEqual(runs[1], runs[0]);
  assert.deepEqual(runs[2], runs[0]);
  assert.ok(!runs[0]!.seen.includes('d3/s0/x') && runs[0]!.seen.includes('d3/s1/x'));
});

test('a directory swapped for a symlink after its parent was listed is not followed: its listing fails with ELOOP', (t) => {
  const root = tempDir(t);
  const outside = tempDir(t);
  fs.writeFileSync(path.join(outside, 'secret'), 'not part of the tree');
  const names = Array.from({ length: 70 }, (_, i) => `d${String(i).padStart(2, '0')}`);
  for (const n of names) fs.mkdirSync(path.join(root, n, 'sub'), { recursive: true });
  const before = openFds();
  // Prefetching listings hold their directory open, at most 64: the walk stops well before d69.
  const walker = new DirWalker(Buffer.from(root), { excludes: [], oneFileSystem: true, prefetchMax: 64 * 1024, verifyAfterRead: false, threads: 1 });
  try {
    walker.next(Buffer.alloc(0)).close();
    const deadline = Date.now() + 5000;
    while (openFds() < before + 65 && Date.now() < deadline) execFileSync('sleep', ['0.01']);
    assert.ok(openFds() >= before + 65, 'the walker holds 64 listings and waits');
    // A live source changes under the walk: d69, listed as a directory in the root, becomes a symlink.
    fs.renameSync(path.join(root, 'd69'), path.join(root, 'moved'));
    fs.symlinkSync(outside, path.join(root, 'd69'));
    for (const n of names.slice(0, 69)) {
      walker.next(Buffer.from(n)).close();
      walker.next(Buffer.from(`${n}/sub`)).close();
    }
    assert.throws(() => walker.next(Buffer.from('d69')), (e: NodeJS.ErrnoException) => e.code === 'ELOOP', 'd69 is not listed through the symlink');
  } finally {
    walker.stop();
  }
  assert.equal(openFds(), before, 'nothing left open');
});

test('the root may be given through a symlink: only below it are symlinks never followed', (t) => {
  const real = tempDir(t);
  fs.mkdirSync(path.join(real, 'a'));
  fs.writeFileSync(path.join(real, 'a', 'f'), 'x');
  const via = path.join(tempDir(t), 'link-to-root');
  fs.symlinkSync(real, via);
  const walker = new DirWalker(Buffer.from(via), { excludes: [], oneFileSystem: true, prefetchMax: 0, verifyAfterRead: false });
  try {
    const top = walker.next(Buffer.alloc(0));
    assert.deepEqual(Array.from({ length: top.count }, (_, i) => top.name(i).toString()), ['a']);
    top.close();
    const a = walker.next(Buffer.from('a'));
    assert.deepEqual(Array.from({ length: a.count }, (_, i) => a.name(i).toString()), ['f']);
    a.close();
  } finally {
    walker.stop();
  }
});

test('a listed directory opened again for a changed child is opened as it was listed: a parent swapped for a symlink is refused', (t) => {
  const root = tempDir(t);
  const outside = tempDir(t);
  fs.mkdirSync(path.join(root, 'a', 'b'), { recursive: true });
  fs.writeFileSync(path.join(root, 'a', 'b', 'f'), 'in the tree');
  fs.mkdirSync(path.join(outside, 'b'));
  fs.writeFileSync(path.join(outside, 'b', 'f'), 'not part of the tree');
  const walker = new DirWalker(Buffer.from(root), { excludes: [], oneFileSystem: true, prefetchMax: 0, verifyAfterRead: false });
  try {
    walker.next(Buffer.alloc(0)).close();
    walker.next(Buffer.from('a')).close();
    const b = walker.next(Buffer.from('a/b'));
    assert.equal(b.fd, -1, 'listed without keeping it open');
    // 'a' (not 'b' itself: O_NOFOLLOW on the last component would catch that) becomes a symlink.
    fs.renameSync(path.join(root, 'a'), path.join(root, 'a-moved'));
    fs.symlinkSync(outside, path.join(root, 'a'));
    assert.throws(() => b.openDirectory(Buffer.from(path.join(root, 'a', 'b'))), (e: NodeJS.ErrnoException) => e.code === 'ELOOP');
    b.close();
  } finally {
    walker.stop();
  }
});

test('turned to prefetching after a thread ran ahead of a slow directory, the walk still ends (it waited for itself before)', { timeout: 180_000 }, (t) => {
  // One thread lists d0, 200,000 entries, slowly; meanwhile the other, listing only, runs through the
  // 300 small directories of d1..d3. Then the backup turns prefetching on, which bounds the listings
  // waiting to 64; d0's subdirectory z, inserted in front of all of them, must still be listed. The
  // walk runs in a child with a time limit: before the fix the archiver's next() waited forever.
  const root = tempDir(t);
  fs.mkdirSync(path.join(root, 'd0', 'z'), { recursive: true });
  for (let i = 0; i < 200_000; i++) fs.writeFileSync(path.join(root, 'd0', `f${i}`), '');
  for (let j = 1; j <= 3; j++) for (let i = 0; i < 100; i++) fs.mkdirSync(path.join(root, `d${j}`, `s${i}`), { recursive: true });
  const xbfs = new URL('../../src/native/xbfs.js', import.meta.url).href;
  const script = `
    const { walkerNative } = await import(${JSON.stringify(xbfs)});
    const h = walkerNative.start(Buffer.from(${JSON.stringify(root)}), [], false, 0, false, 2);
    await new Promise((r) => setTimeout(r, 40));
    walkerNative.prefetch(h, 65536);
    let n = 0;
    while (walkerNative.next(h)) n++;
    walkerNative.stop(h);
    console.log(n);`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 60_000, encoding: 'utf8' });
  assert.equal(Number(out.trim()), 1 + 4 + 1 + 300, 'the root, d0..d3, z and the 300 small directories');
});
