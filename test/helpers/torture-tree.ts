/**
 * The torture tree of issue 2 item 5: one directory holding every kind of
 * entry and metadata a guest's filesystem can throw at the backup engine,
 * for fidelity tests that back it up, restore it (through xenbackup and
 * through stock GNU tar) and compare snapshots (`tree-snapshot.ts`,
 * `tree-compare.ts`).
 *
 * Built as root, in phases whose order matters:
 *   1. Node makes directories, files, symlinks and hardlinks (Buffer paths,
 *      so names that are not valid UTF-8 stay bytes);
 *   2. bash makes devices and fifos (Node has no mknod);
 *   3. Node sets owners, then modes (chown clears setuid/setgid);
 *   4. bash sets xattrs, file capabilities and ACLs (after chown, which
 *      clears security.capability; after chmod, which would rewrite the ACL
 *      mask); then Node makes the entries that inherit a default ACL, and the
 *      socket;
 *   5. bash sets every mtime with nanoseconds (`touch -h -d @S.N`: Node's
 *      utimes goes through a double and cannot), directories last, deepest
 *      first, the root at the very end;
 *   6. every mtime, owner and mode is read back and checked.
 * Commands name files as bash `$'\xHH'` strings, byte-exact for any name.
 * Everything is deterministic (a seeded generator fills the files), so two
 * builds have equal content hashes.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { bashQuote, runBash } from './scratch.js';

export interface TortureOptions {
  /** Size of the big regular file (files/big.bin). Default 100 MiB; self-tests use less. */
  bigFileSize?: number;
  /** Apparent size of sparse/lastlog-1TiB. Default 1 TiB; at least 16 MiB. */
  sparseApparentSize?: number;
  /** Make a unix socket (special/socket). Default true. */
  socket?: boolean;
}

export interface DeviceNode { path: Buffer; major: number; minor: number }
export interface SparseFile { path: Buffer; size: number; dataRegions: Array<[offset: number, length: number]> }

/** What was made. All paths are relative to `root`, as raw bytes. */
export interface TortureTree {
  root: string;
  /** Every entry made (the root excluded), in creation order. */
  all: Buffer[];
  regularFiles: Buffer[];
  emptyFiles: Buffer[];
  bigFile: Buffer;
  directories: Buffer[];
  emptyDirs: Buffer[];
  symlinks: { relative: Buffer[]; absolute: Buffer[]; dangling: Buffer[]; all: Buffer[] };
  /** Paths sharing one inode, each group sorted by bytes. */
  hardlinkGroups: Buffer[][];
  charDevices: DeviceNode[];
  blockDevices: DeviceNode[];
  fifos: Buffer[];
  /** Sockets: the engine skips them with a note; restores will not have them. */
  sockets: Buffer[];
  /** Entries with setuid, setgid or sticky bits (and some odd modes), with their st_mode & 0o7777. */
  specialModes: Array<{ path: Buffer; mode: number }>;
  /** Entries owned by ids without a passwd/group entry. */
  numericOwners: Array<{ path: Buffer; uid: number; gid: number }>;
  /** The intended mtime of every entry and of the root (path ''), verified after the build. */
  mtimes: Array<{ path: Buffer; mtimeNs: bigint }>;
  /** Entries with odd mtimes: before 1970, 0, after 2038, after 2100. */
  edgeMtimes: Buffer[];
  xattrs: Array<{ path: Buffer; name: string; value: Buffer }>;
  /** Files carrying security.capability (cap_net_raw+ep, as /bin/ping). */
  capabilities: Buffer[];
  acls: Array<{ path: Buffer; access?: string; default?: string }>;
  sparseFiles: SparseFile[];
  /** Paths longer than 255 bytes (deep, or with 255-byte components). */
  longPaths: Buffer[];
  /** Paths containing bytes that are not valid UTF-8. */
  nonUtf8Names: Buffer[];
  /** Paths containing a newline. */
  newlineNames: Buffer[];
  /** Symlinks whose target is not valid UTF-8 or contains a newline. */
  oddLinkTargets: Buffer[];
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

const b = (...parts: Array<string | number[] | Buffer>): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

/** Builds the torture tree inside `dir` (which must exist, be empty, and sit on a filesystem with xattrs and ACLs). */
export async function buildTortureTree(dir: string, opts: TortureOptions = {}): Promise<TortureTree> {
  if (process.getuid?.() !== 0) throw new Error('buildTortureTree needs root (mknod, chown, trusted.* xattrs, setcap)');
  const bigFileSize = opts.bigFileSize ?? 100 * MiB;
  const sparseSize = opts.sparseApparentSize ?? TiB;
  if (sparseSize < 16 * MiB) throw new Error(`sparseApparentSize ${sparseSize} is below 16 MiB`);
  if (fs.readdirSync(dir).length > 0) throw new Error(`buildTortureTree: ${dir} is not empty`);

  const t = new Builder(dir);
  const d = t.tree;

  // --- regular files and directories
  t.dir('files');
  d.emptyFiles.push(t.file('files/empty', ''), t.file('files/empty-too', ''));
  t.file('files/small.txt', 'hello, torture\n');
  t.file('files/one-byte', 'x');
  t.file('files/exactly-512', randomBytes(512, 1)); // one tar block, no padding
  t.file('files/513', randomBytes(513, 2));
  d.bigFile = t.file('files/big.bin', randomBytes(bigFileSize, 3));
  t.dir('dirs');
  d.emptyDirs.push(t.dir('dirs/empty'));
  t.dir('dirs/nested'); t.dir('dirs/nested/a'); t.dir('dirs/nested/a/b');
  d.emptyDirs.push(t.dir('dirs/nested/a/b/c'));
  t.dir('dirs/with-file'); t.file('dirs/with-file/file', 'inside\n');

  // --- symlinks
  t.dir('links');
  d.symlinks.relative.push(t.symlink('links/relative', '../files/small.txt'), t.symlink('links/relative-dir', '../dirs/nested'));
  d.symlinks.absolute.push(t.symlink('links/absolute', '/etc/passwd'));
  d.symlinks.dangling.push(
    t.symlink('links/dangling', 'does/not/exist'),
    t.symlink('links/dangling-absolute', '/nonexistent/xenbackup-torture'),
    t.symlink('links/self-loop', 'self-loop'),
    t.symlink('links/long-target', '../' + 'long-target-component-'.repeat(14)), // > 255 bytes, dangling
  );
  const trustedSymlink = t.symlink('links/with-trusted-xattr', '../files/one-byte');
  d.symlinks.relative.push(trustedSymlink);

  // --- hardlinks: same directory, across directories, a group of three
  t.dir('hardlinks'); t.dir('hardlinks/sub'); t.dir('other');
  t.file('hardlinks/pair-a', 'pair\n');
  t.hardlinkGroup('hardlinks/pair-a', 'hardlinks/pair-b');
  t.file('hardlinks/across', 'across directories\n');
  t.hardlinkGroup('hardlinks/across', 'other/across-link');

  // --- names: not UTF-8 (Latin-1 as old guests have), newlines, escapes
  t.dir('names');
  const cafe = t.file(b('names/caf', [0xe9], '.txt'), 'Latin-1 name\n');
  const repertoire = t.dir(b('names/r', [0xe9], 'pertoire'));
  const fichier = t.file(b(repertoire, '/fichier-', [0xe0]), 'in a Latin-1 directory\n');
  const invalid = t.file(b('names/', [0xff, 0xfe, 0x80], '-bytes'), 'invalid UTF-8 bytes\n');
  const latinTarget = t.symlink('names/symlink-to-latin1', b('caf', [0xe9], '.txt'));
  t.file('names/three-1', 'three names, one inode\n');
  const threeLatin = b('names/three-', [0xe9]);
  t.hardlinkGroup('names/three-1', 'hardlinks/sub/three-2', threeLatin);
  d.nonUtf8Names.push(cafe, repertoire, fichier, invalid, threeLatin);
  d.newlineNames.push(
    t.file('names/new\nline', 'newline inside\n'),
    t.file('names/ends-with-newline\n', 'newline at the end\n'),
    t.file('names/\nstarts-with-newline', 'newline at the start\n'),
  );
  d.oddLinkTargets.push(latinTarget, t.symlink('names/symlink-to-newline', 'new\nline'));
  t.file('names/back\\slash', 'a backslash\n');
  // getfattr prints a newline in a name as \012 and a backslash as \134: xattrs on these prove the snapshot decodes both.
  t.xattr(t.file('names/back\\012slash', 'looks like an octal escape\n'), 'user.name-with-backslash', Buffer.from('\\012'));
  t.xattr(d.newlineNames[0], 'user.name-with-newline', Buffer.from([0x0a]));
  t.file('names/tab\there', 'a tab\n');
  t.file('names/sp ace', 'a space\n');
  t.file('names/-dash', 'leading dash\n');
  t.file('names/quote"\'$`*?[x]', 'shell metacharacters\n');
  t.file('names/ünïcödé-日本語', 'valid UTF-8\n');

  // --- long paths: 255-byte components, a deep path, a hardlink and a symlink with long names
  t.dir('long');
  const longName = t.file('long/' + 'N'.repeat(255), 'a 255-byte name\n');
  const longDir = t.dir('long/' + 'D'.repeat(255));
  const longBoth = t.file(b(longDir, '/', 'F'.repeat(255)), 'two 255-byte components\n');
  const utf8Long = t.file('long/' + 'é'.repeat(127), '254 bytes of two-byte characters\n');
  let deep = 'long/deep';
  t.dir(deep);
  for (let i = 0; i < 12; i++) t.dir((deep += `/level-${String(i).padStart(2, '0')}-${'d'.repeat(40)}`));
  const deepLeaf = t.file(deep + '/leaf.txt', 'deep down\n');
  const longHardlink = b('long/' + 'H'.repeat(200) + '-hardlink-to-deep-leaf');
  t.hardlinkGroup(deepLeaf, longHardlink);
  const longSymlink = t.symlink(b(longDir, '/', 'S'.repeat(200)), b('../', 'N'.repeat(255)));
  d.longPaths.push(...[longName, longDir, longBoth, utf8Long, deepLeaf, longHardlink, longSymlink].filter((p) => p.length > 255));
  d.longPaths.push(...d.directories.filter((p) => p.length > 255 && !d.longPaths.some((q) => q.equals(p))));

  // --- special files
  t.dir('special');
  t.device('char', 'special/char-null', 1, 3);
  t.device('char', 'special/char-tty', 4, 64);
  t.device('char', 'special/char-big', 511, 262143); // the largest xfs stores (9+18 bits, measured); beyond ext4's old 8+8 encoding
  t.device('block', 'special/block-loop0', 7, 0);
  t.device('block', 'special/block-nvme', 259, 65536);
  t.fifo('special/fifo');
  const ownedFifo = t.fifo('special/fifo-4242');

  // --- modes and owners without passwd entries
  t.dir('modes');
  const setuidFile = t.file('modes/setuid', randomBytes(1000, 4));
  t.mode(setuidFile, 0o4755);
  t.mode(t.file('modes/setgid', 'setgid\n'), 0o2755);
  const both = t.file('modes/setuid-setgid-4242', 'setuid+setgid, owned by 4242\n');
  t.owner(both, 4242, 4343); t.mode(both, 0o6750);
  t.mode(t.file('modes/sticky-file', 'sticky on a file\n'), 0o1644);
  t.mode(t.file('modes/no-permissions', 'mode 0000\n'), 0o000);
  t.mode(t.file('modes/odd-0421', 'odd mode\n'), 0o421);
  const stickyDir = t.dir('modes/sticky-dir');
  t.mode(stickyDir, 0o1777);
  const setgidDir = t.dir('modes/setgid-dir');
  t.file('modes/setgid-dir/inside', 'in a setgid directory\n');
  t.mode(setgidDir, 0o2775);
  const lockedDir = t.dir('modes/locked-dir'); // a restore must set its mode after filling it
  t.file('modes/locked-dir/inside', 'in a mode-0000 directory\n');
  t.mode(lockedDir, 0o000);
  d.emptyDirs.push(stickyDir);

  t.dir('owners');
  t.owner(t.file('owners/4242-4343', 'uid 4242\n'), 4242, 4343);
  t.owner(t.file('owners/2000000-2000001', 'uid 2000000\n'), 2000000, 2000001);
  t.owner(t.file('owners/3000000000-3000000001', 'uid above 2^31\n'), 3000000000, 3000000001);
  t.owner(t.file('owners/0-4343', 'group only\n'), 0, 4343);
  const ownedDir = t.dir('owners/dir-4242');
  t.file('owners/dir-4242/root-owned-inside', 'root-owned in a 4242 directory\n');
  t.owner(ownedDir, 4242, 4343);
  t.owner(t.symlink('owners/symlink-4242', '4242-4343'), 4242, 4343);
  t.owner(ownedFifo, 4242, 4343); t.mode(ownedFifo, 0o600);

  // --- xattrs and capabilities
  t.dir('xattrs');
  const xf = t.file('xattrs/user-binary', 'has user xattrs\n');
  t.xattr(xf, 'user.binary', Buffer.from(Array.from({ length: 256 }, (_, i) => i)));
  t.xattr(xf, 'user.empty', Buffer.alloc(0));
  t.xattr(xf, 'user.text', Buffer.from('hello'));
  t.xattr(xf, 'user.long', randomBytes(400, 5)); // more than a tar block of pax text, and all of them fit a 1 KiB-block ext4
  t.xattr(t.dir('xattrs/dir'), 'user.on-a-directory', Buffer.from([0xde, 0xad, 0xbe, 0xef]));
  t.xattr(t.file('xattrs/trusted', 'trusted xattr\n'), 'trusted.xenbackup', Buffer.from([0x00, 0x01, 0x02]));
  t.xattr(trustedSymlink, 'trusted.on-a-symlink', Buffer.from('symlink xattr'));
  t.xattr(b('names/three-1'), 'user.on-a-hardlinked-file', Buffer.from([0x11]));
  t.xattr(cafe, 'user.latin1-file', Buffer.from([0xe9]));
  const ping = t.file('xattrs/ping', randomBytes(4096, 6));
  t.mode(ping, 0o755);
  t.capability(ping);

  // --- POSIX ACLs
  t.dir('acls');
  t.acl(t.file('acls/file', 'access ACL\n'), 'u:4242:r--,g:4343:rw-', 'user::rw-,user:4242:r--,group::r--,group:4343:rw-,mask::rw-,other::r--');
  const defDir = t.dir('acls/default-dir');
  t.acl(defDir, 'u:4242:rwx,d:u:4242:rwx,d:g:4343:r-x',
    'user::rwx,user:4242:rwx,group::r-x,mask::rwx,other::r-x',
    'user::rwx,user:4242:rwx,group::r-x,group:4343:r-x,mask::rwx,other::r-x');
  const onlyDefault = t.dir('acls/only-default');
  t.acl(onlyDefault, 'd:u:4242:rw-', undefined, 'user::rwx,user:4242:rw-,group::r-x,mask::rwx,other::r-x');
  d.emptyDirs.push(onlyDefault);

  // --- sparse files (data at known offsets; the rest holes)
  t.dir('sparse');
  const at4k = (n: number): number => Math.floor(n / 4096) * 4096;
  t.sparse('sparse/lastlog-1TiB', sparseSize, [
    [0, 64 * 1024], [at4k(sparseSize / 1024), MiB], [at4k(sparseSize / 2), MiB], [sparseSize - MiB, MiB],
  ]);
  t.sparse('sparse/ends-in-hole', 64 * MiB, [[4 * MiB, MiB], [40 * MiB + 100, 300]]);
  t.sparse('sparse/only-hole', GiB, []);
  // lastlog itself: 292-byte records at uid * 292, unaligned, in a file sized for uid 2000000
  t.sparse('sparse/lastlog', 2000001 * 292, [0, 1000, 4242, 65534, 2000000].map((uid) => [uid * 292, 292] as [number, number]));

  // --- phase 2: devices and fifos
  t.runShell('nodes');
  // --- phase 3: owners, then modes
  t.applyOwnersAndModes();
  // --- phase 4: xattrs, capabilities, ACLs; then what inherits a default ACL, and the socket
  t.runShell('attributes');
  t.file('acls/default-dir/inherits-file', 'inherits the default ACL\n', null);
  t.dir('acls/default-dir/inherits-dir', null);
  d.acls.push(
    { path: b('acls/default-dir/inherits-file'), access: 'user::rw-,user:4242:rwx,group::r-x,group:4343:r-x,mask::rw-,other::r--' },
    { path: b('acls/default-dir/inherits-dir'), access: 'user::rwx,user:4242:rwx,group::r-x,group:4343:r-x,mask::rwx,other::r-x',
      default: 'user::rwx,user:4242:rwx,group::r-x,group:4343:r-x,mask::rwx,other::r-x' },
  );
  if (opts.socket ?? true) await t.socket('special/socket');
  // --- phase 5 and 6
  t.setMtimes();
  t.verify();
  return d;
}

type Kind = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

/** Collects what to make and the commands to run, and records the description as it goes. */
class Builder {
  readonly tree: TortureTree;
  private readonly rootBytes: Buffer;
  /** Commands of phase 2 (mknod, mkfifo) and phase 4 (setfattr, setcap, setfacl), run in one bash each. */
  private shell: Record<'nodes' | 'attributes', string[]> = { nodes: [], attributes: [] };
  private owners: Array<{ path: Buffer; uid: number; gid: number }> = [];
  private modes: Array<{ path: Buffer; mode: number }> = [];
  /** One mtime per inode (hardlink siblings are not touched again). */
  private timed: Array<{ path: Buffer; kind: Kind; mtimeNs: bigint }> = [];
  private mtimeCounter = 0;

  constructor(root: string) {
    this.rootBytes = Buffer.from(root);
    this.tree = {
      root, all: [], regularFiles: [], emptyFiles: [], bigFile: Buffer.alloc(0), directories: [], emptyDirs: [],
      symlinks: { relative: [], absolute: [], dangling: [], all: [] }, hardlinkGroups: [], charDevices: [], blockDevices: [],
      fifos: [], sockets: [], specialModes: [], numericOwners: [], mtimes: [], edgeMtimes: [], xattrs: [], capabilities: [],
      acls: [], sparseFiles: [], longPaths: [], nonUtf8Names: [], newlineNames: [], oddLinkTargets: [],
    };
  }

  abs(rel: Buffer): Buffer {
    return rel.length === 0 ? this.rootBytes : Buffer.concat([this.rootBytes, Buffer.from('/'), rel]);
  }

  private made(rel: Buffer, kind: Kind): Buffer {
    this.tree.all.push(rel);
    this.timed.push({ path: rel, kind, mtimeNs: this.nextMtime(rel) });
    return rel;
  }

  /** Distinct mtimes whose nanoseconds are never a whole microsecond, plus a few edge cases by name. */
  private nextMtime(rel: Buffer): bigint {
    const name = rel.toString('latin1');
    const edges: Record<string, bigint> = {
      'files/one-byte': -86_400_500_000_000n, // 1969-12-30 23:59:59.5
      'files/empty-too': 0n,
      'files/exactly-512': 2_147_483_648_500_000_001n, // just past the 32-bit time_t limit
      'files/513': 4_102_444_800_999_999_999n, // 2100-01-01, last nanosecond of its second
    };
    if (name in edges) {
      this.tree.edgeMtimes.push(rel);
      return edges[name];
    }
    const i = this.mtimeCounter++;
    let nanos = (i * 123_456_789 + 987_654_321) % 1_000_000_000;
    if (nanos % 1000 === 0) nanos += 1;
    return BigInt(1_600_000_000 + i * 86_413) * 1_000_000_000n + BigInt(nanos);
  }

  dir(rel: string | Buffer, mode: number | null = 0o755): Buffer {
    const p = b(rel);
    fs.mkdirSync(this.abs(p));
    if (mode !== null) this.modes.push({ path: p, mode });
    this.tree.directories.push(p);
    return this.made(p, 'dir');
  }

  file(rel: string | Buffer, content: string | Buffer, mode: number | null = 0o644): Buffer {
    const p = b(rel);
    fs.writeFileSync(this.abs(p), content, { flag: 'wx' });
    if (mode !== null) this.modes.push({ path: p, mode });
    this.tree.regularFiles.push(p);
    return this.made(p, 'file');
  }

  symlink(rel: string | Buffer, target: string | Buffer): Buffer {
    const p = b(rel);
    fs.symlinkSync(b(target), this.abs(p));
    this.tree.symlinks.all.push(p);
    return this.made(p, 'symlink');
  }

  /** Links the later paths to the first one's inode (which must exist already). */
  hardlinkGroup(first: string | Buffer, ...others: Array<string | Buffer>): void {
    const group = [b(first)];
    for (const other of others) {
      const p = b(other);
      fs.linkSync(this.abs(group[0]), this.abs(p));
      this.tree.all.push(p);
      this.tree.regularFiles.push(p);
      group.push(p);
    }
    this.tree.hardlinkGroups.push(group.sort(Buffer.compare));
  }

  device(kind: 'char' | 'block', rel: string, major: number, minor: number): Buffer {
    const p = b(rel);
    this.shell.nodes.push(`mknod -m 0640 ${bashQuote(this.abs(p))} ${kind === 'char' ? 'c' : 'b'} ${major} ${minor}`);
    (kind === 'char' ? this.tree.charDevices : this.tree.blockDevices).push({ path: p, major, minor });
    this.modes.push({ path: p, mode: 0o640 });
    return this.made(p, kind);
  }

  fifo(rel: string): Buffer {
    const p = b(rel);
    this.shell.nodes.push(`mkfifo -m 0644 ${bashQuote(this.abs(p))}`);
    this.tree.fifos.push(p);
    return this.made(p, 'fifo');
  }

  sparse(rel: string, size: number, regions: Array<[number, number]>): void {
    const p = this.file(rel, '');
    const fd = fs.openSync(this.abs(p), 'r+');
    try {
      fs.ftruncateSync(fd, size);
      regions.forEach(([offset, length], i) => fs.writeSync(fd, randomBytes(length, 100 + i), 0, length, offset));
    } finally {
      fs.closeSync(fd);
    }
    this.tree.sparseFiles.push({ path: p, size, dataRegions: regions });
  }

  owner(p: Buffer, uid: number, gid: number): void {
    this.owners.push({ path: p, uid, gid });
    this.tree.numericOwners.push({ path: p, uid, gid });
  }

  mode(p: Buffer, mode: number): void {
    this.modes = this.modes.filter((m) => !m.path.equals(p));
    this.modes.push({ path: p, mode });
    if (mode & 0o7000 || (mode & 0o777) === 0 || mode === 0o421) this.tree.specialModes.push({ path: p, mode });
  }

  xattr(p: Buffer, name: string, value: Buffer): void {
    const v = value.length === 0 ? '' : ` -v 0x${value.toString('hex')}`;
    this.shell.attributes.push(`setfattr -h -n ${name}${v} ${bashQuote(this.abs(p))}`);
    this.tree.xattrs.push({ path: p, name, value });
  }

  capability(p: Buffer): void {
    this.shell.attributes.push(`setcap cap_net_raw+ep ${bashQuote(this.abs(p))}`);
    this.tree.capabilities.push(p);
  }

  acl(p: Buffer, spec: string, access?: string, defaultAcl?: string): void {
    this.shell.attributes.push(`setfacl -m ${spec} ${bashQuote(this.abs(p))}`);
    this.tree.acls.push({ path: p, access, default: defaultAcl });
  }

  async socket(rel: string): Promise<void> {
    const p = b(rel);
    // Closing a listening server unlinks its path; renaming the socket first keeps the inode.
    const temporary = `${this.tree.root}/.torture-socket-${process.pid}`;
    if (Buffer.byteLength(temporary) > 100) throw new Error(`torture tree root ${this.tree.root} is too long for a unix socket path`);
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(temporary, resolve));
    fs.renameSync(temporary, this.abs(p));
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (!fs.lstatSync(this.abs(p)).isSocket()) throw new Error(`socket ${rel} did not survive closing its server`);
    this.tree.sockets.push(p);
    this.made(p, 'socket');
  }

  runShell(queue: 'nodes' | 'attributes'): void {
    if (this.shell[queue].length > 0) runBash(this.shell[queue].join('\n'), `torture tree: making ${queue}`);
    this.shell[queue] = [];
  }

  applyOwnersAndModes(): void {
    for (const { path: p, uid, gid } of this.owners) fs.lchownSync(this.abs(p), uid, gid);
    for (const { path: p, mode } of this.modes) fs.chmodSync(this.abs(p), mode);
  }

  /** Touches every inode once, directories after their contents (deepest first), the root last. */
  setMtimes(): void {
    const rootTime = { path: Buffer.alloc(0), kind: 'dir' as Kind, mtimeNs: 1_700_000_000_123_456_789n };
    const nonDirs = this.timed.filter((e) => e.kind !== 'dir');
    const dirs = this.timed.filter((e) => e.kind === 'dir').sort((x, y) => depth(y.path) - depth(x.path));
    const script = [...nonDirs, ...dirs, rootTime].map((e) => `touch -h -d @${formatSeconds(e.mtimeNs)} ${bashQuote(this.abs(e.path))}`);
    runBash(script.join('\n'), 'torture tree: touch');
    const byInode = new Map<string, bigint>(this.timed.map((e) => [e.path.toString('hex'), e.mtimeNs]));
    for (const group of this.tree.hardlinkGroups) {
      const shared = group.map((p) => byInode.get(p.toString('hex'))).find((t) => t !== undefined)!;
      for (const p of group) byInode.set(p.toString('hex'), shared);
    }
    this.tree.mtimes = [
      { path: rootTime.path, mtimeNs: rootTime.mtimeNs },
      ...this.tree.all.map((p) => ({ path: p, mtimeNs: byInode.get(p.toString('hex'))! })),
    ];
  }

  /** Reads everything back: a silently ignored chown, chmod or touch would make every later test meaningless. */
  verify(): void {
    for (const { path: p, mtimeNs } of this.tree.mtimes) {
      const st = fs.lstatSync(this.abs(p), { bigint: true });
      if (st.mtimeNs !== mtimeNs) throw new Error(`torture tree: mtime of ${this.abs(p).toString('latin1')} is ${st.mtimeNs} ns, wanted ${mtimeNs}`);
    }
    for (const { path: p, uid, gid } of this.owners) {
      const st = fs.lstatSync(this.abs(p));
      if (st.uid !== uid || st.gid !== gid) throw new Error(`torture tree: owner of ${this.abs(p).toString('latin1')} is ${st.uid}:${st.gid}, wanted ${uid}:${gid}`);
    }
    for (const { path: p, mode } of this.modes) {
      if (this.tree.acls.some((a) => a.path.equals(p))) continue; // setfacl rewrote the group bits to the ACL mask
      const st = fs.lstatSync(this.abs(p));
      if ((st.mode & 0o7777) !== mode) throw new Error(`torture tree: mode of ${this.abs(p).toString('latin1')} is ${(st.mode & 0o7777).toString(8)}, wanted ${mode.toString(8)}`);
    }
    for (const { path: p, size } of this.tree.sparseFiles) {
      const st = fs.statSync(this.abs(p));
      if (st.size !== size || st.blocks * 512 >= size) throw new Error(`torture tree: ${this.abs(p).toString('latin1')} is not sparse (size ${st.size}, ${st.blocks} blocks)`);
    }
  }
}

function depth(p: Buffer): number {
  let n = 0;
  for (const c of p) if (c === 0x2f) n++;
  return n;
}

/** Nanoseconds since the epoch as touch's `@SECONDS.NANOS` (a negative value keeps its sign in front). */
export function formatSeconds(ns: bigint): string {
  const sign = ns < 0n ? '-' : '';
  const abs = ns < 0n ? -ns : ns;
  return `${sign}${abs / 1_000_000_000n}.${String(abs % 1_000_000_000n).padStart(9, '0')}`;
}

/** Deterministic pseudo-random bytes (xorshift32; incompressible enough, and the same on every run). */
export function randomBytes(length: number, seed: number): Buffer {
  const words = new Uint32Array(Math.ceil(length / 4));
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    words[i] = x;
  }
  return Buffer.from(words.buffer, 0, length);
}
