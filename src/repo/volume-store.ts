/**
 * One volume's folder on the medium: <root>/<host>/<domU>/<part>/ holding
 *   <id>.<full|incr>.tar.<zst|gz>   the archive
 *   <id>.<full|incr>.manifest       what the tree held, and where each version lives
 *   <id>.<full|incr>.json           the sidecar; present only once the others are durable
 * (raw and rsync backups: see medium/layout.ts, which owns every file name)
 * where <id> is the backup's UTC start time, 20261127T013600Z. This module
 * lists and tidies those files; it does not archive anything. The folder's
 * names come from core/names.ts; a folder below the medium that is a symlink,
 * or a file name a sidecar gives that is not the layout's, is MediumDamage.
 */
import { backupIdFor, checkHostName, parseVolumeName } from '../core/names.js';
import { PARTIAL_SUFFIX } from '../medium/atomic-file.js';
import { BACKUP_FILE_RE, isPlainName, SIDECAR_FILE_RE, SIDECAR_SUFFIX, sidecarName } from '../medium/layout.js';
import { MediumDamage } from '../medium/medium-error.js';
import pLimit from 'p-limit';
import type { Storage } from '../storage/storage.js';
import { parseSidecar, type Sidecar } from '../medium/sidecar.js';

export { backupIdFor, parseVolumeName, timeOfId } from '../core/names.js';
export { BACKUP_FILE_RE } from '../medium/layout.js';

/**
 * The id of a new backup of a volume whose backups are `existing`: now, or
 * the next second if a backup already has this one. A newest backup later
 * than the clock is refused: waiting for the clock to pass it could take
 * years (a host whose clock was reset), and a backup that sorts before the
 * newest would break every chain and --at.
 */
export async function nextBackupId(existing: readonly { id: string }[], now: () => Date, volume: string, dir: string): Promise<{ id: string; started: Date }> {
  const started = now();
  let id = backupIdFor(started);
  const newest = existing[existing.length - 1];
  if (newest && newest.id > id) {
    throw new Error(`${volume}: the newest backup ${newest.id} in ${dir} is later than the clock (${id}); is the clock wrong? Nothing was written`);
  }
  // Two backups in the same second: wait for the next one rather than invent a second naming scheme.
  while (existing.some((b) => b.id >= id)) {
    await new Promise((r) => setTimeout(r, 250));
    id = backupIdFor(now());
  }
  return { id, started };
}

/**
 * One volume's folder on a storage (src/storage/): <host>/<domU>/<part>
 * beneath its root. Every engine, prune, restore and verify reach the
 * volume's files through it, whatever the storage.
 */
export class VolumeStore {
  /** The folder beneath the storage's root. */
  readonly folder: readonly string[];
  /** The folder as shown in messages. */
  readonly dir: string;

  constructor(
    readonly storage: Storage,
    readonly host: string,
    readonly volume: string,
  ) {
    checkHostName(host);
    const { domU, part } = parseVolumeName(volume);
    this.folder = [host, domU, part];
    this.dir = storage.show(this.folder);
  }

  /** Whether the volume's folder exists (a symlink or file on the way is MediumDamage). */
  async exists(): Promise<boolean> {
    return (await this.storage.list(this.folder)) !== undefined;
  }

  /** Creates the volume's folder where missing (mode 0700), refusing a symlink or file on the way. */
  async ensure(): Promise<void> {
    await this.storage.ensureFolder(this.folder);
  }

  /** The folder's names; [] when it does not exist. */
  async names(): Promise<string[]> {
    return ((await this.storage.list(this.folder)) ?? []).map((i) => i.name);
  }

  /** Complete backups, oldest first. A damaged sidecar is reported, not fatal for the others. */
  async list(onProblem?: (msg: string) => void): Promise<Sidecar[]> {
    const items = await this.storage.list(this.folder);
    return items ? this.backupsIn(items.map((i) => i.name), onProblem) : [];
  }

  /** The backups whose sidecars are among `names`, oldest first. */
  private async backupsIn(names: string[], onProblem?: (msg: string) => void): Promise<Sidecar[]> {
    // A few reads at once: on an ssh server (or an object store) each is a round trip.
    const limit = pLimit(SIDECAR_READS);
    const read = await Promise.all(
      names
        .filter((name) => name.endsWith(SIDECAR_SUFFIX))
        .map((name) =>
          limit(async (): Promise<Sidecar | Error> => {
            try {
              return parseSidecar((await this.storage.read(this.folder, name, MAX_SIDECAR_BYTES)).toString('utf8'), this.show(name), name);
            } catch (e) {
              return e as Error;
            }
          }),
        ),
    );
    const out: Sidecar[] = [];
    for (const r of read) {
      if (r instanceof Error) onProblem?.(r.message);
      else out.push(r);
    }
    out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return consistentChains(out, (s, what) => onProblem?.(new MediumDamage(this.show(sidecarName(s)), what).message));
  }

  /** A file of this folder as shown in messages; only a plain name can be one. */
  show(name: string): string {
    if (!isPlainName(name)) throw new MediumDamage(this.dir, `refusing ${JSON.stringify(name)}: not a plain file name in the volume's folder`);
    return this.storage.show(this.folder, name);
  }

  /**
   * The local path of a file of this folder, for the engines' native readers
   * and writers: only a storage with local files has one.
   */
  pathOf(name: string): string {
    this.show(name);
    if (!this.storage.local) throw new Error(`${this.dir}: this needs the backups on a local medium, not on ${this.storage.kind} storage`);
    return this.storage.local.path(this.folder, name);
  }

  /**
   * Removes what an interrupted run left: staged (".partial") files, and
   * archives or manifests that no sidecar claims; and lists the backups, in
   * the same look at the folder. Call only holding the volume's lock.
   */
  async tidy(onProblem?: (msg: string) => void): Promise<{ removed: string[]; backups: Sidecar[] }> {
    const names = (await this.storage.list(this.folder))?.map((i) => i.name) ?? [];
    const backups = await this.backupsIn(names, onProblem);
    const claimed = new Set<string>();
    for (const s of backups) {
      claimed.add(s.archive);
      claimed.add(s.manifest);
    }
    // A sidecar that is there but damaged (or names a chain its base disagrees with) is reported, not
    // a licence to delete: the files of its id stay until someone repairs or removes it.
    const sidecarIds = new Set(names.flatMap((n) => SIDECAR_FILE_RE.exec(n)?.[1] ?? []));
    const removed: string[] = [];
    for (const name of names) {
      const id = BACKUP_FILE_RE.exec(name)?.[1];
      if (name.endsWith(PARTIAL_SUFFIX) || (id !== undefined && !claimed.has(name) && !sidecarIds.has(id))) {
        await this.storage.remove(this.folder, name);
        removed.push(name);
      }
    }
    return { removed, backups };
  }
}

/** Sidecars read at once by list(). */
const SIDECAR_READS = 4;

/** A sidecar is a few kilobytes (its frame index grows by ~30 bytes per 4 MiB of tar); more is not one of ours. */
const MAX_SIDECAR_BYTES = 64 << 20;

/**
 * Sidecars (sorted by id) whose chain agrees with their base's: an
 * incremental names the same chain as the backup it builds on, and a base of
 * another engine is no base. One that does not is reported and left out; a
 * base that is missing is verify's "broken chain", not this.
 */
export function consistentChains(sorted: Sidecar[], onProblem: (s: Sidecar, what: string) => void): Sidecar[] {
  const byId = new Map<string, Sidecar>();
  const out: Sidecar[] = [];
  for (const s of sorted) {
    const base = s.base === null ? undefined : byId.get(s.base);
    if (byId.has(s.id)) onProblem(s, `a second sidecar of backup ${s.id}`);
    else if (base && (base.chain !== s.chain || base.engine !== s.engine)) {
      onProblem(s, `it builds on ${base.id} of chain ${base.chain} (${base.engine}) but names chain ${s.chain} (${s.engine})`);
    } else {
      byId.set(s.id, s);
      out.push(s);
    }
  }
  return out;
}
