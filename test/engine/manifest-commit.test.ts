/**
 * ManifestWriter.commit() returns the xxh64 of the committed file (the
 * sidecar's manifestXxh64) from its running hash, without reading the file
 * back: it must equal the hash of the bytes on disk, for a manifest larger
 * than the writer's 1 MiB buffer and with a name that is not UTF-8.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileXxh64 } from '../../src/medium/manifest-file.js';
import { ManifestWriter } from '../../src/medium/manifest-writer.js';
import { manifestHeader, readBlocks } from '../helpers/manifest-read.js';
import { sealAndPublish } from '../helpers/sealed-file.js';
import { archiveMember, encodeEntry, type ManifestEntry } from '../../src/core/manifest.js';

function entry(name: Buffer, i: number): ManifestEntry {
  return {
    name, type: 'file', mode: 0o644, uid: 0, gid: 0, size: i, mtimeNs: 1700000000123456789n + BigInt(i), ctimeNs: 1700000000123456789n,
    ino: String(1000 + i), nlink: 1, hash: '0123456789abcdef', archive: '20260101T000000Z', offset: i * 1536,
  };
}

test('commit() returns the xxh64 of the file as written, trailer included', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xb-manifest-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'm.manifest');
  const w = new ManifestWriter(file, { volume: 'd/p', backup: '20260101T000000Z', base: null, createdAt: '2026-01-01T00:00:00Z' });
  w.beginDir(Buffer.alloc(0), { ...entry(Buffer.alloc(0), 0), type: 'dir', size: 0 });
  for (let i = 0; i < 12_000; i++) w.entry(entry(Buffer.from(`file-${i}`), i)); // ~2 MiB: several flushes
  w.entry(entry(Buffer.from([0x6e, 0xe9]), 1)); // Latin-1: stored base64
  const returned = sealAndPublish(w, file);
  assert.equal(returned, fileXxh64(file));
  assert.equal(manifestHeader(file).backup, '20260101T000000Z');
  const blocks = readBlocks(file);
  assert.equal(blocks.length, 1);
  assert.equal(blocks[0]!.entries.length, 12_001);
  assert.deepEqual(blocks[0]!.entries[12_000]!.name, Buffer.from([0x6e, 0xe9]));
});

test('flushToDisk() puts every line written so far into the partial file; new blocks and commit() go on as before', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xb-manifest-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'm.manifest');
  const w = new ManifestWriter(file, { volume: 'd/p', backup: '20260101T000000Z', base: null, createdAt: '2026-01-01T00:00:00Z' });
  w.beginDir(Buffer.alloc(0), { ...entry(Buffer.alloc(0), 0), type: 'dir', size: 0 });
  for (let i = 0; i < 100; i++) w.entry(entry(Buffer.from(`file-${i}`), i)); // far below the 1 MiB buffer
  await w.flushToDisk();
  // Frames so far, no index yet: zstd skips the magic frame and prints the lines.
  const partial = execFileSync('zstd', ['-dcq', `${file}.partial`], { encoding: 'utf8' });
  assert.equal(partial.split('\n').length - 1, 101, 'directory line and 100 entries, each ending in a newline');
  assert.ok(!fs.existsSync(file), 'not committed: still only the .partial');
  // It ends the open block (a frame holds whole blocks): what follows starts a new one.
  w.beginDir(Buffer.from('late'), { ...entry(Buffer.from('late'), 0), type: 'dir', size: 0 });
  w.entry(entry(Buffer.from('file-late'), 100));
  const returned = sealAndPublish(w, file);
  assert.equal(returned, fileXxh64(file));
  const blocks = readBlocks(file);
  assert.deepEqual(blocks.map((b) => [b.dir.toString(), b.entries.length]), [['', 100], ['late', 1]]);
});

test('plainFileLine writes, byte for byte, the line entry() writes; names needing escapes are left to entry()', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xb-manifest-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const names = ['plain.txt', 'with space ~!', 'a'.repeat(255)].map((n) => Buffer.from(n));
  const viaEntry = path.join(dir, 'a.manifest');
  const viaKey = path.join(dir, 'b.manifest');
  const header = { volume: 'd/p', backup: '20260101T000000Z', base: null, createdAt: '2026-01-01T00:00:00Z' };
  const a = new ManifestWriter(viaEntry, header);
  const b = new ManifestWriter(viaKey, header);
  for (const w of [a, b]) w.beginDir(Buffer.alloc(0), { ...entry(Buffer.alloc(0), 0), type: 'dir', size: 0 });
  names.forEach((name, i) => {
    const e = entry(name, i + 1);
    a.entry(e);
    // The key as the listing formats it (native/scandir.c; test/engine/dir-scan.test.ts holds them equal).
    const line = encodeEntry(e);
    const key = Buffer.from(line.slice(line.indexOf('"t":'), line.indexOf(',"h":')));
    assert.ok(b.plainFileLine(name, key, e.hash!, archiveMember(e.archive), e.offset));
  });
  for (const odd of [Buffer.from('quote"'), Buffer.from('back\\slash'), Buffer.from('new\nline'), Buffer.from('caf\u00e9'), Buffer.from([0x6e, 0xe9])]) {
    assert.equal(b.plainFileLine(odd, Buffer.from('"t":"f"'), '0123456789abcdef', archiveMember('x'), 0), false, `${JSON.stringify(odd.toString('latin1'))} is not plain`);
  }
  sealAndPublish(a, viaEntry);
  sealAndPublish(b, viaKey);
  assert.equal(fs.readFileSync(viaKey, 'utf8'), fs.readFileSync(viaEntry, 'utf8'));
});
