/**
 * Where the run keeps each volume's backups: the local medium (BCKDEV's
 * mount), or for rsync volumes RSYNC_TARGET's ssh server when it is set.
 * A decision of the configuration, made here once; the engines, prune and
 * verify then work on whichever storage they are given.
 */
import type { Config, Volume } from '../config/settings.js';
import type { EngineName } from '../medium/layout.js';
import { LocalStorage } from '../storage/local-storage.js';
import { SshStorage } from '../storage/ssh-storage.js';
import type { Storage } from '../storage/storage.js';
import type { Logger } from '../util/log.js';

export interface KeptOn {
  storage: Storage;
  /** How the report names it when it is not the local medium (RSYNC_TARGET as written). */
  label?: string;
}

export class RunStorages {
  readonly local?: Storage;
  readonly remote?: KeptOn;

  constructor(cfg: Pick<Config, 'rsyncTarget'>, mediumMountpoint: string | undefined, log: Logger) {
    if (mediumMountpoint !== undefined) this.local = new LocalStorage(mediumMountpoint);
    const r = cfg.rsyncTarget;
    if (r) this.remote = { storage: new SshStorage(r.target, r.ssh, log), label: r.spec };
  }

  /** Where backups of this engine go. */
  forEngine(engine: EngineName): Storage {
    if (engine === 'rsync' && this.remote) return this.remote.storage;
    if (!this.local) throw new Error(`no local medium in this run for a ${engine} volume`);
    return this.local;
  }

  /** Every storage this run's volumes live on: the local medium first. */
  all(): KeptOn[] {
    return [...(this.local ? [{ storage: this.local }] : []), ...(this.remote ? [this.remote] : [])];
  }
}

/** The engine a volume's table line asks for: raw for fstype raw, else engine= (or ENGINE). */
export function engineOf(v: Pick<Volume, 'fstype' | 'engine'>): EngineName {
  return v.fstype === 'raw' ? 'raw' : v.engine;
}
