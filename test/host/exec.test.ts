// The one place commands run: an aborted run (SIGTERM/SIGINT of xenbackup) stops the command it waits
// for at once, instead of waiting up to rsync's 12-hour limit with a snapshot still mounted.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CommandError, run, spawnStreaming } from '../../src/host/exec.js';
import { prepareMirror } from '../../src/engines/rsync/rsync-backup.js';
import { VolumeStore } from '../../src/repo/volume-store.js';
import { LocalStorage } from '../../src/storage/local-storage.js';
import { createLogger, MemorySink } from '../../src/util/log.js';
import { makeScratchDir } from '../helpers/scratch.js';

test('run: aborting the signal terminates the command and fails it as interrupted', async () => {
  const ac = new AbortController();
  const pending = run('sleep', ['60'], { signal: ac.signal });
  setTimeout(() => ac.abort('SIGTERM'), 100);
  await assert.rejects(pending, (e: unknown) => e instanceof CommandError && /sleep 60: interrupted \(SIGTERM\)/.test(e.message));
});

test('spawnStreaming: aborting the signal terminates the command; failures and exit codes are reported as by run', async () => {
  const ac = new AbortController();
  const { done } = spawnStreaming('sleep', ['60'], { signal: ac.signal, stdin: 'ignore' });
  setTimeout(() => ac.abort('SIGINT'), 100);
  await assert.rejects(done, /sleep 60: interrupted \(SIGINT\)/);
  await assert.rejects(spawnStreaming('sh', ['-c', 'echo broken >&2; exit 3'], { stdin: 'ignore' }).done, /exit 3: broken/);
  await assert.rejects(spawnStreaming('/nonexistent/xenbackup-tool', [], { stdin: 'ignore' }).done, /could not be started/);
  const ok = await spawnStreaming('true', [], { stdin: 'ignore', stdout: 'ignore' }).done;
  assert.equal(ok.exitCode, 0);
});

test('an rsync mirror whose run is interrupted leaves no tree, no partial and no lock', async (t) => {
  const dir = makeScratchDir(t, 'exec-abort');
  const src = path.join(dir, 'src');
  const medium = path.join(dir, 'medium');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'f'), 'x');
  fs.mkdirSync(medium);
  const ac = new AbortController();
  ac.abort('SIGTERM');
  const req = { sourceDir: src, medium, host: 'h', volume: 'web1/root', logger: createLogger([new MemorySink().sink]) };
  await assert.rejects(prepareMirror({ ...req, signal: ac.signal }), /interrupted \(SIGTERM\)/);
  const store = new VolumeStore(new LocalStorage(medium), 'h', 'web1/root');
  assert.deepEqual(fs.readdirSync(store.dir), [], 'nothing left in the volume folder');
  await (await prepareMirror(req)).commit(); // the lock was released
  assert.equal((await store.list()).length, 1);
});
