/**
 * A btrfs snapshot's own fsid, written into its superblocks and nowhere else.
 *
 * Why not `btrfstune -m` when the snapshot holds a log tree: what a guest
 * fsync()ed since btrfs's last transaction commit (one every 30 s) is only
 * in the log tree, and the kernel replays a log at mount only when the log
 * root's generation is the superblock's generation + 1. btrfstune makes its
 * change through two transaction commits of its own, which raise the
 * superblock's generation by two and leave the log root in place: the mount
 * then fails ("parent transid verify failed on logical L ... wanted 10 found
 * 8", "failed to read log tree", measured in the VM on 6.1), so every backup
 * of a busy btrfs guest taken within 30 s of an fsync failed. Changing only
 * the superblocks (new fsid, the old one kept as metadata_uuid, which is all
 * `btrfstune -m` changes on disk too) keeps the generation, the trees and
 * the log as they are, and the read-only mount replays the log into the
 * writable snapshot, as ext4 replays its journal.
 *
 * Checked before anything is written: the magic, and that the stored
 * checksum equals the one computed here (so the layout was read right).
 * Checksums: crc32c (the default) and sha256; xxhash64 and blake2b are left
 * to btrfstune.
 */
import { createHash, randomUUID } from 'node:crypto';
import { open } from 'node:fs/promises';

export const SUPER_SIZE = 4096;
/** Where btrfs keeps superblock copies: 64 KiB (the primary), 64 MiB, 256 GiB, 1 PiB. */
export const SUPER_OFFSETS = [64 * 1024, 64 * 1024 ** 2, 256 * 1024 ** 3, 1024 ** 5];

const MAGIC = Buffer.from('_BHRfS_M', 'latin1');
const OFF = {
  csum: 0,
  fsid: 32,
  bytenr: 48,
  flags: 56,
  magic: 64,
  generation: 72,
  logRoot: 96,
  incompat: 188,
  csumType: 196,
  metadataUuid: 571,
} as const;
const INCOMPAT_METADATA_UUID = 1n << 10n;
const FLAG_SEEDING = 1n << 32n;
const FLAG_CHANGING_FSID = 1n << 35n;
const FLAG_CHANGING_FSID_V2 = 1n << 36n;
const CSUM_CRC32C = 0;
const CSUM_SHA256 = 2;

export interface BtrfsSuper {
  fsid: string;
  metadataUuid: string | undefined;
  generation: bigint;
  /** Non-zero: a log tree (data fsynced since the last commit) waits to be replayed. */
  logRoot: bigint;
  csumType: number;
  flags: bigint;
}

function uuidString(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

let crcTable: Uint32Array | undefined;
/** CRC-32C (Castagnoli), as btrfs checksums its superblock. */
export function crc32c(data: Uint8Array): number {
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of data) crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** The 32-byte checksum field for `sb`, or undefined for a checksum type not done here. */
function superChecksum(sb: Buffer, csumType: number): Buffer | undefined {
  const covered = sb.subarray(32, SUPER_SIZE);
  const out = Buffer.alloc(32);
  if (csumType === CSUM_CRC32C) out.writeUInt32LE(crc32c(covered), 0);
  else if (csumType === CSUM_SHA256) createHash('sha256').update(covered).digest().copy(out);
  else return undefined;
  return out;
}

/** Parses a superblock copy; throws a one-line reason when it is not a valid one. */
export function parseSuper(sb: Buffer): BtrfsSuper {
  if (sb.length < SUPER_SIZE || !sb.subarray(OFF.magic, OFF.magic + 8).equals(MAGIC)) throw new Error('no btrfs superblock magic');
  const csumType = sb.readUInt16LE(OFF.csumType);
  const want = superChecksum(sb, csumType);
  if (want !== undefined && !want.equals(sb.subarray(0, 32))) throw new Error('superblock checksum mismatch');
  const incompat = sb.readBigUInt64LE(OFF.incompat);
  return {
    fsid: uuidString(sb.subarray(OFF.fsid, OFF.fsid + 16)),
    metadataUuid: incompat & INCOMPAT_METADATA_UUID ? uuidString(sb.subarray(OFF.metadataUuid, OFF.metadataUuid + 16)) : undefined,
    generation: sb.readBigUInt64LE(OFF.generation),
    logRoot: sb.readBigUInt64LE(OFF.logRoot),
    csumType,
    flags: sb.readBigUInt64LE(OFF.flags),
  };
}

/** Whether this module can rewrite a superblock with `csumType`. */
export function canRewriteSuper(csumType: number): boolean {
  return csumType === CSUM_CRC32C || csumType === CSUM_SHA256;
}

/**
 * A copy of `sb` with fsid `newFsid` (16 bytes): the first change keeps the
 * old fsid as metadata_uuid (the tree blocks carry it) and sets the
 * METADATA_UUID incompat flag, as `btrfstune -m` does; a later one changes
 * only the fsid. The checksum is recomputed; nothing else changes.
 */
export function withOwnFsid(sb: Buffer, newFsid: Buffer): Buffer {
  const parsed = parseSuper(sb);
  if (!canRewriteSuper(parsed.csumType)) throw new Error(`checksum type ${parsed.csumType} is not supported here`);
  if (parsed.flags & (FLAG_SEEDING | FLAG_CHANGING_FSID | FLAG_CHANGING_FSID_V2)) {
    throw new Error('a seed device, or an fsid change left unfinished');
  }
  const out = Buffer.from(sb.subarray(0, SUPER_SIZE));
  const incompat = out.readBigUInt64LE(OFF.incompat);
  if (!(incompat & INCOMPAT_METADATA_UUID)) {
    out.copy(out, OFF.metadataUuid, OFF.fsid, OFF.fsid + 16);
    out.writeBigUInt64LE(incompat | INCOMPAT_METADATA_UUID, OFF.incompat);
  }
  newFsid.copy(out, OFF.fsid, 0, 16);
  superChecksum(out, parsed.csumType)!.copy(out, 0);
  return out;
}

/** The primary superblock of `device` (a block device or an image file). Throws a one-line reason. */
export async function readPrimarySuper(device: string): Promise<BtrfsSuper> {
  const fh = await open(device, 'r');
  try {
    const buf = Buffer.alloc(SUPER_SIZE);
    const { bytesRead } = await fh.read(buf, 0, SUPER_SIZE, SUPER_OFFSETS[0]);
    if (bytesRead < SUPER_SIZE) throw new Error('too small for a btrfs superblock');
    return parseSuper(buf);
  } finally {
    await fh.close();
  }
}

/**
 * Gives the unmounted btrfs on `device` a new random fsid in every valid
 * superblock copy (see the module comment), then fsyncs. Returns the new fsid.
 */
export async function writeOwnFsid(device: string): Promise<string> {
  const fsid = Buffer.from(randomUUID().replace(/-/g, ''), 'hex');
  const fh = await open(device, 'r+');
  try {
    const copies: Array<{ offset: number; sb: Buffer }> = [];
    for (const offset of SUPER_OFFSETS) {
      const buf = Buffer.alloc(SUPER_SIZE);
      const { bytesRead } = await fh.read(buf, 0, SUPER_SIZE, offset);
      if (bytesRead < SUPER_SIZE) break;
      // a copy is one where btrfs wrote it: its own offset inside, and valid
      if (buf.readBigUInt64LE(OFF.bytenr) !== BigInt(offset)) continue;
      try {
        parseSuper(buf);
      } catch (e) {
        if (offset === SUPER_OFFSETS[0]) throw e;
        continue;
      }
      copies.push({ offset, sb: buf });
    }
    if (copies[0]?.offset !== SUPER_OFFSETS[0]) throw new Error('no primary btrfs superblock at 64 KiB');
    const rewritten = copies.map((c) => ({ offset: c.offset, sb: withOwnFsid(c.sb, fsid) }));
    // mirrors first, the primary (what the kernel and blkid read) last
    for (const c of rewritten.reverse()) await fh.write(c.sb, 0, SUPER_SIZE, c.offset);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return uuidString(fsid);
}
