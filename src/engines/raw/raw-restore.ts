/**
 * Rebuilds a raw backup's image as of a backup (the newest, or the newest
 * at or before --at) into a file or onto a block device. The chosen
 * backup's chunk map says which container holds the newest version of each
 * chunk (core/raw-chunks.ts planRawRestore); each container of the chain is
 * then read once, front to back, decompressing only the frames still
 * needed (in-process, several at once: frame-decoder.ts), and every chunk
 * is checked against its xxh64 as it is written, from the buffer it was
 * decoded into.
 * Finally the whole-image hash computed from the written chunks must equal
 * the one recorded at backup time.
 *
 * A file target is written as "<file>.partial" (sparse: zero chunks, and
 * zero 64 KiB blocks inside chunks, stay holes; see image-writer.ts),
 * fsynced and renamed only when everything matched; an existing file is
 * replaced only with --force. The directory of --to is taken as the user
 * gives it; in it, the ".partial" is created, renamed and removed by that
 * directory's fd and never through a symlink (native/beneath.c): a symlink
 * planted as "<file>.partial" or as the file itself is replaced, not
 * written through. A block device target always needs --force,
 * must be at least the image's size and not mounted; its zero chunks are
 * written as zeros (a device has no holes). A failure on a device leaves it
 * holding part of an image: the error says so.
 */
import fs from 'node:fs';
import path from 'node:path';
import { sidecarName } from '../../medium/layout.js';
import type { Logger } from '../../util/log.js';
import { xxh64 } from '../../native/xxh.js';
import { needs } from '../../core/chain.js';
import { chunkLength, mapImageHash, planRawRestore, wholeImageHash } from '../../core/raw-chunks.js';
import { PARTIAL_SUFFIX } from '../../medium/atomic-file.js';
import { createAt, removeAt, renameAt, S_IFDIR, S_IFMT, statAt } from '../../native/beneath.js';
import { VolumeStore } from '../../repo/volume-store.js';
import { asStorage, type Medium } from '../../storage/as-storage.js';
import type { RawSidecar, Sidecar } from '../../medium/sidecar.js';
import { chooseBackup } from '../restore-point.js';
import { imageSize } from './image-reader.js';
import { ImageWriter } from './image-writer.js';
import { readContainerIndex, type ContainerEntry } from './raw-container.js';
import { decodeFrames } from './frame-decoder.js';
import { alignedBuffer } from '../../native/zstd.js';
import { readRawManifest } from './raw-manifest.js';

export interface RawRestoreRequest {
  medium: Medium;
  host: string;
  volume: string;
  /** The newest backup at or before this time (default: the newest). */
  at?: Date;
  /** A file (created, or replaced with force) or a block device (needs force). */
  to: string;
  force: boolean;
  logger: Logger;
  signal?: AbortSignal;
}

export interface RawRestoreResult {
  backup: RawSidecar;
  target: string;
  targetKind: 'file' | 'block device';
  imageBytes: number;
  /** Chunks decompressed and written, and zero chunks (holes in a file, zeros on a device). */
  chunksWritten: number;
  zeroChunks: number;
  /** Bytes written to the target (a file's zero blocks are holes and not counted). */
  bytesWritten: number;
  /** Of those, bytes written past the page cache (O_DIRECT: whole blocks onto a block device). */
  bytesDirect: number;
  /** Containers read, oldest first. */
  containers: string[];
  imageXxh64: string;
  warnings: string[];
}

export class RawRestoreError extends Error {
  /**
   * `usage`: the request cannot be done as asked (the target is in the way, too small, mounted,
   * or the backup is not raw) and nothing was written; otherwise the backup or the write failed.
   */
  constructor(
    message: string,
    readonly usage = false,
  ) {
    super(message);
    this.name = 'RawRestoreError';
  }
}

interface Target {
  kind: 'file' | 'block device';
  fd: number;
  /** What is written (the ".partial" of a file). */
  writePath: string;
  /** A file target: its directory's fd, its name and its ".partial"'s name there. */
  dir?: { fd: number; name: Buffer; partial: Buffer };
  /** A block device opened again with O_DIRECT (image-writer.ts), where it allows it. */
  directFd?: number;
}

/** A second descriptor of the target with O_DIRECT; none where it is refused. */
function openDirect(writePath: string): number | undefined {
  try {
    return fs.openSync(writePath, fs.constants.O_WRONLY | fs.constants.O_DIRECT);
  } catch {
    return undefined;
  }
}

function closeQuietly(fd: number | undefined): void {
  if (fd === undefined) return;
  try {
    fs.closeSync(fd);
  } catch {
    /* already closed */
  }
}

/** Device numbers ("8:1") of every mounted filesystem. */
function mountedDevices(): Set<string> {
  const out = new Set<string>();
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[2]) out.add(f[2]);
  }
  return out;
}

function openTarget(to: string, imageBytes: number, force: boolean, warnings: string[]): Target {
  let lst: fs.Stats | undefined;
  try {
    lst = fs.lstatSync(to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new RawRestoreError(`${to}: ${(e as Error).message}`, true);
  }
  // /dev/vg/lv and /dev/mapper names are symlinks to the device node: follow those, and only those.
  let st = lst;
  if (lst?.isSymbolicLink()) {
    try {
      st = fs.statSync(to);
    } catch {
      st = lst; // dangling: refused below as neither a file nor a device
    }
  }
  if (st?.isBlockDevice()) {
    if (!force) throw new RawRestoreError(`${to} is a block device: restoring onto it overwrites it; nothing was written (use --force to do so)`, true);
    const size = imageSize(to, st);
    if (size < imageBytes) throw new RawRestoreError(`${to} holds ${size} bytes, the image needs ${imageBytes}; nothing was written`, true);
    const numbers = `${Math.floor(st.rdev / 256) & 0xfff}:${(st.rdev & 0xff) | (Math.floor(st.rdev / 4096) & ~0xff)}`;
    if (mountedDevices().has(numbers)) throw new RawRestoreError(`${to} is mounted; unmount it first; nothing was written`, true);
    if (size > imageBytes) warnings.push(`${to} is ${size - imageBytes} bytes larger than the image; those bytes were left as they were`);
    // O_EXCL on a block device: fails while the kernel (a mount, a holder) uses it.
    let fd: number;
    try {
      fd = fs.openSync(to, fs.constants.O_WRONLY | fs.constants.O_EXCL);
    } catch (e) {
      const busy = (e as NodeJS.ErrnoException).code === 'EBUSY';
      throw new RawRestoreError(`${to}: ${busy ? 'in use (mounted, or held by LVM or another device)' : (e as Error).message}; nothing was written`, true);
    }
    return { kind: 'block device', fd, writePath: to, directFd: openDirect(to) };
  }
  if (lst && !lst.isFile()) throw new RawRestoreError(`${to} exists and is neither a regular file nor a block device; nothing was written`, true);
  if (lst && !force) throw new RawRestoreError(`${to} exists; nothing was written (use --force to replace it)`, true);
  return openFileTarget(to, imageBytes);
}

/** A new "<to>.partial" in the directory of `to`, by that directory's fd. */
function openFileTarget(to: string, imageBytes: number): Target {
  const dirPath = path.dirname(path.resolve(to));
  const name = Buffer.from(path.basename(path.resolve(to)));
  const partial = Buffer.concat([name, Buffer.from(PARTIAL_SUFFIX)]);
  let dirFd: number;
  try {
    dirFd = fs.openSync(dirPath, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  } catch (e) {
    throw new RawRestoreError(`cannot restore to ${to}: its directory ${dirPath} cannot be opened (${(e as Error).message}); nothing was written`, true);
  }
  try {
    // A ".partial" beside the target is debris of an interrupted restore, ours to replace (a symlink
    // there is removed itself, never followed); a directory of that name is not.
    const old = statAt(dirFd, partial);
    if ((old & S_IFMT) === S_IFDIR) throw new RawRestoreError(`${to}${PARTIAL_SUFFIX} is a directory; nothing was written`, true);
    if (old) removeAt(dirFd, partial);
    const fd = createAt(dirFd, partial, 0o600);
    fs.ftruncateSync(fd, imageBytes); // all holes: only non-zero chunks are written
    // Buffered: O_DIRECT into a sparse file's holes was slower here (ext4 serialises allocating writes; see image-writer.ts).
    return { kind: 'file', fd, writePath: to + PARTIAL_SUFFIX, dir: { fd: dirFd, name, partial } };
  } catch (e) {
    fs.closeSync(dirFd);
    if (e instanceof RawRestoreError) throw e;
    throw new RawRestoreError(`cannot create ${to}${PARTIAL_SUFFIX}: ${(e as Error).message}; nothing was written`, true);
  }
}

export async function restoreRawImage(req: RawRestoreRequest): Promise<RawRestoreResult> {
  const store = new VolumeStore(asStorage(req.medium), req.host, req.volume);
  return restoreRawBackup(req, store, await chooseBackup(store, req.at, req.logger));
}

/** Restores the image as of `point`, chosen by the caller. */
export async function restoreRawBackup(req: Omit<RawRestoreRequest, 'medium' | 'host' | 'at'>, store: VolumeStore, point: Sidecar): Promise<RawRestoreResult> {
  const log = req.logger;
  if (point.engine !== 'raw') {
    throw new RawRestoreError(`backup ${point.id} of ${req.volume} is a ${point.engine} backup of files, not a raw image: restore paths from it into a directory`, true);
  }
  const sidecar = point;
  const all = await store.list();
  let chain: RawSidecar[];
  try {
    chain = needs(all, sidecar).map((s) => {
      if (s.engine !== 'raw') throw new Error(`${store.show(sidecarName(s))}: a ${s.engine} backup in a raw chain`);
      return s;
    });
  } catch (e) {
    throw new RawRestoreError(`${req.volume}: backup ${sidecar.id} cannot be restored: ${(e as Error).message}`);
  }

  // Everything is read and checked before the target is touched.
  const manifestFile = store.pathOf(sidecar.manifest);
  const { header, map } = readRawManifest(manifestFile);
  if (header.imageBytes !== sidecar.raw.imageBytes || header.imageXxh64 !== sidecar.raw.imageXxh64) {
    throw new RawRestoreError(`${manifestFile}: does not describe the image its sidecar records (size or hash differ)`);
  }
  if (mapImageHash(map, xxh64) !== sidecar.raw.imageXxh64) {
    throw new RawRestoreError(`${manifestFile}: its chunk hashes do not add up to the image hash of the sidecar`);
  }
  const plan = planRawRestore(map, chain.map((s) => s.id));
  const byId = new Map(chain.map((s) => [s.id, s]));
  const work: Array<{ file: string; entries: ContainerEntry[] }> = [];
  for (const read of plan.reads) {
    const file = store.pathOf(byId.get(read.holder)!.archive);
    const index = readContainerIndex(file);
    if (index.chunkSize !== map.chunkSize) throw new RawRestoreError(`${file}: chunk size ${index.chunkSize}, the manifest's is ${map.chunkSize}`);
    const byChunk = new Map(index.entries.map((e) => [e.index, e]));
    const entries: ContainerEntry[] = [];
    for (const c of read.chunks) {
      const e = byChunk.get(c.index);
      if (!e || e.hash !== c.hash || e.rawLength !== chunkLength(c.index, map.imageBytes, map.chunkSize)) {
        throw new RawRestoreError(`${file}: lacks chunk ${c.index} as ${manifestFile} records it; nothing was written`);
      }
      entries.push(e);
    }
    work.push({ file, entries });
  }

  const warnings: string[] = [];
  const target = openTarget(req.to, map.imageBytes, req.force, warnings);
  log.info(`${req.volume}: restoring the raw image of backup ${sidecar.id} (${map.imageBytes} bytes, ${work.length} container(s)) to ${req.to}`);
  const written = new Map<number, string>();
  const writer = new ImageWriter(target.fd, target.writePath, target.kind === 'file', target.directFd);
  try {
    for (const { file, entries } of work) {
      if (req.signal?.aborted) throw new Error('aborted');
      await decodeFrames(
        file,
        entries,
        async (e, data, release) => {
          const h = xxh64(data);
          if (h !== e.hash) {
            release();
            throw new RawRestoreError(`${file}: chunk ${e.index} decodes to xxh64 ${h}, recorded ${e.hash}: the container is damaged`);
          }
          written.set(e.index, h);
          // Written from the decoder's buffer, which returns to it once on disk.
          await writer.write(data, e.index * map.chunkSize, release);
        },
        { signal: req.signal },
      );
    }
    if (target.kind === 'block device') {
      const zeros = alignedBuffer(map.chunkSize).fill(0);
      for (const i of plan.zeroChunks) {
        if (req.signal?.aborted) throw new Error('aborted');
        await writer.write(zeros.subarray(0, chunkLength(i, map.imageBytes, map.chunkSize)), i * map.chunkSize);
      }
    }
    await writer.flush();
    closeQuietly(target.directFd);
    target.directFd = undefined; // its number may be reused by the time a failure below closes what is left
    const imageXxh64 = wholeImageHash(map.imageBytes, map.chunkSize, (i) => written.get(i) ?? null, xxh64);
    if (imageXxh64 !== sidecar.raw.imageXxh64) {
      throw new RawRestoreError(`the restored image's xxh64 ${imageXxh64} differs from ${sidecar.raw.imageXxh64} recorded at backup ${sidecar.id}`);
    }
    fs.fsyncSync(target.fd);
    const fd = target.fd;
    target.fd = -1;
    fs.closeSync(fd);
    if (target.dir) {
      // Replaces whatever has the name now, a symlink too, without following it.
      renameAt(target.dir.fd, target.dir.partial, target.dir.fd, target.dir.name);
      fs.fsyncSync(target.dir.fd);
      fs.closeSync(target.dir.fd);
      target.dir = undefined;
    }
    return {
      backup: sidecar,
      target: req.to,
      targetKind: target.kind,
      imageBytes: map.imageBytes,
      chunksWritten: written.size,
      zeroChunks: plan.zeroChunks.length,
      bytesWritten: writer.bytesWritten,
      bytesDirect: writer.bytesDirect,
      containers: work.map((w) => path.basename(w.file)),
      imageXxh64,
      warnings,
    };
  } catch (e) {
    await writer.flush().catch(() => undefined); // nothing may write into a closed (and reused) fd
    closeQuietly(target.directFd);
    if (target.fd >= 0) closeQuietly(target.fd);
    if (target.kind === 'file') {
      if (target.dir) {
        try {
          removeAt(target.dir.fd, target.dir.partial);
        } finally {
          fs.closeSync(target.dir.fd);
        }
      }
      throw e;
    }
    throw new RawRestoreError(`${(e as Error).message}; ${req.to} now holds a partly restored image`);
  }
}
