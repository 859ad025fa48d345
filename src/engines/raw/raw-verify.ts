/**
 * Verify for raw backups, in verify's two depths (engines/verify.ts):
 *   quick  the container's and the manifest's xxh64 against the sidecar,
 *          the container's index and the manifest well formed, and every
 *          chunk the manifest says this backup holds present in the index
 *          with the same hash;
 *   full   also every frame decoded (one sequential pass per container)
 *          and each chunk's xxh64 compared with the index.
 * checkRawBackup checks one backup and returns its problems, so that the
 * volume-wide verify can hand raw sidecars to it; verifyRawVolume does the
 * whole volume (every raw backup, or the chain of the point at --at).
 */
import fs from 'node:fs';
import { sidecarName } from '../../medium/layout.js';
import type { Logger } from '../../util/log.js';
import { xxh64 } from '../../native/xxh.js';
import { restorePointAt } from '../../core/chain.js';
import { mapImageHash } from '../../core/raw-chunks.js';
import { fileXxh64 } from '../../medium/manifest-file.js';
import type { RawSidecar, Sidecar } from '../../medium/sidecar.js';
import { asStorage, type Medium } from '../../storage/as-storage.js';
import { backupIdFor, VolumeStore } from '../../repo/volume-store.js';
import { problemLine, VerifyUsageError, type VerifyDepth, type VerifyProblem, type VolumeVerification } from '../verify-result.js';
import { readContainerIndex, type ContainerIndex } from './raw-container.js';
import { decodeFrames } from './frame-decoder.js';
import { readRawManifest, type RawManifest } from './raw-manifest.js';

export interface RawBackupCheck {
  /** Container bytes read (quick: hashed; full: hashed and decoded). */
  bytes: number;
  /** Chunks decoded and compared (full only). */
  chunks: number;
  problems: VerifyProblem[];
}

function hashOrProblem(file: string, problems: VerifyProblem[]): { xxh64: string; size: number } | undefined {
  try {
    const size = fs.statSync(file).size;
    return { xxh64: fileXxh64(file), size };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    problems.push({ file, what: code === 'ENOENT' ? 'missing' : `cannot be read: ${(e as Error).message}` });
    return undefined;
  }
}

/** Checks one raw backup's files; never throws for damage, only reports it. */
export async function checkRawBackup(
  store: VolumeStore,
  sc: Sidecar,
  depth: VerifyDepth,
  opts: { logger?: Logger; signal?: AbortSignal } = {},
): Promise<RawBackupCheck> {
  const problems: VerifyProblem[] = [];
  const sidecarFile = store.show(sidecarName(sc));
  const raw = sc as RawSidecar;
  if (sc.engine !== 'raw') {
    return { bytes: 0, chunks: 0, problems: [{ file: sidecarFile, what: `a ${sc.engine} backup, not a raw image` }] };
  }
  const archive = store.pathOf(sc.archive);
  const manifestFile = store.pathOf(sc.manifest);
  let bytes = 0;

  const hashed = hashOrProblem(archive, problems);
  if (hashed) {
    bytes += hashed.size;
    if (hashed.size !== sc.archiveBytes) problems.push({ file: archive, what: `is ${hashed.size} bytes, the sidecar says ${sc.archiveBytes}` });
    if (hashed.xxh64 !== sc.archiveXxh64) problems.push({ file: archive, what: `xxh64 ${hashed.xxh64} does not match the sidecar's ${sc.archiveXxh64}` });
  }
  const mHashed = hashOrProblem(manifestFile, problems);
  if (mHashed && mHashed.xxh64 !== sc.manifestXxh64) {
    problems.push({ file: manifestFile, what: `xxh64 ${mHashed.xxh64} does not match the sidecar's ${sc.manifestXxh64}` });
  }
  let manifest: RawManifest | undefined;
  if (mHashed) {
    try {
      manifest = readRawManifest(manifestFile);
      if (mapImageHash(manifest.map, xxh64) !== raw.raw.imageXxh64) problems.push({ file: manifestFile, what: 'its chunk hashes do not add up to the image hash of the sidecar' });
    } catch (e) {
      problems.push({ file: manifestFile, what: (e as Error).message.replace(`${manifestFile}: `, '') });
    }
  }
  let index: ContainerIndex | undefined;
  if (hashed) {
    try {
      index = readContainerIndex(archive);
    } catch (e) {
      problems.push({ file: archive, what: (e as Error).message.replace(`${archive}: `, '') });
    }
  }
  if (index && manifest) {
    const byChunk = new Map(index.entries.map((e) => [e.index, e]));
    const held = manifest.map.chunks.filter((c) => c.holder === sc.id);
    const missing = held.filter((c) => byChunk.get(c.index)?.hash !== c.hash);
    if (missing.length) problems.push({ file: archive, what: `${missing.length} chunk(s) the manifest records here are missing or differ, e.g. chunk ${missing[0]!.index}` });
    if (held.length !== index.entries.length) problems.push({ file: archive, what: `holds ${index.entries.length} chunks, the manifest names ${held.length}` });
  }

  let chunks = 0;
  if (depth === 'full' && index) {
    let bad = 0;
    let firstBad = '';
    try {
      await decodeFrames(
        archive,
        index.entries,
        (e, data, release) => {
          chunks++;
          if (xxh64(data) !== e.hash) {
            if (bad++ === 0) firstBad = `chunk ${e.index} at offset ${e.offset}`;
          }
          release();
        },
        { signal: opts.signal },
      );
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      const why = (e as Error).message.replace(`${archive}: `, '');
      problems.push({ file: archive, what: /does not decode/.test(why) ? why : `does not decode: ${why}` });
    }
    if (bad) problems.push({ file: archive, what: `${bad} chunk(s) decode to the wrong xxh64, first ${firstBad}` });
  }
  return { bytes, chunks, problems };
}

/** Verifies a volume's raw backups: all of them, or the chain of the restore point at `at`. */
export async function verifyRawVolume(req: {
  medium: Medium;
  host: string;
  volume: string;
  depth: VerifyDepth;
  at?: Date;
  logger: Logger;
  signal?: AbortSignal;
}): Promise<VolumeVerification> {
  const store = new VolumeStore(asStorage(req.medium), req.host, req.volume);
  const problems: VerifyProblem[] = [];
  const all = await store.list((msg) => {
    const at = msg.indexOf(': ');
    problems.push({ file: at > 0 ? msg.slice(0, at) : store.dir, what: at > 0 ? msg.slice(at + 2) : msg });
  });
  const raws = all.filter((s): s is RawSidecar => s.engine === 'raw');
  if (raws.length === 0 && problems.length === 0) throw new VerifyUsageError(`no raw backups of ${req.volume} under ${store.dir}`);
  let selected: Sidecar[] = raws;
  const byId = new Map(all.map((s) => [s.id, s]));
  if (req.at) {
    const point = restorePointAt(raws, backupIdFor(req.at));
    if (!point) throw new VerifyUsageError(`no raw backup of ${req.volume} at or before ${req.at.toISOString()}`);
    selected = [];
    for (let cur: Sidecar | undefined = point; cur; cur = cur.kind === 'full' || !cur.base || cur.base >= cur.id ? undefined : byId.get(cur.base)) {
      selected.unshift(cur);
    }
  }
  for (const s of selected) {
    if (s.kind === 'incremental' && (!s.base || !byId.has(s.base))) {
      problems.push({ file: store.show(sidecarName(s)), what: `its base ${s.base} is missing: the chain is broken` });
    }
  }
  let bytes = 0;
  let chunks = 0;
  for (const s of selected) {
    if (req.signal?.aborted) throw new Error(`verify of ${req.volume} interrupted`);
    const r = await checkRawBackup(store, s, req.depth, req);
    bytes += r.bytes;
    chunks += r.chunks;
    problems.push(...r.problems);
  }
  const chains = new Set(selected.map((s) => s.chain)).size;
  const verdict = problems.length ? `${problems.length} problem(s)` : 'all good';
  const read = req.depth === 'full' ? `, ${chunks} chunks decoded` : '';
  return {
    volume: req.volume,
    depth: req.depth,
    backups: selected.length,
    chains,
    archiveBytes: bytes,
    members: chunks,
    problems,
    notes: [],
    lines: [`${req.volume}: ${req.depth} verify of ${selected.length} raw backup(s) in ${chains} chain(s), ${bytes} bytes read${read}: ${verdict}`, ...problems.map(problemLine)],
  };
}
