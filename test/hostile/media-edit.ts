/**
 * Edits a backup on the medium as an attacker with write access would: a
 * sidecar's fields, a manifest's lines (rewriting the checksum trailer and the
 * sidecar's manifestXxh64, so the edit passes the checksum gate; a version 2
 * manifest is edited as lines and written back as frames, manifest-bytes.ts), an
 * archive's tar stream (recompressed into one zstd frame with the sidecar's
 * sizes, frame index and archiveXxh64 fixed), or a whole backup written by
 * hand from tar members and manifest lines that no honest backup contains.
 * Test-only code; the checksum is the product's xxh64, which is no secret.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeHeader, END_OF_ARCHIVE, padding } from '../../src/tar/write.js';
import type { TarEntry } from '../../src/tar/entry.js';
import { xxh64 } from '../../src/native/xxh.js';
import { HOST, VOLUME, type World } from './hostile-media.js';
import { framedManifestBytes, isFramedFile, lineManifestBytes, manifestBytes, manifestLinesOf, type FramedTamper } from './manifest-bytes.js';
import type { ChildRef } from '../../src/core/manifest-v2.js';
import { FramedManifest, TRAILER_BYTES } from '../../src/medium/manifest-container.js';
import { INDEX_STRIDE, KIND_CHILD, KIND_DIR, locatedName } from '../../src/medium/manifest-file.js';
import { manifestIndex } from '../../src/native/xbfs.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export function sidecarFile(w: World, id: string): string {
  const name = fs.readdirSync(w.vol).find((n) => n.startsWith(id) && n.endsWith('.json'));
  if (!name) throw new Error(`no sidecar of ${id} in ${w.vol}`);
  return path.join(w.vol, name);
}

export function readSidecar(w: World, id: string): Json {
  return JSON.parse(fs.readFileSync(sidecarFile(w, id), 'utf8'));
}

export function writeSidecar(w: World, id: string, o: Json): void {
  fs.writeFileSync(sidecarFile(w, id), JSON.stringify(o, null, 1) + '\n');
}

export function editSidecar(w: World, id: string, edit: (o: Json) => void): void {
  const o = readSidecar(w, id);
  edit(o);
  writeSidecar(w, id, o);
}

export function manifestFile(w: World, id: string): string {
  return path.join(w.vol, readSidecar(w, id).manifest as string);
}

/**
 * The manifest's lines without the trailer, as text: version 1's lines, or a
 * version 2 manifest shown as version 1 would be (manifest-bytes.ts): its
 * header as an object, then the data lines of every frame with each reference
 * expanded into the child lines it names (`expand` false: kept as it is).
 */
export function manifestLines(w: World, id: string, expand = true): string[] {
  return manifestLinesOf(manifestFile(w, id), expand);
}

/** The text of a version 1 manifest of `lines` (header first) with a correct trailer. */
export function manifestText(lines: string[]): Buffer {
  return lineManifestBytes(lines);
}

/** Replaces the manifest of `id` with `bytes` and fixes the sidecar's manifestXxh64, as an attacker would. */
export function writeManifestBytes(w: World, id: string, bytes: Buffer): void {
  fs.writeFileSync(manifestFile(w, id), bytes);
  editSidecar(w, id, (o) => { o.manifestXxh64 = xxh64(bytes); });
}

/**
 * Rewrites the manifest of `id` as `lines` in the version it had (version 2:
 * one data frame, its index and trailer made for it; `tamper` makes them lie),
 * trailer and the sidecar's manifestXxh64 fixed.
 */
export function writeManifestLines(w: World, id: string, lines: string[], tamper?: FramedTamper): void {
  writeManifestBytes(w, id, manifestBytes(lines, isFramedFile(manifestFile(w, id)), tamper));
}

/** Rewrites the version 2 manifest of `id` from a header line and frames of data lines (framedManifestBytes), the sidecar's hash fixed. */
export function writeFramedManifest(w: World, id: string, header: string, frames: string[][], tamper?: FramedTamper): void {
  writeManifestBytes(w, id, framedManifestBytes(header, frames, tamper));
}

/**
 * A reference to the child lines of block `dir` in backup `holder`'s version
 * 2 manifest, as a later manifest of its chain would write it (edit it to
 * lie), and where that block's directory line starts in the frame.
 */
export function childRef(w: World, holder: string, dir: string): { ref: ChildRef; dirLineAt: number } {
  const m = FramedManifest.open(manifestFile(w, holder));
  try {
    for (let i = 0; i < m.frames.length; i++) {
      const data = m.frame(i);
      const index = manifestIndex(data);
      const kind = (line: number): number => index[line * INDEX_STRIDE + 2]! & 15;
      const lines = index.length / INDEX_STRIDE;
      for (let line = 0; line < lines; line++) {
        if (kind(line) !== KIND_DIR || !locatedName(data, index, line).equals(Buffer.from(dir))) continue;
        let end = line + 1;
        while (end < lines && kind(end) === KIND_CHILD) end++;
        if (end === line + 1) throw new Error(`block ${dir} of ${holder} has no child lines to refer to`);
        const from = index[(line + 1) * INDEX_STRIDE]!;
        const to = index[(end - 1) * INDEX_STRIDE + 1]! + 1;
        const f = m.frames[i]!;
        const ref: ChildRef = { holder, at: f.at, len: f.len, raw: f.raw, from, to, lines: end - line - 1, links: data.subarray(from, to).includes(',"k":') };
        return { ref, dirLineAt: index[line * INDEX_STRIDE]! };
      }
    }
  } finally {
    m.close();
  }
  throw new Error(`no block ${dir} in the manifest of ${holder}`);
}

/** Where the index of `id`'s version 2 manifest is (its frame's place, length and size), from its trailer. */
export function indexPlace(w: World, id: string): { at: number; len: number; raw: number } {
  const t = fs.readFileSync(manifestFile(w, id)).subarray(-TRAILER_BYTES);
  return { at: Number(t.readBigUInt64LE(8)), len: Number(t.readBigUInt64LE(16)), raw: Number(t.readBigUInt64LE(24)) };
}

/** Edits the manifest of `id` line by line as JSON objects (index 0 is the header). */
export function editManifest(w: World, id: string, edit: (objs: Json[]) => Json[] | void): void {
  const objs = manifestLines(w, id).map((l) => JSON.parse(l) as Json);
  const out = edit(objs) ?? objs;
  writeManifestLines(w, id, out.map((o) => (typeof o === 'string' ? o : JSON.stringify(o))));
}

/** The entry line of `name` in the block of directory `dir` ("" the root). */
export function findEntry(objs: Json[], dir: string, name: string): Json {
  let inDir = false;
  for (const o of objs.slice(1)) {
    if (typeof o.d === 'string') inDir = o.d === dir;
    else if (inDir && o.n === name) return o;
  }
  throw new Error(`no entry ${dir}/${name} in the manifest`);
}

export function findDir(objs: Json[], dir: string): Json {
  const o = objs.slice(1).find((x) => x.d === dir);
  if (!o) throw new Error(`no block ${dir} in the manifest`);
  return o;
}

export function archiveFile(w: World, id: string): string {
  return path.join(w.vol, readSidecar(w, id).archive as string);
}

/** The tar stream of an archive (zstd, any number of frames). */
export function readTar(w: World, id: string): Buffer {
  return execFileSync('zstd', ['-q', '-d', '-c', archiveFile(w, id)], { maxBuffer: 256 << 20 });
}

/** Replaces the archive of `id` with `tar` in one zstd frame; sizes, frames and archiveXxh64 fixed. */
export function writeTar(w: World, id: string, tar: Buffer): void {
  const file = archiveFile(w, id);
  const z = execFileSync('zstd', ['-q', '-1', '-c'], { input: tar, maxBuffer: 256 << 20 });
  fs.writeFileSync(file, z);
  editSidecar(w, id, (o) => {
    o.archiveBytes = z.length;
    o.tarBytes = tar.length;
    o.frames = [[0, 0]];
    o.archiveXxh64 = xxh64(z);
  });
}

/** Fixes archiveXxh64 and archiveBytes after the archive file of `id` was changed in place. */
export function fixArchiveHash(w: World, id: string): void {
  const z = fs.readFileSync(archiveFile(w, id));
  editSidecar(w, id, (o) => {
    o.archiveBytes = z.length;
    o.archiveXxh64 = xxh64(z);
  });
}

/** The id one `seconds` after `id` (ids are UTC times to the second). */
export function idAfter(id: string, seconds: number): string {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(id)!;
  const t = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) + seconds * 1000;
  return new Date(t).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

const MT = '1700000000000000000';

/** One step of a hand-made backup: a directory block, or an entry of the current block. */
export type HandStep =
  | { dir: string; member?: TarEntry | Buffer | null; json?: Json }
  | { name: string; t: 'f' | 'd' | 'l' | 'c' | 'b' | 'p'; content?: string; link?: string; rdev?: [number, number]; member?: TarEntry | Buffer | null; json?: Json; mode?: number };

const TYPE_OF: Record<string, TarEntry['type']> = { f: 'file', d: 'dir', l: 'symlink', c: 'char', b: 'block', p: 'fifo' };

/** A tar member's header (and data) as bytes. */
export function member(e: TarEntry, data?: Buffer): Buffer {
  const parts = [encodeHeader(e)];
  if (data) parts.push(data, Buffer.alloc(padding(data.length)));
  return Buffer.concat(parts);
}

export function entry(p: string, type: TarEntry['type'], extra: Partial<TarEntry> = {}): TarEntry {
  return { path: Buffer.from(p), type, mode: type === 'dir' ? 0o755 : type === 'symlink' ? 0o777 : 0o644, uid: 0, gid: 0, size: 0, mtimeNs: BigInt(MT), ...extra };
}

/**
 * Writes a full backup `id` of the volume by hand (zstd, one frame): each
 * step adds a manifest line and, unless `member` is null, a tar member (by
 * default the one an honest backup would write for that line; a Buffer is
 * written as it is). `tail` is appended after the last member instead of the
 * end-of-archive blocks when given (truncation, trailing junk).
 */
export function writeHandBackup(w: World, id: string, steps: HandStep[], tail?: Buffer): void {
  const tar: Buffer[] = [];
  let offset = 0;
  const push = (b: Buffer): void => { tar.push(b); offset += b.length; };
  const lines: string[] = [JSON.stringify({ xenbackup: 'manifest', version: 1, volume: VOLUME, backup: id, base: null, createdAt: new Date().toISOString() })];
  let dir = '';
  let ino = 5000;
  const dumpdirs = dumpdirsOf(steps);
  for (const s of steps) {
    const at = offset;
    if ('dir' in s) {
      dir = s.dir;
      if (s.member !== null) push(Buffer.isBuffer(s.member) ? s.member : member(s.member ?? entry(dir === '' ? '.' : dir, 'dir', { dumpdir: dumpdirs.get(dir) })));
      lines.push(JSON.stringify({ t: 'd', m: 493, u: 0, g: 0, s: 0, mt: MT, ct: MT, i: String(ino++), a: id, o: at, ...s.json, d: dir }));
      continue;
    }
    const full = dir === '' ? s.name : `${dir}/${s.name}`;
    const content = s.content !== undefined ? Buffer.from(s.content) : undefined;
    const type = TYPE_OF[s.t]!;
    const mode = s.mode ?? (s.t === 'l' ? 0o777 : s.t === 'd' ? 0o755 : 0o644);
    if (s.member !== null) {
      if (Buffer.isBuffer(s.member)) push(s.member);
      else {
        const e = s.member ?? entry(full, type, {
          mode,
          size: content?.length ?? 0,
          ...(s.link !== undefined ? { linkTarget: Buffer.from(s.link) } : {}),
          ...(s.rdev ? { devMajor: s.rdev[0], devMinor: s.rdev[1] } : {}),
        });
        push(member(e, e.type === 'file' ? content ?? Buffer.alloc(0) : undefined));
      }
    }
    const o: Json = { n: s.name, t: s.t, m: mode, u: 0, g: 0, s: content?.length ?? 0, mt: MT, ct: MT, i: String(ino++) };
    if (s.link !== undefined) o.l = s.link;
    if (s.rdev) o.r = s.rdev;
    if (s.t === 'f') o.h = xxh64(content ?? Buffer.alloc(0));
    Object.assign(o, { a: id, o: at }, s.json);
    lines.push(JSON.stringify(o));
  }
  push(tail ?? END_OF_ARCHIVE);
  const tarBytes = Buffer.concat(tar);
  const z = execFileSync('zstd', ['-q', '-1', '-c'], { input: tarBytes, maxBuffer: 256 << 20 });
  const manifest = manifestText(lines);
  fs.writeFileSync(path.join(w.vol, `${id}.full.tar.zst`), z, { mode: 0o600 });
  fs.writeFileSync(path.join(w.vol, `${id}.full.manifest`), manifest, { mode: 0o600 });
  const now = new Date().toISOString();
  const sidecar = {
    format: 'xenbackup-backup', version: 1, volume: VOLUME, host: HOST, id, kind: 'full', base: null, chain: id, engine: 'tar', compression: 'zstd',
    archive: `${id}.full.tar.zst`, manifest: `${id}.full.manifest`, startedAt: now, finishedAt: now, status: 'complete',
    stats: { entries: lines.length - 1, stored: lines.length - 1, unchanged: 0, deleted: 0, filesRead: 0, bytesRead: 0, sourceBytes: 0 },
    tarBytes: tarBytes.length, archiveBytes: z.length, archiveXxh64: xxh64(z), manifestXxh64: xxh64(manifest), frames: [[0, 0]], warnings: [], unreadable: [],
  };
  fs.writeFileSync(path.join(w.vol, `${id}.full.json`), JSON.stringify(sidecar, null, 1) + '\n', { mode: 0o600 });
}

/**
 * Each directory block's GNU.dumpdir as an honest full backup writes it: 'Y'
 * for each entry of its block, 'D' for each block directly below it, sorted
 * by name (verify holds the dumpdirs against the manifest, so a hand-made
 * backup is hostile only where a case makes it so).
 */
function dumpdirsOf(steps: HandStep[]): Map<string, Buffer> {
  const kids = new Map<string, Array<[string, string]>>();
  let dir = '';
  for (const s of steps) {
    if ('dir' in s) {
      dir = s.dir;
      if (!kids.has(dir)) kids.set(dir, []);
      if (dir !== '') {
        const slash = dir.lastIndexOf('/');
        const parent = slash < 0 ? '' : dir.slice(0, slash);
        kids.get(parent)?.push(['D', dir.slice(slash + 1)]);
      }
    } else kids.get(dir)!.push(['Y', s.name]);
  }
  const out = new Map<string, Buffer>();
  for (const [d, list] of kids) {
    list.sort((a, b) => Buffer.compare(Buffer.from(a[1]), Buffer.from(b[1])));
    out.set(d, Buffer.concat([...list.map(([c, n]) => Buffer.from(`${c}${n}\0`)), Buffer.from([0])]));
  }
  return out;
}

/** A pax extended header ('x') holding `body` as its records, as raw bytes (no checks: hostile on purpose). */
export function paxHeader(body: Buffer, sizeField?: number): Buffer {
  const h = Buffer.alloc(512);
  h.write('PaxHeaders/x', 0, 'latin1');
  h.write('0000644\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write((sizeField ?? body.length).toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  h.write('00000000000\0', 136, 'latin1');
  h[156] = 0x78; // 'x'
  h.write('ustar\0' + '00', 257, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return Buffer.concat([h, body, Buffer.alloc(padding(body.length))]);
}
