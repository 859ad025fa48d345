/**
 * Restore of an rsync tree from a storage rsync reaches but whose files are
 * not local (an ssh server): the tree is not read here file by file, rsync
 * copies the planned entries down.
 *
 * A restore plans exactly as the local one (core/restore-plan.ts, which
 * refuses absolute, "." and ".." paths in the request and in the manifest),
 * from the manifest copied here and checked against its sidecar; rsync then
 * copies the planned entries, and only those, down from "<id>.tree/" with
 * -aHAX --numeric-ids; finally each restored regular file is read back and
 * its xxh64 compared with the manifest, as the RestoreWriter does for a
 * local restore. The plan must be a tree (no entry below a symlink the
 * manifest holds: restore-checks.ts) before rsync runs; the target is
 * looked at and read back beneath its fd, never through a symlink
 * (restore-target.ts); what rsync's receiver does inside it is rsync's (3.4
 * and later open beneath the destination themselves).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { planRestore, UnsafePathError, type PlannedItem } from '../../core/restore-plan.js';
import { safeComponents, showPath } from '../../core/path-order.js';
import { run } from '../../host/exec.js';
import type { Sidecar } from '../../medium/sidecar.js';
import type { VolumeStore } from '../../repo/volume-store.js';
import type { Logger } from '../../util/log.js';
import { xxh64OfFd } from '../../util/file-xxh.js';
import { formatBytes } from '../../util/human-format.js';
import { PathInTheWay, RestoreError } from '../restore-errors.js';
import { checkPlanShape } from '../restore-checks.js';
import { RestoreTarget } from '../restore-target.js';
import { withPlanBlocks } from '../restore-point.js';
import type { RestoreRequest, RestoreResult } from '../restore-request.js';
import { openFileAt, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, statAt } from '../../native/beneath.js';

/** What the copy and the check after it did. */
interface CopyResult {
  entries: number;
  /** Regular files restored (each inode once) and their bytes. */
  files: number;
  bytes: number;
  /** Regular files whose content was checked against the manifest's xxh64. */
  filesChecked: number;
  bytesChecked: number;
  /** Sparse files: rsync --sparse may punch holes the source stored as data, so the manifest's region-wise hash does not apply. */
  unchecked: number;
  errors: string[];
}

const ITEM_TYPE: Record<string, number> = { file: S_IFREG, dir: S_IFDIR, symlink: S_IFLNK, char: S_IFCHR, block: S_IFBLK, fifo: S_IFIFO };

/** st_mode of rel in the target (the target's own for ""), 0 when missing; a symlink or file on the way is an error. */
function statBeneath(target: RestoreTarget, rel: Buffer): number {
  if (rel.length === 0) return fs.fstatSync(target.fd).mode;
  const at = target.parentOf(rel, false);
  return at ? statAt(at.dirFd, at.name) : 0;
}

/** Refuses a target in which a planned path or one of its parents would be redirected or replaced. */
function checkTarget(target: RestoreTarget, items: PlannedItem[], force: boolean): void {
  const conflicts: string[] = [];
  for (const { rel, entry } of items) {
    if (!safeComponents(rel)) throw new RestoreError(`refusing unsafe path "${showPath(rel)}"`);
    target.trim();
    let mode: number;
    try {
      mode = statBeneath(target, rel);
    } catch (e) {
      // A symlink on the way is refused even with --force; a file on the way is a conflict (rsync --force replaces it).
      if (!(e instanceof PathInTheWay) || e.symlink) throw e;
      if (!force) conflicts.push(showPath(rel));
      continue;
    }
    if (mode !== 0 && !((mode & S_IFMT) === S_IFDIR && entry.type === 'dir') && !force) conflicts.push(showPath(rel));
  }
  target.forget();
  if (conflicts.length) {
    throw new RestoreError(
      `${conflicts.length} path(s) already exist in ${target.shown}, e.g. ${conflicts.slice(0, 3).join(', ')}; nothing was restored (use --force to replace them)`,
    );
  }
}

/** xxh64 of a restored file's content, reading it beneath the target without following a symlink. */
function hashFile(target: RestoreTarget, rel: Buffer): { hash: string; bytes: number } {
  const at = target.parentOf(rel, false)!;
  const fd = openFileAt(at.dirFd, at.name);
  try {
    return xxh64OfFd(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Restores the planned paths of `backup` (an rsync tree) from a storage
 * rsync reaches but whose files are not local (an ssh server).
 */
export async function restoreByRsync(req: RestoreRequest, store: VolumeStore, backup: Sidecar): Promise<RestoreResult> {
  // planRestore checks them again, and the manifest's names.
  for (const p of req.paths) if (!safeComponents(p)) throw new UnsafePathError(p);
  const plan = await withPlanBlocks(store, backup, (blocks) => planRestore(blocks(req.paths), req.paths), req.tempDir);
  if (plan.missing.length) {
    throw new RestoreError(`not in backup ${backup.id} of ${req.volume}: ${plan.missing.map((p) => showPath(p) || '/').join(', ')}`);
  }
  checkPlanShape(plan.items, `backup ${backup.id} of ${req.volume}`);
  const temp = fs.mkdtempSync(path.join(req.tempDir ?? os.tmpdir(), 'xenbackup-rsync-restore-'));
  try {
    const dest = new RestoreTarget(req.targetDir);
    try {
      const r = await copyDown(req, store, backup, plan.items, dest, temp);
      return {
        backup,
        entries: r.entries,
        files: r.files,
        bytes: r.bytes,
        errors: r.errors,
        summary: `restored ${r.entries} entries (${r.files} files, ${formatBytes(r.bytes)}) from backup ${backup.id} on ${store.dir} into ${req.targetDir}; ${r.filesChecked} files checked`,
        warnings: r.unchecked ? [`${r.unchecked} sparse file(s) not checked: rsync --sparse may punch holes where the source stored zeros`] : [],
      };
    } finally {
      dest.close();
    }
  } finally {
    fs.rmSync(temp, { recursive: true, force: true });
  }
}

async function copyDown(req: RestoreRequest, store: VolumeStore, backup: Sidecar, items: PlannedItem[], dest: RestoreTarget, temp: string): Promise<CopyResult> {
  const log = req.logger;
  const shownDir = store.dir;
  const rsync = store.storage.rsync;
  if (!rsync) throw new RestoreError(`${store.dir}: rsync cannot reach ${store.storage.kind} storage`);
  const plan = { items };
  // rsync writes by path: the target's real path, as the fd has it.
  const target = fs.readlinkSync(`/proc/self/fd/${dest.fd}`);
  checkTarget(dest, plan.items, req.force);
  log.info(`${req.volume}: restoring ${plan.items.length} entries from ${shownDir}/${backup.archive} into ${target}`);

  // Exactly the planned entries: --files-from without -r does not descend, and the names travel
  // NUL-separated as bytes. Parents that are not planned are made with default modes, as locally.
  const list = path.join(temp, 'files');
  fs.writeFileSync(list, Buffer.concat(plan.items.flatMap((i) => [i.rel.length ? i.rel : Buffer.from('.'), Buffer.from([0])])), { mode: 0o600 });
  const source = rsync.location(store.folder, backup.archive) + '/';
  await run(
    'rsync',
    [
      ...rsync.args,
      '-aHAX',
      '--numeric-ids',
      '--sparse',
      '--no-implied-dirs',
      ...(req.force ? ['--force'] : []),
      `--files-from=${list}`,
      '--from0',
      source,
      target + '/',
    ],
    { logger: log, timeoutMs: 12 * 3600_000, signal: req.signal },
  );
  // The tree's root is kept 0700 on the medium (it holds /etc/shadow): the volume root's owner and
  // mode come from the manifest, as in a local restore. chown first: it clears setuid/setgid.
  const root = plan.items.find((i) => i.rel.length === 0);
  if (root) {
    fs.fchownSync(dest.fd, root.entry.uid, root.entry.gid);
    fs.fchmodSync(dest.fd, root.entry.mode);
  }
  return checkRestored(backup, dest, plan.items, log);
}

/** Every planned entry exists with its type; every regular file's content matches the manifest. */
function checkRestored(backup: Sidecar, target: RestoreTarget, items: PlannedItem[], log: Logger): CopyResult {
  const result: CopyResult = { entries: items.length, files: 0, bytes: 0, filesChecked: 0, bytesChecked: 0, unchecked: 0, errors: [] };
  const hashed = new Map<string, string>(); // names of one inode are read once
  const counted = new Set<string>();
  for (const { rel, entry } of items) {
    target.trim();
    let mode: number;
    try {
      mode = statBeneath(target, rel);
    } catch (e) {
      result.errors.push(`${showPath(rel) || '/'}: ${(e as Error).message}`);
      continue;
    }
    if (mode === 0 || (mode & S_IFMT) !== ITEM_TYPE[entry.type]) {
      result.errors.push(`${showPath(rel) || '/'}: ${mode ? `restored with the wrong type (expected ${entry.type})` : 'missing after the restore'}`);
      continue;
    }
    if (entry.type !== 'file') continue;
    const at = target.parentOf(rel, false)!;
    const fd = openFileAt(at.dirFd, at.name);
    let st: fs.Stats;
    try {
      st = fs.fstatSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    const key = `${st.dev}:${st.ino}`;
    if (!counted.has(key)) {
      counted.add(key);
      result.files++;
      result.bytes += st.size;
    }
    if (!entry.hash || entry.unread) continue;
    if (entry.sparse) {
      result.unchecked++;
      continue;
    }
    let hash = hashed.get(key);
    if (hash === undefined) {
      const h = hashFile(target, rel);
      hash = h.hash;
      hashed.set(key, hash);
      result.filesChecked++;
      result.bytesChecked += h.bytes;
    }
    if (hash !== entry.hash) result.errors.push(`${showPath(rel)}: content does not match the backup's checksum (xxh64 ${hash}, expected ${entry.hash})`);
  }
  for (const e of result.errors) log.error(e);
  return result;
}
