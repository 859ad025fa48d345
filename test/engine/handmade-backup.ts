/**
 * Writes a backup onto a medium by hand (archive, manifest, sidecar) with
 * the product's own writers (src/tar/write.ts, src/medium/manifest-file.ts),
 * so a test can present restore with what no honest backup contains:
 * member names with "..", absolute paths, a symlink that later entries
 * pass through, archive members that disagree with the manifest. The tar
 * stream is uncompressed (one frame at offset 0).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ManifestEntry, ManifestType } from '../../src/core/manifest.js';
import type { TarEntry } from '../../src/tar/entry.js';
import { END_OF_ARCHIVE, encodeHeader, padding } from '../../src/tar/write.js';
import { fileXxh64 } from '../../src/medium/manifest-file.js';
import { ManifestWriter } from '../../src/medium/manifest-writer.js';
import type { TarSidecar } from '../../src/medium/sidecar.js';
import { xxh64 } from '../../src/native/xxh.js';
import { sealAndPublish } from '../helpers/sealed-file.js';
import { HOST, volumeDir } from './engine-fixtures.js';

export interface HandEntry {
  /** The name the manifest gives (normally one component; hostile ones need not be). */
  name: string | Buffer;
  type: ManifestType;
  content?: string | Buffer;
  /** Symlink target. */
  link?: string | Buffer;
  /** The member's path in the archive, when it should differ from where the manifest puts it. */
  memberPath?: string | Buffer;
  mode?: number;
  /** The member's own fields and data, when they should differ from the manifest's (type, size, link). */
  member?: Partial<TarEntry>;
  memberContent?: string | Buffer;
}

export interface HandBlock {
  /** The directory's path from the volume root ("" for the root). */
  dir: string | Buffer;
  entries: HandEntry[];
}

const buf = (v: string | Buffer): Buffer => (Buffer.isBuffer(v) ? v : Buffer.from(v));
const MTIME = 1_700_000_000_000_000_000n;

/** Writes one full backup `id` of `volume` made of `blocks`; returns its sidecar. */
export async function writeHandmadeBackup(medium: string, volume: string, id: string, blocks: HandBlock[]): Promise<TarSidecar> {
  const dir = volumeDir(medium, volume);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const archiveName = `${id}.full.tar`;
  const manifestName = `${id}.full.manifest`;
  const tar: Buffer[] = [];
  let offset = 0;
  const push = (b: Buffer): void => {
    tar.push(b);
    offset += b.length;
  };
  const manifest = new ManifestWriter(path.join(dir, manifestName), { volume, backup: id, base: null, createdAt: new Date().toISOString() });
  let ino = 1000;
  const entryFor = (name: Buffer, e: { type: ManifestType; mode?: number; size?: number; hash?: string; link?: Buffer }): ManifestEntry => ({
    name,
    type: e.type,
    mode: e.mode ?? (e.type === 'dir' ? 0o755 : 0o644),
    uid: 0,
    gid: 0,
    size: e.size ?? 0,
    mtimeNs: MTIME,
    ctimeNs: MTIME,
    ino: String(ino++),
    nlink: 1,
    archive: id,
    offset,
    ...(e.hash ? { hash: e.hash } : {}),
    ...(e.link ? { link: e.link } : {}),
  });

  for (const block of blocks) {
    const dirPath = buf(block.dir);
    const self = entryFor(dirPath, { type: 'dir' });
    push(encodeHeader({ path: dirPath.length ? dirPath : Buffer.from('.'), type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtimeNs: MTIME }));
    manifest.beginDir(dirPath, self);
    for (const e of block.entries) {
      const name = buf(e.name);
      const memberPath = e.memberPath !== undefined ? buf(e.memberPath) : dirPath.length ? Buffer.concat([dirPath, Buffer.from('/'), name]) : name;
      const content = e.content !== undefined ? buf(e.content) : Buffer.alloc(0);
      const link = e.link !== undefined ? buf(e.link) : undefined;
      const entry = entryFor(name, {
        type: e.type,
        mode: e.mode,
        size: e.type === 'file' ? content.length : 0,
        hash: e.type === 'file' ? xxh64(content) : undefined,
        link,
      });
      const member: TarEntry = {
        path: memberPath,
        type: e.type,
        mode: entry.mode,
        uid: 0,
        gid: 0,
        size: e.type === 'file' ? content.length : 0,
        mtimeNs: MTIME,
        ...(link ? { linkTarget: link } : {}),
        ...e.member,
      };
      const data = e.memberContent !== undefined ? buf(e.memberContent) : content;
      if (e.memberContent !== undefined) member.size = data.length;
      push(encodeHeader(member));
      if (member.type === 'file') {
        push(data);
        push(Buffer.alloc(padding(data.length)));
      }
      manifest.entry(entry);
    }
  }
  push(END_OF_ARCHIVE);
  const archivePath = path.join(dir, archiveName);
  fs.writeFileSync(archivePath, Buffer.concat(tar), { mode: 0o600 });
  const manifestXxh64 = sealAndPublish(manifest, path.join(dir, manifestName));
  const sidecar: TarSidecar = {
    format: 'xenbackup-backup',
    version: 1,
    volume,
    host: HOST,
    id,
    kind: 'full',
    base: null,
    chain: id,
    engine: 'tar',
    compression: 'none',
    archive: archiveName,
    manifest: manifestName,
    startedAt: new Date().toISOString(),
    finishedAt: new Date().toISOString(),
    status: 'complete',
    stats: { entries: 0, stored: 0, unchanged: 0, deleted: 0, filesRead: 0, bytesRead: 0, sourceBytes: 0 },
    tarBytes: offset,
    archiveBytes: offset,
    archiveXxh64: fileXxh64(archivePath),
    manifestXxh64,
    frames: [[0, 0]],
    warnings: [],
    unreadable: [],
  };
  fs.writeFileSync(path.join(dir, `${id}.full.json`), JSON.stringify(sidecar, null, 1) + '\n', { mode: 0o600 });
  return sidecar;
}
