// The local rsync engine holds the volume lock from prepare to commit/abort, as the tar engine does:
// a second backup of the volume must not take the first one's ".partial" tree for debris.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { prepareMirror } from '../../src/engines/rsync/rsync-backup.js';
import { prepareBackup } from '../../src/engines/tar/tar-backup.js';
import { VolumeBusyError } from '../../src/repo/volume-lock.js';
import { VolumeStore } from '../../src/repo/volume-store.js';
import { LocalStorage } from '../../src/storage/local-storage.js';
import { createLogger, MemorySink } from '../../src/util/log.js';
import { makeScratchDir } from '../helpers/scratch.js';

test('an rsync mirror in progress locks its volume: a second mirror or tar backup is refused and its partial tree survives', async (t) => {
  const dir = makeScratchDir(t, 'rsync-lock');
  const src = path.join(dir, 'src');
  const medium = path.join(dir, 'medium');
  fs.mkdirSync(path.join(src, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(src, 'etc', 'hosts'), '127.0.0.1 localhost\n');
  fs.mkdirSync(medium);
  const log = createLogger([new MemorySink().sink]);
  const req = { sourceDir: src, medium, host: 'h', volume: 'web1/root', logger: log };

  const first = await prepareMirror(req);
  const partial = `${first.treePath}.partial`;
  assert.ok(fs.existsSync(partial), 'the first mirror has its partial tree');
  await assert.rejects(prepareMirror(req), VolumeBusyError);
  await assert.rejects(
    prepareBackup({ ...req, compression: 'none', forceFull: false, fullIntervalDays: 7, maxChainLength: 14, oneFileSystem: true, excludes: [], liveSource: false }),
    VolumeBusyError,
  );
  assert.ok(fs.existsSync(partial), 'the refused backups left the partial tree alone');
  const sidecar = await first.commit();
  assert.equal((await new VolumeStore(new LocalStorage(medium), 'h', 'web1/root').list()).at(-1)?.id, sidecar.id);

  // Released by commit (and by abort): the next mirror works.
  const second = await prepareMirror(req);
  await second.abort();
  await (await prepareMirror(req)).commit();
  assert.equal((await new VolumeStore(new LocalStorage(medium), 'h', 'web1/root').list()).length, 2);
});
