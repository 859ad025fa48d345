/**
 * What restore checks of the backup before trusting it, beyond the
 * manifest's checksum: that the plan is a tree (no path twice, nothing
 * below an entry that is not a directory: the tar-slip-through-symlink
 * shape), and that each archive member is what its manifest entry says
 * (type, size, path). A mismatch is damage or tampering of the medium,
 * named by path; it is never restored as either version.
 */
import type { PlannedItem } from '../core/restore-plan.js';
import { baseName, isWithin, joinRel, parentOf, showPath } from '../core/path-order.js';
import type { TarEntry } from '../tar/entry.js';
import { DamagedBackupError } from './restore-errors.js';

const shown = (rel: Buffer): string => showPath(rel) || '/';

/**
 * The tree-shape rule, fed entries in walk order (a directory before what it
 * holds, as manifests and plans are): no path twice, nothing below an entry
 * that is not a directory.
 * Restore applies it to its plan, verify to every manifest it checks.
 */
export class TreeShape {
  /**
   * The directories open along the path of the last entry, each with the types of its entries seen so
   * far: in walk order that is all the rule needs, so memory is bounded by the tree's depth and its
   * largest directory, not by the number of entries (a million-file manifest held a map of every path).
   */
  private readonly open: Array<{ dir: Buffer; types: Map<string, string> }> = [];

  /** Why `rel` breaks the shape (words after "its manifest ..."), or undefined. */
  add(rel: Buffer, type: string): string | undefined {
    const open = this.open;
    if (rel.length === 0) {
      if (open.length && open[0]!.dir.length === 0) return `lists ${shown(rel)} twice (as dir and as ${type})`;
      open.length = 0;
      if (type === 'dir') open.push({ dir: rel, types: new Map() });
      return undefined;
    }
    const parent = parentOf(rel);
    while (open.length && !isWithin(parent, open[open.length - 1]!.dir)) open.pop();
    // Below an entry the open directories record as something else than a directory.
    for (const o of open) {
      if (!isWithin(rel, o.dir) || o.dir.equals(rel)) continue;
      const under = firstBelow(o.dir, rel);
      const t = o.types.get(under.toString('latin1'));
      const at = joinRel(o.dir, under);
      if (t === undefined) continue;
      if (at.equals(rel)) return `lists ${shown(rel)} twice (as ${t} and as ${type})`;
      if (t !== 'dir') return `puts ${shown(rel)} below ${shown(at)}, which it records as a ${t}`;
    }
    const top = open[open.length - 1];
    if (!top || !top.dir.equals(parent)) open.push({ dir: parent, types: new Map() });
    open[open.length - 1]!.types.set(baseName(rel).toString('latin1'), type);
    if (type === 'dir') open.push({ dir: rel, types: new Map() });
    return undefined;
  }
}

/** The first component of `rel` below its ancestor `dir`. */
function firstBelow(dir: Buffer, rel: Buffer): Buffer {
  const rest = dir.length === 0 ? rel : rel.subarray(dir.length + 1);
  const slash = rest.indexOf(0x2f);
  return slash < 0 ? rest : rest.subarray(0, slash);
}

/** Refuses a plan that lists a path twice or puts an entry below a non-directory; `what` names the backup. */
export function checkPlanShape(items: PlannedItem[], what: string): void {
  const shape = new TreeShape();
  for (const { rel, entry } of items) {
    const why = shape.add(rel, entry.type);
    if (why) throw new DamagedBackupError(`${what} is damaged or hostile: its manifest ${why}; nothing was restored`);
  }
}

function memberRel(p: Buffer): Buffer {
  return p.length === 1 && p[0] === 0x2e ? Buffer.alloc(0) : p;
}

/**
 * The member read for an item against its manifest entry. A second name of a file reads the
 * member of the first name (entry.dataOffset), so its path is not compared, only type and size.
 */
export function checkMember(item: PlannedItem, meta: TarEntry, archive: string): void {
  const e = item.entry;
  const diffs: string[] = [];
  if (meta.type !== e.type) diffs.push(`type ${meta.type} (the manifest says ${e.type})`);
  if (e.dataOffset === undefined && !memberRel(meta.path).equals(item.rel)) diffs.push(`path ${showPath(meta.path) || '.'}`);
  if (e.type === 'file' && meta.type === 'file' && meta.size !== e.size) diffs.push(`size ${meta.size} (the manifest says ${e.size})`);
  if (diffs.length) {
    throw new DamagedBackupError(`${archive}: the member for ${shown(item.rel)} at tar offset ${e.dataOffset ?? e.offset} differs from the manifest: ${diffs.join(', ')}`);
  }
}
