/**
 * Issue 14 item 2 for raw restore to a file: the ".partial" and the final
 * rename are done by the directory's fd, never through a symlink. A
 * symlink planted as "<to>.partial" or as "<to>" (pointing at a victim
 * file) never lets the image land in the victim; a --to that cannot be
 * created is one line, exit 2.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { prepareRawBackup } from '../../src/engines/raw/raw-backup.js';
import { makeScratchDir } from '../helpers/scratch.js';
import { XENBACKUP } from '../run/run-fixtures.js';
import { attachLoop, MiB, quietLogger, saveImage, seededBytes, writeAt } from '../raw/raw-fixtures.js';

const VOLUME = 'win1/disk';
const HOST = 'dom0';

function cli(args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [XENBACKUP, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, LC_ALL: 'C' } });
  return { code: r.status, stderr: r.stderr };
}

test('raw restore to a file never writes through a planted symlink', async (t) => {
  const dir = makeScratchDir(t, 'restore-raw-target');
  const image = path.join(dir, 'guest.img');
  const medium = path.join(dir, 'medium');
  fs.closeSync(fs.openSync(image, 'w'));
  fs.truncateSync(image, 4 * MiB);
  const dev = attachLoop(t, image);
  writeAt(dev, 1 * MiB, seededBytes(MiB, 7));
  const p = await prepareRawBackup({ device: dev, medium, host: HOST, volume: VOLUME, chunkSize: MiB, forceFull: true, fullIntervalDays: 30, maxChainLength: 10, logger: quietLogger });
  await p.commit();
  const copy = path.join(dir, 'copy.img');
  saveImage(dev, copy);
  const on = ['--medium', medium, '--host', HOST];

  const victim = path.join(dir, 'victim');
  fs.writeFileSync(victim, 'precious\n');
  const victimState = (): string => {
    const st = fs.lstatSync(victim, { bigint: true });
    return `${fs.readFileSync(victim, 'utf8')} ${st.mode} ${st.size} ${st.mtimeNs} ${st.ctimeNs} ${st.nlink}`;
  };
  const before = victimState();

  // A symlink as "<to>.partial": replaced by the restore's own file, the victim untouched.
  const to = path.join(dir, 'restored.img');
  fs.symlinkSync(victim, to + '.partial');
  const r = cli(['restore', VOLUME, ...on, '--to', to]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(victimState(), before);
  assert.ok(fs.lstatSync(to).isFile());
  assert.ok(fs.readFileSync(to).equals(fs.readFileSync(copy)));
  assert.equal(fs.existsSync(to + '.partial'), false);

  // A symlink as "<to>" itself (to a file): refused, with or without --force; the victim untouched.
  const link = path.join(dir, 'link.img');
  fs.symlinkSync(victim, link);
  for (const force of [[], ['--force']]) {
    const refused = cli(['restore', VOLUME, ...on, '--to', link, ...force]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
    assert.match(refused.stderr, /link\.img exists and is neither a regular file nor a block device/);
    assert.equal(victimState(), before);
    assert.ok(fs.lstatSync(link).isSymbolicLink());
  }

  // A target that cannot be created: one line, exit 2, at once.
  for (const bad of ['/proc/xenbackup-nonexistent', '/proc/xenbackup-nonexistent/deeper/x.img']) {
    const started = Date.now();
    const res = cli(['restore', VOLUME, ...on, '--to', bad]);
    assert.equal(res.code, 2, res.stderr);
    assert.equal(res.stderr.trim().split('\n').length, 1, res.stderr);
    assert.match(res.stderr, /cannot (create|restore to)/);
    assert.ok(Date.now() - started < 20_000);
  }
});
