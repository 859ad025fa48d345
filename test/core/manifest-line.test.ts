// encodeEntry builds manifest lines as text for speed; they must stay byte-identical to the JSON of
// entryToJson (the format's definition) and decode back to the same entry.
import test from 'node:test';
import assert from 'node:assert/strict';
import { decodeEntry, encodeEntry, entryToJson, sliceEntryLine, type ManifestEntry } from '../../src/core/manifest.js';

function entries(): ManifestEntry[] {
  const base: ManifestEntry = {
    name: Buffer.from('passwd'), type: 'file', mode: 0o644, uid: 0, gid: 0, size: 1234,
    mtimeNs: 1795754920715386673n, ctimeNs: 1795754920715386673n, ino: '5308438', nlink: 1,
    hash: '0123456789abcdef', archive: '20261127T020000Z', offset: 1536,
  };
  const names = [
    'plain', 'with space', 'quote"and\\backslash', 'new\nline', 'tab\there', 'é-utf8', '日本語', '\u0001ctl', '',
  ].map((n) => Buffer.from(n));
  names.push(Buffer.from([0x6e, 0xe9, 0xff])); // not UTF-8: base64
  names.push(Buffer.from('\ufffd literal replacement char'));
  const out: ManifestEntry[] = names.map((name) => ({ ...base, name }));
  out.push({ ...base, type: 'symlink', size: 0, hash: undefined, link: Buffer.from('../target "x"') });
  out.push({ ...base, type: 'symlink', size: 0, hash: undefined, link: Buffer.from([0xc3, 0x28]) });
  out.push({ ...base, type: 'char', size: 0, hash: undefined, rdev: [1, 3] });
  out.push({ ...base, nlink: 3, dataOffset: 512 });
  out.push({ ...base, sparse: true, unread: true, mtimeNs: -123456789n, ctimeNs: 0n, uid: 4294967294, gid: 65534 });
  out.push({ ...base, type: 'fifo', size: 0, hash: undefined, mode: 0o7777 });
  return out;
}

test('encodeEntry is byte-identical to JSON.stringify(entryToJson(e)) and decodes back', () => {
  for (const e of entries()) {
    const line = encodeEntry(e);
    assert.equal(line, JSON.stringify(entryToJson(e)), `line of ${JSON.stringify(e.name.toString('latin1'))}`);
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
