/**
 * Pull-style reading of a tar stream, for callers who prefer `for await` to
 * the callbacks of TarParser (read.ts), e.g. `xenbackup list` over an archive
 * piped from `zstd -d`.
 */
import type { TarEntry } from './entry.js';
import { TarParser, type TarMemberInfo, type TarParserOptions } from './read.js';

export type TarEvent =
  | { kind: 'entry'; entry: TarEntry; info: TarMemberInfo }
  | { kind: 'data'; chunk: Buffer; fileOffset: number }
  | { kind: 'endEntry' };

/**
 * Pull-style reading: yields the parser's callbacks as events, in order.
 * Data chunks are views into the source's buffers (fine for fs and process
 * streams, which never reuse them). Throws TarFormatError like the parser,
 * also when the source ends before the end-of-archive blocks. Stops reading
 * the source after the end-of-archive blocks.
 */
export async function* readTar(source: AsyncIterable<Uint8Array>, options: TarParserOptions = {}): AsyncGenerator<TarEvent, void, undefined> {
  let queue: TarEvent[] = [];
  const parser = new TarParser(
    {
      entry: (entry, info) => queue.push({ kind: 'entry', entry, info }),
      data: (chunk, fileOffset) => queue.push({ kind: 'data', chunk, fileOffset }),
      endEntry: () => queue.push({ kind: 'endEntry' }),
    },
    options,
  );
  for await (const raw of source) {
    const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    parser.write(chunk);
    const events = queue;
    queue = [];
    yield* events;
    if (parser.ended) return;
  }
  parser.end();
}
