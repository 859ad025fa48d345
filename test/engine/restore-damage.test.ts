/**
 * Issue 14 items 6 and 10: restore compares each member it extracts with
 * its manifest entry (type, size, path) and a damaged archive (a bad pax
 * record, an oversize pax header, a truncation) is one line naming the
 * archive or the path, exit 1, never a stack trace or "offset undefined".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeScratchDir } from '../helpers/scratch.js';
import { assertOneLineError, backupsOf, cliBackup, cliRestore, put, show, volumeDir } from './engine-fixtures.js';
import { writeHandmadeBackup, type HandBlock } from './handmade-backup.js';
import { fileXxh64 } from '../../src/medium/manifest-file.js';
import type { TarSidecar } from '../../src/medium/sidecar.js';

const VOLUME = 'db1/data';
const ID = '20260101T000000Z';

async function handmade(scratch: string, blocks: HandBlock[]): Promise<{ medium: string; archive: string; sidecar: TarSidecar }> {
  const medium = path.join(scratch, 'medium');
  const sidecar = await writeHandmadeBackup(medium, VOLUME, ID, blocks);
  return { medium, archive: path.join(volumeDir(medium, VOLUME), sidecar.archive), sidecar };
}

/** Rewrites the archive and makes its sidecar's hash agree, so only restore's own reading can notice. */
function rewriteArchive(medium: string, sidecar: TarSidecar, bytes: Buffer): void {
  const dir = volumeDir(medium, VOLUME);
  const archive = path.join(dir, sidecar.archive);
  fs.writeFileSync(archive, bytes);
  fs.writeFileSync(path.join(dir, `${sidecar.id}.full.json`), JSON.stringify({ ...sidecar, archiveXxh64: fileXxh64(archive), archiveBytes: bytes.length, ...(sidecar.compression === 'none' ? { tarBytes: bytes.length } : {}) }, null, 1) + '\n');
}

/** Sets a header block's size field and recomputes its checksum. */
function setSize(bytes: Buffer, header: number, size: number): void {
  bytes.write(size.toString(8).padStart(11, '0') + '\0', header + 124, 12, 'latin1');
  bytes.fill(0x20, header + 148, header + 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += bytes[header + i]!;
  bytes.write(sum.toString(8).padStart(6, '0') + '\0 ', header + 148, 8, 'latin1');
}

const mismatches: Array<{ what: string; blocks: HandBlock[]; error: RegExp }> = [
  {
    what: 'a directory member where the manifest has a file',
    blocks: [{ dir: '', entries: [{ name: 'f', type: 'file', content: '', member: { type: 'dir' } }] }],
    error: /member for f at tar offset \d+ differs from the manifest: type dir \(the manifest says file\)/,
  },
  {
    what: 'a symlink member where the manifest has a fifo',
    blocks: [{ dir: '', entries: [{ name: 'p', type: 'fifo', member: { type: 'symlink', linkTarget: Buffer.from('/etc/shadow') } }] }],
    error: /member for p .*type symlink \(the manifest says fifo\)/,
  },
  {
    what: 'a file member longer than the manifest says',
    blocks: [{ dir: '', entries: [{ name: 'f', type: 'file', content: 'hello', memberContent: 'hello, and more' }] }],
    error: /member for f .*size 15 \(the manifest says 5\)/,
  },
  {
    what: 'a member named for another path',
    blocks: [{ dir: 'd', entries: [{ name: 'f', type: 'file', content: 'x', memberPath: 'd/g' }] }],
    error: /member for d\/f .*path d\/g/,
  },
];

for (const m of mismatches) {
  test(`restore refuses ${m.what}, naming the path`, async (t) => {
    const scratch = makeScratchDir(t, 'restore-damage');
    const { medium } = await handmade(scratch, m.blocks);
    const r = cliRestore(VOLUME, medium, path.join(scratch, 'to'));
    assertOneLineError(r, m.error, 1);
  });
}

const LONG = 'n'.repeat(150); // a pax path record
const blocks: HandBlock[] = [
  {
    dir: '',
    entries: [
      { name: 'first', type: 'file', content: 'first\n' },
      { name: LONG, type: 'file', content: 'long name\n' },
      { name: 'z-big', type: 'file', content: 'b'.repeat(20000) },
    ],
  },
];

test('a bad pax record length during restore is one line naming the archive', async (t) => {
  const scratch = makeScratchDir(t, 'restore-damage-pax');
  const { medium, archive, sidecar } = await handmade(scratch, blocks);
  const bytes = fs.readFileSync(archive);
  const at = bytes.indexOf(` path=${LONG}`);
  assert.ok(at > 0);
  bytes.write('9', at - 3, 'latin1'); // "161 path=..." -> "961 path=...": beyond the record data
  rewriteArchive(medium, sidecar, bytes);
  const r = cliRestore(VOLUME, medium, path.join(scratch, 'to'));
  assertOneLineError(r, new RegExp(`${sidecar.archive}: bad pax record length at tar offset \\d+$`), 1);
});

test('an oversize pax header during restore is one line naming the archive', async (t) => {
  const scratch = makeScratchDir(t, 'restore-damage-pax-size');
  const { medium, archive, sidecar } = await handmade(scratch, blocks);
  const bytes = fs.readFileSync(archive);
  const data = bytes.indexOf(` path=${LONG}`) - 3;
  setSize(bytes, data - 512, 0o7777777777);
  rewriteArchive(medium, sidecar, bytes);
  const r = cliRestore(VOLUME, medium, path.join(scratch, 'to'));
  assertOneLineError(r, new RegExp(`${sidecar.archive}: tar extension member of \\d+ bytes exceeds the limit`), 1);
});

test('a truncated archive names the member it ends in or before, never "offset undefined"', async (t) => {
  const scratch = makeScratchDir(t, 'restore-damage-truncated');
  const { medium, archive, sidecar } = await handmade(scratch, blocks);
  const bytes = fs.readFileSync(archive);
  const inside = bytes.indexOf('bbbbbbbb') + 5000;
  rewriteArchive(medium, sidecar, bytes.subarray(0, inside));
  const r1 = cliRestore(VOLUME, medium, path.join(scratch, 'to1'));
  assertOneLineError(r1, /ends inside the member of z-big at tar offset \d+ \(truncated or damaged archive\)/, 1);
  assert.doesNotMatch(show(r1), /undefined/);

  const before = bytes.indexOf(` path=${LONG}`) - 3 - 512;
  rewriteArchive(medium, sidecar, bytes.subarray(0, before));
  const r2 = cliRestore(VOLUME, medium, path.join(scratch, 'to2'));
  assertOneLineError(r2, /ends before the member of n{150} at tar offset \d+/, 1);
  assert.doesNotMatch(show(r2), /undefined/);
});

test('a zstd archive damaged or cut short fails the restore with one line naming it, exit 1', async (t) => {
  const scratch = makeScratchDir(t, 'restore-damage-zstd');
  const source = path.join(scratch, 'source');
  const medium = path.join(scratch, 'medium');
  fs.mkdirSync(medium);
  for (let i = 0; i < 40; i++) put(source, `d/f${i}`, `file ${i}\n`.repeat(2000 + i));
  assert.equal(cliBackup(source, medium, VOLUME).code, 0);
  const [sidecar] = backupsOf(medium, VOLUME) as TarSidecar[]; // a tar backup
  const archive = path.join(volumeDir(medium, VOLUME), sidecar!.archive);
  const good = fs.readFileSync(archive);
  assert.ok(good.length > 4000);

  rewriteArchive(medium, sidecar!, good.subarray(0, Math.floor(good.length / 2)));
  const cut = cliRestore(VOLUME, medium, path.join(scratch, 'cut'));
  assertOneLineError(cut, new RegExp(`${sidecar!.archive}: (cannot be decompressed|ends (inside|before) the member)`), 1);

  const flipped = Buffer.from(good);
  for (let at = 100; at < flipped.length - 100; at += 997) flipped[at] ^= 0x5a;
  rewriteArchive(medium, sidecar!, flipped);
  const bad = cliRestore(VOLUME, medium, path.join(scratch, 'bad'));
  assertOneLineError(bad, new RegExp(`${sidecar!.archive}: `), 1);
});
