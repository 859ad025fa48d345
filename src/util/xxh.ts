/**
 * xxh64 through xxhash-wasm, initialised once. The hot loop hashes bytes it
 * already holds (the tar segment buffer), so only the raw and streaming
 * forms are exposed, as 16 hex digits.
 */
import xxhash from 'xxhash-wasm';

type Api = Awaited<ReturnType<typeof xxhash>>;
let api: Api | undefined;

export async function initXxh(): Promise<void> {
  api ??= await xxhash();
}

function ready(): Api {
  if (!api) throw new Error('initXxh() was not awaited');
  return api;
}

export function hex64(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}

export function xxh64(data: Uint8Array): string {
  return hex64(ready().h64Raw(data));
}

export interface StreamingHash {
  update(data: Uint8Array): StreamingHash;
  digest(): string;
}

export function createXxh64(): StreamingHash {
  const h = ready().create64();
  const s: StreamingHash = {
    update(data) {
      h.update(data);
      return s;
    },
    digest: () => hex64(h.digest()),
  };
  return s;
}
