/**
 * One backup or prune of a volume at a time: a lock file in the volume's
 * folder, held from a backup's preparation until its commit or abort.
 * Without it a manual `xenbackup backup` next to the nightly run would
 * delete the other's staged files as debris of a crash, or (in the same
 * second) write into the same archive.
 *
 * The lock holds its holder's pid, process start time, boot id and host,
 * as the run's lock does (host/lock.ts); the storage creates it atomically
 * (Storage.tryLock). A holder of this host that is no longer running
 * (killed, crashed, an earlier boot) is taken over with a warning; one that
 * names another host is never taken over: only this host writes below its
 * own host folder, so two hosts there is a configuration mistake. Two
 * processes taking over the same dead holder's lock at the same instant
 * could both win; the run lock guards the nightly job against that, this
 * one only against a second, manual backup.
 */
import os from 'node:os';
import { currentHolder, holderAlive, parseHolder, type LockHolder } from '../host/lock.js';
import type { Logger } from '../util/log.js';
import { VOLUME_LOCK_NAME } from '../medium/layout.js';
import type { VolumeStore } from './volume-store.js';

export { VOLUME_LOCK_NAME };

export class VolumeBusyError extends Error {
  constructor(volume: string, file: string, holder: LockHolder) {
    super(`${volume}: another backup of this volume is running (pid ${holder.pid} since ${holder.acquiredAt}; lock ${file})`);
    this.name = 'VolumeBusyError';
  }
}

export interface VolumeLock {
  /** Gives the lock up (idempotent); a failure to remove it is logged, not thrown. */
  release(): Promise<void>;
}

/** Takes the lock of the volume's folder (creating the folder); fails with VolumeBusyError while a live backup holds it. */
export async function lockVolume(store: VolumeStore, log: Logger): Promise<VolumeLock> {
  const { storage, folder, volume } = store;
  const file = store.show(VOLUME_LOCK_NAME);
  const text = JSON.stringify(await currentHolder()) + '\n';
  for (let attempt = 0; attempt < 3; attempt++) {
    const got = await storage.tryLock(folder, VOLUME_LOCK_NAME, text);
    if (got.taken) {
      let released = false;
      return {
        async release(): Promise<void> {
          if (released) return;
          released = true;
          await storage.unlock(folder, VOLUME_LOCK_NAME, text).catch((e: Error) => log.warn(`${volume}: releasing ${file}: ${e.message}`));
        },
      };
    }
    const holder = parseHolder(got.holderText);
    if (holder && holder.host && holder.host !== os.hostname()) {
      throw new Error(
        `${volume}: ${file} is held by host ${holder.host} (pid ${holder.pid} since ${holder.acquiredAt}); do two hosts write into one host folder? Remove the lock by hand once that host no longer backs up there`,
      );
    }
    if (holder && (await holderAlive(holder))) throw new VolumeBusyError(volume, file, holder);
    log.warn(`${volume}: taking over ${file} from ${holder ? `pid ${holder.pid} (${holder.acquiredAt}), which is no longer running` : 'an unreadable lock'}`);
    await storage.unlock(folder, VOLUME_LOCK_NAME, got.holderText);
  }
  throw new Error(`${volume}: could not take the lock ${file}`);
}

/** What a two-phase backup preparation returns: nothing counts until commit(); abort() removes it. */
interface TwoPhase {
  commit(): Promise<unknown>;
  abort(): Promise<void>;
}

/**
 * Runs `prepare` holding the volume's lock, and keeps holding it until the
 * prepared backup's commit() or abort() returns (or prepare fails): every
 * engine's backup of a volume is one critical section.
 */
export async function prepareUnderVolumeLock<P extends TwoPhase>(store: VolumeStore, log: Logger, prepare: () => Promise<P>): Promise<P> {
  const lock = await lockVolume(store, log);
  let prepared: P;
  try {
    prepared = await prepare();
  } catch (e) {
    await lock.release();
    throw e;
  }
  return {
    ...prepared,
    async commit(): Promise<Awaited<ReturnType<P['commit']>>> {
      try {
        return (await prepared.commit()) as Awaited<ReturnType<P['commit']>>;
      } finally {
        await lock.release();
      }
    },
    async abort(): Promise<void> {
      try {
        await prepared.abort();
      } finally {
        await lock.release();
      }
    },
  };
}
