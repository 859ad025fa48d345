/**
 * verify, full depth, for one tar archive (verify.ts runs it): reads the
 * archive to its end through the real decompressor (compression.ts) and the
 * tar parser, walking the backup's manifest in step with the members (both
 * are in walk order, so memory stays bounded by the largest directory):
 * each member the manifest places in this archive must be at its offset,
 * with the manifest's path, type, owner, mode, mtime, link target and
 * content xxh64 (sparse files hashed region by region as restore-writer.ts
 * does); hard links must point at a member of their inode; each directory's
 * GNU.dumpdir must list what the manifest says (stock `tar -x -G` deletes
 * by it); after the end-of-archive blocks only zeros may follow, and the
 * tar stream must be as long as the sidecar says. Structural damage stops
 * the reading; member mismatches are counted and the first one named.
 * What the later manifests of the chain say of this archive's members
 * (verify-refs.ts) is checked in the same pass.
 */
import type { Logger } from '../../util/log.js';
import { ContentHash } from '../file-hash.js';
import type { ManifestEntry } from '../../core/manifest.js';
import { baseName, isWithin, joinRel, parentOf, showPath } from '../../core/path-order.js';
import { readBlocks, type HolderFiles } from '../../medium/manifest-reader.js';
import type { TarSidecar } from '../../medium/sidecar.js';
import { TarParser, type TarMemberInfo } from '../../tar/read.js';
import type { TarEntry } from '../../tar/entry.js';
import { openDecompressed } from './decompression.js';
import { Mismatches, type ContentCheck, type VerifyProblem } from '../verify-result.js';
import type { ArchiveRefs } from '../verify-refs.js';

/** What a full check of one backup's content found. */
interface Expected {
  rel: Buffer;
  entry: ManifestEntry;
  /** For a directory: its non-directory children (from the manifest block), for the dumpdir check. */
  children?: ManifestEntry[];
}

/** A directory whose dumpdir still has 'D' names waiting for their manifest blocks. */
interface OpenDir {
  dir: Buffer;
  pending: Set<string>;
}

const HASH_RE = /^[0-9a-f]{16}$/;

/**
 * Reads one archive to its end, checking it against its backup's manifest
 * (when that is trustworthy): members read, problems per file.
 */
export async function checkArchive(
  sc: TarSidecar,
  archive: string,
  manifest: string | undefined,
  chainIds: Set<string>,
  logger: Logger,
  signal?: AbortSignal,
  refs?: ArchiveRefs,
  holders?: HolderFiles,
): Promise<ContentCheck> {
  const problems: VerifyProblem[] = [];
  const bad = new Mismatches();
  const mismatch = bad.add;

  // The manifest, walked in step with the archive.
  const openDirs: OpenDir[] = [];
  const foreign = new Set<string>();
  const expected = manifest ? expectedMembers(manifest, holders, sc.id, chainIds, foreign, openDirs, mismatch) : undefined;
  let head: Expected | undefined;
  let headDone = !expected;
  const peek = (): Expected | undefined => {
    if (!head && !headDone) {
      const r = expected!.next();
      if (r.done) headDone = true;
      else head = r.value;
    }
    return head;
  };
  /** Hashes of members other names link to, by offset. */
  const linkData = new Map<number, { path: Buffer; hash: string }>();

  let current:
    | { rel: Buffer; exp?: Expected; hash?: ContentHash; offset: number; refHashes?: string[] }
    | undefined;
  let lastPath: Buffer | undefined;
  let count = 0;
  let lastMemberEnd = 0;

  const onEntry = (meta: TarEntry, info: TarMemberInfo): void => {
    count++;
    const rel = memberRel(meta.path);
    lastPath = rel;
    let exp: Expected | undefined;
    if (expected) {
      for (let e = peek(); e && e.entry.offset < info.offset; e = peek()) {
        mismatch(e.rel, `the manifest places it at tar offset ${e.entry.offset}, where the archive has no member`);
        head = undefined;
      }
      const e = peek();
      if (e && e.entry.offset === info.offset) {
        exp = e;
        head = undefined;
        compareMeta(e, meta, info, linkData, mismatch);
        if (e.children && meta.type === 'dir') {
          if (meta.dumpdir) checkDumpdir(e, meta.dumpdir, sc, openDirs, mismatch);
          else mismatch(e.rel, 'directory member without its GNU.dumpdir record (GNU tar -G would not know what it holds)');
        }
      } else {
        mismatch(rel, `member at tar offset ${info.offset} is not in the manifest`);
      }
    }
    const ownHash = exp && exp.entry.type === 'file' && exp.entry.dataOffset === undefined;
    const ref = refs?.member(info.offset, meta, exp?.entry);
    const sparse = ownHash ? exp!.entry.sparse : ref?.sparse;
    current = {
      rel,
      exp: ownHash || !ref ? exp : undefined,
      hash: ownHash || ref ? new ContentHash(sparse ? meta.sparseMap ?? [] : undefined) : undefined,
      offset: info.offset,
      refHashes: ref?.hashes,
    };
  };

  const onData = (chunk: Buffer, fileOffset: number): void => {
    const c = current;
    if (!c?.hash) return;
    c.hash.update(chunk, fileOffset);
  };

  const onEndEntry = (): void => {
    const c = current;
    current = undefined;
    lastMemberEnd = parser.position;
    if (!c?.hash) return;
    const got = c.hash.digest();
    if (c.refHashes) refs!.content(c.offset, c.refHashes, got);
    if (!c.exp) return;
    const want = c.exp.entry.hash;
    if (c.exp.entry.nlink > 1) linkData.set(c.offset, { path: c.rel, hash: got });
    if (want && HASH_RE.test(want) && got !== want) mismatch(c.rel, `content xxh64 ${got}, the manifest says ${want}`);
  };

  const parser = new TarParser({ entry: onEntry, data: onData, endEntry: onEndEntry }, { source: archive });
  const where = (): string => {
    const p = current?.rel ?? lastPath;
    return p === undefined ? '' : current ? ` (reading ${showPath(p) || '/'})` : ` (after ${showPath(p) || '/'})`;
  };
  let fatal: string | undefined;
  let fatalMember: Buffer | undefined;
  let tarBytes = 0;
  let junkAt = -1;
  const src = openDecompressed(sc.compression, archive, 0, logger);
  let stoppedEarly = false;
  try {
    for await (const raw of src.stream) {
      if (signal?.aborted) {
        stoppedEarly = true;
        throw new Error(`verify interrupted while reading ${archive}`);
      }
      const chunk = raw as Buffer;
      const chunkStart = tarBytes;
      tarBytes += chunk.length;
      if (!parser.ended) {
        try {
          parser.write(chunk);
        } catch (e) {
          fatal = `tar structure: ${stripSource((e as Error).message, archive)}${where()}`;
          fatalMember = current?.rel ?? lastPath;
          stoppedEarly = true;
          break;
        }
        if (!parser.ended) continue;
      }
      // After the end-of-archive blocks only zeros (padding to the record size) may follow.
      if (junkAt < 0) {
        const from = Math.max(0, lastMemberEnd - chunkStart);
        for (let i = from; i < chunk.length; i++) {
          if (chunk[i] !== 0) {
            junkAt = chunkStart + i;
            break;
          }
        }
      }
    }
  } catch (e) {
    if (stoppedEarly && signal?.aborted) throw e;
    fatal ??= `cannot be read: ${(e as Error).message}${where()}`;
    fatalMember ??= current?.rel ?? lastPath;
    stoppedEarly = true;
  } finally {
    if (stoppedEarly) src.stop();
  }
  try {
    await src.done;
  } catch (e) {
    fatal ??= `decompression failed: ${commandFailure(e)}${where()}`;
    fatalMember ??= current?.rel ?? lastPath;
  }
  if (signal?.aborted) throw new Error(`verify interrupted while reading ${archive}`);
  if (!fatal && !parser.ended) {
    try {
      parser.end();
    } catch (e) {
      fatal = `tar structure: ${stripSource((e as Error).message, archive)}${where()}`;
      fatalMember = current?.rel ?? lastPath;
    }
  }
  if (!fatal) {
    if (junkAt >= 0) fatal = `non-zero bytes after the end-of-archive blocks at tar byte ${junkAt}`;
    else if (tarBytes !== sc.tarBytes) fatal = `decompresses to ${tarBytes} tar bytes, the sidecar says ${sc.tarBytes}`;
    // Entries the manifest places after the last member the archive holds.
    if (expected) {
      for (let e = peek(); e; e = peek()) {
        mismatch(e.rel, `the manifest places it at tar offset ${e.entry.offset}, after the archive's last member`);
        head = undefined;
      }
      closeDirs(openDirs, Buffer.alloc(0), true, mismatch);
    }
    // A damaged archive is reported as such; what others expect of it is checked only when it was read whole.
    refs?.finish();
  }
  if (foreign.size) {
    problems.push({ file: manifest!, what: `refers to backup(s) outside its chain or missing: ${[...foreign].slice(0, 5).join(', ')}` });
  }
  const first = bad.first;
  if (fatal) problems.push({ file: archive, what: fatal, member: first?.path ?? (fatalMember ? showPath(fatalMember) : undefined) });
  const members = bad.problem(archive);
  if (members) problems.push(members);
  if (!manifest) problems.push({ file: archive, what: 'content not checked (its manifest is damaged)' });
  return { members: count, problems, notes: [] };
}

/**
 * A failed decompressor's message. spawnStreaming may hand stderr over as a
 * list of byte values ("122,115,...") instead of text: shown as text here.
 */
function commandFailure(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.replace(/\b\d{1,3}(?:,\d{1,3}){3,}\b/, (list) => Buffer.from(list.split(',').map(Number)).toString('utf8').trim().split('\n').pop() ?? list);
}

function stripSource(msg: string, file: string): string {
  return msg.startsWith(file + ': ') ? msg.slice(file.length + 2) : msg;
}

/** The member's path as the manifest names it: the root directory is "." in the archive, "" in the manifest. */
function memberRel(p: Buffer): Buffer {
  return p.length === 1 && p[0] === 0x2e ? Buffer.alloc(0) : p;
}

/**
 * The entries of a backup's manifest that live in its own archive, in
 * archive order. Also notes entries that point at backups outside the chain,
 * and ticks directories off their parent's dumpdir as their blocks go by.
 */
function* expectedMembers(
  file: string,
  holders: HolderFiles | undefined,
  backupId: string,
  chainIds: Set<string>,
  foreign: Set<string>,
  openDirs: OpenDir[],
  mismatch: (rel: Buffer, what: string) => void,
): Generator<Expected> {
  for (const block of readBlocks(file, holders)) {
    closeDirs(openDirs, block.dir, false, mismatch);
    const parent = openDirs[openDirs.length - 1];
    if (parent && block.dir.length > 0 && parent.dir.equals(parentOf(block.dir))) {
      const name = baseName(block.dir).toString('latin1');
      if (!parent.pending.delete(name)) mismatch(block.dir, `directory is in the manifest but not in its parent's GNU.dumpdir`);
    }
    // Every directory is stored in every archive (its dumpdir is what GNU tar -G restores by).
    if (block.self.archive === backupId) yield { rel: block.dir, entry: block.self, children: block.entries };
    else foreign.add(`${block.self.archive} (for directory ${showPath(block.dir) || '/'})`);
    for (const e of block.entries) {
      if (e.archive === backupId) yield { rel: joinRel(block.dir, e.name), entry: e };
      else if (!chainIds.has(e.archive)) foreign.add(e.archive);
    }
  }
}

/** Closes the open directories `dir` is not inside: any 'D' name still pending has no manifest block. */
function closeDirs(openDirs: OpenDir[], dir: Buffer, all: boolean, mismatch: (rel: Buffer, what: string) => void): void {
  while (openDirs.length) {
    const top = openDirs[openDirs.length - 1]!;
    if (!all && isWithin(dir, top.dir) && !dir.equals(top.dir)) return;
    openDirs.pop();
    for (const name of top.pending) {
      mismatch(joinRel(top.dir, Buffer.from(name, 'latin1')), `GNU.dumpdir of its parent lists it as a directory the manifest does not have`);
    }
  }
}

/**
 * A directory's GNU.dumpdir against the manifest: 'Y' for each child stored
 * in this archive, 'N' for each unchanged one, 'D' for each subdirectory
 * (ticked off later, as their blocks go by).
 */
function checkDumpdir(e: Expected, dumpdir: Buffer, sc: TarSidecar, openDirs: OpenDir[], mismatch: (rel: Buffer, what: string) => void): void {
  const pending = new Set<string>();
  const files: Array<[string, Buffer]> = [];
  let i = 0;
  let ok = true;
  while (i < dumpdir.length && dumpdir[i] !== 0) {
    const end = dumpdir.indexOf(0, i);
    if (end < 0) {
      ok = false;
      break;
    }
    const code = String.fromCharCode(dumpdir[i]!);
    const name = dumpdir.subarray(i + 1, end);
    if (code === 'D') pending.add(name.toString('latin1'));
    else if (code === 'Y' || code === 'N') files.push([code, name]);
    else ok = false;
    i = end + 1;
  }
  if (!ok || i !== dumpdir.length - 1) {
    mismatch(e.rel, 'its GNU.dumpdir record is malformed');
    return;
  }
  // A partial backup lists files it then could not read ('Y' without a manifest entry).
  const tolerateUnread = sc.status === 'partial';
  let j = 0;
  for (const child of e.children!) {
    const code = child.archive === sc.id ? 'Y' : 'N';
    while (j < files.length && Buffer.compare(files[j]![1], child.name) < 0 && tolerateUnread && files[j]![0] === 'Y') j++;
    const f = files[j];
    if (!f || !f[1].equals(child.name) || f[0] !== code) {
      mismatch(joinRel(e.rel, child.name), `GNU.dumpdir of its directory does not list it as ${code === 'Y' ? 'stored' : 'unchanged'}`);
      return;
    }
    j++;
  }
  while (j < files.length && tolerateUnread && files[j]![0] === 'Y') j++;
  if (j < files.length) {
    mismatch(joinRel(e.rel, files[j]![1]), 'GNU.dumpdir lists it, the manifest does not');
    return;
  }
  openDirs.push({ dir: e.rel, pending });
}

/** The member's header fields against the manifest entry. */
function compareMeta(
  e: Expected,
  meta: TarEntry,
  info: TarMemberInfo,
  linkData: Map<number, { path: Buffer; hash: string }>,
  mismatch: (rel: Buffer, what: string) => void,
): void {
  const m = e.entry;
  const rel = memberRel(meta.path);
  const isLink = m.type === 'file' && m.dataOffset !== undefined;
  const diffs: string[] = [];
  if (!rel.equals(e.rel)) diffs.push(`path ${showPath(rel) || '.'}`);
  const type = isLink ? 'hardlink' : m.type;
  if (meta.type !== type) diffs.push(`type ${meta.type} (expected ${type})`);
  if (meta.mode !== m.mode) diffs.push(`mode ${meta.mode.toString(8)} (expected ${m.mode.toString(8)})`);
  if (meta.uid !== m.uid || meta.gid !== m.gid) diffs.push(`owner ${meta.uid}:${meta.gid} (expected ${m.uid}:${m.gid})`);
  if (meta.mtimeNs !== m.mtimeNs) diffs.push(`mtime ${meta.mtimeNs} (expected ${m.mtimeNs})`);
  if (m.type === 'file' && !isLink) {
    if (meta.size !== m.size) diffs.push(`size ${meta.size} (expected ${m.size})`);
    if (!!m.sparse !== !!meta.sparseMap) diffs.push(m.sparse ? 'stored dense, expected sparse' : 'stored sparse, expected dense');
  }
  if (m.type === 'symlink' && !(meta.linkTarget ?? Buffer.alloc(0)).equals(m.link ?? Buffer.alloc(0))) diffs.push('symlink target');
  if ((m.type === 'char' || m.type === 'block') && (meta.devMajor !== m.rdev?.[0] || meta.devMinor !== m.rdev?.[1])) diffs.push('device numbers');
  if (isLink && meta.type === 'hardlink') {
    const data = linkData.get(m.dataOffset!);
    if (!data) diffs.push(`hard link to tar offset ${m.dataOffset}, where no file of its inode was read`);
    else {
      if (!meta.linkTarget?.equals(data.path)) diffs.push(`hard link target ${showPath(meta.linkTarget ?? Buffer.alloc(0))} (expected ${showPath(data.path)})`);
      if (m.hash && HASH_RE.test(m.hash) && data.hash !== m.hash) diffs.push(`linked content xxh64 ${data.hash}, the manifest says ${m.hash}`);
    }
  }
  if (diffs.length) mismatch(e.rel, `member at tar offset ${info.offset} differs from the manifest: ${diffs.join(', ')}`);
}
