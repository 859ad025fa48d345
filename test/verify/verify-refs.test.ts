/**
 * Issue 14: verify says what restore would refuse. A later manifest whose
 * entries point into an older archive of the chain but disagree with the
 * member there (content hash, type, a data offset past the end) is blamed
 * by full verify, by manifest and path; a manifest of the tar-slip shape (a
 * symlink with entries below it, a name with "/") is blamed quick and full.
 * Each edit keeps every checksum right, as an attacker with write access
 * to the medium would.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Sidecar } from '../../src/medium/sidecar.js';
import { editManifest, makeChain, manifestPath, showResult, verifyBounded, type Chain, type Json } from './verify-fixtures.js';

function entryOf(objs: Json[], dir: string, name: string): Json {
  const start = objs.findIndex((o) => o.d === dir);
  for (let i = start + 1; i < objs.length && objs[i].d === undefined; i++) if (objs[i].n === name) return objs[i];
  throw new Error(`no ${dir}/${name} in the manifest`);
}

async function blamed(c: Chain, b: Sidecar, depth: 'quick' | 'full', what: RegExp, member?: string): Promise<void> {
  const r = await verifyBounded(c, depth);
  const file = manifestPath(c, b);
  assert.equal(r.problems.length, 1, `${depth}: one problem expected\n${showResult(r)}`);
  assert.equal(r.problems[0]!.file, file, showResult(r));
  assert.match(r.problems[0]!.what, what, showResult(r));
  if (member !== undefined) assert.equal(r.problems[0]!.member, member, showResult(r));
}

async function clean(c: Chain, depth: 'quick' | 'full'): Promise<void> {
  const r = await verifyBounded(c, depth);
  assert.equal(r.problems.length, 0, showResult(r));
}

test('entries that point into an older archive are checked against its members (full verify)', { timeout: 120_000 }, async (t) => {
  const c = await makeChain(t, 'none');
  const [full, incr1, incr2] = c.backups as [Sidecar, Sidecar, Sidecar];
  await clean(c, 'full');

  const cases: Array<[string, Sidecar, (objs: Json[]) => void, RegExp, string]> = [
    ['content hash', incr2, (o) => { const e = entryOf(o, 'etc', 'conf1'); assert.equal(e.a, full.id); e.h = '0123456789abcdef'; }, /content xxh64 is \w+, the manifest says 0123456789abcdef/, 'etc/conf1'],
    ['a symlink where the member is a file', incr2, (o) => { const e = entryOf(o, 'etc', 'conf2'); e.t = 'l'; e.l = '/etc/shadow'; delete e.h; }, /member there is a file, the manifest says symlink/, 'etc/conf2'],
    ['a char device where the member is a file', incr2, (o) => { const e = entryOf(o, 'etc', 'conf3'); e.a = full.id; e.o = entryOf(o, 'etc', 'conf4').o; e.t = 'c'; e.r = [1, 3]; delete e.h; }, /member there is a file, the manifest says char/, 'etc/conf3'],
    ['a size that differs', incr1, (o) => { const e = entryOf(o, 'etc', 'conf9'); e.s += 1; }, /is \d+ bytes, the manifest says \d+/, 'etc/conf9'],
    ['an offset where no member begins', incr1, (o) => { entryOf(o, 'etc', 'conf8').o = 99_999_744; }, /the archive has no member there/, 'etc/conf8'],
    ['a data offset past the end', incr1, (o) => { const e = entryOf(o, 'other', 'linked-b'); assert.ok(e.do !== undefined && e.a === full.id); e.do = 1e12; }, /no member there/, 'other/linked-b'],
  ];
  for (const [name, b, edit, what, member] of cases) {
    const undo = editManifest(c, b, edit);
    try {
      await clean(c, 'quick'); // checksums and shape are right: only the content check can see it
      await blamed(c, b, 'full', new RegExp(`1 entry does not match the member of an older archive.*${what.source}`), member);
    } catch (e) {
      (e as Error).message = `${name}: ${(e as Error).message}`;
      throw e;
    } finally {
      undo();
    }
  }
  await clean(c, 'full');
});

test('a manifest restore refuses for its shape (entries below a symlink) is damaged, quick and full', { timeout: 120_000 }, async (t) => {
  const c = await makeChain(t, 'none');
  const newest = c.backups[2]!;
  const cases: Array<[string, (objs: Json[]) => void, RegExp]> = [
    // A symlink "data" in the root block, beside the directory block "data".
    ['symlink beside a directory block', (o) => { const root = o.findIndex((x: Json) => x.d === ''); o.splice(root + 1, 0, { ...entryOf(o, 'data', 'link'), n: 'data', l: '/tmp' }); }, /damaged or hostile: it lists data twice \(as symlink and as dir\).*restore refuses it/],
    ['a name with a slash', (o) => { entryOf(o, 'etc', 'conf1').n = 'deep/x'; }, /unsafe (name|path) "(etc\/)?deep\/x"/], // the manifest reader may refuse it first
  ];
  for (const [name, edit, what] of cases) {
    const undo = editManifest(c, newest, edit);
    try {
      for (const depth of ['quick', 'full'] as const) {
        const r = await verifyBounded(c, depth);
        // Full verify also says the archive's content could not be checked against it.
        const mine = r.problems.find((p) => p.file === manifestPath(c, newest));
        assert.ok(mine, `${depth}: the manifest is blamed\n${showResult(r)}`);
        assert.match(mine.what, what, showResult(r));
        assert.ok(r.problems.every((p) => p.file === mine.file || /content not checked/.test(p.what)), showResult(r));
      }
    } catch (e) {
      (e as Error).message = `${name}: ${(e as Error).message}`;
      throw e;
    } finally {
      undo();
    }
  }
});
