/**
 * Issue 14 item 2 for the rsync engine: the dated tree on the medium is
 * read beneath its own fd, no symlink followed. A symlink planted in the
 * tree where the manifest has a directory or a file never makes restore
 * read from outside the tree (here: a "secret" next to the medium), and
 * ends in one error naming the path.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { prepareMirror } from '../../src/engines/rsync/rsync-backup.js';
import { restore } from '../../src/engines/restore.js';
import { DamagedBackupError } from '../../src/engines/restore-writer.js';
import { VolumeStore } from '../../src/repo/volume-store.js';
import { LocalStorage } from '../../src/storage/local-storage.js';
import { makeScratchDir } from '../helpers/scratch.js';
import { memoryLogger } from './engine-fixtures.js';

const HOST = 'test-host';
const VOLUME = 'db1/data';

test('a symlink planted in an rsync tree is never followed by restore', async (t) => {
  const dir = makeScratchDir(t, 'restore-rsync-tree');
  const src = path.join(dir, 'src');
  const medium = path.join(dir, 'medium');
  const secret = path.join(dir, 'secret');
  fs.mkdirSync(path.join(src, 'etc'), { recursive: true });
  fs.mkdirSync(medium);
  fs.mkdirSync(secret);
  fs.writeFileSync(path.join(src, 'etc/passwd'), 'root:x:0:0\n');
  fs.writeFileSync(path.join(src, 'top'), 'top\n');
  fs.writeFileSync(path.join(secret, 'passwd'), 'SECRET\n');
  const { log } = memoryLogger();
  let clock = Date.UTC(2026, 10, 1);
  const sc = await (await prepareMirror({ sourceDir: src, medium, host: HOST, volume: VOLUME, logger: log, now: () => new Date((clock += 60_000)) })).commit();
  const tree = new VolumeStore(new LocalStorage(medium), HOST, VOLUME).pathOf(sc.archive);

  const attempts: Array<{ what: string; plant: () => void; error: RegExp }> = [
    {
      what: 'a directory replaced by a symlink',
      plant: () => {
        fs.rmSync(path.join(tree, 'etc'), { recursive: true });
        fs.symlinkSync(secret, path.join(tree, 'etc'));
      },
      error: /etc: not a directory of the tree/,
    },
    {
      what: 'a file replaced by a symlink',
      plant: () => {
        fs.rmSync(path.join(tree, 'etc'));
        fs.mkdirSync(path.join(tree, 'etc'));
        fs.symlinkSync(path.join(secret, 'passwd'), path.join(tree, 'etc/passwd'));
      },
      error: /etc\/passwd: cannot read it from the tree/,
    },
  ];
  for (const [i, a] of attempts.entries()) {
    a.plant();
    for (const paths of [[], [Buffer.from('etc/passwd')]]) {
      const target = path.join(dir, `to${i}-${paths.length}`);
      await assert.rejects(
        restore({ medium, host: HOST, volume: VOLUME, paths, targetDir: target, force: false, logger: log }),
        (e: Error) => e instanceof DamagedBackupError && a.error.test(e.message),
        a.what,
      );
      const found = fs.existsSync(path.join(target, 'etc/passwd')) ? fs.readFileSync(path.join(target, 'etc/passwd'), 'utf8') : '';
      assert.doesNotMatch(found, /SECRET/, `${a.what}: read through the symlink`);
    }
  }
});
