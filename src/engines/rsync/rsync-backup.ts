/**
 * The rsync engine's backup: each backup is a browsable dated tree,
 *   <volume folder>/<id>.tree/   made by rsync -aHAX --numeric-ids --delete --link-dest=../<previous tree>
 * in which unchanged files are hardlinks into the previous tree, so every
 * tree is a complete copy that costs only what changed. The tree is built
 * under its staged name and published when rsync succeeded; a manifest of
 * the source (tree-scanner.ts) and the sidecar, written last, make it a
 * backup that list, ls, restore, verify and prune handle like an archive: a
 * "full" that needs nothing else. The storage must be one rsync reaches (a
 * local folder or an ssh server); the manifest is written in place on a
 * local one, and otherwise in a temporary folder and uploaded.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '../../host/exec.js';
import type { Logger } from '../../util/log.js';
import { manifestProblems } from '../../medium/manifest-file.js';
import { ManifestCursor, openManifest } from '../../medium/manifest-reader.js';
import { ManifestWriter } from '../../medium/manifest-writer.js';
import { backupFileNames } from '../../medium/layout.js';
import { sidecarHeader, type RsyncSidecar } from '../../medium/sidecar.js';
import { localCopy } from '../../repo/local-copy.js';
import { VolumeStore } from '../../repo/volume-store.js';
import { asStorage, type Medium } from '../../storage/as-storage.js';
import type { RsyncAccess } from '../../storage/storage.js';
import { prepareTwoPhase, type TwoPhase } from '../two-phase.js';
import { TreeScanner, type ScanStats } from './tree-scanner.js';

export interface MirrorRequest {
  sourceDir: string;
  /** A local folder or an ssh server's (any storage with rsync access). */
  medium: Medium;
  host: string;
  volume: string;
  logger: Logger;
  now?: () => Date;
  /** Kill rsync after this long (default 12 h). */
  timeoutMs?: number;
  /** Aborting it (SIGTERM of the run) stops rsync at once; the partial tree is then removed. */
  signal?: AbortSignal;
  /** Local directory for the manifests of a remote storage (default the system temp dir). */
  tempDir?: string;
  /** rsync --compress: worth it on a slow link, and for sparse files, whose holes rsync sends as zeros. */
  compress?: boolean;
}

export interface MirrorReport {
  /** The tree once published, as rsync names it: /medium/h/d/p/<id>.tree or user@host:/path/h/d/p/<id>.tree. */
  treePath: string;
  unreadable: string[];
  /** Directories of another filesystem kept empty (rsync --one-file-system), e.g. nested btrfs subvolumes. */
  otherFilesystems: string[];
  stats: ScanStats;
}

export type PreparedMirror = MirrorReport & TwoPhase<RsyncSidecar>;

/** The sidecar of an rsync tree: a full that needs nothing else. */
export function treeSidecar(t: { volume: string; host: string; id: string; startedAt: Date; finishedAt: Date; stats: ScanStats; unreadable: string[]; manifestXxh64: string }): RsyncSidecar {
  const s = t.stats;
  return {
    ...sidecarHeader({ volume: t.volume, host: t.host, id: t.id, kind: 'full', base: null, chain: t.id, engine: 'rsync', compression: 'none', startedAt: t.startedAt, finishedAt: t.finishedAt }),
    kind: 'full',
    status: t.unreadable.length ? 'partial' : 'complete',
    stats: { entries: s.entries, stored: s.hashed, unchanged: s.unchanged, deleted: 0, filesRead: s.hashed, bytesRead: s.bytesRead, sourceBytes: s.sourceBytes },
    manifestXxh64: t.manifestXxh64,
    warnings: [],
    unreadable: t.unreadable.slice(0, 200),
  };
}

export function rsyncArgs(source: string, target: string, linkDest: string | undefined): string[] {
  // --modify-window=-1: compare mtimes to the nanosecond; at whole seconds, a file rewritten with the same size
  // within the second of the previous backup would be hardlinked to its stale copy.
  const args = ['-aHAX', '--numeric-ids', '--delete', '--one-file-system', '--sparse', '--modify-window=-1'];
  if (linkDest) args.push(`--link-dest=${linkDest}`);
  args.push(source.replace(/\/*$/, '/'), target.replace(/\/*$/, '/'));
  return args;
}

export async function prepareMirror(req: MirrorRequest): Promise<PreparedMirror> {
  if (!fs.statSync(req.sourceDir).isDirectory()) throw new Error(`source ${req.sourceDir} is not a directory`);
  const storage = asStorage(req.medium);
  const rsync = storage.rsync;
  if (!rsync) throw new Error(`${storage.root}: the rsync engine needs a local folder or an ssh server, not ${storage.kind} storage`);
  const store = new VolumeStore(storage, req.host, req.volume);
  const log = req.logger;
  return prepareTwoPhase(store, log, req.now ?? (() => new Date()), async ({ backups, id, started }) => {
    const previous = [...backups].reverse().find((b) => b.engine === 'rsync');
    const names = backupFileNames(id, 'full', 'rsync', 'none');
    const shown = rsync.location(store.folder, names.archive);
    log.info(`${req.volume}: rsync mirror ${id} of ${req.sourceDir} to ${store.dir}${previous ? ` (unchanged files linked to ${previous.id})` : ' (first tree: full copy)'}`);
    // rsync makes the staged tree itself inside the private (0700) volume folder; publish makes the tree 0700.
    // --link-dest is relative to the destination: the previous tree is its sibling.
    let temp: string | undefined;
    let manifest: ManifestWriter | undefined;
    try {
      await runRsync(rsync, req, rsyncArgs(req.sourceDir, rsync.location(store.folder, storage.stagedName(names.archive)), previous ? `../${previous.archive}` : undefined));
      if (!storage.local) temp = fs.mkdtempSync(path.join(req.tempDir ?? os.tmpdir(), 'xenbackup-mirror-'));
      let cursor: ManifestCursor | null = null;
      const prev = previous ? await localCopy(store, previous.manifest, temp).catch((e: Error) => e) : undefined;
      try {
        if (prev instanceof Error) throw prev;
        if (prev) {
          const problems = manifestProblems(prev.path, { ...previous!, volume: req.volume });
          if (problems.length) throw new Error(problems.join('; '));
          cursor = new ManifestCursor(openManifest(prev.path)); // a mirror's manifest refers to no other
        }
      } catch (e) {
        log.warn(`${req.volume}: the manifest of ${previous!.id} is unusable (${(e as Error).message}); hashing every file`);
      }
      let scanner: TreeScanner;
      try {
        manifest = new ManifestWriter(temp ? path.join(temp, names.manifest) : store.pathOf(names.manifest), { volume: req.volume, backup: id, base: null, createdAt: started.toISOString() });
        scanner = new TreeScanner(req.sourceDir, id, manifest, cursor, log);
        scanner.run();
      } finally {
        cursor?.close();
        if (prev && !(prev instanceof Error)) prev.release();
      }
      const m = manifest;
      let manifestXxh64 = '';
      if (temp) {
        // Sealed and uploaded now: commit is then only renames and the sidecar.
        manifestXxh64 = m.seal();
        await storage.upload(store.folder, storage.stagedName(names.manifest), m.partialPath);
        fs.rmSync(temp, { recursive: true, force: true });
      }
      return {
        report: { treePath: shown, unreadable: scanner.unreadable, otherFilesystems: scanner.otherFilesystems, stats: scanner.stats },
        staged: {
          names: [names.archive, names.manifest],
          async seal(): Promise<void> {
            if (!temp) manifestXxh64 = m.seal();
          },
          sidecar: (finishedAt) => treeSidecar({ volume: req.volume, host: req.host, id, startedAt: started, finishedAt, stats: scanner.stats, unreadable: scanner.unreadable, manifestXxh64 }),
          async discard(): Promise<void> {
            m.abort();
          },
        },
      };
    } catch (e) {
      manifest?.abort();
      // An unreachable host keeps it: the next run removes it as debris, after taking over this dead process's lock.
      await storage.remove(store.folder, storage.stagedName(names.archive)).catch((r: Error) => {
        log.warn(`${req.volume}: could not remove the partial tree ${store.show(storage.stagedName(names.archive))}: ${r.message}`);
      });
      throw e;
    } finally {
      if (temp) fs.rmSync(temp, { recursive: true, force: true });
    }
  });
}

async function runRsync(rsync: RsyncAccess, req: MirrorRequest, args: string[]): Promise<void> {
  await run('rsync', [...rsync.args, ...(req.compress ? ['--compress'] : []), ...args], {
    logger: req.logger,
    timeoutMs: req.timeoutMs ?? 12 * 3600_000,
    idle: true,
    signal: req.signal,
  });
}
