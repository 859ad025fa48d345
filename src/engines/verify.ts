/**
 * Verify: proves that a volume's backups on the medium are intact and
 * restorable, without restoring anything.
 *
 * quick: each archive's and manifest's xxh64 against its sidecar, each
 *   manifest's own checksum and header, the sidecar's frame index, and that
 *   every chain is complete (each incremental's base exists, back to a full).
 *   For an rsync tree: that the tree is there, and its manifest as above.
 *   Every manifest also passes restore's shape rule (verify-refs.ts).
 * full: also the content, against the backup's manifest: every tar archive
 *   read to its end (verify-archive.ts), every rsync tree walked and its
 *   files hashed (verify-tree.ts); each manifest's entries that live in an
 *   older archive of its chain are checked against that archive's members
 *   as it is read (verify-refs.ts).
 *
 * Raw backups (images of block devices, src/engines/raw/) are checked by
 * engines/raw/raw-verify.ts checkRawBackup at the same two depths: container and
 * chunk manifest against the sidecar and each other (quick), every chunk
 * decoded and hashed (full); chains are checked here as for tar.
 *
 * Problems are collected per file on the medium and reported once per file
 * (archive, tree, manifest or sidecar), with the first bad member's path.
 * The CLI (cli/verify.ts) prints them; `run` puts `lines` in its report.
 */
import fs from 'node:fs';
import { promisify } from 'node:util';
import type { Logger } from '../util/log.js';
import { createXxh64 } from '../util/xxh.js';
import { restorePointAt } from '../core/chain.js';
import { manifestProblems } from '../medium/manifest-file.js';
import { sidecarName } from '../medium/layout.js';
import { openMediumFile } from '../storage/medium-file.js';
import { MediumDamage } from '../medium/medium-error.js';
import type { Sidecar } from '../medium/sidecar.js';
import { backupIdFor, VolumeStore } from '../repo/volume-store.js';
import { formatBytes } from '../report/format.js';
import { checkArchive, type ContentCheck } from './tar/verify-archive.js';
import { checkTree } from './rsync/verify-tree.js';
import { blameManifests, ChainRefs, scanManifest } from './verify-refs.js';
import { checkRawBackup } from './raw/raw-verify.js';
import { problemLine, VerifyUsageError, type VerifyDepth, type VerifyProblem, type VolumeVerification } from './verify-result.js';

// The result types, for the CLI and the run (engines/raw/raw-verify.ts takes them from verify-result.ts: no import cycle).
export { problemLine, VerifyUsageError, type VerifyDepth, type VerifyProblem, type VolumeVerification } from './verify-result.js';

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

/** Findings per file, merged into one problem per file at the end. */
class Findings {
  private readonly byFile = new Map<string, { whats: string[]; member?: string }>();

  add(file: string, what: string, member?: string): void {
    let f = this.byFile.get(file);
    if (!f) this.byFile.set(file, (f = { whats: [] }));
    f.whats.push(what);
    if (f.member === undefined && member !== undefined) f.member = member;
  }

  problems(): VerifyProblem[] {
    return [...this.byFile].map(([file, f]) => ({ file, what: f.whats.join('; '), ...(f.member !== undefined ? { member: f.member } : {}) }));
  }
}

export async function verifyVolume(req: VerifyRequest): Promise<VolumeVerification> {
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

  // Every manifest first: its shape, and (full) what it says of the older archives of its chain.
  const refs = req.depth === 'full' ? new ChainRefs() : undefined;
  const manifestOk = new Map<string, boolean>();
  const scanned: Array<{ file: string; id: string }> = [];
  for (const sc of selected) {
    if (sc.engine === 'raw') continue;
    const file = store.pathOf(sc.manifest);
    let ok = checkManifest(store, sc, file, findings);
    if (ok) {
      const tar = sc.engine !== 'rsync';
      try {
        const why = scanManifest(file, sc.id, new Set(chainOf(all, sc).map((b) => b.id)), tar ? refs : undefined);
        if (why) {
          findings.add(file, `damaged or hostile: it ${why} (restore refuses it)`);
          ok = false;
        } else if (tar && refs) scanned.push({ file, id: sc.id });
      } catch (e) {
        findings.add(file, stripFile((e as Error).message, file));
        ok = false;
      }
    }
    manifestOk.set(sc.id, ok);
  }

  let archiveBytes = 0;
  let members = 0;
  const notes: string[] = [];
  for (const sc of selected) {
    if (req.signal?.aborted) throw new Error(`verify of ${req.volume} interrupted`);
    const archive = store.pathOf(sc.archive);
    const manifest = store.pathOf(sc.manifest);
    req.logger.debug(`${req.volume}: verifying backup ${sc.id} (${req.depth})`);
    if (sc.engine === 'raw') {
      // Its manifest is a chunk map, not a tree's: the tar checks below would call it damaged.
      const raw = await checkRawBackup(store, sc, req.depth, { logger: req.logger, signal: req.signal });
      archiveBytes += raw.bytes;
      members += raw.chunks;
      for (const p of raw.problems) findings.add(p.file, p.what, p.member);
      continue;
    }
    const trusted = manifestOk.get(sc.id) ?? false;
    let content: ContentCheck | undefined;
    if (sc.engine === 'rsync') {
      if (!isDirectory(archive)) {
        findings.add(archive, 'missing (the rsync tree of this backup)');
        continue;
      }
      if (req.depth === 'full') {
        content = trusted ? await checkTree(archive, manifest, req.signal) : { members: 0, problems: [{ file: archive, what: 'content not checked (its manifest is damaged)' }], notes: [] };
        archiveBytes += content.bytes ?? 0;
      }
    } else {
      checkFrames(sc, archive, findings);
      let hashed: Awaited<ReturnType<typeof hashFile>>;
      try {
        hashed = await hashFile(archive, req.signal);
      } catch (e) {
        if (req.signal?.aborted) throw e;
        // EIO on a failing disk is exactly what verify is for: a finding, not the end of the run.
        findings.add(archive, e instanceof MediumDamage ? e.what : `cannot be read: ${(e as Error).message}`);
        continue;
      }
      if (!hashed) {
        findings.add(archive, 'missing');
        continue;
      }
      archiveBytes += hashed.size;
      if (hashed.size !== sc.archiveBytes) findings.add(archive, `is ${hashed.size} bytes, the sidecar says ${sc.archiveBytes}`);
      if (hashed.xxh64 !== sc.archiveXxh64) findings.add(archive, `xxh64 ${hashed.xxh64} does not match the sidecar's ${sc.archiveXxh64}`);
      if (req.depth === 'full') {
        const chainIds = new Set(chainOf(all, sc).map((b) => b.id));
        content = await checkArchive(sc, archive, trusted ? manifest : undefined, chainIds, req.logger, req.signal, refs?.forArchive(sc.id));
      }
    }
    if (content) {
      members += content.members;
      for (const p of content.problems) findings.add(p.file, p.what, p.member);
      notes.push(...content.notes);
    }
  }

  if (refs?.failures.length) {
    for (const b of blameManifests(scanned, refs.failures)) {
      findings.add(b.file, `${b.count} entr${b.count === 1 ? 'y does' : 'ies do'} not match the member of an older archive it points at, the first: ${b.what}`, b.member);
    }
  }

  const problems = findings.problems();
  const chains = new Set(selected.map((s) => s.chain)).size;
  const verdict = problems.length ? `${problems.length} problem(s)` : 'all good';
  const raws = selected.filter((b) => b.engine === 'raw').length;
  const unit = raws === 0 ? 'members' : raws === selected.length ? 'chunks' : 'members and chunks';
  const read = req.depth === 'full' ? `, ${members} ${unit} read` : '';
  const summary = `${req.volume}: ${req.depth} verify of ${selected.length} backup(s) in ${chains} chain(s), ${formatBytes(archiveBytes)} read${read}: ${verdict}`;
  return {
    volume: req.volume,
    depth: req.depth,
    backups: selected.length,
    chains,
    archiveBytes,
    members,
    problems,
    notes,
    lines: [summary, ...problems.map(problemLine), ...notes.map((n) => `note: ${n}`)],
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

/** A backup's sidecar (its file names are the layout's: parseSidecar let no other through). */
function sidecarPath(store: VolumeStore, b: Sidecar): string {
  return store.pathOf(sidecarName(b));
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
  try {
    const problems = manifestProblems(file, { ...sc, volume: store.volume });
    for (const p of problems) findings.add(file, p);
    return problems.length === 0;
  } catch (e) {
    const msg = (e as Error).message;
    findings.add(file, msg.startsWith(file + ': ') ? msg.slice(file.length + 2) : msg);
    return false;
  }
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

function stripFile(msg: string, file: string): string {
  return msg.startsWith(file + ': ') ? msg.slice(file.length + 2) : msg.startsWith(file + ', ') ? msg.slice(file.length + 2) : msg;
}

const readAsync = promisify(fs.read);
const closeAsync = promisify(fs.close);

function isDirectory(p: string): boolean {
  try {
    return fs.lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * xxh64 and size of a file, read asynchronously (archives are large; signals must get through). Undefined if missing.
 * Opened as every medium file is (no symlink followed, only a regular file: a fifo would block verify forever).
 */
async function hashFile(file: string, signal?: AbortSignal): Promise<{ xxh64: string; size: number } | undefined> {
  let fd: number;
  try {
    fd = openMediumFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const fh = { read: (b: Buffer, o: number, l: number, p: null) => readAsync(fd, b, o, l, p), close: () => closeAsync(fd) };
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
