/**
 * Issue 14, the corpus: every field of a manifest line made hostile in the
 * newest backup (D), the checksum trailer and the sidecar's manifestXxh64
 * rewritten as an attacker would, so the edit gets past the checksum gate.
 * ls, restore (with and without --force) and verify must refuse it in one
 * line with exit 1 and change nothing outside --to and the medium's folder.
 * Quick verify checks checksums and chains, which the attacker fixed: it may
 * pass (0) or look deeper (1). D's manifest is version 2: a case edits its
 * lines as version 1's and they are written back as frames (manifest-bytes.ts);
 * version 2's own parts (references, index, trailer) have cases of their own.
 */
import { after, describe, test } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { assertCase, removeScratch, type Cmd, type HostileCase } from './case-runner.js';
import type { World } from './hostile-media.js';
import { encodeRefLine, type ChildRef } from '../../src/core/manifest-v2.js';
import { MAGIC_BYTES, TRAILER_BYTES } from '../../src/medium/manifest-container.js';
import { childRef, editManifest, findDir, findEntry, indexPlace, manifestFile, manifestLines, writeFramedManifest, writeManifestBytes, type Json } from './media-edit.js';
import { framesByBlock, isFramedFile, manifestBytes, type FramedTamper } from './manifest-bytes.js';

const DAMAGE: Partial<Record<Cmd, number[]>> = {
  ls: [1],
  'verify-quick': [0, 1],
  verify: [1],
  restore: [1],
  'restore-force': [1],
};

/**
 * Damage that only shows against another file (the archive member, the other
 * sidecars): ls reads the manifest alone and may list it (0) or refuse (1);
 * verify and restore, which read the archives, must refuse it.
 */
const CROSS_FILE: Partial<Record<Cmd, number[]>> = { ...DAMAGE, ls: [0, 1] };

function lineCase(name: string, edit: (objs: Json[], w: World) => Json[] | void, expect = DAMAGE): HostileCase {
  return {
    name: `manifest of D: ${name}`,
    setup: (w) => editManifest(w, w.ids[3], (objs) => edit(objs, w)),
    expect,
    // The report may name D's manifest or D's archive (where the member disagrees): a file of backup D.
    names: (w) => `${w.ids[3]}.incr.`,
    nameIn: ['verify'],
    lsPath: 'etc',
  };
}

/** Edits the line of etc/shadow (a file of one link whose version lives in C's archive; etc/passwd is a hardlink's second name). */
const shadowLine = (edit: (o: Json, w: World) => void) => (objs: Json[], w: World): void => edit(findEntry(objs, 'etc', 'shadow'), w);
const motd = (edit: (o: Json, w: World) => void) => (objs: Json[], w: World): void => edit(findEntry(objs, 'etc', 'motd'), w);

const cases: HostileCase[] = [
  lineCase('a name "../../outside/victim"', shadowLine((o) => { o.n = '../../outside/victim'; })),
  lineCase('a name ".."', shadowLine((o) => { o.n = '..'; })),
  lineCase('a name "."', shadowLine((o) => { o.n = '.'; })),
  lineCase('a name "a/b"', shadowLine((o) => { o.n = 'a/b'; })),
  lineCase('an empty name', shadowLine((o) => { o.n = ''; })),
  lineCase('a name with a NUL', shadowLine((o) => { o.n = 'pa\u0000sswd'; })),
  lineCase('a base64 name that decodes to "../x"', shadowLine((o) => { delete o.n; o.nb = Buffer.from('../x').toString('base64'); })),
  lineCase('a directory block "../outside"', (objs) => { findDir(objs, 'etc').d = '../outside'; }),
  lineCase('a directory block with an absolute path', (objs, w) => { findDir(objs, 'etc').d = path.join(w.outside, 'etc'); }),
  lineCase('a base64 directory block that decodes to "../../x"', (objs) => { const o = findDir(objs, 'etc'); delete o.d; o.db = Buffer.from('../../x').toString('base64'); }),
  lineCase('mt "zz"', shadowLine((o) => { o.mt = 'zz'; })),
  lineCase('mt a number beyond 2^64', shadowLine((o) => { o.mt = '99999999999999999999999999'; })),
  lineCase('t "q" (unknown type)', shadowLine((o) => { o.t = 'q'; })),
  lineCase('t missing', shadowLine((o) => { delete o.t; })),
  lineCase('offset past the end of the archive', shadowLine((o) => { o.o = 99_999_999_999; })),
  lineCase('offset negative', shadowLine((o) => { o.o = -512; })),
  lineCase('offset not on a block boundary', shadowLine((o) => { o.o = 700; })),
  lineCase('offset a string', shadowLine((o) => { o.o = 'x'; })),
  lineCase('size negative', shadowLine((o) => { o.s = -5; })),
  lineCase('size 2^60', shadowLine((o) => { o.s = 2 ** 60; })),
  lineCase('mode 0o777777 and uid -1', shadowLine((o) => { o.m = 0o777777; o.u = -1; })),
  lineCase('mode a string', shadowLine((o) => { o.m = '0777'; })),
  lineCase('hash wrong (a different content)', shadowLine((o) => { o.h = '0123456789abcdef'; }), CROSS_FILE),
  lineCase('hash not hex', shadowLine((o) => { o.h = '../../etc/passwd'; })),
  lineCase('archive id of another backup (not in the chain)', shadowLine((o, w) => { o.a = w.ids[0]; }), CROSS_FILE),
  lineCase('archive id of a later backup', motd((o) => { o.a = '20991231T235959Z'; }), CROSS_FILE),
  lineCase('archive id a path "../../../../outside/victim"', shadowLine((o) => { o.a = '../../../../outside/victim'; })),
  lineCase('archive id an absolute path', shadowLine((o, w) => { o.a = path.join(w.outside, 'victim'); })),
  lineCase('the type says directory for a file (entries below a file)', shadowLine((o) => { o.t = 'd'; })),
  lineCase('a file line says symlink to an outside path (tar member is a file)', shadowLine((o, w) => { o.t = 'l'; o.l = path.join(w.outside, 'etc/passwd'); delete o.h; }), CROSS_FILE),
  lineCase('a char device line whose member is a file', shadowLine((o) => { o.t = 'c'; o.r = [1, 3]; delete o.h; }), CROSS_FILE),
  lineCase('rdev with huge numbers', (objs) => { const o = findEntry(objs, 'etc', 'shadow'); o.t = 'b'; o.r = [2 ** 40, -1]; delete o.h; }),
  lineCase('dataOffset (hardlink data) past the end', (objs) => { findEntry(objs, 'etc', 'shadow').do = 1e12; }, CROSS_FILE),
  lineCase('nlink a string', shadowLine((o) => { o.k = 'two'; })),
  lineCase('header names another volume and backup', (objs) => { objs[0].volume = 'x/y'; objs[0].backup = '20200101T000000Z'; }),
  lineCase('header is not an object', (objs) => { objs[0] = '[1,2,3]'; }),
  lineCase('a line that is not JSON', (objs) => { objs.splice(3, 0, '{"n":"x","t":'); }),
  lineCase('an entry before any directory block', (objs) => { const e = findEntry(objs, 'etc', 'shadow'); objs.splice(1, 0, { ...e }); }),
  lineCase('the same file listed twice', (objs) => { const e = findEntry(objs, 'etc', 'shadow'); const at = objs.indexOf(e); objs.splice(at, 0, { ...e }); }),
  lineCase('blocks out of walk order', (objs) => { const i = objs.indexOf(findDir(objs, 'etc')); const j = objs.indexOf(findDir(objs, 'd')); [objs[i], objs[j]] = [objs[j], objs[i]]; }),
  {
    name: 'manifest of D: checksum wrong (edited without fixing the trailer)',
    // The lines edited and written back whole (frames re-encoded), the old trailer hash and the sidecar's kept.
    setup: (w) => {
      const f = manifestFile(w, w.ids[3]);
      const old = fs.readFileSync(f);
      const lines = manifestLines(w, w.ids[3]).map((l) => l.replace('"shadow"', '"shadox"'));
      fs.writeFileSync(f, isFramedFile(f) ? manifestBytes(lines, true, { trailer: { xxh64: old.subarray(-8).toString('hex') } }) : old.toString('utf8').replace('"shadow"', '"shadox"'));
    },
    expect: { ...DAMAGE, 'verify-quick': [1] },
    names: (w) => path.basename(manifestFile(w, w.ids[3])),
    lsPath: 'etc',
  },
  {
    name: 'manifest of D: truncated (no trailer)',
    setup: (w) => { const f = manifestFile(w, w.ids[3]); fs.writeFileSync(f, manifestLines(w, w.ids[3]).slice(0, 4).join('\n')); },
    expect: { ...DAMAGE, 'verify-quick': [1] },
    names: (w) => path.basename(manifestFile(w, w.ids[3])),
    lsPath: 'etc',
  },
];

/**
 * Version 2's own parts (docs/design/manifest-v2.md): the reference lines
 * that stand for a block's child lines in an earlier manifest of the chain,
 * the index's frame records and the trailer. D's block d/e is a reference to
 * C's (D's own lines there are the very bytes C holds); a case makes it, or
 * the index, or the trailer, lie, with the hashes fixed.
 */
const D_DIR = 'd/e';

/** D with block d/e's child lines replaced by the reference line `ref(w)` (a ChildRef, or a line as it is). */
function refCase(name: string, ref: (w: World) => ChildRef | string, expect: Partial<Record<Cmd, number[]>> = DAMAGE): HostileCase {
  return {
    name: `manifest of D: ${name}`,
    setup: (w) => editManifest(w, w.ids[3], (objs) => {
      const at = objs.indexOf(findDir(objs, D_DIR));
      let end = at + 1;
      while (end < objs.length && typeof objs[end].d !== 'string' && typeof objs[end].db !== 'string') end++;
      const r = ref(w);
      objs.splice(at + 1, end - at - 1, typeof r === 'string' ? r : encodeRefLine(r));
    }),
    expect,
    names: (w) => `${w.ids[3]}.incr.`,
    nameIn: ['verify'],
    lsPath: D_DIR,
  };
}

/** C's honest reference for block d/e, with `edit` applied. */
const cRef = (edit: (r: ChildRef, w: World, dirLineAt: number) => void = () => {}) => (w: World): ChildRef => {
  const { ref, dirLineAt } = childRef(w, w.ids[2], D_DIR);
  edit(ref, w, dirLineAt);
  return ref;
};

/** D written as one frame per block, the index or the trailer edited. */
function indexCase(name: string, tamper: (w: World, frames: string[][]) => FramedTamper, extra: Partial<HostileCase> = {}): HostileCase {
  return {
    name: `manifest of D: ${name}`,
    setup: (w) => {
      const [header, ...data] = manifestLines(w, w.ids[3]);
      const frames = framesByBlock(data);
      writeFramedManifest(w, w.ids[3], header!, frames, tamper(w, frames));
    },
    expect: DAMAGE,
    names: (w) => `${w.ids[3]}.incr.`,
    nameIn: ['verify'],
    lsPath: 'etc',
    ...extra,
  };
}

const ALL_GOOD: Partial<Record<Cmd, number[]>> = { ls: [0], 'verify-quick': [0], verify: [0], restore: [0], 'restore-force': [0] };

const v2Cases: HostileCase[] = [
  // The control: the reference every case below bends, honest. It reads, and so every refusal below is the lie's.
  refCase('block d/e a reference to the same lines in C (honest, the control)', cRef(), ALL_GOOD),
  indexCase('one frame per block (honest, the control)', () => ({}), { expect: ALL_GOOD }),
  refCase('a reference to a backup outside the chain (A, same bytes as C has them)', (w) => childRef(w, w.ids[0], D_DIR).ref),
  refCase('a reference to a backup outside the chain (B, an incremental of the other chain)', (w) => childRef(w, w.ids[1], D_DIR).ref),
  refCase('a reference to a later backup', cRef((r) => { r.holder = '20991231T235959Z'; })),
  refCase('a reference to its own backup (a loop)', cRef((r, w) => { r.holder = w.ids[3]; })),
  refCase('a reference whose bytes start inside a line', cRef((r) => { r.from += 1; })),
  refCase('a reference whose bytes end inside a line', cRef((r) => { r.to -= 2; })),
  refCase('a reference that takes in the directory line before the children', cRef((r, _w, dirLineAt) => { r.from = dirLineAt; r.lines += 1; })),
  refCase('a reference that says more lines than its bytes hold', cRef((r) => { r.lines += 1; })),
  refCase('a reference that runs on into the next block', cRef((r) => { r.lines += 1; r.to = r.raw; })),
  refCase('a reference whose end is beyond the frame', cRef((r) => { r.to = r.raw + 100; })),
  refCase('a reference whose start and end are beyond the frame (and a frame size to match)', cRef((r) => { r.from = r.raw + 10; r.to = r.raw + 100; r.raw += 200; })),
  refCase('a reference that says the frame is longer than it is', cRef((r) => { r.len += 100; })),
  refCase('a reference to an offset where no frame starts', cRef((r) => { r.at += 1; })),
  refCase('a reference into the holder\'s index frame', cRef((r, w) => { const x = indexPlace(w, w.ids[2]); r.at = x.at; r.len = x.len; r.raw = x.raw; r.from = 0; r.to = x.raw; })),
  refCase('a reference line with fields of the wrong type', () => '{"ref":"../../outside/victim","at":"20","len":-1,"raw":1e99,"from":0,"to":1,"lines":1}'),
  indexCase('frames out of walk order', (_w, frames) => { [frames[1], frames[2]] = [frames[2]!, frames[1]!]; return {}; }),
  indexCase('a frame record naming another first block than its frame\'s', () => ({ records: (rs) => { rs[1]!.firstDir = Buffer.from('d/a'); } })),
  indexCase('a frame record pointing outside the file', () => ({ records: (rs) => { rs[3]!.at = 1e12; } })),
  indexCase('a frame record longer than the file', () => ({ records: (rs) => { rs[3]!.len = 1 << 29; } })),
  indexCase('a frame record with frames overlapping', () => ({ records: (rs) => { rs[2]!.at -= 8; } })),
  indexCase('a frame record with a size larger than its frame holds', () => ({ records: (rs) => { rs[0]!.raw += 1000; } })),
  indexCase('a frame record counting more blocks than its frame has', () => ({ records: (rs) => { rs[0]!.blocks += 1; } })),
  indexCase('a trailer placing the index outside the file', () => ({ trailer: { indexAt: 1e12 } })),
  indexCase('a trailer placing the index before the magic', () => ({ trailer: { indexAt: 0 } })),
  indexCase('a trailer with an index longer than the file', () => ({ trailer: { indexLen: 1 << 30 } })),
  indexCase('a trailer with an index size beyond any frame', () => ({ trailer: { indexRaw: 2 ** 40 } })),
  indexCase('a trailer placing the index over the data frames', () => ({ trailer: (t) => ({ indexAt: MAGIC_BYTES, indexLen: t.indexAt + t.indexLen - MAGIC_BYTES }) })),
  {
    name: 'manifest of D: truncated in its frames (the sidecar\'s hash left as it was)',
    setup: (w) => { const f = manifestFile(w, w.ids[3]); fs.truncateSync(f, Math.floor(fs.statSync(f).size / 2)); },
    expect: { ...DAMAGE, 'verify-quick': [1] },
    names: (w) => path.basename(manifestFile(w, w.ids[3])),
    lsPath: 'etc',
  },
  {
    name: 'manifest of D: cut after its index, no trailer (the sidecar\'s hash fixed)',
    setup: (w) => { const f = manifestFile(w, w.ids[3]); writeManifestBytes(w, w.ids[3], fs.readFileSync(f).subarray(0, -TRAILER_BYTES)); },
    expect: DAMAGE,
    names: (w) => `${w.ids[3]}.incr.`,
    nameIn: ['verify'],
    lsPath: 'etc',
  },
];

describe('hostile media: manifest lines', { concurrency: 2 }, () => {
  after(removeScratch);
  for (const c of [...cases, ...v2Cases]) test(c.name, () => assertCase(c));
});
