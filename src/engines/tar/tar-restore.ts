/**
 * The tar engine's MemberSource for restore-tree.ts: reads the wanted
 * members of one archive, decompressing from the frame that holds the first
 * one (the sidecar's frame index) and skipping to it.
 */
import type { Logger } from '../../util/log.js';
import type { PlannedItem } from '../../core/restore-plan.js';
import { showPath } from '../../core/path-order.js';
import type { TarSidecar } from '../../medium/sidecar.js';
import type { VolumeStore } from '../../repo/volume-store.js';
import { TarParser } from '../../tar/read.js';
import { TarFormatError } from '../../tar/errors.js';
import { CommandError } from '../../host/command-error.js';
import { DamagedBackupError } from '../restore-errors.js';
import type { RestoreWriter } from '../restore-writer.js';
import type { BeginHandler, MemberSource } from '../restore-tree.js';
import { openDecompressed } from './decompression.js';

export const tarMembers: MemberSource = {
  positional: true,
  read: (store, backup, members, onBegin, writer, log) => {
    if (backup.engine !== 'tar') throw new DamagedBackupError(`${store.show(backup.archive)}: a ${backup.engine} backup in a chain of tar archives`);
    return readMembers(store, backup.archive, backup.compression, backup.frames, members, onBegin, writer, log);
  },
};

/** Frame whose tar offset is the largest <= offset. */
function frameFor(frames: Array<[number, number]>, offset: number): [number, number] {
  let lo = 0;
  let hi = frames.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (frames[mid]![1] <= offset) lo = mid;
    else hi = mid - 1;
  }
  return frames[lo] ?? [0, 0];
}

const RESTART_GAP = 64 << 20;

/**
 * Reads the wanted members of one archive in offset order. Members close
 * together are read in one pass; a large gap restarts decompression at the
 * frame holding the next wanted member.
 */
async function readMembers(
  store: VolumeStore,
  archive: string,
  compression: TarSidecar['compression'],
  frames: TarSidecar['frames'],
  members: Map<number, PlannedItem[]>,
  onBegin: BeginHandler,
  writer: RestoreWriter,
  log: Logger,
): Promise<void> {
  const offsets = [...members.keys()].sort((a, b) => a - b);
  const file = store.pathOf(archive);
  let i = 0;
  while (i < offsets.length) {
    const start = offsets[i]!;
    const [compressed, tarOffset] = frameFor(frames, start);
    const src = openDecompressed(compression, file, compressed, log);
    let pos = tarOffset; // tar offset of the next byte from the stream
    const parserBase = start;
    let receiving = false;
    let stopAt = -1;
    // Set once the last member of this pass has been fully handed over.
    let passDone = false;
    // The wanted member whose data is being read, if any (for the message of an archive that ends in it).
    let inMember = -1;
    const parser = new TarParser(
      {
        entry: (meta, info) => {
          const abs = parserBase + info.offset;
          receiving = false;
          if (abs === offsets[i]) {
            inMember = abs;
            const items = members.get(abs)!;
            i++;
            for (const item of items) {
              if (onBegin(item, meta)) receiving = true;
            }
            if (i < offsets.length && offsets[i]! - abs > RESTART_GAP) stopAt = i;
          } else if (abs > (offsets[i] ?? Infinity)) {
            throw new DamagedBackupError(`${file}: no member at tar offset ${offsets[i]}, where the manifest places ${showPath(members.get(offsets[i]!)![0]!.rel) || '/'} (the manifest and the archive disagree)`);
          }
        },
        data: (chunk, fileOffset) => {
          if (receiving) writer.data(chunk, fileOffset);
        },
        endEntry: () => {
          if (receiving) writer.end();
          receiving = false;
          inMember = -1;
          if (i >= offsets.length || stopAt === i) passDone = true;
        },
      },
      { source: file },
    );
    try {
      try {
        for await (const raw of src.stream) {
        let chunk = raw as Buffer;
        if (pos < start) {
          const skip = Math.min(chunk.length, start - pos);
          pos += skip;
          chunk = chunk.subarray(skip);
          if (chunk.length === 0) continue;
        }
          pos += chunk.length;
          parser.write(chunk);
          if (passDone || parser.ended) break;
        }
      } finally {
        src.stop();
      }
      await src.done;
    } catch (e) {
      // The parser names the archive and the byte; one line, as damage of the medium.
      // Its offset counts from where this pass started reading: made an offset in the whole tar stream.
      if (e instanceof TarFormatError) throw new DamagedBackupError(e.message.replace(/ at byte \d+$/, ` at tar offset ${e.offset + start}`));
      // zstd's exit status, or zlib's complaint: the compressed bytes are damaged.
      if (e instanceof CommandError || /^Z_/.test(String((e as NodeJS.ErrnoException).code))) {
        throw new DamagedBackupError(`${file}: cannot be decompressed: ${(e as Error).message.split('\n')[0]}`);
      }
      throw e;
    }
    if (!passDone) {
      const at = inMember >= 0 ? inMember : offsets[i]!;
      const rel = members.get(at)![0]!.rel;
      throw new DamagedBackupError(
        `${file}: ends ${inMember >= 0 ? 'inside' : 'before'} the member of ${showPath(rel) || '/'} at tar offset ${at} (truncated or damaged archive)`,
      );
    }
  }
}
