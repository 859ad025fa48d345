/**
 * What restore checks of the backup before trusting it, beyond the
 * manifest's checksum: that the plan is a tree (no path twice, nothing
 * below an entry that is not a directory: the tar-slip-through-symlink
 * shape), and that each archive member is what its manifest entry says
 * (type, size, path). A mismatch is damage or tampering of the medium,
 * named by path; it is never restored as either version.
 */
import type { PlannedItem } from '../core/restore-plan.js';
import { parentOf, showPath } from '../core/path-order.js';
import type { TarEntry } from '../tar/entry.js';
import { DamagedBackupError } from './restore-errors.js';

const shown = (rel: Buffer): string => showPath(rel) || '/';

/**
 * The tree-shape rule, fed entries in walk order (a directory before what it
 * holds): no path twice, nothing below an entry that is not a directory.
 * Restore applies it to its plan, verify to every manifest it checks.
 */
export class TreeShape {
  private readonly types = new Map<string, string>();

  /** Why `rel` breaks the shape (words after "its manifest ..."), or undefined. */
  add(rel: Buffer, type: string): string | undefined {
    const key = rel.toString('latin1');
    const seen = this.types.get(key);
    if (seen !== undefined) return `lists ${shown(rel)} twice (as ${seen} and as ${type})`;
    this.types.set(key, type);
    if (rel.length === 0) return undefined;
    const parent = parentOf(rel);
    const parentType = this.types.get(parent.toString('latin1'));
    if (parentType !== undefined && parentType !== 'dir') return `puts ${shown(rel)} below ${shown(parent)}, which it records as a ${parentType}`;
    return undefined;
  }
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
