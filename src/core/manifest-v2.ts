/**
 * The text parts of a version 2 manifest (docs/design/manifest-v2.md): the
 * index's lines (its header, one record per frame) and the reference line
 * that stands for a block's child lines stored in an earlier manifest of the
 * chain. Entry and directory lines are version 1's (manifest.ts). Pure: the
 * bytes around them (frames, trailer) are medium/manifest-container.ts's.
 * Every field read from the medium is checked here, field by field.
 */
import { headerOf, ManifestFormatError, parseLine, type ManifestHeader } from './manifest.js';
import { isBackupId } from './names.js';

/**
 * Where a block's child lines live when a manifest refers to them: bytes
 * [from, to) of the decompressed frame at file offset `at` of backup
 * `holder`'s manifest, `lines` whole lines. The holder always stores them
 * literally: references are resolved when copied, so one hop reaches the bytes.
 */
export interface ChildRef {
  holder: string;
  at: number;
  /** The frame's bytes in the file, and decompressed. */
  len: number;
  raw: number;
  from: number;
  to: number;
  lines: number;
  /** The lines include a file with more than one link (split-links.ts looks only where this is set). */
  links: boolean;
}

/** One data frame of a manifest, as its index records it. */
export interface FrameRecord {
  at: number;
  len: number;
  raw: number;
  /** Directory blocks that start in it (a frame holds whole blocks only). */
  blocks: number;
  /** The path of its first block (path-order.ts). */
  firstDir: Buffer;
  /** Some line in it is of a file with more than one link, or refers to such lines. */
  links: boolean;
}

export interface ManifestHeaderV2 extends ManifestHeader {
  entries: number;
  blocks: number;
  frames: number;
}

/** The most one frame may hold decompressed: a block of ~5 million entries; beyond is not ours. */
export const MAX_FRAME_RAW = 1 << 30;

function whole(o: Record<string, unknown>, key: string, what: string, max = Number.MAX_SAFE_INTEGER, min = 0): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new ManifestFormatError(v === undefined ? `missing field ${what}` : `${what} ${JSON.stringify(v)?.slice(0, 40)} is not a whole number from ${min} to ${max}`);
  }
  return v;
}

function flag(o: Record<string, unknown>, key: string): boolean {
  if (o[key] === undefined) return false;
  if (o[key] !== 1) throw new ManifestFormatError(`field ${key} must be 1 when present`);
  return true;
}

/** The first bytes of a reference line: a line starting so is one (an entry line starts {"n" or {"nb", a directory line {"t"). */
export const REF_LINE_START = Buffer.from('{"ref":"');

export function encodeRefLine(r: ChildRef): string {
  return `{"ref":"${r.holder}","at":${r.at},"len":${r.len},"raw":${r.raw},"from":${r.from},"to":${r.to},"lines":${r.lines}${r.links ? ',"hl":1' : ''}}`;
}

export function decodeRefLine(line: string): ChildRef {
  const o = parseLine(line);
  if (!isBackupId(o.ref)) throw new ManifestFormatError('a reference must name a backup id');
  const raw = whole(o, 'raw', 'referenced frame size', MAX_FRAME_RAW, 1);
  const r: ChildRef = {
    holder: o.ref,
    at: whole(o, 'at', 'referenced frame offset'),
    len: whole(o, 'len', 'referenced frame length', MAX_FRAME_RAW, 1),
    raw,
    from: whole(o, 'from', 'reference start', raw),
    to: whole(o, 'to', 'reference end', raw, 1),
    lines: whole(o, 'lines', 'referenced lines', raw, 1),
    links: flag(o, 'hl'),
  };
  if (r.from >= r.to) throw new ManifestFormatError('a reference must cover at least one byte');
  return r;
}

/** A path as a JSON member, text when it is valid UTF-8, else base64 (as manifest.ts does for names). */
function pathMember(p: Buffer): string {
  const s = p.toString('utf8');
  if (Buffer.byteLength(s) === p.length && !s.includes('\ufffd')) return `"d":${JSON.stringify(s)}`;
  return `"db":"${p.toString('base64')}"`;
}

export function encodeFrameRecord(f: FrameRecord): string {
  return `{"at":${f.at},"len":${f.len},"raw":${f.raw},"blocks":${f.blocks},${pathMember(f.firstDir)}${f.links ? ',"hl":1' : ''}}`;
}

export function decodeFrameRecord(line: string): FrameRecord {
  const o = parseLine(line);
  let firstDir: Buffer;
  if (typeof o.d === 'string') firstDir = Buffer.from(o.d, 'utf8');
  else if (typeof o.db === 'string') firstDir = Buffer.from(o.db, 'base64');
  else throw new ManifestFormatError('a frame record without its first directory');
  return {
    at: whole(o, 'at', 'frame offset'),
    len: whole(o, 'len', 'frame length', MAX_FRAME_RAW, 1),
    raw: whole(o, 'raw', 'frame size', MAX_FRAME_RAW, 1),
    blocks: whole(o, 'blocks', 'frame blocks', MAX_FRAME_RAW, 1),
    firstDir,
    links: flag(o, 'hl'),
  };
}

export function encodeHeaderV2(h: ManifestHeaderV2): string {
  return JSON.stringify({
    xenbackup: 'manifest',
    version: 2,
    volume: h.volume,
    backup: h.backup,
    base: h.base,
    createdAt: h.createdAt,
    entries: h.entries,
    blocks: h.blocks,
    frames: h.frames,
  });
}

export function decodeHeaderV2(line: string): ManifestHeaderV2 {
  const o = parseLine(line);
  return {
    ...headerOf(o, 2),
    entries: whole(o, 'entries', 'entries'),
    blocks: whole(o, 'blocks', 'blocks'),
    frames: whole(o, 'frames', 'frames'),
  };
}
