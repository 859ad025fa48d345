/**
 * Self-tests of the scratch helpers: temp dirs and loop filesystems really
 * exist during a test and are really gone after it, also when the test fails
 * or left something mounted; bashQuote names any byte string exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bashQuote, isMountPoint, makeScratchDir, runBash, withLoopFs, type LoopFs, type LoopFsType } from './scratch.js';

function fsTypeAt(dir: string): string {
  return execFileSync('findmnt', ['-n', '-o', 'FSTYPE', '--mountpoint', dir], { encoding: 'utf8' }).trim();
}

function loopDevicesOf(image: string): string {
  return execFileSync('losetup', ['-j', image], { encoding: 'utf8' }).trim();
}

test('makeScratchDir: a fresh dir under /tmp, removed after the test with anything mounted inside it', async (t) => {
  let dir = '';
  await t.test('inner', (t2) => {
    dir = makeScratchDir(t2, 'scratch-self-test');
    assert.ok(dir.startsWith('/tmp/scratch-self-test-'));
    assert.deepEqual(fs.readdirSync(dir), []);
    fs.mkdirSync(path.join(dir, 'tmpfs'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'scratch-self-test', path.join(dir, 'tmpfs')]);
    fs.writeFileSync(path.join(dir, 'tmpfs', 'file'), 'x');
  });
  assert.equal(fs.existsSync(dir), false, `${dir} still exists`);
  assert.equal(isMountPoint(path.join(dir, 'tmpfs')), false, 'the tmpfs inside is still mounted');
});

for (const fsType of ['ext4', 'xfs', 'btrfs'] as LoopFsType[]) {
  test(`withLoopFs(${fsType}): mounted during the test; unmounted, detached and deleted after it`, async (t) => {
    let loop: LoopFs | undefined;
    await t.test('inner', (t2) => {
      loop = withLoopFs(t2, { fsType, sizeMiB: 48 });
      assert.equal(fsTypeAt(loop.dir), fsType);
      assert.match(loopDevicesOf(loop.image), new RegExp(`^${loop.device}:`));
      fs.writeFileSync(path.join(loop.dir, 'file'), 'on the loop filesystem');
      const { blocks, bsize } = fs.statfsSync(loop.dir);
      assert.ok(blocks * bsize <= 48 * 1024 * 1024, `${blocks} blocks of ${bsize} bytes: bigger than the image`);
    });
    assert.ok(loop);
    assert.equal(isMountPoint(loop.dir), false);
    assert.equal(fs.existsSync(loop.image), false);
    assert.equal(fs.existsSync(path.dirname(loop.dir)), false);
  });
}

test('withLoopFs: cleans up when the test body throws, and release() may come first', async () => {
  // A hand-made context, to run the after hooks right here like node:test does after a failed test.
  const hooks: Array<() => unknown> = [];
  const context = { after: (fn: () => unknown) => void hooks.push(fn) };
  let loop: LoopFs | undefined;
  let early: LoopFs | undefined;
  try {
    early = withLoopFs(context, { fsType: 'ext4', sizeMiB: 8 });
    early.release();
    assert.equal(isMountPoint(early.dir), false);
    loop = withLoopFs(context, { fsType: 'ext4', sizeMiB: 8, mountOptions: ['noatime'] });
    throw new Error('the test failed');
  } catch (e) {
    assert.equal((e as Error).message, 'the test failed');
  } finally {
    for (const hook of hooks) await hook();
  }
  assert.ok(loop && early);
  assert.equal(isMountPoint(loop.dir), false);
  assert.equal(fs.existsSync(loop.image), false);
  assert.equal(fs.existsSync(early.image), false);
});

test('bashQuote names any byte string exactly (not UTF-8, newline, quotes)', (t) => {
  const dir = makeScratchDir(t, 'bashquote');
  const names = [
    Buffer.from([0x63, 0x61, 0x66, 0xe9]),
    Buffer.from('new\nline'),
    Buffer.from(`it's "quoted" $HOME \`x\` \\ *`),
    Buffer.from([0xff, 0x30, 0x31]), // a byte followed by hex digits
  ];
  runBash(names.map((n) => `touch -- ${bashQuote(Buffer.concat([Buffer.from(dir + '/'), n]))}`).join('\n'));
  const made = fs.readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare);
  assert.deepEqual(made.map((b) => b.toString('hex')), names.sort(Buffer.compare).map((b) => b.toString('hex')));
});

test('runBash: a failing script throws with its stderr', () => {
  assert.throws(() => runBash('echo fine; ls /nonexistent-xenbackup-path', 'listing'), /listing failed \(exit 2\): .*nonexistent-xenbackup-path/);
});
