/**
 * Seeded randomness for the benchmark's data set: the same seed gives the
 * same tree, byte for byte, on every machine, so runs compare. Two sources:
 * a small PRNG for choices (layout, sizes, words) and an AES-CTR keystream
 * for incompressible file content (hundreds of MB; a JS PRNG would be the
 * slowest part of generating them).
 */
import crypto from 'node:crypto';

/** A 32-bit hash of several integers (murmur3's finaliser, chained): independent seeds per file. */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h ^= p >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** mulberry32: fast, good enough for picking, not for cryptography. */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Integer in [lo, hi], both included. */
  between(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }
}

/**
 * A deterministic incompressible byte stream: AES-128-CTR over zeros, keyed
 * by the seed. The stream id (up to three integers, e.g. kind, file index,
 * version) fills the high words of the counter block, so streams of
 * different files never overlap (a hash of them could collide).
 */
export class Keystream {
  private readonly cipher: crypto.Cipher;

  constructor(seed: number, ...stream: number[]) {
    if (stream.length > 3) throw new Error('a keystream id has at most three parts');
    const key = crypto.createHash('sha256').update(`xenbackup-bench:${seed}`).digest().subarray(0, 16);
    const iv = Buffer.alloc(16);
    stream.forEach((part, i) => iv.writeUInt32BE(part >>> 0, 4 * i));
    this.cipher = crypto.createCipheriv('aes-128-ctr', key, iv);
  }

  /** The next `n` bytes of the stream. */
  take(n: number): Buffer {
    return this.cipher.update(Buffer.alloc(n));
  }
}
