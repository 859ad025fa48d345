/**
 * Compares two snapshots (`tree-snapshot.ts`) entry by entry and says, in
 * words a person can act on, where a restored tree differs from its source:
 * one difference per path and field, with the expected and actual values.
 *
 * Options let a test leave out what a given restore method legitimately
 * cannot reproduce: fields everywhere (`ignore`), fields only at some paths
 * or types (`ignoreWhere`, e.g. the root directory's mtime after GNU tar),
 * whole subtrees (`ignorePaths`), whole entry types on both sides
 * (`ignoreTypes: ['socket']`), xattr names (`ignoreXattrs`). atime and ctime
 * are never compared (the snapshot does not even record them); neither are
 * directory sizes, nlink or inode numbers. Hardlinks are compared as groups
 * of paths sharing an inode, never by inode number.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { SnapshotEntry, SnapshotEntryType, TreeSnapshot } from './tree-snapshot.js';
import { showPath } from './tree-snapshot.js';

export type CompareField =
  | 'presence' | 'type' | 'mode' | 'uid' | 'gid' | 'size' | 'mtime' | 'content' | 'linkTarget'
  | 'device' | 'xattrs' | 'acl' | 'sparse' | 'allocated' | 'hardlinks';
export type IgnorableField = Exclude<CompareField, 'presence'>;

/**
 * A path relative to the snapshot root: a string or Buffer matches that
 * entry and everything below it ('' or '.' match the root alone); a RegExp is
 * tested against the entry's display form (see showPath; the root is '.').
 */
export type PathPattern = string | Buffer | RegExp;

export interface CompareOptions {
  /** Fields compared nowhere. */
  ignore?: Partial<Record<IgnorableField, boolean>>;
  /** Entries (with everything below them) left out on both sides. */
  ignorePaths?: PathPattern[];
  /** Entry types left out on both sides, e.g. ['socket'] for any restore. */
  ignoreTypes?: SnapshotEntryType[];
  /** Fields not compared for the entries matching `paths` (any, if absent) and `types` (any, if absent). */
  ignoreWhere?: Array<{ paths?: PathPattern[]; types?: SnapshotEntryType[]; fields: IgnorableField[] }>;
  /** Xattr names (exact, or RegExp) compared nowhere, e.g. 'security.selinux'. */
  ignoreXattrs?: Array<string | RegExp>;
  /**
   * How far the allocated bytes of a sparse file may differ before it counts
   * (filesystems differ in extent-tree blocks and allocation granularity).
   * Default 64 KiB. Only compared when both sides are sparse; sparse vs
   * dense is the `sparse` field.
   */
  allocatedSlackBytes?: number;
}

export interface TreeDifference {
  /** The entry's path as shown by showPath ('.' for the root). */
  path: string;
  field: CompareField;
  expected: string;
  actual: string;
}

export function formatDifference(d: TreeDifference): string {
  return `${d.path}: ${d.field}: expected ${d.expected}, actual ${d.actual}`;
}

/** The differences between `expected` (e.g. the source) and `actual` (e.g. the restore), in path order. */
export function compareTrees(expected: TreeSnapshot, actual: TreeSnapshot, opts: CompareOptions = {}): TreeDifference[] {
  const kept = (e: SnapshotEntry): boolean =>
    !(opts.ignoreTypes ?? []).includes(e.type) && !(opts.ignorePaths ?? []).some((p) => matches(p, e));
  const a = filterEntries(expected, kept);
  const b = filterEntries(actual, kept);
  const diffs: TreeDifference[] = [];

  const keys = [...new Set([...a.keys(), ...b.keys()])].sort((x, y) => Buffer.compare(Buffer.from(x, 'hex'), Buffer.from(y, 'hex')));
  let skipBelow: Buffer | undefined; // a directory reported absent on one side: its contents are not listed one by one
  for (const key of keys) {
    const ea = a.get(key);
    const eb = b.get(key);
    const any = (ea ?? eb)!;
    if (skipBelow && isBelow(any.path, skipBelow)) continue;
    skipBelow = undefined;
    if (!ea || !eb) {
      const side = ea ? a : b;
      const below = any.type === 'dir' ? countBelow(side, any.path) : 0;
      const present = `present (${any.type}${below > 0 ? `, with ${below} entries below` : ''})`;
      diffs.push({ path: any.display, field: 'presence', expected: ea ? present : 'absent', actual: eb ? present : 'absent' });
      if (below > 0) skipBelow = any.path;
      continue;
    }
    compareEntry(ea, eb, opts, diffs);
  }
  diffs.push(...compareHardlinks(expected, actual, a, b, opts));
  return diffs.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
}

/** Fails the test when the trees differ, listing the first 30 differences. */
export function assertTreesEqual(expected: TreeSnapshot, actual: TreeSnapshot, opts: CompareOptions = {}): void {
  const diffs = compareTrees(expected, actual, opts);
  if (diffs.length === 0) return;
  const shown = diffs.slice(0, 30).map((d) => '  ' + formatDifference(d));
  if (diffs.length > 30) shown.push(`  ... and ${diffs.length - 30} more`);
  assert.fail(`${actual.root} differs from ${expected.root} in ${diffs.length} place(s):\n${shown.join('\n')}`);
}

function filterEntries(s: TreeSnapshot, kept: (e: SnapshotEntry) => boolean): Map<string, SnapshotEntry> {
  return new Map([...s.entries].filter(([, e]) => kept(e)));
}

function matches(pattern: PathPattern, e: SnapshotEntry): boolean {
  if (pattern instanceof RegExp) return pattern.test(e.display);
  const p = typeof pattern === 'string' ? Buffer.from(pattern === '.' ? '' : pattern) : pattern;
  if (p.length === 0) return e.path.length === 0;
  return e.path.equals(p) || isBelow(e.path, p);
}

function isBelow(p: Buffer, dir: Buffer): boolean {
  return dir.length === 0 ? p.length > 0 : p.length > dir.length && p[dir.length] === 0x2f && p.subarray(0, dir.length).equals(dir);
}

function countBelow(entries: Map<string, SnapshotEntry>, dir: Buffer): number {
  let n = 0;
  for (const e of entries.values()) if (isBelow(e.path, dir)) n++;
  return n;
}

function ignored(field: IgnorableField, e: SnapshotEntry, opts: CompareOptions): boolean {
  if (opts.ignore?.[field]) return true;
  return (opts.ignoreWhere ?? []).some(
    (rule) =>
      rule.fields.includes(field) &&
      (!rule.types || rule.types.includes(e.type)) &&
      (!rule.paths || rule.paths.some((p) => matches(p, e))),
  );
}

function compareEntry(ea: SnapshotEntry, eb: SnapshotEntry, opts: CompareOptions, out: TreeDifference[]): void {
  const diff = (field: CompareField, expected: string, actual: string): void => {
    if (field !== 'presence' && ignored(field, ea, opts)) return;
    if (expected !== actual) out.push({ path: ea.display, field, expected, actual });
  };
  if (ea.type !== eb.type) {
    diff('type', ea.type, eb.type); // nothing else is comparable across types
    return;
  }
  diff('mode', showMode(ea.mode), showMode(eb.mode));
  diff('uid', String(ea.uid), String(eb.uid));
  diff('gid', String(ea.gid), String(eb.gid));
  diff('mtime', showTime(ea.mtimeNs), showTime(eb.mtimeNs));
  if (ea.type === 'file') {
    diff('size', String(ea.size), String(eb.size));
    // A different size already says the content differs, unless sizes are not being compared.
    if (ea.size === eb.size || ignored('size', ea, opts)) diff('content', `sha256 ${ea.contentHash?.slice(0, 16)}`, `sha256 ${eb.contentHash?.slice(0, 16)}`);
    diff('sparse', ea.sparse ? 'sparse' : 'dense', eb.sparse ? 'sparse' : 'dense');
    const slack = opts.allocatedSlackBytes ?? 64 * 1024;
    if (ea.sparse && eb.sparse && Math.abs(ea.allocatedBytes - eb.allocatedBytes) > slack) {
      diff('allocated', `${ea.allocatedBytes} bytes`, `${eb.allocatedBytes} bytes`);
    }
  }
  if (ea.type === 'symlink') diff('linkTarget', showPath(ea.linkTarget!), showPath(eb.linkTarget!));
  if (ea.type === 'char' || ea.type === 'block') diff('device', `${ea.devMajor}:${ea.devMinor}`, `${eb.devMajor}:${eb.devMinor}`);

  const xattrIgnored = (name: string): boolean => (opts.ignoreXattrs ?? []).some((p) => (p instanceof RegExp ? p.test(name) : p === name));
  const names = [...new Set([...ea.xattrs.keys(), ...eb.xattrs.keys()])].filter((n) => !xattrIgnored(n)).sort();
  for (const name of names) {
    const va = ea.xattrs.get(name);
    const vb = eb.xattrs.get(name);
    if (va && vb && va.equals(vb)) continue;
    diff('xattrs', va ? `${name}=${showValue(va)}` : `no ${name}`, vb ? `${name}=${showValue(vb)}` : `no ${name}`);
  }
  diff('acl', `access ${ea.aclAccess ?? '(none)'}`, `access ${eb.aclAccess ?? '(none)'}`);
  diff('acl', `default ${ea.aclDefault ?? '(none)'}`, `default ${eb.aclDefault ?? '(none)'}`);
}

/**
 * Hardlinks as groups of paths per inode, restricted to paths compared on
 * both sides. Groups that differ are joined when they share a path, and each
 * such cluster is one difference, reported at its first path: breaking one
 * link out of a group of three is one difference, not three.
 */
function compareHardlinks(
  expected: TreeSnapshot, actual: TreeSnapshot,
  a: Map<string, SnapshotEntry>, b: Map<string, SnapshotEntry>, opts: CompareOptions,
): TreeDifference[] {
  const considered = (key: string): boolean => a.has(key) && b.has(key) && !ignored('hardlinks', a.get(key)!, opts);
  const groupsOf = (s: TreeSnapshot): string[][] =>
    s.hardlinkGroups.map((g) => g.map((p) => p.toString('hex')).filter(considered)).filter((g) => g.length > 1);
  const ga = groupsOf(expected);
  const gb = groupsOf(actual);
  const id = (g: string[]): string => g.join(',');
  const inB = new Set(gb.map(id));
  const inA = new Set(ga.map(id));
  const changed = [...ga.filter((g) => !inB.has(id(g))), ...gb.filter((g) => !inA.has(id(g)))];

  // Union the changed groups that share a path.
  const clusters: Array<Set<string>> = [];
  for (const g of changed) {
    const touching = clusters.filter((c) => g.some((p) => c.has(p)));
    const merged = new Set<string>(g);
    for (const c of touching) {
      for (const p of c) merged.add(p);
      clusters.splice(clusters.indexOf(c), 1);
    }
    clusters.push(merged);
  }
  const show = (groups: string[][], cluster: Set<string>): string => {
    const linked = groups.filter((g) => g.some((p) => cluster.has(p)));
    const alone = [...cluster].filter((p) => !linked.some((g) => g.includes(p))).sort();
    const parts = [...linked.map((g) => g.map((p) => a.get(p)!.display).join(' = ')), ...alone.map((p) => a.get(p)!.display)];
    return parts.map((s) => `{${s}}`).join(' ');
  };
  return clusters.map((cluster) => {
    const first = [...cluster].sort((x, y) => Buffer.compare(Buffer.from(x, 'hex'), Buffer.from(y, 'hex')))[0];
    return { path: a.get(first)!.display, field: 'hardlinks' as const, expected: show(ga, cluster), actual: show(gb, cluster) };
  });
}

function showMode(mode: number): string {
  return '0' + mode.toString(8).padStart(4, '0');
}

/** ISO time with all nine digits, and the raw nanoseconds (exact, also before 1970). */
export function showTime(ns: bigint): string {
  const seconds = ns / 1_000_000_000n - (ns % 1_000_000_000n < 0n ? 1n : 0n);
  const nanos = ns - seconds * 1_000_000_000n;
  const iso = new Date(Number(seconds) * 1000).toISOString().replace(/\.\d{3}Z$/, '');
  return `${iso}.${String(nanos).padStart(9, '0')}Z (${ns} ns)`;
}

function showValue(v: Buffer): string {
  if (v.length <= 48) return '0x' + v.toString('hex');
  // The hash keeps two long values that differ only after the shown prefix from printing alike.
  return `0x${v.subarray(0, 48).toString('hex')}... (${v.length} bytes, sha256 ${createHash('sha256').update(v).digest('hex').slice(0, 16)})`;
}
