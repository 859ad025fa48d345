/**
 * Issue 2 item 7: restore safety. Each restored file is checked against the
 * xxh64 recorded at backup time (a byte changed inside an archive is caught
 * by name, exit 1); hostile manifests and archives (names with "..",
 * absolute paths, a symlink that later entries pass through, members that
 * disagree with the manifest) never cause a write outside --to; nothing is
 * overwritten without --force; and a one-file restore reads only the
 * archive that holds the file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeScratchDir } from '../helpers/scratch.js';
import { snapshotTree } from '../helpers/tree-snapshot.js';
import { assertTreesEqual } from '../helpers/tree-compare.js';
import { fileXxh64 } from '../../src/medium/manifest-file.js';
import {
  backupsOf,
  cliBackup,
  assertOneLineError,
  cliRestore,
  fingerprint,
  put,
  show,
  volumeDir,
} from './engine-fixtures.js';
import { writeHandmadeBackup, type HandBlock } from './handmade-backup.js';

const VOLUME = 'db1/data';

test('a byte changed inside an archive is caught by the content check, naming the file', async (t) => {
  const scratch = makeScratchDir(t, 'engine-corrupt');
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  put(source, 'good/one.txt', 'fine\n');
  put(source, 'bad/victim.bin', 'VICTIM-' + 'x'.repeat(5000) + '-END\n');
  put(source, 'good/two.txt', 'also fine\n');
  const b = cliBackup(source, medium, VOLUME, ['--compress', 'none']);
  assert.equal(b.code, 0, show(b));
  const [sidecar] = backupsOf(medium, VOLUME);
  const archive = path.join(volumeDir(medium, VOLUME), sidecar!.archive);

  // Change one data byte of the member, then make the sidecar's archive hash agree, so only the
  // per-file content check can notice.
  const bytes = fs.readFileSync(archive);
  const at = bytes.indexOf('VICTIM-') + 100;
  assert.ok(at > 100);
  bytes[at] = 'y'.charCodeAt(0);
  fs.writeFileSync(archive, bytes);
  const sidecarFile = path.join(volumeDir(medium, VOLUME), sidecar!.id + '.full.json');
  const fixed = { ...sidecar!, archiveXxh64: fileXxh64(archive) };
  fs.writeFileSync(sidecarFile, JSON.stringify(fixed, null, 1) + '\n');

  const to = path.join(scratch, 'restored');
  const r = cliRestore(VOLUME, medium, to);
  assert.equal(r.code, 1, show(r));
  assert.match(r.stderr, /bad\/victim\.bin: content does not match/);
  assert.doesNotMatch(r.stderr, /one\.txt|two\.txt/, 'only the damaged file is reported');
  assert.equal(fs.readFileSync(path.join(to, 'good/two.txt'), 'utf8'), 'also fine\n', 'the other files are restored');

  const single = cliRestore(VOLUME, medium, path.join(scratch, 'single'), ['bad/victim.bin']);
  assert.equal(single.code, 1, show(single));
  assert.match(single.stderr, /bad\/victim\.bin: content does not match/);
});

interface Jail {
  /** The --to directory, four levels below the jail's top. */
  to: string;
  /** A directory next to --to that hostile entries aim at. */
  outside: string;
  /** Everything under the jail's top except --to's contents: must not change. */
  outsideState(): string;
}

function makeJail(scratch: string, name: string): Jail {
  const top = path.join(scratch, name);
  const to = path.join(top, 'a/b/to');
  const outside = path.join(top, 'outside');
  fs.mkdirSync(to, { recursive: true });
  fs.mkdirSync(outside);
  return {
    to,
    outside,
    outsideState: () =>
      fingerprint(top)
        .split('\n')
        .filter((l) => !l.startsWith('a/b/to/'))
        .map((l) => l.replace(/ \d+$/, '')) // directory mtimes of a/b/to move when it is filled
        .filter((l) => !l.startsWith('a/b/to '))
        .join('\n'),
  };
}

const ETC_PROBE = `/etc/xenbackup-hostile-${process.pid}`;

/** Hostile backups: each is restored into a jail; nothing outside --to may appear or change. */
const hostile: Array<{ what: string; blocks: (jail: Jail) => HandBlock[]; refused: boolean }> = [
  { what: 'an entry named ../x', refused: true, blocks: () => [{ dir: '', entries: [{ name: '../escaped', type: 'file', content: 'out\n' }] }] },
  { what: 'an entry named ../../outside/x', refused: true, blocks: () => [{ dir: '', entries: [{ name: '../../../outside/escaped', type: 'file', content: 'out\n' }] }] },
  { what: 'a directory block ..', refused: true, blocks: () => [{ dir: '', entries: [] }, { dir: '..', entries: [{ name: 'escaped', type: 'file', content: 'out\n' }] }] },
  { what: 'a directory block sub/../..', refused: true, blocks: () => [{ dir: '', entries: [] }, { dir: 'sub/../..', entries: [{ name: 'escaped', type: 'file', content: 'out\n' }] }] },
  {
    what: 'a directory block /etc',
    refused: true,
    blocks: () => [{ dir: '', entries: [] }, { dir: '/etc', entries: [{ name: path.basename(ETC_PROBE), type: 'file', content: 'out\n' }] }],
  },
  { what: 'an empty entry name', refused: true, blocks: () => [{ dir: '', entries: [{ name: '', type: 'file', content: 'nameless\n', mode: 0o600, memberPath: 'nameless' }] }] },
  {
    what: 'a symlink a -> outside, then a/file',
    refused: false,
    blocks: (jail) => [
      { dir: '', entries: [{ name: 'a', type: 'symlink', link: jail.outside }] },
      { dir: 'a', entries: [{ name: 'file', type: 'file', content: 'through the symlink?\n' }] },
    ],
  },
  {
    what: 'a relative symlink a -> ../../../outside, then a/file',
    refused: false,
    blocks: () => [
      { dir: '', entries: [{ name: 'a', type: 'symlink', link: '../../../outside' }] },
      { dir: 'a', entries: [{ name: 'file', type: 'file', content: 'through the symlink?\n' }] },
    ],
  },
  {
    what: 'archive members named ../x and /etc/x under honest manifest names',
    refused: false,
    blocks: () => [
      {
        dir: '',
        entries: [
          { name: 'x', type: 'file', content: 'honest name\n', memberPath: '../../../outside/escaped' },
          { name: 'y', type: 'file', content: 'honest too\n', memberPath: ETC_PROBE },
          { name: 'z', type: 'symlink', link: 'x', memberPath: '../zz' },
        ],
      },
    ],
  },
];

for (const [i, h] of hostile.entries()) {
  test(`a hostile backup (${h.what}) writes nothing outside --to`, async (t) => {
    const scratch = makeScratchDir(t, 'engine-hostile');
    t.after(() => fs.rmSync(ETC_PROBE, { force: true }));
    const medium = path.join(scratch, 'medium');
    const jail = makeJail(scratch, 'jail');
    await writeHandmadeBackup(medium, VOLUME, `2026010${(i % 9) + 1}T000000Z`, h.blocks(jail));
    const before = jail.outsideState();
    // Refused cases are refused before anything is written, --force or not: once is enough for them.
    for (const force of h.refused ? [['--force']] : [[], ['--force']]) {
      const r = cliRestore(VOLUME, medium, jail.to, force);
      if (h.refused) assertOneLineError(r, /refusing unsafe path/, 1);
      assert.equal(jail.outsideState(), before, `something was written outside --to:\n${show(r)}`);
      assert.deepEqual(fs.readdirSync(jail.outside), []);
      assert.equal(fs.existsSync(ETC_PROBE), false, `${ETC_PROBE} was written`);
    }
  });
}

test('a symlink already in the target is never followed by a restore, not even with --force', async (t) => {
  const scratch = makeScratchDir(t, 'engine-target-symlink');
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  put(source, 'etc/passwd', 'root:x:0:0::/root:/bin/sh\n');
  assert.equal(cliBackup(source, medium, VOLUME).code, 0);
  const jail = makeJail(scratch, 'jail');
  fs.symlinkSync(jail.outside, path.join(jail.to, 'etc'));
  const before = jail.outsideState();
  for (const extra of [['etc/passwd'], ['etc/passwd', '--force'], ['--force']]) {
    const r = cliRestore(VOLUME, medium, jail.to, extra);
    assert.deepEqual(fs.readdirSync(jail.outside), [], `written through the symlink:\n${show(r)}`);
    assert.equal(jail.outsideState(), before);
    if (!extra.includes('--force')) assert.notEqual(r.code, 0, show(r));
  }
});

test('existing files are not overwritten without --force (nothing changes), and are replaced with it', async (t) => {
  const scratch = makeScratchDir(t, 'engine-overwrite');
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  put(source, 'etc/hosts', '127.0.0.1 localhost\n');
  put(source, 'etc/motd', 'backed up\n');
  put(source, 'srv/data/file', 'data\n');
  assert.equal(cliBackup(source, medium, VOLUME).code, 0);

  const to = path.join(scratch, 'target');
  put(to, 'etc/motd', 'local edit, must survive\n');
  put(to, 'srv/data', 'a file where the backup has a directory\n');
  put(to, 'unrelated', 'not in the backup\n');
  const before = fingerprint(to);
  const refused = cliRestore(VOLUME, medium, to);
  assertOneLineError(refused, /already exist.*etc\/motd.*--force/);
  assert.equal(fingerprint(to), before, 'nothing in the target changed');

  const forced = cliRestore(VOLUME, medium, to, ['--force']);
  assert.equal(forced.code, 0, show(forced));
  assert.equal(fs.readFileSync(path.join(to, 'etc/motd'), 'utf8'), 'backed up\n');
  assert.equal(fs.readFileSync(path.join(to, 'srv/data/file'), 'utf8'), 'data\n');
  assert.equal(fs.readFileSync(path.join(to, 'unrelated'), 'utf8'), 'not in the backup\n', 'what the backup does not name stays');
});

test('a one-file restore reads only the archive holding that file', async (t) => {
  const scratch = makeScratchDir(t, 'engine-one-archive');
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  put(source, 'old/unchanged.txt', 'from the full\n');
  put(source, 'hot/changing.txt', 'version 1\n');
  for (let i = 0; i < 200; i++) put(source, `bulk/file${i}`, `bulk ${i}\n`.repeat(30));
  assert.equal(cliBackup(source, medium, VOLUME).code, 0);
  put(source, 'hot/changing.txt', 'version 2\n');
  assert.equal(cliBackup(source, medium, VOLUME).code, 0);
  put(source, 'hot/changing.txt', 'version 3, the newest\n');
  assert.equal(cliBackup(source, medium, VOLUME).code, 0);
  const [full, mid, newest] = backupsOf(medium, VOLUME);
  const dir = volumeDir(medium, VOLUME);
  const stash = path.join(scratch, 'stash');
  fs.mkdirSync(stash);
  const hide = (names: string[]): void => names.forEach((n) => fs.renameSync(path.join(dir, n), path.join(stash, n)));
  const unhide = (): void => fs.readdirSync(stash).forEach((n) => fs.renameSync(path.join(stash, n), path.join(dir, n)));

  // Only the newest archive: the file changed last lives there.
  hide([full!.archive, mid!.archive]);
  const r1 = cliRestore(VOLUME, medium, path.join(scratch, 'r1'), ['hot/changing.txt']);
  assert.equal(r1.code, 0, `needed an archive other than the newest:\n${show(r1)}`);
  assert.equal(fs.readFileSync(path.join(scratch, 'r1/hot/changing.txt'), 'utf8'), 'version 3, the newest\n');
  unhide();

  // Only the full: a file unchanged since then comes from it, as of the newest backup.
  hide([mid!.archive, newest!.archive]);
  const r2 = cliRestore(VOLUME, medium, path.join(scratch, 'r2'), ['old/unchanged.txt']);
  assert.equal(r2.code, 0, `needed an archive other than the full:\n${show(r2)}`);
  assert.match(r2.stderr + r2.stdout, new RegExp(`from backup ${newest!.id}`));
  assert.equal(fs.readFileSync(path.join(scratch, 'r2/old/unchanged.txt'), 'utf8'), 'from the full\n');
  unhide();

  // And the whole tree with everything in place, for comparison.
  const r3 = cliRestore(VOLUME, medium, path.join(scratch, 'r3'));
  assert.equal(r3.code, 0, show(r3));
  assertTreesEqual(await snapshotTree(source), await snapshotTree(path.join(scratch, 'r3')));
});
