/**
 * Issue 2 item 3: change detection by stat. After a full, an incremental of
 * an unchanged tree opens no file (the engine's read counter in the
 * sidecar, and a run as an unprivileged user over files it cannot read);
 * a changed file is read exactly once; a damaged or missing manifest forces
 * a full with a warning, never a wrong incremental; and full vs incremental
 * follows --full, the chain-age and the chain-length limits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeScratchDir } from '../helpers/scratch.js';
import { FramedManifest } from '../../src/medium/manifest-container.js';
import { snapshotTree } from '../helpers/tree-snapshot.js';
import { assertTreesEqual } from '../helpers/tree-compare.js';
import {
  apiBackup,
  backupsOf,
  chainArchives,
  cliBackup,
  cliRestore,
  gnuTarRestoreChain,
  NOBODY,
  put,
  show,
  StepClock,
  volumeDir,
} from './engine-fixtures.js';

const VOLUME = 'web1/root';

/** A small tree: 40 files in 4 directories, a symlink, an empty directory. */
function makeTree(root: string): void {
  for (let d = 0; d < 4; d++) {
    for (let f = 0; f < 10; f++) put(root, `dir${d}/file${f}.txt`, `content of ${d}/${f}\n`.repeat(50 + f));
  }
  put(root, 'etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
  fs.symlinkSync('etc/passwd', path.join(root, 'link'));
  fs.mkdirSync(path.join(root, 'empty'));
}

function sourceAndMedium(t: { after(fn: () => unknown): void }): { source: string; medium: string; scratch: string } {
  const scratch = makeScratchDir(t, 'engine-change');
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(source);
  fs.mkdirSync(medium);
  makeTree(source);
  return { source, medium, scratch };
}

test('a no-change incremental reads no file; a changed file is read exactly once', async (t) => {
  const { source, medium, scratch } = sourceAndMedium(t);
  const full = cliBackup(source, medium, VOLUME);
  assert.equal(full.code, 0, show(full));
  const [first] = backupsOf(medium, VOLUME);
  assert.equal(first!.kind, 'full');
  assert.equal(first!.stats.filesRead, 41);

  const again = cliBackup(source, medium, VOLUME);
  assert.equal(again.code, 0, show(again));
  const second = backupsOf(medium, VOLUME)[1]!;
  assert.equal(second.kind, 'incremental');
  assert.equal(second.base, first!.id);
  assert.equal(second.stats.filesRead, 0, 'nothing changed: no file may be opened');
  assert.equal(second.stats.bytesRead, 0);
  assert.equal(second.stats.unchanged, 42, 'every non-directory is carried over (41 files and the symlink)');
  assert.equal(second.stats.deleted, 0);

  // One file grows, one keeps its size but gets new content and mtime.
  const grown = path.join(source, 'dir1/file3.txt');
  fs.appendFileSync(grown, 'one more line\n');
  const sameSize = path.join(source, 'dir2/file0.txt');
  const text = fs.readFileSync(sameSize, 'utf8');
  fs.writeFileSync(sameSize, text.replace('content', 'CONTENT'));
  fs.utimesSync(sameSize, new Date('2030-01-01T00:00:00Z'), new Date('2030-01-01T00:00:00Z'));
  const third = cliBackup(source, medium, VOLUME);
  assert.equal(third.code, 0, show(third));
  const s3 = backupsOf(medium, VOLUME)[2]!;
  assert.equal(s3.kind, 'incremental');
  assert.equal(s3.stats.filesRead, 2, 'exactly the two changed files are opened');
  assert.equal(s3.stats.bytesRead, fs.statSync(grown).size + fs.statSync(sameSize).size, 'each changed file is read once: hashing and archiving share the read');
  assert.equal(s3.stats.unchanged, 40);

  const to = path.join(scratch, 'restored');
  const r = cliRestore(VOLUME, medium, to);
  assert.equal(r.code, 0, show(r));
  assertTreesEqual(await snapshotTree(source), await snapshotTree(to));
});

test('an unprivileged run over files it cannot read succeeds when nothing changed: unchanged files are never opened', async (t) => {
  const { source, medium, scratch } = sourceAndMedium(t);
  fs.chmodSync(scratch, 0o755);
  // Files root-only (0600), directories listable: nobody can stat everything but open no file.
  execFileSync('chmod', ['-R', 'go=rX', source]);
  execFileSync('find', [source, '-type', 'f', '-exec', 'chmod', '0600', '{}', '+']);
  const full = cliBackup(source, medium, VOLUME);
  assert.equal(full.code, 0, show(full));
  // The medium changes hands; the source stays root's.
  execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, medium]);

  const asNobody = cliBackup(source, medium, VOLUME, [], { asUser: NOBODY });
  assert.equal(asNobody.code, 0, `an unchanged file was opened (EACCES as nobody):\n${show(asNobody)}`);
  const [, second] = backupsOf(medium, VOLUME);
  assert.equal(second!.kind, 'incremental');
  assert.equal(second!.status, 'complete');
  assert.equal(second!.stats.filesRead, 0);

  // The control: a changed file must be read, and nobody cannot, so the backup says so.
  fs.appendFileSync(path.join(source, 'dir0/file0.txt'), 'changed\n');
  const changed = cliBackup(source, medium, VOLUME, [], { asUser: NOBODY });
  assert.equal(changed.code, 1, show(changed));
  assert.match(changed.stderr, /dir0\/file0\.txt/);
  assert.equal(backupsOf(medium, VOLUME)[2]!.status, 'partial');
});

/** Damages the newest backup's manifest in one of several ways. */
const damages: Array<[string, (file: string) => void]> = [
  [
    'one flipped byte',
    (file) => {
      const buf = fs.readFileSync(file);
      // Inside the compressed bytes of a data frame (version 2): the magic, the index and the trailer
      // still open, so only the checksums (the trailer's and the sidecar's xxh64) can tell.
      const m = FramedManifest.open(file);
      const frame = m.frames[m.frames.length >> 1]!;
      m.close();
      const at = frame.at + (frame.len >> 1);
      buf[at]! ^= 0x10;
      fs.writeFileSync(file, buf);
      FramedManifest.open(file).close();
    },
  ],
  ['truncated (trailer lost)', (file) => fs.truncateSync(file, fs.statSync(file).size - 20)],
  ['truncated to half', (file) => fs.truncateSync(file, fs.statSync(file).size >> 1)],
  ['missing', (file) => fs.rmSync(file)],
];

for (const [what, damage] of damages) {
  test(`a manifest ${what} forces a full backup with a warning`, async (t) => {
    const { source, medium, scratch } = sourceAndMedium(t);
    // The set-up through the API (a clock in the past, no waiting for the next second); the run that matters through the CLI.
    const clock = new StepClock();
    await apiBackup(source, medium, VOLUME, { clock });
    fs.appendFileSync(path.join(source, 'dir3/file9.txt'), 'changed\n');
    await apiBackup(source, medium, VOLUME, { clock });
    const [, incr] = backupsOf(medium, VOLUME);
    assert.equal(incr!.kind, 'incremental');
    damage(path.join(volumeDir(medium, VOLUME), incr!.manifest));

    fs.writeFileSync(path.join(source, 'dir0/new.txt'), 'new\n');
    const next = cliBackup(source, medium, VOLUME);
    assert.equal(next.code, 0, show(next));
    assert.match(next.stderr + next.stdout, /manifest of .* is unusable.*full backup instead/);
    const third = backupsOf(medium, VOLUME)[2]!;
    assert.equal(third.kind, 'full', 'never an incremental on a manifest that failed its check');
    assert.ok(third.warnings.some((w) => /unusable/.test(w)), 'the warning is in the sidecar too (for the report)');
    assert.equal(third.stats.filesRead, 42);

    const to = path.join(scratch, 'restored');
    const r = cliRestore(VOLUME, medium, to);
    assert.equal(r.code, 0, show(r));
    assertTreesEqual(await snapshotTree(source), await snapshotTree(to));
  });
}

test('full or incremental: --full, and a chain as long as --max-chain', async (t) => {
  const { source, medium } = sourceAndMedium(t);
  const kinds = (): string[] => backupsOf(medium, VOLUME).map((b) => b.kind);

  assert.equal(cliBackup(source, medium, VOLUME, ['--max-chain', '3']).code, 0);
  assert.equal(cliBackup(source, medium, VOLUME, ['--max-chain', '3']).code, 0);
  const forced = cliBackup(source, medium, VOLUME, ['--max-chain', '3', '--full']);
  assert.equal(forced.code, 0, show(forced));
  assert.match(forced.stderr + forced.stdout, /full backup .*full requested/);
  assert.deepEqual(kinds(), ['full', 'incremental', 'full']);
  assert.equal(backupsOf(medium, VOLUME)[2]!.stats.filesRead, 41, '--full reads everything again');

  assert.equal(cliBackup(source, medium, VOLUME, ['--max-chain', '3']).code, 0);
  assert.equal(cliBackup(source, medium, VOLUME, ['--max-chain', '3']).code, 0);
  const sixth = cliBackup(source, medium, VOLUME, ['--max-chain', '3']);
  assert.equal(sixth.code, 0, show(sixth));
  assert.match(sixth.stderr + sixth.stdout, /chain holds 3 backups \(limit 3\)/);
  assert.deepEqual(kinds(), ['full', 'incremental', 'full', 'incremental', 'incremental', 'full']);
  for (const b of backupsOf(medium, VOLUME)) {
    if (b.kind === 'full') assert.equal(b.chain, b.id);
  }
});

test('a chain older than the full interval starts again with a full', async (t) => {
  const { source, medium } = sourceAndMedium(t);
  const clock = new StepClock(30 * 24 * 60);
  const full = await apiBackup(source, medium, VOLUME, { clock, fullIntervalDays: 7 });
  assert.equal(full.sidecar.kind, 'full');
  clock.advance(3 * 86_400_000);
  const incr = await apiBackup(source, medium, VOLUME, { clock, fullIntervalDays: 7 });
  assert.equal(incr.sidecar.kind, 'incremental', 'three days old: still the same chain');
  clock.advance(4 * 86_400_000);
  const next = await apiBackup(source, medium, VOLUME, { clock, fullIntervalDays: 7 });
  assert.equal(next.sidecar.kind, 'full');
  assert.match(next.prepared.decision.reason, /last full is 7\.\d days old \(limit 7\)/);
});

test('--one-file-system keeps a mount point as an empty directory and reads nothing below it', async (t) => {
  const { source, medium, scratch } = sourceAndMedium(t);
  const mnt = path.join(source, 'proc-like');
  fs.mkdirSync(mnt);
  // A real second filesystem inside the source (unmounted by makeScratchDir's cleanup).
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'xenbackup-test', mnt]);
  fs.writeFileSync(path.join(mnt, 'inside'), 'on another filesystem\n');
  const full = cliBackup(source, medium, VOLUME, ['--one-file-system']);
  assert.equal(full.code, 0, show(full));
  assert.equal(backupsOf(medium, VOLUME)[0]!.stats.filesRead, 41, 'the file on the other filesystem is not read');
  const again = cliBackup(source, medium, VOLUME, ['--one-file-system']);
  assert.equal(again.code, 0, show(again));
  assert.equal(backupsOf(medium, VOLUME)[1]!.stats.filesRead, 0);

  const to = path.join(scratch, 'restored');
  assert.equal(cliRestore(VOLUME, medium, to).code, 0);
  assert.deepEqual(fs.readdirSync(path.join(to, 'proc-like')), []);
  assert.equal(fs.readFileSync(path.join(to, 'etc/passwd'), 'utf8'), 'root:x:0:0:root:/root:/bin/sh\n');
  const gnu = path.join(scratch, 'gnu');
  gnuTarRestoreChain(chainArchives(medium, VOLUME, backupsOf(medium, VOLUME)[1]!), gnu);
  assert.deepEqual(fs.readdirSync(path.join(gnu, 'proc-like')), []);
  assert.equal(fs.existsSync(path.join(gnu, 'etc/passwd')), true);
});
