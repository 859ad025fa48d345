/**
 * The two phases of every engine's backup of a volume, written once:
 *
 *   prepare:  create the folder, take the volume's lock, remove the debris
 *             of interrupted runs, list the backups, choose the new id, then
 *             the engine's pass writes its files under staged names;
 *   commit:   the engine seals its files, the storage publishes them in
 *             order (archive or tree, then manifest), and the sidecar is
 *             written last: only then does the backup exist;
 *   abort:    the engine stops its writers and the staged files go.
 *
 * The lock is held from prepare until commit or abort returns. Between the
 * phases the caller checks what only it can (the snapshot still valid, the
 * snapshot's mount still the snapshot) and decides.
 */
import type { Logger } from '../util/log.js';
import { sidecarName } from '../medium/layout.js';
import { sidecarText, type Sidecar } from '../medium/sidecar.js';
import { lockVolume } from '../repo/volume-lock.js';
import { nextBackupId, type VolumeStore } from '../repo/volume-store.js';

/** What the engine's pass hands back once its files are written under staged names. */
export interface StagedBackup<S extends Sidecar> {
  /** Names of the backup's files in publish order (archive or tree, then manifest), written under Storage.stagedName. */
  names: string[];
  /** Makes the engine's files durable (fsync, close) before they are published. */
  seal(): Promise<void>;
  /** The sidecar, made at commit (its finishedAt is then). */
  sidecar(finishedAt: Date): S;
  /** Stops the engine's writers; the staged files are removed after. */
  discard(): Promise<void>;
}

export interface BackupContext {
  /** Complete backups of the volume, oldest first. */
  backups: Sidecar[];
  id: string;
  started: Date;
}

export interface TwoPhase<S extends Sidecar> {
  id: string;
  /** Publishes the backup and writes its sidecar; returns it. */
  commit(): Promise<S>;
  /** Removes everything this backup wrote. */
  abort(): Promise<void>;
}

/**
 * Prepares a backup of `store`'s volume: `stage` runs under the volume's
 * lock, with the folder tidied and the new id chosen, and writes the files.
 * `R` is what the engine reports of its pass (stats, warnings ...).
 */
export async function prepareTwoPhase<S extends Sidecar, R extends object>(
  store: VolumeStore,
  log: Logger,
  now: () => Date,
  stage: (ctx: BackupContext) => Promise<{ report: R; staged: StagedBackup<S> }>,
): Promise<R & TwoPhase<S>> {
  const { storage, folder, volume } = store;
  await store.ensure();
  // Held until commit() or abort(): a second backup of this volume would take our staged files for debris.
  const lock = await lockVolume(store, log);
  let report: R;
  let staged: StagedBackup<S>;
  let id: string;
  try {
    const { removed, backups } = await store.tidy((msg) => log.warn(msg));
    for (const name of removed) log.warn(`${volume}: removed ${name}, left by an interrupted run (in ${store.dir})`);
    const chosen = await nextBackupId(backups, now, volume, store.dir);
    id = chosen.id;
    ({ report, staged } = await stage({ backups, id: chosen.id, started: chosen.started }));
  } catch (e) {
    await lock.release();
    throw e;
  }
  const removeStaged = async (): Promise<void> => {
    for (const name of staged.names) {
      await storage.remove(folder, storage.stagedName(name)).catch((e: Error) => log.warn(`${volume}: removing ${store.show(storage.stagedName(name))}: ${e.message}`));
    }
  };
  let done = false;
  return {
    ...report,
    id,
    async commit(): Promise<S> {
      if (done) throw new Error('backup already committed or aborted');
      done = true;
      try {
        await staged.seal();
        await storage.publish(folder, staged.names);
        const sidecar = staged.sidecar(now());
        await storage.write(folder, sidecarName(sidecar), Buffer.from(sidecarText(sidecar)));
        return sidecar;
      } catch (e) {
        // Staged files go now if the storage still answers; published ones without a sidecar are the next run's debris
        // (removing them here could break a backup whose sidecar did land before the failure was seen).
        await staged.discard().catch(() => undefined);
        await removeStaged();
        throw e;
      } finally {
        await lock.release();
      }
    },
    async abort(): Promise<void> {
      if (done) return;
      done = true;
      try {
        await staged.discard();
        await removeStaged();
      } finally {
        await lock.release();
      }
    },
  };
}
