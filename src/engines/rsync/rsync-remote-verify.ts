/**
 * verify for backups on the rsync engine's remote target (`user@host:/path`,
 * rsync-remote.ts). There is no xenbackup on the remote host to hash its
 * files, so the check runs here, on copies, with the local verifier
 * (verify.ts, verify-tree.ts) and reports the remote paths:
 *
 *   quick: the sidecars and manifests are copied down (small); each
 *     manifest is checked against its sidecar's xxh64 and its own checksum;
 *     each tree must be listed in the remote folder.
 *   full: the selected trees are copied down too (rsync -aHAX
 *     --numeric-ids: unchanged files shared by trees travel once, as
 *     hardlinks) into a temp dir, and each is compared with its manifest:
 *     presence, type, owner, mode, mtime, size and every file's xxh64.
 *     This reads every byte the remote host serves, which is the point, at
 *     the cost of the transfer and of room for one copy in the temp dir
 *     (TMPDIR, default /tmp), removed afterwards.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { restorePointAt } from '../../core/chain.js';
import { run } from '../../host/exec.js';
import { rsyncSshArgs } from '../../host/remote-target.js';
import { RemoteVolume, type RemoteMedium } from '../../repo/remote-volume.js';
import { backupIdFor, parseVolumeName } from '../../repo/volume-store.js';
import type { Logger } from '../../util/log.js';
import { verifyVolume, VerifyUsageError, type VerifyDepth, type VolumeVerification } from '../verify.js';

export interface RemoteVerifyRequest extends RemoteMedium {
  host: string;
  volume: string;
  depth: VerifyDepth;
  at?: Date;
  logger: Logger;
  signal?: AbortSignal;
  /** Where the copies go (default the system temp dir). */
  tempDir?: string;
}

export async function verifyRemoteVolume(req: RemoteVerifyRequest): Promise<VolumeVerification> {
  const log = req.logger;
  const remote = new RemoteVolume(req, req.host, req.volume, log);
  const listing = await remote.list();
  if (listing.backups.length === 0 && !listing.names.some((n) => n.endsWith('.json'))) {
    throw new VerifyUsageError(`no backups of ${req.volume} under ${remote.shown}`);
  }
  // Only the trees verify.ts will read: with --at, the restore point's (a tree needs no other).
  const point = req.at ? restorePointAt(listing.backups, backupIdFor(req.at)) : undefined;
  const trees = (req.at ? (point ? [point] : []) : listing.backups).map((b) => b.archive); // names checked by parseSidecar
  const present = new Set(listing.names);

  const temp = fs.mkdtempSync(path.join(req.tempDir ?? os.tmpdir(), 'xenbackup-remote-verify-'));
  try {
    const { domU, part } = parseVolumeName(req.volume);
    const local = path.join(temp, req.host, domU, part);
    fs.mkdirSync(local, { recursive: true, mode: 0o700 });
    const full = req.depth === 'full';
    // Anchored at the volume folder: its sidecars and manifests, and (full) the selected trees whole.
    const filters = ['--include=/*.json', '--include=/*.manifest', ...(full ? trees.map((t) => `--include=/${t}/***`) : []), '--exclude=*'];
    await run(
      'rsync',
      ['-s', ...rsyncSshArgs(req.ssh), '-aHAX', '--numeric-ids', '--sparse', ...filters, remote.rsyncPath('') + '/', local + '/'],
      { logger: log, timeoutMs: 12 * 3600_000 },
    );
    // quick only asks whether each tree is there: the remote listing says so.
    if (!full) for (const t of trees) if (present.has(t)) fs.mkdirSync(path.join(local, t), { mode: 0o700 });
    const result = await verifyVolume({ medium: temp, host: req.host, volume: req.volume, depth: req.depth, at: req.at, logger: log, signal: req.signal });
    return remotePaths(result, local, remote.shown);
  } finally {
    fs.rmSync(temp, { recursive: true, force: true });
  }
}

/** The verification with every path of the local copy shown as the remote one. */
function remotePaths(v: VolumeVerification, local: string, shown: string): VolumeVerification {
  const map = (s: string): string => s.split(local).join(shown);
  return {
    ...v,
    problems: v.problems.map((p) => ({ ...p, file: map(p.file), what: map(p.what) })),
    notes: v.notes.map(map),
    lines: v.lines.map(map),
  };
}
