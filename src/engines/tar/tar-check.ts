/**
 * verify of one tar backup's archive (engines/verify.ts does the chains and
 * the manifests, for every engine): quick, its size and xxh64 against the
 * sidecar and the frame index restore seeks by; full, the archive read to
 * its end through the decompressor and the tar parser, every member against
 * the manifest (verify-archive.ts).
 */
import fs from 'node:fs';
import { promisify } from 'node:util';
import { xxh64OfFdAsync } from '../../util/file-xxh.js';
import { MediumDamage } from '../../medium/medium-error.js';
import type { TarSidecar } from '../../medium/sidecar.js';
import { openMediumFile } from '../../medium/medium-file.js';
import type { BackupCheck, BackupCheckRequest } from '../engine.js';
import type { VerifyProblem } from '../verify-result.js';
import { chainOf } from '../verify-chains.js';
import { checkArchive } from './verify-archive.js';
import { chainHolders } from '../../repo/chain-manifests.js';

export async function checkTarBackup(req: BackupCheckRequest): Promise<BackupCheck> {
  const { store, backup: sc } = req;
  const problems: VerifyProblem[] = [];
  const out: BackupCheck = { bytes: 0, members: 0, problems, notes: [] };
  if (sc.engine !== 'tar') return out;
  const archive = store.pathOf(sc.archive);
  const frameProblem = checkFrames(sc);
  if (frameProblem) problems.push({ file: archive, what: frameProblem });
  let hashed: Awaited<ReturnType<typeof hashFile>>;
  try {
    hashed = await hashFile(archive, req.signal);
  } catch (e) {
    if (req.signal?.aborted) throw e;
    // EIO on a failing disk is exactly what verify is for: a finding, not the end of the run.
    problems.push({ file: archive, what: e instanceof MediumDamage ? e.what : `cannot be read: ${(e as Error).message}` });
    return out;
  }
  if (!hashed) {
    problems.push({ file: archive, what: 'missing' });
    return out;
  }
  out.bytes = hashed.size;
  if (hashed.size !== sc.archiveBytes) problems.push({ file: archive, what: `is ${hashed.size} bytes, the sidecar says ${sc.archiveBytes}` });
  if (hashed.xxh64 !== sc.archiveXxh64) problems.push({ file: archive, what: `xxh64 ${hashed.xxh64} does not match the sidecar's ${sc.archiveXxh64}` });
  if (req.depth === 'full') {
    const chainIds = new Set(chainOf(req.all, sc).map((b) => b.id));
    const content = await checkArchive(sc, archive, req.manifestTrusted ? store.pathOf(sc.manifest) : undefined, chainIds, req.logger, req.signal, req.refs, chainHolders(store, req.all, sc));
    out.members = content.members;
    problems.push(...content.problems);
    out.notes.push(...content.notes);
  }
  return out;
}

/** The frame index restore seeks by: starts at [0, 0], strictly increasing, inside both streams. */
function checkFrames(sc: TarSidecar): string | undefined {
  const f = sc.frames;
  let bad = !Array.isArray(f) || f.length === 0 || f[0]![0] !== 0 || f[0]![1] !== 0;
  for (let i = 0; !bad && i < f.length; i++) {
    const [c, t] = f[i]!;
    const prev = f[i - 1];
    if (!Number.isSafeInteger(c) || !Number.isSafeInteger(t) || c >= sc.archiveBytes || t >= sc.tarBytes) bad = true;
    else if (prev && (c <= prev[0] || t <= prev[1])) bad = true;
    else if (sc.compression === 'none' && c !== t) bad = true;
  }
  return bad ? `the sidecar's frame index is damaged (restores of single files would seek wrongly)` : undefined;
}

const closeAsync = promisify(fs.close);

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
  try {
    const { hash, bytes } = await xxh64OfFdAsync(fd, Buffer.allocUnsafe(4 << 20), () => {
      if (signal?.aborted) throw new Error(`verify interrupted while reading ${file}`);
    });
    return { xxh64: hash, size: bytes };
  } finally {
    await closeAsync(fd);
  }
}
