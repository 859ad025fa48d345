/**
 * xxh64 (seed 0) as 16 hex digits, computed by the native addon
 * (native/xxh64.c) over the caller's bytes in place: the archiver hashes
 * every file straight from its segment buffer and every compressed frame,
 * and xxhash-wasm copied each byte into wasm memory first. Results are
 * identical to xxhash-wasm's (test/native/xxh64.test.ts holds them equal).
 * The streaming state is a small Buffer owned by JavaScript.
 */
import { xxh64Native } from './xbfs.js';

export function hex64(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}

export function xxh64(data: Uint8Array): string {
  return xxh64Native.oneShot(data);
}

export interface StreamingHash {
  update(data: Uint8Array): StreamingHash;
  digest(): string;
}

/** A StreamingHash whose updates may also run on a libuv worker thread (one at a time; see updateAsync). */
export interface AsyncStreamingHash extends StreamingHash {
  /** Hashes `data` off the main thread; neither the hash nor `data` may be used until it settles. */
  updateAsync(data: Uint8Array): Promise<void>;
}

class NativeXxh64 implements AsyncStreamingHash {
  private readonly state = Buffer.alloc(xxh64Native.stateSize);

  constructor() {
    xxh64Native.init(this.state);
  }

  update(data: Uint8Array): StreamingHash {
    xxh64Native.update(this.state, data);
    return this;
  }

  updateAsync(data: Uint8Array): Promise<void> {
    return xxh64Native.updateAsync(this.state, data);
  }

  digest(): string {
    return xxh64Native.digest(this.state);
  }
}

export function createXxh64(): StreamingHash {
  return new NativeXxh64();
}

export function createAsyncXxh64(): AsyncStreamingHash {
  return new NativeXxh64();
}
