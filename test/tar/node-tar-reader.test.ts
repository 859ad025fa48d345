/**
 * Real backups (`xenbackup backup`, a full and an incremental, compressed
 * `none`, `gzip` and `zstd`) read by node-tar, a second tar implementation
 * that is neither ours (src/tar/read.ts) nor GNU tar's: every member's path,
 * type, size, mode, mtime, owner ids and link target, and every regular
 * file's bytes, must match the source tree, node-tar must neither warn nor
 * fail (strict mode turns each warning into an error), and its member list
 * must equal what GNU tar's `tar -tv` prints for the same archive. Our reader
 * and our writer could share a misreading of the format; a third party's
 * parser, written from the same specifications, does not share it.
 *
 * What node-tar cannot represent is left out of the tree: names that are not
 * UTF-8 (it decodes names as strings), devices and fifos (it parses their
 * headers but never creates them), xattrs and ACLs (it drops SCHILY.* pax
 * records), and the GNU.dumpdir record of incremental directories. Those are
 * covered by GNU tar in gnu-extract.test.ts and test/engine/fidelity.test.ts.
 * node-tar does not know GNU.sparse 1.0 either: it shows a sparse file as the
 * regular file `<dir>/GNUSparseFile.0/<base>` whose data is the sparse map
 * followed by the regions, which is what the format promises such a reader;
 * the test decodes that map itself and checks the file rebuilt from it.
 * zstd is read only where node's zlib has zstd (node 22.15 / 23.8 and later):
 * node-tar decompresses through it, and on older nodes that case is skipped.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import * as zlib from 'node:zlib';
import * as tar from 'tar';
import type { Compression } from '../../src/engines/compression.js';
import type { Sidecar } from '../../src/medium/sidecar.js';
import { makeScratchDir } from '../helpers/scratch.js';
import { backupsOf, cliBackup, show, volumeDir } from '../engine/engine-fixtures.js';

const VOLUME = 'nodetar/root';
const LONG_NAME = `${'long-name-'.repeat(12)}end.txt`; // 127 bytes: past ustar's 100-byte name field
const DEEP_DIR = ['a'.repeat(60), 'b'.repeat(60), 'c'.repeat(60)].join('/'); // past ustar's 155-byte prefix too
const UTF8_NAME = 'café-日本語-ø.txt';
const OWNER = { uid: 1234, gid: 5678 };
const NODE_HAS_ZSTD = typeof (zlib as { createZstdDecompress?: unknown }).createZstdDecompress === 'function';

/** One member as node-tar reports it, with the sha256 of the bytes it streamed. */
interface NodeTarMember {
  path: string;
  type: string;
  size: number;
  mode: number | undefined;
  mtime: Date | undefined;
  uid: number | undefined;
  gid: number | undefined;
  linkpath: string | undefined;
  data: Buffer;
}

/** One line of GNU tar's `tar -tv --full-time --numeric-owner`. */
interface GnuListed {
  typeChar: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: bigint;
  name: string;
  target: string | undefined;
}

function writeTree(root: string): void {
  const put = (rel: string, content: string | Buffer): string => {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
    return p;
  };
  put(`d/${LONG_NAME}`, 'a name longer than 100 bytes\n');
  put(`${DEEP_DIR}/deep.txt`, 'a path longer than 155 bytes\n');
  put(UTF8_NAME, 'a UTF-8 name\n');
  put('empty', '');
  // Bigger than one 8 MiB segment: its bytes span two compressed frames.
  put('big.bin', randomBytes((8 << 20) + 123_457));
  const sparse = path.join(root, 'd/sparse');
  const fd = fs.openSync(sparse, 'w');
  fs.writeSync(fd, Buffer.alloc(4096, 's'), 0, 4096, 1 << 20);
  fs.writeSync(fd, Buffer.from('tail of the second region'), 0, 25, 3 << 20);
  fs.ftruncateSync(fd, 5 << 20); // ends in a hole
  fs.closeSync(fd);
  put('links/one', 'one inode, two names\n');
  fs.linkSync(path.join(root, 'links/one'), path.join(root, 'links/two'));
  fs.symlinkSync(`d/${LONG_NAME}`, path.join(root, 'to-long-name'));
  const owned = put('owned-setgid', '#!/bin/sh\n');
  fs.chownSync(owned, OWNER.uid, OWNER.gid);
  fs.chmodSync(owned, 0o2750);
  fs.lchownSync(path.join(root, 'to-long-name'), OWNER.uid, OWNER.gid);
  fs.chownSync(path.join(root, 'd'), OWNER.uid, OWNER.gid);
  fs.chmodSync(path.join(root, 'd'), 0o750);
  fs.utimesSync(path.join(root, 'empty'), 631_152_000.5, 631_152_000.123456); // 1990, sub-second
}

/** Every path below `root` ('' for root itself), as the archive names it relative to the volume. */
function sourcePaths(root: string): string[] {
  const out = [''];
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(root, rel))) {
      const child = rel === '' ? name : `${rel}/${name}`;
      out.push(child);
      if (fs.lstatSync(path.join(root, child)).isDirectory()) walk(child);
    }
  };
  walk('');
  return out.sort();
}

/** Reads a whole archive with node-tar's own parser, strict, collecting every member and its bytes. */
async function readWithNodeTar(archive: string): Promise<NodeTarMember[]> {
  const members: NodeTarMember[] = [];
  const warnings: string[] = [];
  await tar.t({
    file: archive,
    strict: true,
    onwarn: (code, message) => {
      warnings.push(`${code}: ${message}`);
    },
    onReadEntry: (e) => {
      const chunks: Buffer[] = [];
      e.on('data', (c: Buffer) => chunks.push(c));
      e.on('end', () => {
        members.push({
          path: e.path,
          type: e.type,
          size: e.size,
          mode: e.mode,
          mtime: e.mtime,
          uid: e.uid,
          gid: e.gid,
          linkpath: e.linkpath,
          data: Buffer.concat(chunks),
        });
      });
    },
  });
  assert.deepEqual(warnings, [], `node-tar warned on ${path.basename(archive)}`);
  return members;
}

const GNU_DECOMPRESS: Record<Compression, string[]> = { none: [], gzip: ['-z'], zstd: ['--zstd'] };

function permsToMode(perms: string): number {
  let mode = 0;
  const bits = [0o400, 0o200, 0o100, 0o40, 0o20, 0o10, 0o4, 0o2, 0o1];
  const special = [0o4000, 0o2000, 0o1000];
  for (let i = 0; i < 9; i++) {
    const c = perms[i]!;
    if (c !== '-' && c !== 'S' && c !== 'T') mode |= bits[i]!;
    if (i % 3 === 2 && /[sStT]/.test(c)) mode |= special[Math.floor(i / 3)]!;
  }
  return mode;
}

/** GNU tar's listing of the archive: its own reader, the reference the user restores with. */
function listWithGnuTar(archive: string, compression: Compression): GnuListed[] {
  const r = spawnSync(
    'tar',
    [...GNU_DECOMPRESS[compression], '-tv', '--full-time', '--numeric-owner', '--quoting-style=literal', '-f', archive],
    { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C.UTF-8', TZ: 'UTC' }, maxBuffer: 64 << 20 },
  );
  assert.equal(r.status, 0, `tar -tv ${archive}: ${r.stderr}`);
  assert.equal(r.stderr, '', 'GNU tar lists without warnings');
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((line) => {
      const m = /^([-dlh])(\S{9}) (\d+)\/(\d+) +(\d+) (\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d+))? +(.*)$/.exec(line);
      assert.ok(m, `unexpected tar -tv line: ${line}`);
      const seconds = BigInt(Date.UTC(+m[6]!, +m[7]! - 1, +m[8]!, +m[9]!, +m[10]!, +m[11]!) / 1000);
      const mtimeNs = seconds * 1_000_000_000n + BigInt((m[12] ?? '').padEnd(9, '0'));
      let name = m[13]!;
      let target: string | undefined;
      const sep = m[1] === 'l' ? ' -> ' : m[1] === 'h' ? ' link to ' : undefined;
      if (sep) [name, target] = name.split(sep) as [string, string];
      return { typeChar: m[1]!, mode: permsToMode(m[2]!), uid: +m[3]!, gid: +m[4]!, size: +m[5]!, mtimeNs, name, target };
    });
}

/** node-tar's name for a member, as a path relative to the source ('' for the volume's root). */
function relativeName(p: string): string {
  const trimmed = p.replace(/\/$/, '');
  return trimmed === '.' ? '' : trimmed;
}

/** "<dir>/GNUSparseFile.0/<base>" is how GNU.sparse 1.0 names a sparse file to a reader that does not know it. */
function sparseRealName(p: string): string | undefined {
  const m = /^(?:(.*)\/)?GNUSparseFile\.0\/([^/]+)$/.exec(p);
  if (!m) return undefined;
  return m[1] === undefined || m[1] === '.' ? m[2]! : `${m[1]}/${m[2]}`;
}

/** Rebuilds a sparse file of `size` bytes from the GNU.sparse 1.0 data node-tar streamed (map block(s), then regions). */
function rebuildSparse(data: Buffer, size: number): Buffer {
  const numbers: number[] = [];
  let pos = 0;
  const next = (): number => {
    const nl = data.indexOf(0x0a, pos);
    assert.ok(nl > pos, 'the sparse map is decimal lines');
    const text = data.subarray(pos, nl).toString('latin1');
    assert.match(text, /^\d+$/);
    pos = nl + 1;
    return Number(text);
  };
  const count = next();
  for (let i = 0; i < 2 * count; i++) numbers.push(next());
  let dataPos = Math.ceil(pos / 512) * 512;
  const file = Buffer.alloc(size);
  for (let i = 0; i < count; i++) {
    const [offset, length] = [numbers[2 * i]!, numbers[2 * i + 1]!];
    assert.ok(offset + length <= size, `region ${offset}+${length} past the file's ${size} bytes`);
    data.copy(file, offset, dataPos, dataPos + length);
    dataPos += length;
  }
  assert.equal(dataPos, data.length, 'the stored size is the map plus the regions, nothing else');
  return file;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const TYPE_CHAR: Record<string, string> = { Directory: 'd', File: '-', Link: 'h', SymbolicLink: 'l' };

/**
 * Checks every member node-tar read against the source tree and GNU tar's
 * listing; returns the source-relative names of the members.
 */
function checkArchive(source: string, members: NodeTarMember[], gnu: GnuListed[]): string[] {
  assert.equal(members.length, gnu.length, `node-tar read ${members.length} members, GNU tar lists ${gnu.length}`);
  const seenFiles = new Map<string, bigint>(); // name -> inode of the regular-file members so far
  const names: string[] = [];
  members.forEach((m, i) => {
    const sparseName = m.type === 'File' ? sparseRealName(m.path) : undefined;
    const rel = sparseName ?? relativeName(m.path);
    names.push(rel);
    const where = `${rel || '(root)'} (member ${i}: ${m.path})`;
    const st = fs.lstatSync(path.join(source, rel), { bigint: true });
    const g = gnu[i]!;

    // The member against the source tree.
    assert.equal(m.mode, Number(st.mode & 0o7777n), `${where}: mode`);
    assert.equal(m.uid, Number(st.uid), `${where}: uid`);
    assert.equal(m.gid, Number(st.gid), `${where}: gid`);
    // node-tar keeps mtimes as a Date: milliseconds of the pax record's nanoseconds, through a float.
    const offNs = st.mtimeNs - BigInt(m.mtime!.getTime()) * 1_000_000n;
    assert.ok(offNs > -1_000_000n && offNs < 1_000_000n, `${where}: mtime ${m.mtime!.toISOString()} vs ${st.mtimeNs} ns`);
    if (m.type === 'Directory') {
      assert.ok(st.isDirectory(), `${where}: a directory member for a non-directory`);
      assert.equal(m.size, 0, `${where}: size`);
    } else if (m.type === 'SymbolicLink') {
      assert.ok(st.isSymbolicLink(), `${where}: type`);
      assert.equal(m.linkpath, fs.readlinkSync(path.join(source, rel)), `${where}: link target`);
      assert.equal(m.size, 0, `${where}: size`);
    } else if (m.type === 'Link') {
      assert.ok(st.isFile(), `${where}: type`);
      const target = seenFiles.get(m.linkpath ?? '');
      assert.equal(target, st.ino, `${where}: a hardlink to ${m.linkpath}, which is no earlier member with the same inode`);
      assert.equal(m.size, 0, `${where}: size`);
      assert.equal(m.data.length, 0, `${where}: a hardlink member carries no data`);
    } else if (m.type === 'File') {
      assert.ok(st.isFile(), `${where}: type`);
      const content = fs.readFileSync(path.join(source, rel));
      assert.equal(m.data.length, m.size, `${where}: node-tar streamed ${m.data.length} of ${m.size} bytes`);
      if (sparseName !== undefined) {
        assert.ok(m.size < content.length, `${where}: a sparse member stores less than the file`);
        assert.equal(sha(rebuildSparse(m.data, content.length)), sha(content), `${where}: sparse content`);
      } else {
        assert.equal(m.size, content.length, `${where}: size`);
        assert.equal(sha(m.data), sha(content), `${where}: content`);
      }
      seenFiles.set(rel, st.ino);
    } else {
      assert.fail(`${where}: node-tar type ${m.type}, not one this tree has`);
    }
    if (m.type !== 'SymbolicLink' && m.type !== 'Link') assert.ok(!m.linkpath, `${where}: unexpected link target ${m.linkpath}`);

    // The same member as GNU tar lists it.
    assert.equal(g.name, m.path.replace(/GNUSparseFile\.0\//, '').replace(/^\.\/(?=.)/, ''), `${where}: GNU tar's name`);
    assert.equal(g.typeChar, TYPE_CHAR[m.type], `${where}: GNU tar's type`);
    assert.equal(g.mode, m.mode, `${where}: GNU tar's mode`);
    assert.equal(g.uid, m.uid, `${where}: GNU tar's uid`);
    assert.equal(g.gid, m.gid, `${where}: GNU tar's gid`);
    assert.equal(g.size, sparseName !== undefined ? Number(st.size) : m.size, `${where}: GNU tar's size`);
    assert.equal(g.mtimeNs, st.mtimeNs, `${where}: GNU tar's mtime`);
    assert.equal(g.target, m.linkpath || undefined, `${where}: GNU tar's link target`);
  });
  return names;
}

function archiveOf(medium: string, sidecar: Sidecar): string {
  return path.join(volumeDir(medium, VOLUME), sidecar.archive);
}

for (const compression of ['none', 'gzip', 'zstd'] as const) {
  const skip = compression === 'zstd' && !NODE_HAS_ZSTD ? `node ${process.version}'s zlib has no zstd, which node-tar decompresses through` : false;
  test(`node-tar reads a ${compression} full and incremental exactly as the source tree and GNU tar have them`, { skip }, async (t) => {
    const scratch = makeScratchDir(t, `node-tar-${compression}`);
    const source = path.join(scratch, 'source');
    const medium = path.join(scratch, 'medium');
    fs.mkdirSync(source);
    fs.mkdirSync(medium);
    writeTree(source);
    const sparseStat = fs.statSync(path.join(source, 'd/sparse'));
    assert.ok(sparseStat.blocks * 512 < sparseStat.size, 'the scratch file system keeps holes (the sparse case needs them)');

    const full = cliBackup(source, medium, VOLUME, ['--compress', compression]);
    assert.equal(full.code, 0, show(full));
    const [first] = backupsOf(medium, VOLUME);
    assert.equal(first!.kind, 'full');
    if (compression !== 'none') assert.ok(first!.frames.length > 1, `big.bin spans frames: ${first!.frames.length}`);
    const fullArchive = archiveOf(medium, first!);
    const fullMembers = await readWithNodeTar(fullArchive);
    const fullNames = checkArchive(source, fullMembers, listWithGnuTar(fullArchive, compression));
    assert.deepEqual([...fullNames].sort(), sourcePaths(source), 'the full has one member per source entry');
    assert.ok(
      fullMembers.some((m) => sparseRealName(m.path) === 'd/sparse'),
      `d/sparse is stored sparse: ${fullMembers.map((m) => m.path).join(', ')}`,
    );
    assert.ok(fullMembers.some((m) => m.type === 'Link'), 'the second name of links/one is a hardlink member');

    // Changes for the incremental: new content, a new file, a mode change, a deletion.
    fs.writeFileSync(path.join(source, UTF8_NAME), 'new content under the UTF-8 name\n');
    fs.writeFileSync(path.join(source, `${DEEP_DIR}/added.txt`), 'added after the full\n');
    fs.chmodSync(path.join(source, 'links/one'), 0o600);
    fs.rmSync(path.join(source, 'empty'));
    const incr = cliBackup(source, medium, VOLUME, ['--compress', compression]);
    assert.equal(incr.code, 0, show(incr));
    const second = backupsOf(medium, VOLUME)[1]!;
    assert.equal(second.kind, 'incremental');
    const incrArchive = archiveOf(medium, second);
    const incrMembers = await readWithNodeTar(incrArchive);
    const incrNames = checkArchive(source, incrMembers, listWithGnuTar(incrArchive, compression));
    // Every directory (its dumpdir, which node-tar cannot see, says what is gone) and what changed.
    const directories = sourcePaths(source).filter((p) => fs.lstatSync(path.join(source, p)).isDirectory());
    const changed = [UTF8_NAME, `${DEEP_DIR}/added.txt`, 'links/one', 'links/two'];
    assert.deepEqual([...incrNames].sort(), [...directories, ...changed].sort(), 'the incremental holds the directories and the changed entries');
  });
}
