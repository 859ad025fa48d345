/**
 * A sentinel tree outside --to for restore's attack tests, and its state
 * byte for byte and metadata for metadata: type, mode, owner, size, mtime,
 * ctime (which any chmod, chown, xattr or link change moves), link count,
 * xattrs, symlink targets and content. Any write through a planted symlink
 * shows as a changed line.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { llistxattr, lgetxattr, lsetxattr } from '../../src/native/xbfs.js';

export interface Sentinel {
  /** The directory hostile entries aim at (holds a file, a subdirectory, a symlink). */
  dir: string;
  /** The state of the jail's top outside --to. */
  state(): string;
}

/** top/{outside,victim-file} and top/a/b/to (returned as `to`). */
export function makeSentinel(top: string): { to: string; sentinel: Sentinel } {
  const to = path.join(top, 'a/b/to');
  const dir = path.join(top, 'outside');
  fs.mkdirSync(to, { recursive: true });
  fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'x'), 'outside x\n');
  fs.writeFileSync(path.join(dir, 'sub/file'), 'outside sub/file\n');
  fs.writeFileSync(path.join(top, 'victim'), 'victim\n');
  fs.symlinkSync('x', path.join(dir, 'link'));
  fs.chmodSync(path.join(dir, 'x'), 0o640);
  fs.chmodSync(dir, 0o751);
  lsetxattr(Buffer.from(path.join(dir, 'x')), 'user.sentinel', Buffer.from('1'));
  const old = new Date('2001-02-03T04:05:06Z');
  for (const p of ['x', 'sub/file', 'sub', '.']) fs.utimesSync(path.join(dir, p), old, old);
  const state = (): string => {
    const out: string[] = [];
    const walk = (d: string): void => {
      for (const name of fs.readdirSync(d).sort()) {
        const p = path.join(d, name);
        if (p === to) continue; // what restore writes
        const st = fs.lstatSync(p, { bigint: true });
        let extra = '';
        if (st.isFile()) extra = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
        else if (st.isSymbolicLink()) extra = `-> ${fs.readlinkSync(p)}`;
        let xattrs = '';
        try {
          xattrs = llistxattr(Buffer.from(p)).sort().map((n) => `${n}=${lgetxattr(Buffer.from(p), n).toString('hex')}`).join(',');
        } catch {
          /* no xattrs here */
        }
        // Directories on the way to --to change mtime as it is filled: only theirs is left out.
        const onWay = to.startsWith(p + '/');
        const times = onWay ? '' : ` m${st.mtimeNs} c${st.ctimeNs}`;
        out.push(`${path.relative(top, p)} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} n${st.nlink}${times} ${extra} [${xattrs}]`);
        if (st.isDirectory()) walk(p);
      }
    };
    walk(top);
    return out.join('\n');
  };
  return { to, sentinel: { dir, state } };
}
