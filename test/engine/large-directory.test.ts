/**
 * Memory of a backup of one huge directory (issue 14 item 13): the walker's
 * budgets bound the rest of the tree, but one directory is listed whole, and
 * its children went through paths that never waited for compression. A full
 * backup of 200,000 tiny files peaked at 530 MB: every read-ahead file was
 * written without the archiver yielding, so segments piled up. Now the peak
 * is the program's own plus a fixed pipeline (segments, frames, heap) plus
 * the listing (~260 bytes per child); a no-change incremental's, that and
 * the previous manifest, which it reads whole.
 *
 * The bound is measured, not timed: each backup runs in a child process that
 * reports its peak RSS (VmHWM) as it exits, and the large directory's peak
 * is compared with a one-file backup's, so neither node's own size nor the
 * machine matters.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { makeScratchDir } from '../helpers/scratch.js';
import { backupsOf, CLI, HOST, volumeDir } from './engine-fixtures.js';

/** Children of the large directory: enough that ~400 bytes each would show, small enough for a few seconds. */
const FILES = 40_000;
/** The backup's pipeline, whatever the directory's size: 3 segments and 2 frames of 8 MiB, V8's young generation, slack. */
const FIXED = 64 << 20;
/** What each child may cost at the peak: its listing record (~230 bytes) and the per-child arrays of the join. */
const PER_CHILD = 400;

/** Written beside the tree and loaded with --import: reports the process's peak RSS when it exits. */
const PROBE = `import fs from 'node:fs';
process.on('exit', () => {
  const m = /VmHWM:\\s*(\\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  fs.writeFileSync(process.env.XB_PEAK_FILE, m ? m[1] : '0');
});
`;

/** `xenbackup backup SOURCE` (a full unless `incremental`) in a child process; its peak RSS in bytes. */
function peakOfBackup(t: test.TestContext, scratch: string, source: string, medium: string, incremental = false): number {
  const probe = path.join(scratch, 'peak-probe.mjs');
  if (!fs.existsSync(probe)) fs.writeFileSync(probe, PROBE);
  const peakFile = path.join(scratch, 'peak');
  fs.rmSync(peakFile, { force: true });
  fs.mkdirSync(medium, { recursive: true });
  const r = spawnSync(process.execPath, ['--import', probe, CLI, 'backup', source, '--volume', 'big/dir', '--medium', medium, '--host', HOST, ...(incremental ? [] : ['--full']), '-q'], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, XB_PEAK_FILE: peakFile, LC_ALL: 'C.UTF-8' },
  });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, `backup of ${source}: exit ${r.status}\n${r.stderr}`);
  t.diagnostic(`peak RSS of the ${incremental ? 'incremental' : 'full'} backup of ${path.basename(source)}: ${fs.readFileSync(peakFile, 'utf8')} kB`);
  return Number(fs.readFileSync(peakFile, 'utf8')) * 1024;
}

test(`a backup of one directory of ${FILES} files stays within a fixed pipeline plus ${PER_CHILD} bytes per child (an incremental: plus the previous manifest)`, (t) => {
  const scratch = makeScratchDir(t, 'xb-large-dir-');
  const one = path.join(scratch, 'one');
  const big = path.join(scratch, 'big');
  fs.mkdirSync(one);
  fs.writeFileSync(path.join(one, 'f'), 'x');
  fs.mkdirSync(big);
  // Tiny files: each is read ahead (or not) and costs a 1 KiB member, the case that piled segments up.
  for (let i = 0; i < FILES; i++) fs.writeFileSync(path.join(big, `f${String(i).padStart(6, '0')}`), 'x'.repeat(i % 40));

  const base = peakOfBackup(t, scratch, one, path.join(scratch, 'medium-one'));
  const peak = peakOfBackup(t, scratch, big, path.join(scratch, 'medium-big'));

  const [sidecar] = backupsOf(path.join(scratch, 'medium-big'), 'big/dir');
  assert.equal(sidecar?.stats.entries, FILES + 1, 'every file and the directory are in the backup');
  const mb = (n: number): string => `${(n / 2 ** 20).toFixed(0)} MB`;
  const allowed = FIXED + FILES * PER_CHILD;
  assert.ok(
    peak - base <= allowed,
    `peak RSS ${mb(peak)}, ${mb(peak - base)} above a one-file backup's ${mb(base)}: more than the ${mb(allowed)} allowed ` +
      `(${mb(FIXED)} + ${PER_CHILD} bytes per child); something holds memory per child or lets segments pile up`,
  );

  // A no-change incremental also holds the previous manifest (read whole, with an index of its lines).
  const incremental = peakOfBackup(t, scratch, big, path.join(scratch, 'medium-big'), true);
  const manifest = fs.statSync(path.join(volumeDir(path.join(scratch, 'medium-big'), 'big/dir'), sidecar!.manifest)).size;
  const allowedIncremental = allowed + 2 * manifest;
  assert.ok(
    incremental - base <= allowedIncremental,
    `incremental: peak RSS ${mb(incremental)}, ${mb(incremental - base)} above a one-file backup's: more than the ${mb(allowedIncremental)} allowed ` +
      `(the full's allowance and twice the previous manifest's ${mb(manifest)})`,
  );
});
