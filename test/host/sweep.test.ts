/**
 * The sweep of a crashed run's mounts, with real mounts under a real
 * MNTSOURCEDIR. The LVM half (snapshots found by tag) is exercised with real
 * LVM tools in lvm-real.test.ts (which can't create snapshots: no
 * device-mapper here) and for real in the VM suite, so `snapshots: false` here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createLogger, MemorySink } from '../../src/util/log.js';
import { sweepLeftovers, describeSweep, sweepFoundNothing } from '../../src/host/sweep.js';
import { attach, isMountpointNow, makeExt4, scratch, sh } from './host-fixtures.js';

function tmpfs(at: string): void {
  fs.mkdirSync(at, { recursive: true });
  sh('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'leftover', at]);
}

test('mounts left under MNTSOURCEDIR are unmounted deepest first; MNTSOURCEDIR itself and its neighbours are not', async (t) => {
  const dir = scratch(t);
  const src = path.join(dir, '4backup');
  tmpfs(src); // MNTSOURCEDIR may itself be a mount: not ours to remove
  const webRoot = path.join(src, 'web', 'root');
  fs.mkdirSync(webRoot, { recursive: true });
  const dev = attach(makeExt4(dir, 'web-root.img', { 'etc/': '' }));
  sh('mount', ['-o', 'ro', dev, webRoot]);
  tmpfs(path.join(webRoot, 'etc')); // nested inside a read-only mount: onto an existing directory
  tmpfs(path.join(src, 'mail', 'var'));
  sh('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'stacked', path.join(src, 'mail', 'var')]); // two on one place
  const neighbour = path.join(dir, '4backup2', 'x');
  tmpfs(neighbour);

  const mem = new MemorySink();
  const r = await sweepLeftovers({ mntSourceDir: src, snapshots: false, logger: createLogger([mem.sink]) });
  assert.deepEqual(
    r.unmounted.map((m) => [path.relative(src, m.mountpoint), m.source, m.lazy]),
    [
      ['web/root/etc', 'leftover', false],
      ['mail/var', 'stacked', false],
      ['mail/var', 'leftover', false],
      ['web/root', dev, false],
    ],
  );
  assert.deepEqual(r.errors, []);
  assert.equal(isMountpointNow(webRoot), false);
  assert.equal(isMountpointNow(path.join(src, 'mail', 'var')), false);
  assert.ok(isMountpointNow(src), 'MNTSOURCEDIR stays');
  assert.ok(isMountpointNow(neighbour), 'a sibling with the same prefix stays');
  const lines = describeSweep(r);
  assert.equal(lines[0], `unmounted leftover leftover (tmpfs) from ${path.join(webRoot, 'etc')}`);
  assert.equal(lines[3], `unmounted leftover ${dev} (ext4) from ${webRoot}`);
  assert.deepEqual(mem.records.filter((x) => x.level !== 'info').map((x) => [x.level, x.message]), lines.map((l) => ['warn', `sweep: ${l}`]));

  const again = await sweepLeftovers({ mntSourceDir: src, snapshots: false });
  assert.ok(sweepFoundNothing(again));
});

test('a busy leftover is detached lazily and says so; a missing MNTSOURCEDIR has nothing to sweep', async (t) => {
  const dir = scratch(t);
  const src = path.join(dir, 'src');
  tmpfs(path.join(src, 'dom', 'root'));
  fs.writeFileSync(path.join(src, 'dom', 'root', 'f'), 'x');
  const fd = fs.openSync(path.join(src, 'dom', 'root', 'f'), 'r');
  try {
    const r = await sweepLeftovers({ mntSourceDir: src, snapshots: false, retryDelayMs: 10 });
    assert.equal(r.unmounted.length, 1);
    assert.equal(r.unmounted[0]!.lazy, true);
    assert.match(describeSweep(r)[0]!, /\(lazily: it was busy\)$/);
  } finally {
    fs.closeSync(fd);
  }
  assert.ok(sweepFoundNothing(await sweepLeftovers({ mntSourceDir: path.join(dir, 'nowhere'), snapshots: false })));
});
