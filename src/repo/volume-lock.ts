/**
 * One backup of a volume at a time: a lock file in the volume's folder,
 * held from prepareBackup() until commit() or abort(). Without it a manual
 * `xenbackup backup` next to the nightly run would delete the other's
 * ".partial" files as debris of a crash, or (in the same second) write into
 * the same archive.
 *
 * The lock file holds its holder's pid, process start time and boot id. It
 * is written under a temporary name and hard-linked into place, so it
 * appears complete and link(2) fails when it exists. A holder that is no
 * longer running (killed, crashed, an earlier boot) is taken over with a
 * warning. Release is synchronous, so it can sit in commit(). Two processes
 * taking over the same dead holder's lock at the same instant could both
 * win; the global run lock (src/host/lock.ts) guards the nightly job
 * against that, this one only against a second, manual backup.
 */
import fs from 'node:fs';
import path from 'node:path';
import { holderAlive, type LockHolder } from '../host/lock.js';
import type { Logger } from '../util/log.js';
import { readMediumFile } from '../storage/medium-file.js';

export const VOLUME_LOCK_NAME = '.backup.lock';

export class VolumeBusyError extends Error {
  constructor(volume: string, file: string, holder: LockHolder) {
    super(`${volume}: another backup of this volume is running (pid ${holder.pid} since ${holder.acquiredAt}; lock ${file})`);
    this.name = 'VolumeBusyError';
  }
}

export interface VolumeLock {
  /** Gives the lock up (idempotent). */
  release(): void;
}

function me(): LockHolder {
  const stat = fs.readFileSync(`/proc/${process.pid}/stat`, 'utf8');
  const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  const bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  return { pid: process.pid, startTime, bootId, host: '', acquiredAt: new Date().toISOString() };
}

function readHolder(file: string): LockHolder | undefined {
  try {
    // Read as any file of the medium: a fifo or symlink planted as the lock is an unreadable lock, taken over.
    const h = JSON.parse(readMediumFile(file, 64 << 10).toString('utf8')) as LockHolder;
    return typeof h === 'object' && h !== null && typeof h.pid === 'number' && typeof h.startTime === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

/** Takes the lock of the volume folder `dir`; fails with VolumeBusyError while a live backup holds it. */
export async function lockVolume(dir: string, volume: string, log: Logger): Promise<VolumeLock> {
  const file = path.join(dir, VOLUME_LOCK_NAME);
  const mine = me();
  const text = JSON.stringify(mine) + '\n';
  for (let attempt = 0; attempt < 3; attempt++) {
    const temporary = `${file}.${process.pid}.${attempt}`;
    // O_EXCL: a name planted in the folder (a symlink to elsewhere) is removed, never written through.
    fs.rmSync(temporary, { force: true });
    fs.writeFileSync(temporary, text, { mode: 0o600, flag: 'wx' });
    try {
      fs.linkSync(temporary, file);
      let released = false;
      return {
        release(): void {
          if (released) return;
          released = true;
          const now = readHolder(file);
          if (now && now.pid === mine.pid && now.startTime === mine.startTime) fs.rmSync(file, { force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    } finally {
      fs.rmSync(temporary, { force: true });
    }
    const holder = readHolder(file);
    if (holder && (await holderAlive(holder))) throw new VolumeBusyError(volume, file, holder);
    log.warn(`${volume}: taking over ${file} from ${holder ? `pid ${holder.pid} (${holder.acquiredAt}), which is no longer running` : 'an unreadable lock'}`);
    fs.rmSync(file, { force: true });
  }
  throw new Error(`${volume}: could not take the lock ${file}`);
}

/** What a two-phase backup preparation returns: nothing counts until commit(); abort() removes it. */
interface TwoPhase {
  commit(): unknown;
  abort(): Promise<void>;
}

/**
 * Runs `prepare` holding the volume's lock, and keeps holding it until the
 * prepared backup's commit() or abort() returns (or prepare fails): every
 * engine's backup of a volume is one critical section.
 */
export async function prepareUnderVolumeLock<P extends TwoPhase>(dir: string, volume: string, log: Logger, prepare: () => Promise<P>): Promise<P> {
  const lock = await lockVolume(dir, volume, log);
  let prepared: P;
  try {
    prepared = await prepare();
  } catch (e) {
    lock.release();
    throw e;
  }
  return {
    ...prepared,
    commit(): ReturnType<P['commit']> {
      try {
        return prepared.commit() as ReturnType<P['commit']>;
      } finally {
        lock.release();
      }
    },
    async abort(): Promise<void> {
      try {
        await prepared.abort();
      } finally {
        lock.release();
      }
    },
  };
}
