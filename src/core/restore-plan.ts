/**
 * Restore planning: given the blocks of one backup's manifest (in walk
 * order) and the paths asked for, decide which entries to recreate and which
 * archive members hold them. Pure: the blocks come from an iterator, the
 * plan is data. Every path is checked here: a component "..", "." or an
 * absolute path is refused before anything is written.
 */
import type { ManifestEntry } from './manifest.js';
import { baseName, isWithin, joinRel, parentOf, safeComponents, showPath } from './path-order.js';

export interface PlanBlock {
  dir: Buffer;
  self: ManifestEntry;
  entries: ManifestEntry[];
}

export interface PlannedItem {
  /** Path relative to the volume's root (and to the restore target). */
  rel: Buffer;
  entry: ManifestEntry;
}

export interface RestorePlan {
  /** In walk order: a directory always before what it contains. */
  items: PlannedItem[];
  /** Requested paths that the backup does not have. */
  missing: Buffer[];
}

export class UnsafePathError extends Error {
  constructor(p: Buffer) {
    super(`refusing unsafe path "${showPath(p)}" (absolute, empty, "." or ".." component)`);
    this.name = 'UnsafePathError';
  }
}

/** Normalises a user-given path: strips leading "/" and "./" and trailing "/". */
export function normaliseRequest(p: string | Buffer): Buffer {
  let s = Buffer.isBuffer(p) ? p.toString('latin1') : Buffer.from(p).toString('latin1');
  s = s.replace(/^\/+/, '').replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  if (s === '.') s = '';
  return Buffer.from(s, 'latin1');
}

export function planRestore(blocks: Iterable<PlanBlock>, requested: Buffer[]): RestorePlan {
  const wanted = requested.length ? requested : [Buffer.alloc(0)];
  for (const w of wanted) if (!safeComponents(w)) throw new UnsafePathError(w);
  const found = new Set<number>();
  const items: PlannedItem[] = [];
  for (const block of blocks) {
    if (!safeComponents(block.dir)) throw new UnsafePathError(block.dir);
    wanted.forEach((w, i) => {
      if (isWithin(block.dir, w)) found.add(i);
    });
    const dirWanted = wanted.some((w) => isWithin(block.dir, w));
    // The root too, when the whole volume is wanted: its mode, owner and times are the volume's
    // (a /tmp volume's root is 1777).
    if (dirWanted) items.push({ rel: block.dir, entry: block.self });
    for (const e of block.entries) {
      const rel = joinRel(block.dir, e.name);
      // An empty name would be the directory itself (for the root: the restore target).
      if (e.name.length === 0 || !safeComponents(e.name) || e.name.includes(0x2f)) throw new UnsafePathError(rel);
      let take = dirWanted;
      if (!take) {
        wanted.forEach((w, i) => {
          if (w.equals(rel)) {
            take = true;
            found.add(i);
          }
        });
      }
      if (take) items.push({ rel, entry: e });
    }
  }
  return { items, missing: wanted.filter((_, i) => !found.has(i)) };
}

/** The entries of one directory as of a backup, for `ls`: its files and its subdirectories' own entries. */
export function listDirectory(blocks: Iterable<PlanBlock>, dir: Buffer): { self: ManifestEntry; children: PlannedItem[] } | undefined {
  let self: ManifestEntry | undefined;
  const children: PlannedItem[] = [];
  for (const block of blocks) {
    if (block.dir.equals(dir)) {
      self = block.self;
      for (const e of block.entries) children.push({ rel: joinRel(dir, e.name), entry: e });
    } else if (block.dir.length > 0 && parentOf(block.dir).equals(dir)) {
      children.push({ rel: block.dir, entry: { ...block.self, name: baseName(block.dir) } });
    }
  }
  if (!self) return undefined;
  children.sort((a, b) => Buffer.compare(a.entry.name, b.entry.name));
  return { self, children };
}
