/**
 * Issue 14 items 5 and 7: a --to that cannot be made, or that is a file,
 * is one clear line and exit 2 (a usage error; nothing was touched), at
 * once, never a loop or a raw EEXIST.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeScratchDir } from '../helpers/scratch.js';
import { assertOneLineError, cliBackup, cliRestore, put } from './engine-fixtures.js';

const VOLUME = 'db1/data';

test('restore --to a path that cannot be created, or an existing file, is one line and exit 2', async (t) => {
  const scratch = makeScratchDir(t, 'restore-target');
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  put(source, 'etc/hosts', '127.0.0.1 localhost\n');
  assert.equal(cliBackup(source, medium, VOLUME).code, 0);

  for (const to of ['/proc/xenbackup-nonexistent', '/proc/xenbackup-nonexistent/deeper/still', '/proc/self/status/x']) {
    const started = Date.now();
    const r = cliRestore(VOLUME, medium, to, [], { timeoutMs: 20_000 });
    assertOneLineError(r, new RegExp(`cannot create the restore target ${to.replace(/\//g, '\\/')}`), 2);
    assert.ok(Date.now() - started < 15_000, 'returns at once');
  }

  const file = path.join(scratch, 'a-file');
  fs.writeFileSync(file, 'not a directory\n');
  for (const extra of [[], ['--force'], ['etc/hosts']]) {
    const r = cliRestore(VOLUME, medium, file, extra);
    assertOneLineError(r, /restore target .*a-file exists and is not a directory/, 2);
    assert.doesNotMatch(r.stderr, /EEXIST/);
    assert.equal(fs.readFileSync(file, 'utf8'), 'not a directory\n');
  }
  // Below a file: mkdir says ENOTDIR; still one line.
  const r = cliRestore(VOLUME, medium, path.join(file, 'sub'));
  assertOneLineError(r, /cannot create the restore target .*a-file\/sub/, 2);
});

test('a tree of more directories than the writer keeps open restores whole, and again with --force', async (t) => {
  const scratch = makeScratchDir(t, 'restore-target-many');
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  for (let i = 0; i < 300; i++) put(source, `d${i % 7}/sub${i}/deeper/f`, `file ${i}\n`);
  assert.equal(cliBackup(source, medium, VOLUME).code, 0);
  const to = path.join(scratch, 'to');
  const first = cliRestore(VOLUME, medium, to);
  assert.equal(first.code, 0, first.stderr);
  const again = cliRestore(VOLUME, medium, to, ['--force']);
  assert.equal(again.code, 0, again.stderr);
  for (let i = 0; i < 300; i += 37) assert.equal(fs.readFileSync(path.join(to, `d${i % 7}/sub${i}/deeper/f`), 'utf8'), `file ${i}\n`);
  const refused = cliRestore(VOLUME, medium, to);
  assertOneLineError(refused, /already exist/, 2);
});
