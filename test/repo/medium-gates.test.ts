// The gates for what is read from the medium: one sidecar field at a time made hostile must be
// refused by parseSidecar with a message naming the file, and names that would become paths
// (host, volume, backup id) are refused by core/names.ts with one rule for every command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSidecar } from '../../src/medium/sidecar.js';
import { MediumDamage } from '../../src/medium/medium-error.js';
import { checkHostName, isBackupId, NameError, parseVolumeName, timeOfId } from '../../src/core/names.js';
import { backupFileNames } from '../../src/medium/layout.js';
import { decodeDirLine, decodeEntry, decodeHeader, ManifestFormatError, parseLine } from '../../src/core/manifest.js';

const ID = '20261201T010203Z';
const INCR = '20261202T010203Z';

function good(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    format: 'xenbackup-backup', version: 1, volume: 'web1/root', host: 'dom0', id: ID, kind: 'full', base: null, chain: ID,
    engine: 'tar', compression: 'zstd', archive: `${ID}.full.tar.zst`, manifest: `${ID}.full.manifest`,
    startedAt: '2026-12-01T01:02:03.000Z', finishedAt: '2026-12-01T01:02:09.000Z', status: 'complete',
    stats: { entries: 3, stored: 3, unchanged: 0, deleted: 0, filesRead: 1, bytesRead: 10, sourceBytes: 10 },
    tarBytes: 10240, archiveBytes: 300, archiveXxh64: '0123456789abcdef', manifestXxh64: 'fedcba9876543210',
    frames: [[0, 0]], warnings: [], unreadable: [], ...over,
  };
}

const FILE = '/medium/dom0/web1/root/x.json';

test('a sidecar as xenbackup writes it passes, for every engine and compression', () => {
  assert.equal(parseSidecar(JSON.stringify(good()), FILE, `${ID}.full.json`).archive, `${ID}.full.tar.zst`);
  const incr = good({ id: INCR, kind: 'incremental', base: ID, chain: ID, archive: `${INCR}.incr.tar.gz`, manifest: `${INCR}.incr.manifest`, compression: 'gzip' });
  assert.equal(parseSidecar(JSON.stringify(incr), FILE, `${INCR}.incr.json`).base, ID);
  // parseSidecar now checks a raw sidecar's image section too (aae868a): a raw sidecar as xenbackup writes it has one.
  const rawInfo = { imageBytes: 4 << 20, chunkSize: 1 << 20, chunks: 4, storedChunks: 1, zeroChunks: 3, unchangedChunks: 0, imageXxh64: '0123456789abcdef', device: '/dev/vg/disk' };
  const raw = good({ engine: 'raw', archive: `${ID}.full.raw.zst`, manifest: `${ID}.full.raw.manifest`, frames: [], raw: rawInfo });
  assert.equal(parseSidecar(JSON.stringify(raw), FILE, `${ID}.full.raw.json`).engine, 'raw');
  const tree = good({ engine: 'rsync', compression: 'none', archive: `${ID}.tree`, manifest: `${ID}.tree.manifest`, archiveXxh64: '', frames: [] });
  assert.equal(parseSidecar(JSON.stringify(tree), FILE, `${ID}.tree.json`).engine, 'rsync');
  // A sidecar of an earlier version has no engine: tar, and the parsed sidecar says so (ls and restore load the engine it names).
  const { engine: _, ...noEngine } = good();
  assert.equal(parseSidecar(JSON.stringify(noEngine), FILE, `${ID}.full.json`).engine, 'tar');
  assert.deepEqual(backupFileNames(ID, 'incremental', 'tar', 'none'), { archive: `${ID}.incr.tar`, manifest: `${ID}.incr.manifest`, sidecar: `${ID}.incr.json` });
});

const HOSTILE: Array<[string, Record<string, unknown> | string]> = [
  ['archive ../', { archive: '../../../etc' }],
  ['archive absolute', { archive: '/etc/passwd' }],
  ['archive another backup\'s', { archive: '20260101T000000Z.full.tar.zst' }],
  ['manifest ../', { manifest: '../../../../etc/passwd' }],
  ['manifest with a slash', { manifest: `x/${ID}.full.manifest` }],
  ['id garbage', { id: 'garbage' }],
  ['id a path', { id: '../20261201T010203Z' }],
  ['id month 13', { id: '20261301T010203Z' }],
  ['kind unknown', { kind: 'differential' }],
  ['engine unknown', { engine: 'cpio' }],
  ['engine null', { engine: null }],
  ['compression unknown', { compression: 'xz' }],
  ['stats null', { stats: null }],
  ['stats.entries negative', { stats: { ...(good().stats as object), entries: -1 } }],
  ['tarBytes a string', { tarBytes: '10240' }],
  ['archiveBytes huge', { archiveBytes: 2 ** 60 }],
  ['frames past the end', { frames: [[0, 0], [400, 512]] }],
  ['frames not increasing', { frames: [[0, 0], [0, 0]] }],
  ['frames not pairs', { frames: [[0]] }],
  ['base on a full', { base: ID }],
  ['chain of another full', { chain: '20260101T000000Z' }],
  ['host a path', { host: '../x' }],
  ['volume a path', { volume: '../../x' }],
  ['archiveXxh64 not hex', { archiveXxh64: 'zz' }],
  ['warnings not texts', { warnings: [1] }],
  ['status unknown', { status: 'ok' }],
  ['startedAt not a time', { startedAt: 'yesterday' }],
  ['not JSON', '{"format":'],
  ['JSON null', 'null'],
  ['an array', '[]'],
];

for (const [what, over] of HOSTILE) {
  test(`a sidecar with ${what} is refused, naming the file`, () => {
    const text = typeof over === 'string' ? over : JSON.stringify(good(over));
    assert.throws(() => parseSidecar(text, FILE, `${ID}.full.json`), (e: unknown) => e instanceof MediumDamage && e.message.startsWith(`${FILE}: `));
  });
}

test('an incremental must build on an earlier backup of its chain', () => {
  const incr = (over: Record<string, unknown>) => JSON.stringify(good({ id: INCR, kind: 'incremental', base: ID, chain: ID, archive: `${INCR}.incr.tar.zst`, manifest: `${INCR}.incr.manifest`, ...over }));
  assert.throws(() => parseSidecar(incr({ base: null }), FILE), MediumDamage);
  assert.throws(() => parseSidecar(incr({ base: INCR }), FILE), MediumDamage, 'on itself');
  assert.throws(() => parseSidecar(incr({ chain: '20261203T000000Z' }), FILE), MediumDamage, 'a chain that starts later');
  assert.throws(() => parseSidecar(incr({}), FILE, `${ID}.full.json`), MediumDamage, 'named for another backup');
});

test('names that become paths: one rule per kind, for every command', () => {
  for (const bad of ['../../x', '/abs', '..', '', '.', 'a\nb', 'a/b', '-x']) assert.throws(() => checkHostName(bad), NameError, JSON.stringify(bad));
  assert.equal(checkHostName('dom0.example-1_a'), 'dom0.example-1_a');
  for (const bad of ['../x', 'a/..', 'a', 'a/b/c', '/a/b', 'a/', 'a b/c', 'a/\tb']) assert.throws(() => parseVolumeName(bad), NameError, JSON.stringify(bad));
  assert.deepEqual(parseVolumeName('web1/root'), { domU: 'web1', part: 'root' });
  assert.deepEqual(parseVolumeName('wéb@1/var:log'), { domU: 'wéb@1', part: 'var:log' }, 'what the volume table accepts');
  for (const bad of ['20261301T000000Z', '20261201T250000Z', '2026120T000000Z', '20261201T000000Z\n', 'x']) assert.equal(isBackupId(bad), false, bad);
  assert.throws(() => timeOfId('garbage'), NameError);
  assert.equal(timeOfId(ID).toISOString(), '2026-12-01T01:02:03.000Z');
});

test('manifest lines: every field checked, names plain, a clear ManifestFormatError otherwise', () => {
  const line = (o: Record<string, unknown>) => JSON.stringify({ n: 'passwd', t: 'f', m: 420, u: 0, g: 0, s: 5, mt: '1', ct: '1', i: '12', h: '0123456789abcdef', a: ID, o: 512, ...o });
  assert.equal(decodeEntry(line({})).size, 5);
  const hostile: Array<Record<string, unknown>> = [
    { mt: 'zz' }, { ct: 1 }, { n: '..' }, { n: 'a/b' }, { n: '' }, { t: 'x' }, { t: 'constructor' }, { t: 'd' }, { m: -1 }, { m: 0o170000 },
    { u: 2 ** 40 }, { s: -5 }, { s: 1.5 }, { i: 12 }, { i: '1e5' }, { h: 'nothex' }, { a: '../x' }, { a: 5 }, { o: 100 }, { o: -512 },
    { do: 3 }, { r: [1] }, { r: 'x' }, { k: 0.5 }, { t: 'l' }, { l: '' }, { sp: 2 }, { bad: true }, { nb: 'Li4=', n: undefined },
  ];
  for (const h of hostile) assert.throws(() => decodeEntry(line(h)), ManifestFormatError, JSON.stringify(h));
  const dir = (d: string) => decodeDirLine(parseLine(JSON.stringify({ t: 'd', m: 493, u: 0, g: 0, s: 0, mt: '1', ct: '1', i: '2', a: ID, o: 0, d })));
  assert.equal(dir('etc/ssh')!.dir.toString(), 'etc/ssh');
  assert.equal(dir('')!.dir.length, 0, 'the root');
  for (const d of ['..', 'etc/../..', '/etc', 'etc//x', 'etc/']) assert.throws(() => dir(d), /refusing unsafe path/, d);
  for (const l of ['null', '[]', '"x"', '{']) assert.throws(() => parseLine(l), ManifestFormatError, l);
  assert.throws(() => decodeHeader(JSON.stringify({ xenbackup: 'manifest', version: 1, volume: 'a/b', backup: '../x', base: null, createdAt: 'x' })), ManifestFormatError);
});
