/**
 * The one order in which xenbackup visits a tree, stores its manifest and
 * writes its archives: depth first, each directory's children sorted by
 * their raw name bytes. Comparing two full paths in that order means
 * comparing byte by byte with '/' below every other byte, so "a/x" comes
 * before "a-b" (a's subtree is finished before its next sibling).
 */
const SLASH = 0x2f;

export function comparePaths(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    if (x === SLASH) return -1;
    if (y === SLASH) return 1;
    return x - y;
  }
  return a.length - b.length;
}

/** Joins a relative directory path and a child name ("" is the volume's root). */
export function joinRel(dir: Buffer, name: Buffer): Buffer {
  if (dir.length === 0) return name;
  return Buffer.concat([dir, Buffer.from('/'), name]);
}

/** True when `p` is `dir` itself or lies below it ("" contains everything). */
export function isWithin(p: Buffer, dir: Buffer): boolean {
  if (dir.length === 0) return true;
  if (p.length < dir.length) return false;
  if (p.compare(dir, 0, dir.length, 0, dir.length) !== 0) return false;
  return p.length === dir.length || p[dir.length] === SLASH;
}

export function parentOf(p: Buffer): Buffer {
  const i = p.lastIndexOf(SLASH);
  return i < 0 ? Buffer.alloc(0) : p.subarray(0, i);
}

export function baseName(p: Buffer): Buffer {
  const i = p.lastIndexOf(SLASH);
  return i < 0 ? p : p.subarray(i + 1);
}

/**
 * Splits a user- or archive-supplied relative path into components and
 * refuses anything that could escape a restore target: "..", absolute paths,
 * empty components. Returns null when the path is unsafe.
 */
export function safeComponents(p: Buffer): Buffer[] | null {
  if (p.length === 0) return [];
  if (p[0] === SLASH) return null;
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= p.length; i++) {
    if (i === p.length || p[i] === SLASH) {
      const c = p.subarray(start, i);
      if (c.length === 0 || (c.length === 1 && c[0] === 0x2e) || (c.length === 2 && c[0] === 0x2e && c[1] === 0x2e)) {
        return null;
      }
      if (c.includes(0)) return null;
      parts.push(c);
      start = i + 1;
    }
  }
  return parts;
}

/** Shows a path for humans: valid UTF-8 as is, other bytes as \xNN, control characters escaped. */
export function showPath(p: Buffer): string {
  const s = p.toString('utf8');
  const clean = Buffer.from(s, 'utf8').equals(p)
    ? s
    : Array.from(p)
        .map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`))
        .join('');
  return clean.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
