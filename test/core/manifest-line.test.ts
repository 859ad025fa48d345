// encodeEntry builds manifest lines as text for speed; they must stay byte-identical to the JSON of
// entryToJson (the format's definition) and decode back to the same entry.
import test from 'node:test';
import assert from 'node:assert/strict';
import { decodeDirLine, decodeEntry, encodeDirLine, encodeEntry, entryToJson, sliceEntryLine, type ManifestEntry } from '../../src/core/manifest.js';
import { entries } from '../helpers/manifest-entries.js';

test('encodeEntry is byte-identical to JSON.stringify(entryToJson(e)) and decodes back', () => {
  for (const e of entries()) {
    const line = encodeEntry(e);
    assert.equal(line, JSON.stringify(entryToJson(e)), `line of ${JSON.stringify(e.name.toString('latin1'))}`);
    if (e.name.length === 0) {
      // The line format carries it, but no child entry is nameless: reading one back is refused.
      assert.throws(() => decodeEntry(line), /refusing unsafe path/);
      continue;
    }
    const back = decodeEntry(line);
    assert.deepEqual(back.name, e.name);
    assert.equal(back.mtimeNs, e.mtimeNs);
    const bytes = Buffer.from(line);
    const stored = sliceEntryLine(bytes, 0, bytes.length)!;
    assert.deepEqual(stored.name, e.name, 'the byte slicer finds the same name');
    assert.equal(stored.unread, e.unread === true);
  }
});

test('sliceEntryLine finds name, key and flags of lines inside a larger buffer, and refuses malformed ones', () => {
  const lines = entries().map((e) => encodeEntry(e));
  const data = Buffer.from(['{"d":"","t":"d"}', ...lines, '{"end":1,"xxh64":"0"}'].join('\n') + '\n');
  let start = data.indexOf(0x0a) + 1;
  for (const [i, e] of entries().entries()) {
    const end = data.indexOf(0x0a, start);
    const stored = sliceEntryLine(data, start, end)!;
    assert.ok(stored, `line ${i}`);
    assert.deepEqual(stored.name, e.name);
    assert.equal(stored.unread, e.unread === true);
    const key = data.toString('utf8', stored.keyStart, stored.keyEnd);
    assert.equal(key, `"t":"${lines[i]!.split('"t":"')[1]!.split('"')[0]}","m":${e.mode},"u":${e.uid},"g":${e.gid},"s":${e.size},"mt":"${e.mtimeNs}","ct":"${e.ctimeNs}","i":"${e.ino}"`);
    assert.deepEqual(stored.line.toString(), lines[i]);
    start = end + 1;
  }
  assert.equal(sliceEntryLine(data, 0, data.indexOf(0x0a)), undefined, 'a directory line is not a child entry');
  const end = data.length - 1;
  assert.equal(sliceEntryLine(data, data.lastIndexOf(0x0a, end - 1) + 1, end), undefined, 'nor the trailer');
  const noType = Buffer.from('{"n":"x","m":1}\n{"n":"y","t":"f","i":"1"}');
  assert.throws(() => sliceEntryLine(noType, 0, noType.indexOf(0x0a)), /without a type/);
  const noInode = Buffer.from('{"n":"x","t":"f","m":1}\n{"n":"y","t":"f","i":"1"}');
  assert.throws(() => sliceEntryLine(noInode, 0, noInode.indexOf(0x0a)), /without an inode/);
});

test('encodeDirLine is byte-identical to the JSON of the entry without its name and with "d" (or "db") last', () => {
  const dirs = ['', 'etc', 'home/alice', 'quote"dir', 'new\nline'].map((d) => Buffer.from(d));
  dirs.push(Buffer.from([0x6e, 0xe9])); // not UTF-8: "db", base64
  for (const e of entries()) {
    for (const dir of dirs) {
      const self: ManifestEntry = { ...e, type: 'dir', size: 0, hash: undefined, link: undefined, rdev: undefined };
      const o = entryToJson(self);
      delete o.n;
      delete o.nb;
      const s = dir.toString('utf8');
      if (Buffer.byteLength(s) === dir.length && !s.includes('\ufffd')) o.d = s;
      else o.db = dir.toString('base64');
      assert.equal(encodeDirLine(dir, self), JSON.stringify(o));
      const back = decodeDirLine(JSON.parse(encodeDirLine(dir, self)) as Record<string, unknown>)!;
      assert.deepEqual(back.dir, dir);
    }
  }
});
