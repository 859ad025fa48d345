/**
 * The chunk manifest of a raw backup, `<id>.<full|incr>.raw.manifest`: the
 * backup's chunk map (core/raw-chunks.ts) as text, one line per non-zero
 * chunk, with a checksum trailer so a damaged manifest is refused before an
 * incremental builds on it or a restore trusts it:
 *
 *   xenbackup-raw-manifest 1 {"volume":..,"backup":..,"base":..,"createdAt":..,"imageBytes":..,"chunkSize":..,"imageXxh64":..}
 *   <chunk number> <xxh64> <holder backup id>
 *   ...
 *   end <lines> <xxh64 of every byte before this line>
 *
 * Absent chunk numbers are all zero. Written through AtomicFile
 * (".partial", fsync, rename), like every file on the medium.
 */
import fs from 'node:fs';
import { MediumDamage } from '../../medium/medium-error.js';
import { readMediumFile } from '../../medium/medium-file.js';
import { checkChunkMap, type ChunkMap, type ChunkRecord } from '../../core/raw-chunks.js';
import { AtomicFile, withFileName } from '../../medium/atomic-file.js';
import { createXxh64, xxh64 } from '../../native/xxh.js';

const MAGIC = 'xenbackup-raw-manifest 1 ';

export interface RawManifestHeader {
  volume: string;
  backup: string;
  base: string | null;
  createdAt: string;
  imageBytes: number;
  chunkSize: number;
  imageXxh64: string;
}

export interface RawManifest {
  header: RawManifestHeader;
  map: ChunkMap;
}

export class RawManifestError extends Error {
  constructor(file: string, why: string) {
    super(`${file}: ${why}`);
    this.name = 'RawManifestError';
  }
}

/** Writes a manifest whose chunk records are already known (a raw backup collects them while reading). */
export class RawManifestWriter {
  private readonly file: AtomicFile;

  constructor(finalPath: string) {
    this.file = new AtomicFile(finalPath);
  }

  get partialPath(): string {
    return this.file.partialPath;
  }

  /** Writes everything and fsyncs; the file stays ".partial" until commit(). Returns the file's xxh64. */
  write(header: RawManifestHeader, chunks: readonly ChunkRecord[]): string {
    const parts: string[] = [MAGIC + JSON.stringify(header) + '\n'];
    for (const c of chunks) parts.push(`${c.index} ${c.hash} ${c.holder}\n`);
    const body = Buffer.from(parts.join(''));
    const trailer = Buffer.from(`end ${chunks.length} ${xxh64(body)}\n`);
    const all = Buffer.concat([body, trailer]);
    try {
      let off = 0;
      while (off < all.length) off += fs.writeSync(this.file.fd, all, off, all.length - off);
    } catch (e) {
      throw withFileName(e, this.file.partialPath, 'writing');
    }
    return createXxh64().update(all).digest();
  }

  /** Durable under the partial name; Storage.publish gives it its own. */
  seal(): void {
    this.file.seal();
  }

  abort(): void {
    this.file.abort();
  }
}

/** Reads and checks a raw manifest: checksum first, then every line and the map's rules. */
export function readRawManifest(file: string): RawManifest {
  let data: Buffer;
  try {
    data = readMediumFile(file);
  } catch (e) {
    if (e instanceof MediumDamage) throw e;
    throw new RawManifestError(file, `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (data.length === 0 || data[data.length - 1] !== 0x0a) throw new RawManifestError(file, 'truncated (no final newline)');
  const lastStart = data.lastIndexOf(0x0a, data.length - 2) + 1;
  const trailer = /^end (\d+) ([0-9a-f]{16})$/.exec(data.subarray(lastStart, data.length - 1).toString());
  if (!trailer) throw new RawManifestError(file, 'truncated or damaged (no "end" trailer)');
  const body = data.subarray(0, lastStart);
  if (xxh64(body) !== trailer[2]) throw new RawManifestError(file, 'checksum mismatch: the file is damaged');
  const lines = body.toString().split('\n');
  lines.pop(); // after the last newline
  const first = lines[0] ?? '';
  if (!first.startsWith(MAGIC)) throw new RawManifestError(file, 'not a xenbackup raw manifest (version 1)');
  let header: RawManifestHeader;
  try {
    header = JSON.parse(first.slice(MAGIC.length)) as RawManifestHeader;
  } catch {
    throw new RawManifestError(file, 'line 1: header is not valid JSON');
  }
  if (lines.length - 1 !== Number(trailer[1])) throw new RawManifestError(file, `trailer counts ${trailer[1]} chunk lines, the file has ${lines.length - 1}`);
  const chunks: ChunkRecord[] = [];
  for (let i = 1; i < lines.length; i++) {
    const m = /^(\d+) ([0-9a-f]{16}) (\d{8}T\d{6}Z)$/.exec(lines[i]!);
    if (!m) throw new RawManifestError(file, `line ${i + 1}: not "<chunk> <xxh64> <backup id>"`);
    chunks.push({ index: Number(m[1]), hash: m[2]!, holder: m[3]! });
  }
  const map: ChunkMap = { imageBytes: header.imageBytes, chunkSize: header.chunkSize, chunks };
  try {
    checkChunkMap(map, file);
  } catch (e) {
    throw new RawManifestError(file, (e as Error).message.replace(`${file}: `, ''));
  }
  return { header, map };
}
