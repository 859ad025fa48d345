/** Snapshot sizes in lvcreate's syntax, and the lvcreate options they become. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lvcreateSizeArgs, parseLvmSize } from '../../src/host/lvm-size.js';

test('absolute sizes: binary units in either case, MiB without a unit, decimals', () => {
  const bytes = (s: string) => {
    const size = parseLvmSize(s);
    return size?.kind === 'absolute' ? size.bytes : undefined;
  };
  assert.equal(bytes('7G'), 7 * 1024 ** 3);
  assert.equal(bytes('7g'), 7 * 1024 ** 3);
  assert.equal(bytes('512M'), 512 * 1024 ** 2);
  assert.equal(bytes('100'), 100 * 1024 ** 2);
  assert.equal(bytes('1.5T'), 1.5 * 1024 ** 4);
  assert.equal(bytes('2048s'), 2048 * 512);
  assert.equal(bytes('4096b'), 4096);
  assert.equal(bytes('64k'), 64 * 1024);
});

test('N%ORIGIN from 1 to 100', () => {
  assert.deepEqual(parseLvmSize('20%ORIGIN'), { kind: 'origin-percent', text: '20%ORIGIN', percent: 20 });
  assert.deepEqual(parseLvmSize('100%origin'), { kind: 'origin-percent', text: '100%origin', percent: 100 });
});

test('anything else is refused', () => {
  for (const bad of ['', '0', '0G', '7GB', '7 G', '-1G', 'G', '1.5.2G', '0%ORIGIN', '101%ORIGIN', '20%FREE', '20%', '7GiB']) {
    assert.equal(parseLvmSize(bad), undefined, bad);
  }
});

test('lvcreate options: exact bytes for -L, the share for -l', () => {
  assert.deepEqual(lvcreateSizeArgs(parseLvmSize('7G')!), ['-L', `${7 * 1024 ** 3}b`]);
  assert.deepEqual(lvcreateSizeArgs(parseLvmSize('20%ORIGIN')!), ['-l', '20%ORIGIN']);
});
