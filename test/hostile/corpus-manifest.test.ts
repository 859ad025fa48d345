/**
 * Issue 14, the corpus: every field of a manifest line made hostile in the
 * newest backup (D), the checksum trailer and the sidecar's manifestXxh64
 * rewritten as an attacker would, so the edit gets past the checksum gate.
 * ls, restore (with and without --force) and verify must refuse it in one
 * line with exit 1 and change nothing outside --to and the medium's folder.
 * Quick verify checks checksums and chains, which the attacker fixed: it may
 * pass (0) or look deeper (1).
 */
import { after, describe, test } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { assertCase, removeScratch, type Cmd, type HostileCase } from './case-runner.js';
import type { World } from './hostile-media.js';
import { editManifest, findDir, findEntry, manifestFile, manifestLines, type Json } from './media-edit.js';

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
    setup: (w) => { const f = manifestFile(w, w.ids[3]); fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace('"shadow"', '"shadox"')); },
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

describe('hostile media: manifest lines', { concurrency: 2 }, () => {
  after(removeScratch);
  for (const c of cases) test(c.name, () => assertCase(c));
});
