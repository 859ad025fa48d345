/**
 * Verify: proves that a volume's backups on the medium are intact and
 * restorable, without restoring anything.
 *
 * quick: each archive's and manifest's xxh64 against its sidecar, each
 *   manifest's own checksum and header, the sidecar's frame index, and that
 *   every chain is complete (each incremental's base exists, back to a full).
 * full: also reads every archive through the real decompressor and the tar
 *   parser to its end-of-archive blocks, and walks the backup's manifest in
 *   step with the members (both are in walk order, so memory stays bounded):
 *   each member the manifest places in this archive must be at its offset,
 *   with the manifest's path, type, owner, mode, mtime, link target and
 *   content xxh64 (sparse files hashed region by region as restore-writer.ts
 *   does), and each directory's GNU.dumpdir must list what the manifest
 *   says (stock `tar -x -G` deletes by it).
 *
 * Problems are collected per file on the medium and reported once per file
 * (archive, manifest or sidecar), with the first bad member's path. The CLI
 * (cli/verify.ts) prints them; `run` puts `lines` in its report.
 */
import fs from 'node:fs';
import type { Logger } from '../util/log.js';
import { createXxh64, initXxh, type StreamingHash } from '../util/xxh.js';
import { restorePointAt } from '../core/chain.js';
import type { ManifestEntry } from '../core/manifest.js';
import { baseName, isWithin, joinRel, parentOf, showPath } from '../core/path-order.js';
import { readBlocks, verifyManifest } from '../repo/manifest-file.js';
import type { Sidecar } from '../repo/sidecar.js';
import { backupIdFor, VolumeStore } from '../repo/volume-store.js';
import { TarParser, type TarMemberInfo } from '../tar/read.js';
import type { TarEntry } from '../tar/entry.js';
import { formatBytes } from '../report/format.js';
import { openDecompressed } from './compression.js';

export type VerifyDepth = 'quick' | 'full';

export interface VerifyRequest {
  medium: string;
  host: string;
  volume: string;
  depth: VerifyDepth;
  /** Only the chain of the restore point at this time (default: every backup of the volume). */
  at?: Date;
  logger: Logger;
  signal?: AbortSignal;
}

export interface VerifyProblem {
  /** The file on the medium that is damaged or missing (archive, manifest or sidecar). */
  file: string;
  /** What is wrong, in words. */
  what: string;
  /** Path inside the volume of the first bad member, when one is known. */
  member?: string;
}

export interface VolumeVerification {
  volume: string;
  depth: VerifyDepth;
  /** Backups checked, and the chains they belong to. */
  backups: number;
  chains: number;
  /** Bytes of archive files read; members read (full only). */
  archiveBytes: number;
  members: number;
  problems: VerifyProblem[];
  /** For the run report: a summary line, then one line per problem. */
  lines: string[];
}

/** The request cannot be answered (no backups, --at before the first): not damage. */
export class VerifyUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VerifyUsageError';
  }
}

export function problemLine(p: VerifyProblem): string {
  return `${p.file}: ${p.what}${p.member !== undefined ? `; first bad member: ${p.member || '/'}` : ''}`;
}

/** Findings per file, merged into one problem per file at the end. */
class Findings {
  private readonly byFile = new Map<string, { whats: string[]; member?: string }>();

  add(file: string, what: string, member?: string): void {
    let f = this.byFile.get(file);
    if (!f) this.byFile.set(file, (f = { whats: [] }));
    f.whats.push(what);
    if (f.member === undefined && member !== undefined) f.member = member;
  }

  has(file: string): boolean {
    return this.byFile.has(file);
  }

  problems(): VerifyProblem[] {
    return [...this.byFile].map(([file, f]) => ({ file, what: f.whats.join('; '), ...(f.member !== undefined ? { member: f.member } : {}) }));
  }
}

const PLAIN_NAME = /^[^/\0]+$/;

export async function verifyVolume(req: VerifyRequest): Promise<VolumeVerification> {
  await initXxh();
  const store = new VolumeStore(req.medium, req.host, req.volume);
  const findings = new Findings();
  const all = store.list((msg) => {
    const at = msg.indexOf(': ');
    findings.add(at > 0 ? msg.slice(0, at) : store.dir, at > 0 ? msg.slice(at + 2) : msg);
  });
  if (all.length === 0 && !findings.problems().length) throw new VerifyUsageError(`no backups of ${req.volume} under ${store.dir}`);

  let selected = all;
  if (req.at) {
    const point = restorePointAt(all, backupIdFor(req.at));
    if (!point) {
      throw new VerifyUsageError(`no backup of ${req.volume} at or before ${req.at.toISOString()}${all[0] ? `; the first is ${all[0].id}` : ''}`);
    }
    selected = chainOf(all, point);
  }
  checkChains(store, all, selected, findings);

  let archiveBytes = 0;
  let members = 0;
  for (const sc of selected) {
    if (req.signal?.aborted) throw new Error(`verify of ${req.volume} interrupted`);
    const archive = store.pathOf(sc.archive);
    const manifest = store.pathOf(sc.manifest);
    if (!PLAIN_NAME.test(sc.archive) || !PLAIN_NAME.test(sc.manifest)) {
      findings.add(sidecarPath(store, sc), `names files outside its folder (${sc.archive}, ${sc.manifest})`);
      continue;
    }
    req.logger.debug(`${req.volume}: verifying backup ${sc.id} (${req.depth})`);
    const manifestOk = checkManifest(store, sc, manifest, findings);
    checkFrames(sc, archive, findings);
    const hashed = await hashFile(archive, req.signal);
    if (!hashed) {
      findings.add(archive, 'missing');
      continue;
    }
    archiveBytes += hashed.size;
    if (hashed.size !== sc.archiveBytes) findings.add(archive, `is ${hashed.size} bytes, the sidecar says ${sc.archiveBytes}`);
    if (hashed.xxh64 !== sc.archiveXxh64) findings.add(archive, `xxh64 ${hashed.xxh64} does not match the sidecar's ${sc.archiveXxh64}`);
    if (req.depth === 'full') {
      const chainIds = new Set(chainOf(all, sc).map((b) => b.id));
      members += await readArchive(sc, archive, manifestOk ? manifest : undefined, chainIds, findings, req);
    }
  }

  const problems = findings.problems();
  const chains = new Set(selected.map((s) => s.chain)).size;
  const verdict = problems.length ? `${problems.length} problem(s)` : 'all good';
  const read = req.depth === 'full' ? `, ${members} members read` : '';
  const summary = `${req.volume}: ${req.depth} verify of ${selected.length} backup(s) in ${chains} chain(s), ${formatBytes(archiveBytes)} of archives${read}: ${verdict}`;
  return {
    volume: req.volume,
    depth: req.depth,
    backups: selected.length,
    chains,
    archiveBytes,
    members,
    problems,
    lines: [summary, ...problems.map(problemLine)],
  };
}

/**
 * The backups a restore point needs that are present, oldest first. Unlike
 * core/chain.needs it never throws and never loops: a base must be older
 * than the backup that names it (checkChains reports anything else).
 */
function chainOf(all: Sidecar[], point: Sidecar): Sidecar[] {
  const byId = new Map(all.map((b) => [b.id, b]));
  const out: Sidecar[] = [];
  for (let cur: Sidecar | undefined = point; cur; ) {
    out.unshift(cur);
    if (cur.kind === 'full' || !cur.base || cur.base >= cur.id) break;
    cur = byId.get(cur.base);
  }
  return out;
}

function sidecarPath(store: VolumeStore, b: Sidecar): string {
  return store.pathOf(`${b.id}.${b.kind === 'full' ? 'full' : 'incr'}.json`);
}

/** Each incremental's base exists, is older, and belongs to the same chain; each full starts its own. */
function checkChains(store: VolumeStore, all: Sidecar[], selected: Sidecar[], findings: Findings): void {
  const byId = new Map(all.map((b) => [b.id, b]));
  for (const b of selected) {
    if (b.kind === 'full') {
      if (b.base !== null || b.chain !== b.id) findings.add(sidecarPath(store, b), `full backup ${b.id} names a base or another chain (${b.base}, ${b.chain})`);
      continue;
    }
    if (!b.base || b.base >= b.id) {
      findings.add(sidecarPath(store, b), `incremental ${b.id} names ${b.base ? `a base that is not older (${b.base})` : 'no base'}`);
      continue;
    }
    const base = byId.get(b.base);
    if (!base) {
      const after = all.filter((x) => x.id > b.id && chainOf(all, x).some((y) => y.id === b.id)).length;
      findings.add(
        sidecarPath(store, b),
        `incremental ${b.id} builds on ${b.base}, which is missing: it${after ? ` and ${after} later backup(s)` : ''} cannot be restored`,
      );
    } else if (base.chain !== b.chain) {
      findings.add(sidecarPath(store, b), `incremental ${b.id} says it belongs to chain ${b.chain}, its base ${base.id} to ${base.chain}`);
    }
  }
}

/** The manifest's xxh64, trailer checksum and header. Returns true when it can be trusted for the content check. */
function checkManifest(store: VolumeStore, sc: Sidecar, file: string, findings: Findings): boolean {
  if (!fs.existsSync(file)) {
    findings.add(file, 'missing');
    return false;
  }
  let ok = true;
  try {
    const got = fileXxh64Sync(file);
    if (typeof sc.manifestXxh64 === 'string' && got !== sc.manifestXxh64) {
      findings.add(file, `xxh64 ${got} does not match the sidecar's ${sc.manifestXxh64}`);
      ok = false;
    }
    const h = verifyManifest(file);
    if (h.backup !== sc.id || h.base !== sc.base || h.volume !== store.volume) {
      findings.add(file, `belongs to ${h.volume} backup ${h.backup} (base ${h.base}), not to ${store.volume} backup ${sc.id}`);
      ok = false;
    }
  } catch (e) {
    const msg = (e as Error).message;
    findings.add(file, msg.startsWith(file + ': ') ? msg.slice(file.length + 2) : msg);
    return false;
  }
  return ok;
}

/** The frame index restore seeks by: starts at [0, 0], strictly increasing, inside both streams. */
function checkFrames(sc: Sidecar, archive: string, findings: Findings): void {
  const f = sc.frames;
  let bad = !Array.isArray(f) || f.length === 0 || f[0]![0] !== 0 || f[0]![1] !== 0;
  for (let i = 0; !bad && i < f.length; i++) {
    const [c, t] = f[i]!;
    const prev = f[i - 1];
    if (!Number.isSafeInteger(c) || !Number.isSafeInteger(t) || c >= sc.archiveBytes || t >= sc.tarBytes) bad = true;
    else if (prev && (c <= prev[0] || t <= prev[1])) bad = true;
    else if (sc.compression === 'none' && c !== t) bad = true;
  }
  if (bad) findings.add(archive, `the sidecar's frame index is damaged (restores of single files would seek wrongly)`);
}

function fileXxh64Sync(file: string): string {
  const h = createXxh64();
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest();
}

/** xxh64 and size of a file, read asynchronously (archives are large; signals must get through). Undefined if missing. */
async function hashFile(file: string, signal?: AbortSignal): Promise<{ xxh64: string; size: number } | undefined> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const h = createXxh64();
    const buf = Buffer.allocUnsafe(4 << 20);
    let size = 0;
    for (;;) {
      if (signal?.aborted) throw new Error(`verify interrupted while reading ${file}`);
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead <= 0) break;
      h.update(buf.subarray(0, bytesRead));
      size += bytesRead;
    }
    return { xxh64: h.digest(), size };
  } finally {
    await fh.close();
  }
}

/** A member the manifest places in this archive. */
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
 * (when that is trustworthy). Returns the number of members read.
 */
async function readArchive(
  sc: Sidecar,
  archive: string,
  manifest: string | undefined,
  chainIds: Set<string>,
  findings: Findings,
  req: VerifyRequest,
): Promise<number> {
  let mismatches = 0;
  let firstMismatch: { path: string; what: string } | undefined;
  const mismatch = (rel: Buffer, what: string): void => {
    mismatches++;
    firstMismatch ??= { path: showPath(rel), what };
  };

  // The manifest, walked in step with the archive.
  const openDirs: OpenDir[] = [];
  const foreign = new Set<string>();
  const expected = manifest ? expectedMembers(manifest, sc.id, chainIds, foreign, openDirs, mismatch) : undefined;
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

  let current: { rel: Buffer; exp?: Expected; hash?: StreamingHash; regions?: Array<[number, number]>; nextRegion: number; offset: number } | undefined;
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
    const wantsHash = exp && exp.entry.type === 'file' && exp.entry.dataOffset === undefined;
    current = {
      rel,
      exp,
      hash: wantsHash ? createXxh64() : undefined,
      regions: wantsHash && exp!.entry.sparse ? meta.sparseMap ?? [] : undefined,
      nextRegion: 0,
      offset: info.offset,
    };
  };

  const onData = (chunk: Buffer, fileOffset: number): void => {
    const c = current;
    if (!c?.hash) return;
    if (c.regions) {
      // Each region's [offset, length] goes into the hash before its data, as the archiver did.
      const r = c.regions[c.nextRegion];
      if (r && r[0] === fileOffset) {
        const h = Buffer.alloc(16);
        h.writeBigUInt64LE(BigInt(r[0]), 0);
        h.writeBigUInt64LE(BigInt(r[1]), 8);
        c.hash.update(h);
        c.nextRegion++;
      }
    }
    c.hash.update(chunk);
  };

  const onEndEntry = (): void => {
    const c = current;
    current = undefined;
    lastMemberEnd = parser.position;
    if (!c?.hash || !c.exp) return;
    const got = c.hash.digest();
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
  const src = openDecompressed(sc.compression, archive, 0, req.logger);
  let stoppedEarly = false;
  try {
    for await (const raw of src.stream) {
      if (req.signal?.aborted) {
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
    if (stoppedEarly && req.signal?.aborted) throw e;
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
  if (req.signal?.aborted) throw new Error(`verify interrupted while reading ${archive}`);
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
  }
  if (foreign.size) {
    findings.add(manifest!, `refers to backup(s) outside its chain or missing: ${[...foreign].slice(0, 5).join(', ')}`);
  }
  if (fatal) findings.add(archive, fatal, firstMismatch?.path ?? (fatalMember ? showPath(fatalMember) : undefined));
  if (mismatches) {
    const what = `${mismatches} member(s) do not match the manifest, the first: ${firstMismatch!.path || '/'}: ${firstMismatch!.what}`;
    findings.add(archive, what, firstMismatch!.path);
  }
  if (!manifest) findings.add(archive, 'content not checked (its manifest is damaged)');
  return count;
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
  backupId: string,
  chainIds: Set<string>,
  foreign: Set<string>,
  openDirs: OpenDir[],
  mismatch: (rel: Buffer, what: string) => void,
): Generator<Expected> {
  for (const block of readBlocks(file)) {
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
function checkDumpdir(e: Expected, dumpdir: Buffer, sc: Sidecar, openDirs: OpenDir[], mismatch: (rel: Buffer, what: string) => void): void {
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
