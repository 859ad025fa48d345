/**
 * Issue 14 item 11, end to end: files and a directory carrying xattrs named
 * `user.été` (UTF-8), `user.\xe9` (a byte that is not UTF-8) and `user.日本`
 * are backed up (a full, then an incremental that re-stores one file and
 * keeps the rest unchanged), and restored both by xenbackup and by stock GNU
 * tar (`-x -G --xattrs --xattrs-include='*'` over the chain): lgetxattr shows
 * the exact name bytes and values. Verify reads the chain clean.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { lgetxattr, llistxattr, lsetxattr } from '../../src/native/xbfs.js';
import { makeScratchDir } from '../helpers/scratch.js';
import { apiBackup, chainArchives, cliRestore, gnuTarRestoreChain, HOST, put, show, StepClock, xenbackup } from './engine-fixtures.js';

const VOLUME = 'xattr/names';
/** Names as byte strings (one char per byte), as xbfs lists and sets them. */
const bytes = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');
const NAMES = [bytes('user.été'), 'user.\xe9', bytes('user.日本')];
const CARRIERS = ['a/file', 'a/other', 'b/unchanged', 'dir-with-xattrs'];

function setAll(file: string, tag: string): void {
  NAMES.forEach((n, i) => lsetxattr(Buffer.from(file), n, Buffer.from(`${tag} ${i}`)));
}

function xattrsOf(file: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const n of llistxattr(Buffer.from(file)).filter((n) => n.startsWith('user.')).sort()) out.set(n, lgetxattr(Buffer.from(file), n).toString());
  return out;
}

test('non-ASCII xattr names come back byte for byte through xenbackup and GNU tar', async (t) => {
  const scratch = makeScratchDir(t, 'engine-xattr-names');
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  put(source, 'a/file', 'first\n');
  put(source, 'a/other', 'other\n');
  put(source, 'b/unchanged', 'kept\n');
  fs.mkdirSync(path.join(source, 'dir-with-xattrs'));
  for (const c of CARRIERS) setAll(path.join(source, c), 'v1');
  const clock = new StepClock();
  await apiBackup(source, medium, VOLUME, { clock });
  // The incremental re-stores a/file (new value) and keeps the others as they were.
  setAll(path.join(source, 'a/file'), 'v2');
  const { sidecar } = await apiBackup(source, medium, VOLUME, { clock });
  assert.equal(sidecar.kind, 'incremental');
  const want = new Map(CARRIERS.map((c) => [c, xattrsOf(path.join(source, c))]));
  assert.equal(want.get('a/file')!.get(NAMES[1]!), 'v2 1');

  await t.test('xenbackup restore', () => {
    const to = path.join(scratch, 'xb');
    const r = cliRestore(VOLUME, medium, to);
    assert.equal(r.code, 0, show(r));
    for (const c of CARRIERS) assert.deepEqual(xattrsOf(path.join(to, c)), want.get(c), c);
  });

  await t.test('GNU tar -x -G over the chain', () => {
    const to = path.join(scratch, 'gnu');
    gnuTarRestoreChain(chainArchives(medium, VOLUME, sidecar), to);
    for (const c of CARRIERS) assert.deepEqual(xattrsOf(path.join(to, c)), want.get(c), c);
    // getfattr, an independent reader, finds the UTF-8 names under their own spelling.
    for (const [name, value] of [['user.été', 'v2 0'], ['user.日本', 'v2 2']]) {
      assert.equal(execFileSync('getfattr', ['--only-values', '-n', name, path.join(to, 'a/file')], { encoding: 'utf8' }), value);
    }
  });

  await t.test('verify reads the chain clean', () => {
    const r = xenbackup(['verify', VOLUME, '--medium', medium, '--host', HOST]);
    assert.equal(r.code, 0, show(r));
  });
});
