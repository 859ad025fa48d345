/**
 * One volume's folder on the medium: <medium>/<host>/<domU>/<part>/ holding
 *   <id>.<full|incr>.tar.<zst|gz>   the archive
 *   <id>.<full|incr>.manifest       what the tree held, and where each version lives
 *   <id>.<full|incr>.json           the sidecar; present only once the others are durable
 * (raw backups: <id>.<full|incr>.raw.{zst,manifest,json}, see src/raw/raw-layout.ts)
 * where <id> is the backup's UTC start time, 20261127T013600Z. This module
 * names, lists and tidies those files; it does not archive anything.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ARCHIVE_EXTENSION, type Compression } from '../engine/compression.js';
import { PARTIAL_SUFFIX } from './atomic-file.js';
import { parseSidecar, type BackupKind, type Sidecar } from './sidecar.js';

/** Archives and manifests of every engine: tar, rsync trees, raw containers (src/raw/raw-layout.ts). */
export const BACKUP_FILE_RE = /^(\d{8}T\d{6}Z)\.(?:(?:full|incr)\.(?:tar(?:\.zst|\.gz)?|manifest|raw\.zst|raw\.manifest)|tree|tree\.manifest)$/;

const VOLUME_RE = /^([A-Za-z0-9._+-]+)\/([A-Za-z0-9._+-]+)$/;

export function parseVolumeName(v: string): { domU: string; part: string } {
  const m = VOLUME_RE.exec(v);
  if (!m || m[1] === '.' || m[1] === '..' || m[2] === '.' || m[2] === '..') {
    throw new Error(`volume "${v}" must be DOMU/PART (letters, digits, . _ + -), e.g. mydomu1/root`);
  }
  return { domU: m[1]!, part: m[2]! };
}

export function backupIdFor(time: Date): string {
  return time.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

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

/** The time a backup id names. */
export function timeOfId(id: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(id);
  if (!m) throw new Error(`"${id}" is not a backup id`);
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}

export interface BackupFiles {
  archive: string;
  manifest: string;
  sidecar: string;
}

export class VolumeStore {
  readonly dir: string;

  constructor(
    readonly medium: string,
    readonly host: string,
    readonly volume: string,
  ) {
    const { domU, part } = parseVolumeName(volume);
    this.dir = path.join(medium, host, domU, part);
  }

  filesFor(id: string, kind: BackupKind, compression: Compression): BackupFiles {
    const stem = `${id}.${kind === 'full' ? 'full' : 'incr'}`;
    return {
      archive: path.join(this.dir, stem + ARCHIVE_EXTENSION[compression]),
      manifest: path.join(this.dir, stem + '.manifest'),
      sidecar: path.join(this.dir, stem + '.json'),
    };
  }

  exists(): boolean {
    return fs.existsSync(this.dir);
  }

  ensure(): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  /** Complete backups, oldest first. A damaged sidecar is reported, not fatal for the others. */
  list(onProblem?: (msg: string) => void): Sidecar[] {
    if (!this.exists()) return [];
    const out: Sidecar[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      if (!name.endsWith('.json')) continue;
      const file = path.join(this.dir, name);
      try {
        out.push(parseSidecar(fs.readFileSync(file, 'utf8'), file));
      } catch (e) {
        onProblem?.((e as Error).message);
      }
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  pathOf(name: string): string {
    return path.join(this.dir, name);
  }

  /**
   * Removes what an interrupted run left: ".partial" files, and archives or
   * manifests that no sidecar claims. Returns the names removed.
   */
  removeDebris(): string[] {
    if (!this.exists()) return [];
    const claimed = new Set<string>();
    const names = fs.readdirSync(this.dir);
    for (const s of this.list()) {
      claimed.add(s.archive);
      claimed.add(s.manifest);
    }
    const removed: string[] = [];
    for (const name of names) {
      const isDebris =
        name.endsWith(PARTIAL_SUFFIX) || (BACKUP_FILE_RE.test(name) && !claimed.has(name));
      if (isDebris) {
        fs.rmSync(path.join(this.dir, name), { force: true, recursive: true });
        removed.push(name);
      }
    }
    return removed;
  }
}
