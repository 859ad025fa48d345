/**
 * verify, full depth, for one rsync tree (verify.ts runs it): walks the
 * backup's manifest block by block and compares each entry with the tree's
 * copy: present, same type, owner, mode, mtime, size, link target, device
 * numbers, and content xxh64. The tree must hold nothing the manifest does
 * not (rsync --delete made it equal to the source; sockets excepted, which
 * rsync copies and the manifest skips). The tree's root is exempt from the
 * mode check: publishing it made it 0700.
 *
 * Sparse files: the manifest hashes the source's data regions with their
 * positions, but rsync --sparse lays out holes by zero runs, so the hash
 * can be compared only when the tree's regions agree with the source's;
 * otherwise the file is counted in a note, not reported as damage.
 */
import fs from 'node:fs';
import { joinRel, showPath } from '../../core/path-order.js';
import type { ManifestEntry } from '../../core/manifest.js';
import { readBlocks } from '../../medium/manifest-reader.js';
import { devMajor, devMinor, entryTypeOf } from '../metadata.js';
import { dataRegions } from '../sparse-regions.js';
import { contentHashAsync } from '../file-hash.js';
import { Mismatches, type ContentCheck } from '../verify-result.js';

const HASH_RE = /^[0-9a-f]{16}$/;
const CHUNK = 1 << 20;

export async function checkTree(tree: string, manifest: string, signal?: AbortSignal): Promise<ContentCheck> {
  const bad = new Mismatches();
  const root = Buffer.from(tree);
  const abs = (rel: Buffer): Buffer => (rel.length ? joinRel(root, rel) : root);
  // Directories seen in a listing of the tree whose manifest block has not come yet (blocks are in walk order).
  const unseenDirs = new Set<string>();
  let members = 0;
  let bytes = 0;
  let sparseUnchecked = 0;
  let firstSparse = '';
  const buf = Buffer.allocUnsafe(CHUNK);

  /** Compares one entry's metadata; returns the tree's stat when the entry is there. */
  const compare = (rel: Buffer, e: ManifestEntry, isRoot: boolean): fs.BigIntStats | undefined => {
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(abs(rel), { bigint: true });
    } catch (err) {
      // An entry that could not be read at backup time may be missing from the tree too.
      if (!e.unread) bad.add(rel, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing from the tree' : `cannot be read: ${(err as Error).message}`);
      return undefined;
    }
    const type = entryTypeOf(st);
    const diffs: string[] = [];
    const target = (): Buffer => {
      try {
        return fs.readlinkSync(abs(rel), { encoding: 'buffer' });
      } catch {
        return Buffer.alloc(0);
      }
    };
    if (type !== e.type) diffs.push(`type ${type} (expected ${e.type})`);
    else {
      const mode = Number(st.mode) & 0o7777;
      if (!isRoot && e.type !== 'symlink' && mode !== e.mode) diffs.push(`mode ${mode.toString(8)} (expected ${e.mode.toString(8)})`);
      if (Number(st.uid) !== e.uid || Number(st.gid) !== e.gid) diffs.push(`owner ${st.uid}:${st.gid} (expected ${e.uid}:${e.gid})`);
      if (st.mtimeNs !== e.mtimeNs && e.type !== 'symlink') diffs.push(`mtime ${st.mtimeNs} (expected ${e.mtimeNs})`);
      if (e.type === 'file' && Number(st.size) !== e.size) diffs.push(`size ${st.size} (expected ${e.size})`);
      if (e.type === 'symlink' && !target().equals(e.link ?? Buffer.alloc(0))) diffs.push('symlink target');
      if ((e.type === 'char' || e.type === 'block') && (devMajor(st.rdev) !== e.rdev?.[0] || devMinor(st.rdev) !== e.rdev?.[1])) diffs.push('device numbers');
    }
    if (diffs.length) {
      bad.add(rel, `differs from the manifest: ${diffs.join(', ')}`);
      return undefined;
    }
    return st;
  };

  /** xxh64 of a file as the manifest computes it: whole, or (sparse) region by region with positions. */
  const hashOf = async (rel: Buffer, e: ManifestEntry): Promise<string> => {
    const fh = await fs.promises.open(abs(rel), 'r');
    try {
      const regions = e.sparse ? (dataRegions(fh.fd, e.size) ?? [[0, e.size] as const]) : undefined;
      const got = await contentHashAsync(fh.fd, e.size, regions, buf);
      bytes += got.bytes;
      return got.hash;
    } finally {
      await fh.close();
    }
  };

  for (const block of readBlocks(manifest)) {
    if (signal?.aborted) throw new Error(`verify interrupted while reading ${tree}`);
    const isRoot = block.dir.length === 0;
    if (!isRoot && !unseenDirs.delete(block.dir.toString('latin1'))) {
      bad.add(block.dir, 'directory missing from the tree');
      continue;
    }
    members++;
    if (!compare(block.dir, block.self, isRoot)) continue;
    let names: Buffer[];
    try {
      names = fs.readdirSync(abs(block.dir), { encoding: 'buffer' });
    } catch (err) {
      bad.add(block.dir, `cannot be listed: ${(err as Error).message}`);
      continue;
    }
    const listed = new Set(block.entries.map((e) => e.name.toString('latin1')));
    for (const name of names) {
      if (listed.has(name.toString('latin1'))) continue;
      const rel = joinRel(block.dir, name);
      let st: fs.Stats;
      try {
        st = fs.lstatSync(abs(rel));
      } catch (err) {
        bad.add(rel, `in the tree but not in the manifest, and cannot be read: ${(err as Error).message}`);
        continue;
      }
      if (st.isDirectory()) unseenDirs.add(rel.toString('latin1'));
      else if (!st.isSocket()) bad.add(rel, 'in the tree but not in the manifest');
    }
    for (const e of block.entries) {
      members++;
      const rel = joinRel(block.dir, e.name);
      if (!compare(rel, e, false) || e.type !== 'file' || e.unread || !e.hash || !HASH_RE.test(e.hash)) continue;
      let got: string;
      try {
        got = await hashOf(rel, e);
      } catch (err) {
        bad.add(rel, `cannot be read: ${(err as Error).message}`);
        continue;
      }
      if (got === e.hash) continue;
      if (e.sparse) {
        if (!sparseUnchecked++) firstSparse = showPath(rel);
      }
      else bad.add(rel, `content xxh64 ${got}, the manifest says ${e.hash}`);
    }
  }
  for (const dir of unseenDirs) bad.add(Buffer.from(dir, 'latin1'), 'directory in the tree but not in the manifest');

  const problem = bad.problem(tree);
  const notes = sparseUnchecked
    ? [`${tree}: ${sparseUnchecked} sparse file(s) not compared: rsync laid out their holes differently from the source (e.g. ${firstSparse})`]
    : [];
  return { members, bytes, problems: problem ? [problem] : [], notes };
}
