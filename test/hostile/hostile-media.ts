/**
 * Hostile media for issue 14: a "world" (a backup medium made by the real
 * CLI, a sentinel tree beside it, the source it was made from) that a test
 * copies, edits the way an attacker with write access to the medium would
 * (fixing every checksum the edit breaks, see media-edit.ts), and then runs
 * the real CLI against (`node bin/xenbackup ...`, killed after a time
 * limit), asserting after each command that nothing outside the volume's
 * folder and outside --to changed, that the command ended with a message of
 * single lines (no stack trace) and the documented exit code.
 *
 * Layout of a world (all under one scratch directory):
 *   medium/test-host/v/p/    four backups: A full, B incr, C full, D incr (D is the newest)
 *   medium/h2/v/p/           another host's folder (a copy of v/p): a sentinel inside the medium
 *   outside/                 the sentinel tree: etc/passwd, a victim file, copies of the volume's
 *                            folder (fakevol, fakehost) that an escape would find and delete
 *   src/                     the tree the backups were made of (also a sentinel)
 *   to/                      where restores go (absent until a restore makes it)
 * Test-only code: commands run through child_process directly.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { snapshotTree, type TreeSnapshot } from '../helpers/tree-snapshot.js';
import { compareTrees, formatDifference } from '../helpers/tree-compare.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const CLI = path.join(REPO, 'bin/xenbackup');
export const HOST = 'test-host';
export const VOLUME = 'v/p';
/** A fixed old time for every sentinel entry, so any touch shows. */
const SENTINEL_TIME = new Date('2001-02-03T04:05:06Z');

/**
 * Where worlds go: /dev/shm (tmpfs) when there is one. Each case copies a
 * world and removes it again; on this machine's ext4 /tmp that cost ~35 ms a
 * case in journal work, on tmpfs ~2 ms, and the fuzzer runs thousands.
 */
export function fastTmp(): string {
  try {
    fs.accessSync('/dev/shm', fs.constants.W_OK);
    if (fs.statSync('/dev/shm').isDirectory()) return '/dev/shm';
  } catch {
    // no tmpfs: the system's temp dir
  }
  return os.tmpdir();
}

export interface World {
  root: string;
  medium: string;
  /** medium/test-host/v/p */
  vol: string;
  outside: string;
  src: string;
  to: string;
  /** Backup ids, oldest first: A full, B incr, C full, D incr. */
  ids: [string, string, string, string];
}

export function worldAt(root: string, ids: World['ids']): World {
  const medium = path.join(root, 'medium');
  return { root, medium, vol: path.join(medium, HOST, 'v', 'p'), outside: path.join(root, 'outside'), src: path.join(root, 'src'), to: path.join(root, 'to'), ids };
}

function put(file: string, content: string | Buffer, mode = 0o644): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content, { mode });
  fs.chmodSync(file, mode);
}

function cli(args: string[]): string {
  return execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C.UTF-8' } });
}

/** The ids of the volume's backups, oldest first, from the sidecar names. */
export function idsIn(vol: string): string[] {
  return fs.readdirSync(vol).filter((n) => n.endsWith('.json')).map((n) => n.slice(0, 16)).sort();
}

/**
 * Makes the world every case starts from: four real backups (two chains) of a
 * small tree that holds a file, a subdirectory, a symlink, a hardlink pair and
 * a fifo, and the sentinel tree.
 */
export function buildGolden(root: string): World {
  const w = worldAt(root, ['', '', '', ''] as World['ids']);
  fs.mkdirSync(w.medium, { recursive: true });
  put(path.join(w.src, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  put(path.join(w.src, 'etc/shadow'), 'root:*:19000:0:99999:7:::\n', 0o600);
  put(path.join(w.src, 'd/e/f'), 'deep\n');
  put(path.join(w.src, 'd/big'), Buffer.alloc(200_000, 'b'));
  fs.symlinkSync('../etc/passwd', path.join(w.src, 'd/link'));
  fs.linkSync(path.join(w.src, 'etc/passwd'), path.join(w.src, 'hl'));
  execFileSync('mkfifo', [path.join(w.src, 'd/fifo')]);
  const backup = (extra: string[] = []): void => {
    cli(['backup', w.src, '--volume', VOLUME, '--medium', w.medium, '--host', HOST, '-q', ...extra]);
  };
  backup(); // A
  put(path.join(w.src, 'd/new'), 'new in B\n');
  backup(); // B
  put(path.join(w.src, 'd/e/f'), 'deep, changed for C\n');
  backup(['--full']); // C
  fs.rmSync(path.join(w.src, 'd/new'));
  put(path.join(w.src, 'etc/motd'), 'hello from D\n');
  backup(); // D
  const ids = idsIn(w.vol);
  if (ids.length !== 4) throw new Error(`golden medium: expected 4 backups, found ${ids.join(' ')}`);

  // The sentinel tree: what an escape would reach.
  put(path.join(w.outside, 'etc/passwd'), 'root:x:0:0:SENTINEL:/root:/bin/sh\n');
  put(path.join(w.outside, 'etc/shadow'), 'root:SENTINEL:19000::::::\n', 0o600);
  put(path.join(w.outside, 'victim'), 'victim file: must survive\n', 0o640);
  put(path.join(w.outside, 'sub/deep/file'), 'deep sentinel\n', 0o600);
  put(path.join(w.outside, 'sub/x'), 'x sentinel\n');
  fs.symlinkSync('../etc/passwd', path.join(w.outside, 'sub/link'));
  fs.chmodSync(path.join(w.outside, 'sub/deep'), 0o700);
  // Copies of the volume's folder and of the host's folder, as a planted symlink would find them.
  execFileSync('cp', ['-a', w.vol, path.join(w.outside, 'fakevol')]);
  fs.mkdirSync(path.join(w.outside, 'fakehost'), { recursive: true });
  execFileSync('cp', ['-a', path.join(w.medium, HOST, 'v'), path.join(w.outside, 'fakehost/v')]);
  // Another host's folder on the same medium: outside this volume's folder, so a sentinel too.
  fs.mkdirSync(path.join(w.medium, 'h2'), { recursive: true });
  execFileSync('cp', ['-a', path.join(w.medium, HOST, 'v'), path.join(w.medium, 'h2/v')]);
  for (const top of [w.outside, path.join(w.medium, 'h2')]) setTimesBelow(top);
  return { ...w, ids: ids as World['ids'] };
}

function setTimesBelow(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = fs.lstatSync(p);
    if (st.isDirectory()) setTimesBelow(p);
    fs.lutimesSync(p, SENTINEL_TIME, SENTINEL_TIME);
  }
  fs.lutimesSync(dir, SENTINEL_TIME, SENTINEL_TIME);
}

/** A copy of the golden world at `root` (cp -a: modes, owners, times and links as they are). */
export function cloneWorld(golden: World, root: string): World {
  execFileSync('cp', ['-a', golden.root, root]);
  return worldAt(root, golden.ids);
}

/** The trees that must not change: the sentinel, the source, another host's folder on the medium. */
export function sentinelRoots(w: World): string[] {
  return [w.outside, w.src, path.join(w.medium, 'h2')];
}

export interface Sentinel {
  snaps: TreeSnapshot[];
  topLevel: string;
  quick: string[];
}

/**
 * A cheap record of a tree, taken after every command: each entry's type,
 * mode, owner, size, mtime (ns), link target and content hash (no xattrs:
 * the full snapshot, taken at the start and end of a case, has those).
 */
export function quickState(root: string): string {
  return treeLines(root, (p, rel, st) => {
    let extra = '';
    if (st.isSymbolicLink()) extra = ` -> ${fs.readlinkSync(p)}`;
    else if (st.isFile()) extra = ` ${createHash('sha1').update(fs.readFileSync(p)).digest('hex')}`;
    return `${rel} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeNs} nlink ${st.nlink}${extra}`;
  });
}

/**
 * The cheapest record of a tree, for the fuzzer's check after each of its
 * thousands of cases: each entry's lstat with ctime (which any write, chmod,
 * chown, utimes or setxattr moves), the link target of symlinks; nothing read.
 */
export function statState(root: string): string {
  return treeLines(root, (p, rel, st) =>
    `${rel} ${st.ino} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeNs} ${st.ctimeNs} ${st.nlink}${st.isSymbolicLink() ? ` -> ${fs.readlinkSync(p)}` : ''}`,
  );
}

/** One line per entry of a tree in name order (lstat, nothing followed); an entry that cannot be stat'ed says why. */
function treeLines(root: string, line: (p: string, rel: string, st: fs.BigIntStats) => string): string {
  const out: string[] = [];
  const walk = (p: string, rel: string): void => {
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(p, { bigint: true });
    } catch (e) {
      out.push(`${rel} ${(e as NodeJS.ErrnoException).code}`);
      return;
    }
    out.push(line(p, rel, st));
    if (st.isDirectory()) for (const n of fs.readdirSync(p).sort()) walk(path.join(p, n), rel + '/' + n);
  };
  walk(root, '.');
  return out.join('\n');
}

/** The lines of `b` that differ from `a` (both quickState texts), for a message. */
function quickDiff(a: string, b: string): string[] {
  const la = new Set(a.split('\n'));
  const lb = new Set(b.split('\n'));
  return [...[...la].filter((l) => !lb.has(l)).map((l) => `was: ${l}`), ...[...lb].filter((l) => !la.has(l)).map((l) => `now: ${l}`)].slice(0, 12);
}

/** What changed since `before` by the cheap record (empty: nothing). */
export function quickChanges(w: World, before: Sentinel): string[] {
  const out: string[] = [];
  sentinelRoots(w).forEach((r, i) => {
    const now = quickState(r);
    if (now !== before.quick[i]) out.push(...quickDiff(before.quick[i]!, now).map((d) => `${r}: ${d}`));
  });
  const top = topLevel(w);
  if (top !== before.topLevel) out.push(`${w.root}: entries were "${before.topLevel}", now "${top}"`);
  return out;
}

export async function takeSentinel(w: World): Promise<Sentinel> {
  const snaps: TreeSnapshot[] = [];
  for (const r of sentinelRoots(w)) snaps.push(await snapshotTree(r));
  return { snaps, topLevel: topLevel(w), quick: sentinelRoots(w).map(quickState) };
}

function topLevel(w: World): string {
  // Besides the world's own folders nothing may appear next to them (an escape one level up from --to).
  return fs.readdirSync(w.root).filter((n) => n !== 'to').sort().join(' ');
}

/** What changed in the sentinel since `before` (empty: nothing). */
export async function sentinelChanges(w: World, before: Sentinel): Promise<string[]> {
  const out: string[] = [];
  const roots = sentinelRoots(w);
  for (let i = 0; i < roots.length; i++) {
    let now: TreeSnapshot;
    try {
      now = await snapshotTree(roots[i]!);
    } catch (e) {
      out.push(`${roots[i]}: ${(e as Error).message}`);
      continue;
    }
    for (const d of compareTrees(before.snaps[i]!, now)) out.push(`${roots[i]}: ${formatDifference(d)}`);
  }
  const top = topLevel(w);
  if (top !== before.topLevel) out.push(`${w.root}: entries were "${before.topLevel}", now "${top}"`);
  return out;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

/** Runs `node bin/xenbackup ARGS`, killed (with its process group) after `timeoutMs`. */
export function runCli(args: string[], timeoutMs = 30_000): Promise<RunResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C.UTF-8' },
      detached: true, // its own process group: a hang is killed with its zstd or tar children
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { if (stdout.length < 1 << 20) stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { if (stderr.length < 1 << 20) stderr += b.toString(); });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone already */ }
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, ms: Date.now() - t0 });
    });
  });
}

/** A stack trace line, or an internal error that leaked out as the message. */
const STACK_LINE = /^\s+at /m;
const LEAKED = /\b(TypeError|RangeError|ReferenceError|SyntaxError|AssertionError)\b|Cannot read propert|Cannot convert|is not a function|is not iterable|offset undefined|\bundefined\b.*\bundefined\b|\[object Object\]/;

/**
 * Problems with how a command ended: over time, a stack trace or a leaked
 * internal error, an exit code outside `allowed`, a failure without any
 * message, and (when `mustName` is given and it failed) a message that does
 * not name that file.
 */
export function judgeRun(what: string, r: RunResult, allowed: number[], mustName?: string): string[] {
  const out: string[] = [];
  const tail = (s: string): string => s.trim().split('\n').slice(-3).join(' | ').slice(0, 300);
  const shown = `exit ${r.code}${r.signal ? ` (${r.signal})` : ''} in ${r.ms} ms; stderr: ${tail(r.stderr)}${r.stdout.trim() ? `; stdout: ${tail(r.stdout)}` : ''}`;
  if (r.timedOut) return [`${what}: did not end within the time limit (killed); ${shown}`];
  if (STACK_LINE.test(r.stderr) || STACK_LINE.test(r.stdout)) out.push(`${what}: a stack trace instead of a one-line message; ${shown}`);
  else if (LEAKED.test(r.stderr)) out.push(`${what}: an internal error leaked into the message; ${shown}`);
  if (r.code === null || !allowed.includes(r.code)) out.push(`${what}: exit ${r.code}, documented: ${allowed.join(' or ')}; ${shown}`);
  // A failure says so in a line of its own: "xenbackup: ..." (or an ERROR line of the log).
  if (r.code !== 0 && !/^xenbackup: |\bERROR\b/m.test(r.stderr)) out.push(`${what}: failed without an error line; ${shown}`);
  if (mustName && r.code !== 0 && !(r.stderr + r.stdout).includes(mustName)) out.push(`${what}: the damage report does not name ${mustName}; ${shown}`);
  return out;
}
