/**
 * Issue 5 item 3: damage is detected, named, and never crashes or hangs
 * verify. Single bits flipped at many offsets of a zstd, a gzip and an
 * uncompressed archive; data bytes flipped in an uncompressed archive with
 * the sidecar's checksum fixed up (only the content check can see those);
 * archives truncated at many offsets (sidecar fixed up too, so the
 * decompressor and tar structure checks must see it); damaged manifests; a
 * chain whose middle backup is gone; the CLI's exit 1 with one line per
 * damaged file. Every verify runs with a time bound (verifyBounded).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  archivePath,
  decompressWithStockTools,
  flipBit,
  HOST,
  makeChain,
  manifestPath,
  showResult,
  sidecarPath,
  spreadOffsets,
  tarMeaning,
  TREE,
  verifyBounded,
  withDamagedFile,
  type Chain,
} from './verify-fixtures.js';
import { errorLines, show, xenbackup } from '../engine/engine-fixtures.js';
import type { VolumeVerification } from '../../src/engines/verify.js';
import { timeOfId } from '../../src/repo/volume-store.js';
import { rewriteManifest, trailerXxh64Of, type Json } from '../helpers/manifest-rewrite.js';

/** Exactly one problem, on `file`, matching `what`. */
function assertBlames(r: VolumeVerification, file: string, what: RegExp, context: string): void {
  assert.equal(r.problems.length, 1, `${context}: one problem expected\n${showResult(r)}`);
  assert.equal(r.problems[0]!.file, file, `${context}\n${showResult(r)}`);
  assert.match(r.problems[0]!.what, what, `${context}\n${showResult(r)}`);
}

for (const compression of ['zstd', 'gzip', 'none'] as const) {
  test(`${compression}: a single flipped bit anywhere in an archive is detected, quick and full`, { timeout: 120_000 }, async (t) => {
    const c = await makeChain(t, compression);
    for (const [b, n] of [[c.backups[0]!, 32], [c.backups[1]!, 8]] as const) {
      const file = archivePath(c, b);
      const original = fs.readFileSync(file);
      let i = 0;
      for (const off of spreadOffsets(original.length, n)) {
        await withDamagedFile(file, flipBit(original, off), undefined, async () => {
          const ctx = `${b.archive} bit flipped at byte ${off}`;
          assertBlames(await verifyBounded(c, 'quick'), file, /xxh64 \w+ does not match the sidecar's/, ctx);
          // Full re-reads the archives, which takes longer: every fourth case, and only this backup's chain.
          if (i++ % 4 === 0) assertBlames(await verifyBounded(c, 'full', timeOfId(b.id)), file, /xxh64 \w+ does not match the sidecar's/, ctx);
        });
      }
    }
  });
}

for (const compression of ['zstd', 'gzip'] as const) {
  test(`${compression}: with the sidecar fixed up, a flipped bit is caught by the decompressor or the tar and content checks, or changes nothing`, { timeout: 120_000 }, async (t) => {
    const c = await makeChain(t, compression);
    const b = c.backups[0]!;
    const file = archivePath(c, b);
    const original = fs.readFileSync(file);
    const tar = decompressWithStockTools(file, compression);
    let caught = 0;
    for (const off of spreadOffsets(original.length, 32)) {
      await withDamagedFile(file, flipBit(original, off), sidecarPath(c, b), async () => {
        const r = await verifyBounded(c, 'full', timeOfId(b.id));
        if (r.problems.length) {
          caught++;
          assertBlames(r, file, /./, `bit flipped at byte ${off}`);
        } else {
          // Only bytes the format does not protect (e.g. a gzip header's mtime): the tar stream is the same.
          assert.ok(decompressWithStockTools(file, compression).equals(tar), `verify saw nothing at byte ${off}, but the content changed`);
        }
      });
    }
    assert.ok(caught > 24, `${caught} flips caught`);
  });
}

/** Offsets of bytes inside a member's data: where `needle` (the file's content) sits in the tar stream. */
function dataOffsets(tar: Buffer, needle: Buffer, n: number): number[] {
  const at = tar.indexOf(needle);
  assert.ok(at > 0, 'content found in the archive');
  return spreadOffsets(needle.length, n).map((o) => at + o);
}

test('none: a flipped data byte with the sidecar fixed up is caught by the content check, naming the file', { timeout: 120_000 }, async (t) => {
  const c = await makeChain(t, 'none');
  const full = c.backups[0]!;
  const file = archivePath(c, full);
  const tar = fs.readFileSync(file);
  const cases: Array<[string, number[]]> = [
    [TREE.random, dataOffsets(tar, fs.readFileSync(path.join(c.source, TREE.random)).subarray(0, 96 << 10), 12)],
    // The sparse file's two data regions (the stored data is the regions back to back).
    [TREE.sparse, dataOffsets(tar, fs.readFileSync(path.join(c.source, TREE.sparse)).subarray(4096, 4096 + 8192), 4)],
    [TREE.sparse, dataOffsets(tar, fs.readFileSync(path.join(c.source, TREE.sparse)).subarray(1 << 20, (1 << 20) + 4096), 4)],
    ['etc/conf11', dataOffsets(tar, fs.readFileSync(path.join(c.source, 'etc/conf11')), 3)],
  ];
  for (const [member, offsets] of cases) {
    for (const off of offsets) {
      await withDamagedFile(file, flipBit(tar, off), sidecarPath(c, full), async () => {
        const ctx = `data byte ${off} of ${member}`;
        assert.deepEqual((await verifyBounded(c, 'quick')).problems, [], `${ctx}: quick cannot see it (the sidecar was fixed up)`);
        const r = await verifyBounded(c, 'full', timeOfId(full.id));
        assertBlames(r, file, new RegExp(`1 member\\(s\\) do not match the manifest, the first: ${member}: content xxh64`), ctx);
        assert.equal(r.problems[0]!.member, member, ctx);
      });
    }
  }
  // A hardlinked file stored in an incremental: its data member is damaged, the second name is reported too.
  const incr = c.backups[2]!;
  const incrFile = archivePath(c, incr);
  const incrTar = fs.readFileSync(incrFile);
  const off = dataOffsets(incrTar, fs.readFileSync(path.join(c.source, TREE.hardlinkA)), 1)[0]!;
  await withDamagedFile(incrFile, flipBit(incrTar, off), sidecarPath(c, incr), async () => {
    const r = await verifyBounded(c, 'full');
    assertBlames(r, incrFile, /2 member\(s\) do not match the manifest, the first: data\/linked-a: content xxh64/, 'hardlinked data');
    assert.equal(r.problems[0]!.member, TREE.hardlinkA);
  });
});

test('none: a flipped bit in headers and metadata with the sidecar fixed up is caught, or a reader sees no difference', { timeout: 120_000 }, async (t) => {
  const c = await makeChain(t, 'none');
  const b = c.backups[1]!; // an incremental: small, all headers and dumpdirs
  const file = archivePath(c, b);
  const tar = fs.readFileSync(file);
  let caught = 0;
  let harmless = 0;
  const meaning = await tarMeaning(tar);
  for (const off of spreadOffsets(tar.length, 160)) {
    await withDamagedFile(file, flipBit(tar, off), sidecarPath(c, b), async () => {
      const r = await verifyBounded(c, 'full', timeOfId(b.id));
      if (r.problems.length) {
        caught++;
        assertBlames(r, file, /./, `bit flipped at byte ${off}`);
      } else {
        // E.g. zero padding after pax records, or '0' -> ' ' in an octal field: a reader sees the same archive.
        assert.equal(await tarMeaning(flipBit(tar, off)), meaning, `a flip at byte ${off} changed what a reader sees, unnoticed`);
        harmless++;
      }
    });
  }
  assert.ok(caught > harmless, `${caught} caught, ${harmless} harmless`);
});

for (const compression of ['zstd', 'gzip', 'none'] as const) {
  test(`${compression}: an archive truncated at any offset is detected (sidecar fixed up)`, { timeout: 120_000 }, async (t) => {
    const c = await makeChain(t, compression);
    const b = c.backups[0]!;
    const file = archivePath(c, b);
    const original = fs.readFileSync(file);
    for (const len of spreadOffsets(original.length, 24)) {
      await withDamagedFile(file, original.subarray(0, len), sidecarPath(c, b), async () => {
        const r = await verifyBounded(c, 'full', timeOfId(b.id));
        assertBlames(r, file, /tar structure|decompression failed|cannot be read|decompresses to|frame index/, `truncated to ${len} bytes`);
      });
      // Without the fix-up, quick sees the size.
      await withDamagedFile(file, original.subarray(0, len), undefined, async () => {
        assertBlames(await verifyBounded(c, 'quick'), file, new RegExp(`is ${len} bytes, the sidecar says ${original.length}`), `truncated to ${len}`);
      });
    }
  });
}

test('a damaged manifest is detected, quick and full, by its own checksum as well', { timeout: 60_000 }, async (t) => {
  const c = await makeChain(t, 'zstd');
  const b = c.backups[1]!;
  const file = manifestPath(c, b);
  const original = fs.readFileSync(file);
  for (const off of spreadOffsets(original.length, 12)) {
    await withDamagedFile(file, flipBit(original, off), undefined, async () => {
      for (const depth of ['quick', 'full'] as const) {
        const r = await verifyBounded(c, depth, timeOfId(b.id));
        const mine = r.problems.find((p) => p.file === file);
        assert.ok(mine, `${depth}, byte ${off}: the manifest is blamed\n${showResult(r)}`);
        assert.match(mine.what, /does not match the sidecar's/);
        assert.match(mine.what, /checksum mismatch|not JSON|trailer|not a xenbackup manifest|entries/);
      }
    });
  }
  // The sidecar fixed up, or gone from it: the manifest's own trailer still catches a change. The edit
  // leaves frames and index valid (a name changed, the frame recompressed) and the trailer's checksum as it was.
  const edited = rewriteManifest(file, (objs: Json[]) => { objs.find((o) => o.n === 'conf1').n = 'conf!'; }, { trailerXxh64: trailerXxh64Of(original) });
  const sidecar = sidecarPath(c, b);
  const scText = fs.readFileSync(sidecar, 'utf8');
  try {
    const sc = JSON.parse(scText) as Record<string, unknown>;
    delete sc.manifestXxh64;
    fs.writeFileSync(sidecar, JSON.stringify(sc));
    await withDamagedFile(file, edited, undefined, async () => {
      // As of b: the later backup's references into b's moved frame would be a second finding.
      const r = await verifyBounded(c, 'quick', timeOfId(b.id));
      assertBlames(r, file, /checksum mismatch \(damaged\)/, 'edited manifest');
    });
  } finally {
    fs.writeFileSync(sidecar, scText);
  }
  // Truncated, and missing.
  await withDamagedFile(file, original.subarray(0, original.length >> 1), undefined, async () => {
    assert.ok((await verifyBounded(c, 'full')).problems.some((p) => p.file === file));
  });
  fs.renameSync(file, file + '.away');
  try {
    const r = await verifyBounded(c, 'full');
    assert.ok(r.problems.some((p) => p.file === file && p.what === 'missing'), showResult(r));
    assert.ok(r.problems.some((p) => p.file === archivePath(c, b) && /content not checked/.test(p.what)), showResult(r));
  } finally {
    fs.renameSync(file + '.away', file);
  }
});

/** Removes a backup (its sidecar first, as prune would) and returns a function that puts it back. */
function removeBackup(c: Chain, index: number): () => void {
  const b = c.backups[index]!;
  const files = [sidecarPath(c, b), archivePath(c, b), manifestPath(c, b)];
  const saved = files.map((f) => fs.readFileSync(f));
  for (const f of files) fs.rmSync(f);
  return () => files.forEach((f, i) => fs.writeFileSync(f, saved[i]!));
}

test("a chain whose middle backup is gone is reported as incomplete, naming the backup that needs it", { timeout: 60_000 }, async (t) => {
  const c = await makeChain(t, 'zstd');
  const putBack = removeBackup(c, 1);
  try {
    for (const depth of ['quick', 'full'] as const) {
      const r = await verifyBounded(c, depth);
      const third = c.backups[2]!;
      const p = r.problems.find((x) => x.file === sidecarPath(c, third));
      assert.ok(p, `${depth}\n${showResult(r)}`);
      assert.match(p.what, new RegExp(`incremental ${third.id} builds on ${c.backups[1]!.id}, which is missing: it cannot be restored`));
    }
    // CLI: exit 1, one "xenbackup:" line per damaged file, no stack trace.
    const cli = xenbackup(['verify', c.volume, '--quick', '--medium', c.medium, '--host', HOST]);
    assert.equal(cli.code, 1, show(cli));
    assert.equal(errorLines(cli).length, 1, show(cli));
    assert.match(errorLines(cli)[0]!, /which is missing/);
    assert.doesNotMatch(cli.stderr, /^\s+at /m);
  } finally {
    putBack();
  }
  assert.deepEqual((await verifyBounded(c, 'quick')).problems, []);
  // The middle sidecar unreadable: it is named, and so is the backup left without its base.
  const middle = sidecarPath(c, c.backups[1]!);
  await withDamagedFile(middle, Buffer.from('{"format": "xenbackup-backup", "vers'), undefined, async () => {
    const r = await verifyBounded(c, 'quick');
    assert.deepEqual(r.problems.map((p) => p.file).sort(), [middle, sidecarPath(c, c.backups[2]!)].sort(), showResult(r));
    assert.match(r.problems.find((p) => p.file === middle)!.what, /not valid JSON/);
  });
  // The full gone: both incrementals are orphans.
  const putBackFull = removeBackup(c, 0);
  try {
    const r = await verifyBounded(c, 'quick');
    assert.match(r.problems.map((p) => p.what).join('\n'), /builds on \w+, which is missing: it and 1 later backup\(s\) cannot be restored/);
  } finally {
    putBackFull();
  }
});

test('CLI on damage: exit 1, one line per damaged archive with the first bad member, --json ok false', { timeout: 60_000 }, async (t) => {
  const c = await makeChain(t, 'none');
  const full = c.backups[0]!;
  const file = archivePath(c, full);
  const tar = fs.readFileSync(file);
  const at = tar.indexOf(fs.readFileSync(path.join(c.source, TREE.random)).subarray(0, 4096)) + 100;
  await withDamagedFile(file, flipBit(tar, at), sidecarPath(c, full), async () => {
    const incr = archivePath(c, c.backups[2]!);
    await withDamagedFile(incr, Buffer.from('not a tar archive at all'), undefined, async () => {
      const r = xenbackup(['verify', c.volume, '--medium', c.medium, '--host', HOST]);
      assert.equal(r.code, 1, show(r));
      const lines = errorLines(r);
      assert.equal(lines.length, 2, show(r));
      assert.ok(lines.some((l) => l.startsWith(`xenbackup: ${file}: `) && l.endsWith(`; first bad member: ${TREE.random}`)), show(r));
      assert.ok(lines.some((l) => l.startsWith(`xenbackup: ${incr}: `) && /tar structure/.test(l)), show(r));
      assert.match(r.stdout, /: 2 problem\(s\)$/m);
      const j = xenbackup(['verify', '--json', '--medium', c.medium, '--host', HOST]);
      assert.equal(j.code, 1, show(j));
      const parsed = JSON.parse(j.stdout) as { ok: boolean; volumes: Array<{ problems: Array<{ file: string; member?: string }> }> };
      assert.equal(parsed.ok, false);
      const problems = parsed.volumes.flatMap((v) => v.problems);
      assert.equal(problems.length, 2);
      assert.equal(problems.find((p) => p.file === file)?.member, TREE.random);
    });
  });
});
