// native/manifest-merge.c locates a manifest's lines itself (manifestIndex): it must find names,
// keys and flags where core/manifest.ts's sliceEntryLine (the reference) finds them, for every kind of
// line the format has (escaped and base64 names, bad entries, directory lines, header and trailer).
import test from 'node:test';
import assert from 'node:assert/strict';
import { encodeDirLine, encodeEntry, sliceEntryLine } from '../../src/core/manifest.js';
import { manifestIndex } from '../../src/native/xbfs.js';
import { INDEX_STRIDE } from '../../src/medium/manifest-file.js';
import { entries } from '../helpers/manifest-entries.js';

test('the native line index (manifestIndex) locates names, keys and flags exactly as sliceEntryLine does', () => {
  const lines = entries().map((e) => encodeEntry(e));
  const dirLine = encodeDirLine(Buffer.from('quote"dir'), { ...entries()[0]!, type: 'dir', size: 0, hash: undefined });
  const data = Buffer.from(['{"xenbackup":"manifest","version":1}', dirLine, ...lines, '{"end":1,"xxh64":"0"}'].join('\n') + '\n');
  const index = manifestIndex(data);
  assert.equal(index.length / INDEX_STRIDE, lines.length + 3);
  const row = (i: number): number[] => Array.from(index.subarray(i * INDEX_STRIDE, (i + 1) * INDEX_STRIDE));
  assert.equal(row(0)[2]! & 15, 2, 'the header');
  assert.equal(row(1)[2]! & 15, 1, 'a directory line');
  assert.equal(JSON.parse(`"${data.toString('utf8', row(1)[3]!, row(1)[4]!)}"`), 'quote"dir');
  assert.equal(row(lines.length + 2)[2]! & 15, 2, 'the trailer');
  for (let i = 0; i < lines.length; i++) {
    const [start, end, flags, , , keyStart, keyEnd] = row(i + 2);
    const stored = sliceEntryLine(data, start!, end!)!;
    assert.equal(flags! & 15, 0, `line ${i} is a child entry`);
    assert.equal(((flags! >> 8) & 1) === 1, stored.unread, `bad flag of line ${i}`);
    assert.deepEqual([keyStart, keyEnd], [stored.keyStart, stored.keyEnd], `key of line ${i}`);
  }
  const odd = Buffer.from('{"n":"x","m":1}\n');
  assert.equal(manifestIndex(odd)[2]! & 15, 3, 'a line without type and inode is neither entry nor directory');
});
