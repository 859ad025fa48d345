/**
 * Verify: proves that a volume's backups on the medium are intact and
 * restorable, without restoring anything. This module does what is the same
 * for every engine: the backups listed, the chains complete (verify-chains.ts),
 * every tree's manifest checked against its sidecar (xxh64, trailer, header)
 * and against restore's shape rule, and for engines whose incrementals point
 * into older archives (tar) what each manifest says of those members
 * (verify-refs.ts). Each backup's own files are its engine's
 * (Engine.checkBackup): quick, sizes and hashes against the sidecar; full,
 * the content against the manifest (a tar archive read to its end, an rsync
 * tree walked, a raw container's chunks decoded).
 *
 * Problems are collected per file on the medium and reported once per file
 * (archive, tree, manifest or sidecar), with the first bad member's path.
 * The CLI (cli/verify.ts) prints them; `run` puts `lines` in its report.
 */
import fs from 'node:fs';
import { formatBytes } from '../util/human-format.js';
import { restorePointAt } from '../core/chain.js';
import { manifestProblems } from '../medium/manifest-file.js';
import type { HolderFiles } from '../medium/manifest-reader.js';
import { holdersFrom } from '../repo/chain-manifests.js';
import { MediumDamage } from '../medium/medium-error.js';
import type { Sidecar } from '../medium/sidecar.js';
import { localCopy, type LocalCopy } from '../repo/local-copy.js';
import { backupIdFor, VolumeStore } from '../repo/volume-store.js';
import { asStorage } from '../storage/as-storage.js';
import type { Engine } from './engine.js';
import { loadEngine } from './registry.js';
import { chainOf, checkChains } from './verify-chains.js';
import { blameManifests, ChainRefs, scanManifest } from './verify-refs.js';
import { problemLine, VerifyUsageError, type VerifyProblem, type VerifyRequest, type VolumeVerification } from './verify-result.js';

// The result types, for the CLI and the run (engines/raw/raw-verify.ts takes them from verify-result.ts: no import cycle).
export { problemLine, VerifyUsageError, type VerifyDepth, type VerifyProblem, type VerifyRequest, type VolumeVerification } from './verify-result.js';

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
  const store = new VolumeStore(asStorage(req.medium), req.host, req.volume);
  const findings = new Findings();
  const all = await store.list((msg) => {
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
  checkChains(store, all, selected, (file, what) => findings.add(file, what));
  const engines = new Map<Sidecar['engine'], Engine>();
  for (const sc of selected) if (!engines.has(sc.engine)) engines.set(sc.engine, await loadEngine(sc.engine));

  // Every tree's manifest first: its shape, and (full) what it says of the older archives of its chain.
  const refs = req.depth === 'full' ? new ChainRefs() : undefined;
  const manifestOk = new Map<string, boolean>();
  const scanned: Array<{ file: string; id: string; holders?: HolderFiles }> = [];
  // Where each manifest's copy is: a version 2 manifest refers to its ancestors' (selected before it, as ids sort).
  const copyOf = new Map<string, string>();
  const copies: LocalCopy[] = [];
  const shownOf = new Map<string, string>();
  try {
    for (const sc of selected) {
      const engine = engines.get(sc.engine)!;
      // A raw image's manifest is a chunk map, which its engine checks itself.
      if (engine.reads !== 'tree') continue;
      const shown = store.show(sc.manifest);
      const copy = await manifestCopy(store, sc, req.tempDir, findings);
      if (!copy) {
        manifestOk.set(sc.id, false);
        continue;
      }
      copies.push(copy);
      copyOf.set(sc.id, copy.path);
      shownOf.set(copy.path, shown);
      // The older backups of its chain, by the chain's name rather than by base links: a chain missing a middle
      // backup is reported once (checkChains), and the references into the ones still there are checked.
      const holders = holdersFrom(all.filter((b) => b.chain === sc.chain && b.id < sc.id), (s) => copyOf.get(s.id));
      let ok = checkManifest(store, sc, copy.path, shown, findings);
      // A backup whose chain misses a part is reported once (checkChains); its references may name that part,
      // so its manifest is not read further.
      if (chainOf(all, sc)[0]!.kind !== 'full') ok = false;
      else if (ok) {
        const chainRefs = engine.chained ? refs : undefined;
        try {
          const why = scanManifest(copy.path, sc.id, new Set(chainOf(all, sc).map((b) => b.id)), chainRefs, holders);
          if (why) {
            findings.add(shown, `damaged or hostile: it ${why} (restore refuses it)`);
            ok = false;
          } else if (chainRefs) scanned.push({ file: copy.path, id: sc.id, holders });
        } catch (e) {
          findings.add(shown, stripFile((e as Error).message, copy.path));
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
      req.logger.debug(`${req.volume}: verifying backup ${sc.id} (${req.depth})`);
      const check = await engines.get(sc.engine)!.checkBackup({
        store,
        backup: sc,
        all,
        depth: req.depth,
        manifestTrusted: manifestOk.get(sc.id) ?? false,
        refs: refs?.forArchive(sc.id),
        logger: req.logger,
        signal: req.signal,
        tempDir: req.tempDir,
      });
      archiveBytes += check.bytes;
      members += check.members;
      for (const p of check.problems) findings.add(p.file, p.what, p.member);
      notes.push(...check.notes);
    }

    if (refs?.failures.length) {
      for (const b of blameManifests(scanned, refs.failures)) {
        findings.add(shownOf.get(b.file) ?? b.file, `${b.count} entr${b.count === 1 ? 'y does' : 'ies do'} not match the member of an older archive it points at, the first: ${b.what}`, b.member);
      }
    }

    const problems = findings.problems();
    const chains = new Set(selected.map((s) => s.chain)).size;
    const verdict = problems.length ? `${problems.length} problem(s)` : 'all good';
    const images = selected.filter((b) => engines.get(b.engine)!.reads === 'device').length;
    const unit = images === 0 ? 'members' : images === selected.length ? 'chunks' : 'members and chunks';
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
  } finally {
    for (const c of copies) c.release();
  }
}

/** A tree's manifest where the local readers open it (itself, or a copy from a remote storage); undefined and a finding when it is missing. */
async function manifestCopy(store: VolumeStore, sc: Sidecar, tempDir: string | undefined, findings: Findings): Promise<LocalCopy | undefined> {
  try {
    const copy = await localCopy(store, sc.manifest, tempDir);
    if (!fs.existsSync(copy.path)) {
      copy.release();
      findings.add(store.show(sc.manifest), 'missing');
      return undefined;
    }
    return copy;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    findings.add(store.show(sc.manifest), code === 'ENOENT' ? 'missing' : e instanceof MediumDamage ? e.what : `cannot be read: ${(e as Error).message}`);
    return undefined;
  }
}

/** The manifest's xxh64, trailer checksum and header. Returns true when it can be trusted for the content check. */
function checkManifest(store: VolumeStore, sc: Sidecar, file: string, shown: string, findings: Findings): boolean {
  try {
    const problems = manifestProblems(file, { ...sc, volume: store.volume });
    for (const p of problems) findings.add(shown, p);
    return problems.length === 0;
  } catch (e) {
    findings.add(shown, stripFile((e as Error).message, file));
    return false;
  }
}

function stripFile(msg: string, file: string): string {
  return msg.startsWith(file + ': ') ? msg.slice(file.length + 2) : msg.startsWith(file + ', ') ? msg.slice(file.length + 2) : msg;
}

