/**
 * Issue 14: a name of the volume's folder that is not a regular file (a fifo
 * would block an open forever, a symlink leads anywhere on the host) is
 * damage of that file, named, and verify ends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { archivePath, makeChain, manifestPath, showResult, verifyBounded } from './verify-fixtures.js';

test('a fifo or a symlink in place of an archive or a manifest is damage of that file, quick and full', { timeout: 120_000 }, async (t) => {
  const c = await makeChain(t, 'none');
  const newest = c.backups[2]!;
  for (const file of [archivePath(c, newest), manifestPath(c, newest)]) {
    for (const kind of ['fifo', 'symlink'] as const) {
      const saved = fs.readFileSync(file);
      fs.rmSync(file);
      if (kind === 'fifo') execFileSync('mkfifo', [file]);
      else fs.symlinkSync('/etc/passwd', file);
      try {
        for (const depth of ['quick', 'full'] as const) {
          const r = await verifyBounded(c, depth);
          const mine = r.problems.find((p) => p.file === file);
          assert.ok(mine, `${kind} at ${file}, ${depth}: blamed\n${showResult(r)}`);
          assert.match(mine.what, kind === 'fifo' ? /not a regular file/ : /symlink/, showResult(r));
        }
      } finally {
        fs.rmSync(file);
        fs.writeFileSync(file, saved);
      }
    }
  }
  const r = await verifyBounded(c, 'full');
  assert.equal(r.problems.length, 0, showResult(r));
});
