/**
 * The tar reader: a push parser that is fed the (decompressed) byte stream in
 * chunks of any size and reports members through callbacks.
 *
 * Per member it calls `entry(entry, info)` (info: the stream offset of the
 * member's first header block, extension headers included, so a restore can
 * seek there), then `data(chunk, fileOffset)` for the file's bytes (for sparse
 * files only the data regions, each chunk with its offset in the real file, so
 * the caller writes them with holes), then `endEntry()`. After the end-of-archive
 * blocks it calls `end()` and ignores whatever follows (GNU tar's record padding).
 * (read-tar.ts offers the same as an async iterator.)
 *
 * Data chunks are views into the buffers passed to write() (no copy): use or
 * copy them before the next write(). Anything wrong with the bytes throws a
 * TarFormatError naming the stream offset, from write() or end() (end() when
 * the input stops before the end-of-archive blocks); the parser then stays
 * failed. Every state consumes input, so no input can make it loop.
 */
import { decodeMember, type DataLayout, type MemberContext } from './decode.js';
import type { TarEntry } from './entry.js';
import { TarFormatError } from './errors.js';
import { BLOCK_SIZE, F, T, checksumMatches, isZeroBlock } from './header.js';
import { readNumber } from './octal.js';
import { parsePaxRecords, type PaxRecord } from './pax.js';
import { SparseMapParser, type SparseMap } from './sparse.js';

export interface TarMemberInfo {
  /** Stream offset of the member's first header block (its pax/GNU extension headers included). */
  offset: number;
  /** Stream offset of the member's data, after all its headers. */
  dataOffset: number;
  /** Bytes of data stored after the headers (for sparse 1.0: map block(s) + regions). */
  storedSize: number;
}

export interface TarHandlers {
  entry(entry: TarEntry, info: TarMemberInfo): void;
  /** File data: `fileOffset` is the chunk's offset in the (real) file. */
  data?(chunk: Buffer, fileOffset: number): void;
  endEntry?(): void;
  /** The end-of-archive blocks were read. */
  end?(): void;
}

export interface TarParserOptions {
  /** Archive name for error messages. */
  source?: string;
}

/** Caps on what is buffered in memory, so a corrupt size cannot exhaust it. */
const MAX_LONG_NAME = 1 << 20;
const MAX_EXTENDED = 256 << 20;

type State = 'block' | 'collect' | 'sparseMap' | 'data' | 'skip' | 'done';
type BlockKind = 'header' | 'eof2' | 'gnuSparseExt';
type CollectKind = 'pax' | 'global' | 'longName' | 'longLink' | 'dumpdir';

export class TarParser {
  private state: State = 'block';
  private blockKind: BlockKind = 'header';
  private readonly blockBuf = Buffer.alloc(BLOCK_SIZE);
  private blockFill = 0;
  private pos = 0;
  private failure: Error | undefined;
  private finished = false;

  // The member being assembled.
  private memberStart = -1;
  private local: PaxRecord[] = [];
  private readonly global = new Map<string, Buffer>();
  private longName: Buffer | undefined;
  private longLink: Buffer | undefined;
  private current: { entry: TarEntry; info: TarMemberInfo; layout: DataLayout; regions?: SparseMap } | undefined;

  // 'collect': extension data being gathered.
  private collectKind: CollectKind = 'pax';
  private collectStart = 0;
  private collectLeft = 0;
  private collected: Buffer[] = [];

  // 'data' and 'skip'.
  private dataLeft = 0;
  private region = 0;
  private regionDone = 0;
  private fileOffset = 0;
  private skipLeft = 0;
  private sparseParser: SparseMapParser | undefined;

  constructor(
    private readonly handlers: TarHandlers,
    private readonly options: TarParserOptions = {},
  ) {}

  /** Stream offset of the next byte expected. */
  get position(): number {
    return this.pos;
  }

  /** True once the end-of-archive blocks have been read. */
  get ended(): boolean {
    return this.finished;
  }

  write(chunk: Buffer): void {
    if (this.failure) throw this.failure;
    try {
      this.consume(chunk);
    } catch (err) {
      this.failure = err as Error;
      throw err;
    }
  }

  /** Signals the end of input; throws if the archive stopped before its end-of-archive blocks. */
  end(): void {
    if (this.failure) throw this.failure;
    if (!this.finished) {
      let where = 'archive is truncated inside a member';
      if (this.state === 'block' && this.blockFill === 0 && this.memberStart < 0) {
        if (this.blockKind === 'header') where = 'archive ends without end-of-archive blocks';
        if (this.blockKind === 'eof2') where = 'archive ends after only one of its two end-of-archive blocks';
      }
      this.failure = this.error(where, this.pos);
      throw this.failure;
    }
  }

  private error(what: string, at: number): TarFormatError {
    return new TarFormatError(what, at, this.options.source);
  }

  private consume(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      const avail = chunk.length - i;
      switch (this.state) {
        case 'block': {
          if (this.blockFill === 0 && avail >= BLOCK_SIZE) {
            const at = this.pos;
            this.pos += BLOCK_SIZE;
            this.onBlock(chunk, i, at);
            i += BLOCK_SIZE;
          } else {
            const n = Math.min(BLOCK_SIZE - this.blockFill, avail);
            chunk.copy(this.blockBuf, this.blockFill, i, i + n);
            this.blockFill += n;
            i += n;
            if (this.blockFill === BLOCK_SIZE) {
              this.blockFill = 0;
              const at = this.pos;
              this.pos += BLOCK_SIZE;
              this.onBlock(this.blockBuf, 0, at);
            }
          }
          break;
        }
        case 'collect': {
          const n = Math.min(this.collectLeft, avail);
          this.collected.push(Buffer.from(chunk.subarray(i, i + n))); // copied: small, and kept past this write()
          this.collectLeft -= n;
          this.pos += n;
          i += n;
          if (this.collectLeft === 0) this.finishCollect();
          break;
        }
        case 'sparseMap': {
          const parser = this.sparseParser!;
          const limit = i + Math.min(avail, this.dataLeft);
          const stop = parser.feed(chunk, i, limit);
          if (typeof stop === 'string') throw this.error(stop, this.current!.info.dataOffset + parser.consumed - 1);
          this.pos += stop - i;
          this.dataLeft -= stop - i;
          i = stop;
          if (parser.done) this.startSparseData(parser.regions());
          else if (this.dataLeft === 0) throw this.error('sparse map runs past the member data', this.pos);
          break;
        }
        case 'data': {
          const n = Math.min(this.dataLeft, avail);
          this.emitData(chunk, i, n);
          this.dataLeft -= n;
          this.pos += n;
          i += n;
          if (this.dataLeft === 0) this.finishMember();
          break;
        }
        case 'skip': {
          const n = Math.min(this.skipLeft, avail);
          this.skipLeft -= n;
          this.pos += n;
          i += n;
          if (this.skipLeft === 0) this.state = 'block';
          break;
        }
        case 'done':
          this.pos += avail;
          return;
      }
    }
  }

  private onBlock(block: Buffer, b: number, at: number): void {
    if (this.blockKind === 'gnuSparseExt') return this.onGnuSparseExtension(block, b, at);
    if (isZeroBlock(block, b)) {
      if (this.memberStart >= 0) throw this.error('zero block where a member header should follow its extension header', at);
      if (this.blockKind === 'eof2') {
        this.finished = true;
        this.state = 'done';
        this.handlers.end?.();
      } else {
        this.blockKind = 'eof2';
      }
      return;
    }
    // A lone zero block followed by a header: GNU tar warns and reads on; so do we.
    this.blockKind = 'header';
    const stored = readNumber(block, b + F.chksum, F.chksumLen);
    if (Number.isNaN(stored) || !checksumMatches(block, b, stored)) throw this.error('bad tar header checksum', at);

    const typeflag = block[b + F.typeflag]!;
    const size = readNumber(block, b + F.size, F.bigLen);
    if (Number.isNaN(size)) throw this.error('bad size field in tar header', at);
    switch (typeflag) {
      case T.paxLocal: return this.startCollect('pax', size, MAX_EXTENDED, at);
      case T.paxGlobal: return this.startCollect('global', size, MAX_EXTENDED, at);
      case T.gnuLongName: return this.startCollect('longName', size, MAX_LONG_NAME, at);
      case T.gnuLongLink: return this.startCollect('longLink', size, MAX_LONG_NAME, at);
      case T.gnuVolume:
        // A volume label (tar -V) describes no file.
        return this.skipThen(size + pad(size));
      case T.gnuMultivolume: throw this.error('multi-volume continuation members are not supported', at);
    }

    const member = decodeMember(block, b, at, this.context(), this.options.source);
    const info: TarMemberInfo = {
      offset: this.memberStart >= 0 ? this.memberStart : at,
      dataOffset: at + BLOCK_SIZE,
      storedSize: member.storedSize,
    };
    this.memberStart = -1;
    this.local = [];
    this.longName = undefined;
    this.longLink = undefined;
    this.current = { entry: member.entry, info, layout: member.layout };

    switch (member.layout.kind) {
      case 'dumpdir':
        return this.startCollect('dumpdir', member.storedSize, MAX_EXTENDED, at);
      case 'gnuSparse':
        if (member.layout.extended) {
          this.current.regions = member.layout.regions;
          this.blockKind = 'gnuSparseExt';
          return;
        }
        return this.startSparseData(member.layout.regions);
      case 'sparse':
        return this.startSparseData(member.layout.regions);
      case 'sparse1':
        this.sparseParser = new SparseMapParser();
        this.dataLeft = member.storedSize;
        this.state = 'sparseMap';
        if (this.dataLeft === 0) throw this.error('sparse member without a sparse map', at);
        return;
      default:
        return this.startData();
    }
  }

  private onGnuSparseExtension(block: Buffer, b: number, at: number): void {
    // 21 (offset, numbytes) pairs of 12 octal bytes each, then the isextended flag.
    const regions = this.current!.regions!;
    for (let i = 0; i < 21; i++) {
      const off = b + i * 24;
      if (block[off] === 0) break;
      const offset = readNumber(block, off, 12);
      const length = readNumber(block, off + 12, 12);
      if (Number.isNaN(offset) || Number.isNaN(length)) throw this.error('bad number in GNU sparse extension header', at);
      regions.push([offset, length]);
    }
    if (block[b + 504] !== 0) return; // more extension blocks follow
    this.blockKind = 'header';
    this.current!.info.dataOffset = at + BLOCK_SIZE;
    this.startSparseData(regions);
  }

  private context(): MemberContext {
    return { local: this.local, global: this.global, longName: this.longName, longLink: this.longLink };
  }

  private startCollect(kind: CollectKind, size: number, max: number, at: number): void {
    if (size > max) throw this.error(`tar extension member of ${size} bytes exceeds the limit of ${max}`, at);
    if (kind !== 'global' && kind !== 'dumpdir' && this.memberStart < 0) this.memberStart = at;
    this.collectKind = kind;
    this.collectStart = at + BLOCK_SIZE;
    this.collectLeft = size;
    this.collected = [];
    if (size === 0) this.finishCollect();
    else this.state = 'collect';
  }

  private finishCollect(): void {
    const data = this.collected.length === 1 ? this.collected[0]! : Buffer.concat(this.collected);
    this.collected = [];
    const size = data.length;
    switch (this.collectKind) {
      case 'pax':
        for (const record of parsePaxRecords(data, this.collectStart, this.options.source)) this.local.push(record);
        break;
      case 'global':
        for (const [keyword, value] of parsePaxRecords(data, this.collectStart, this.options.source)) this.global.set(keyword, value);
        break;
      case 'longName':
      case 'longLink': {
        // NUL-terminated name (GNU counts the NUL in the size).
        const nul = data.indexOf(0);
        const name = nul < 0 ? data : data.subarray(0, nul);
        if (this.collectKind === 'longName') this.longName = name;
        else this.longLink = name;
        break;
      }
      case 'dumpdir':
        this.current!.entry.dumpdir = data;
        this.skipThen(pad(size));
        this.announce();
        this.finishMember(false);
        return;
    }
    this.skipThen(pad(size));
  }

  /** Skip n bytes, then read blocks again. */
  private skipThen(n: number): void {
    this.skipLeft = n;
    this.state = n > 0 ? 'skip' : 'block';
  }

  private announce(): void {
    const { entry, info } = this.current!;
    this.handlers.entry(entry, info);
  }

  private startData(): void {
    const { layout, info } = this.current!;
    this.announce();
    const size = layout.kind === 'none' ? 0 : info.storedSize;
    this.region = -1; // not sparse
    this.fileOffset = 0;
    this.dataLeft = size;
    if (size === 0) this.finishMember();
    else this.state = 'data';
  }

  private startSparseData(regions: SparseMap): void {
    const current = this.current!;
    const { entry, info } = current;
    const mapBytes = this.sparseParser ? this.sparseParser.consumed : 0;
    this.sparseParser = undefined;
    let end = 0;
    let total = 0;
    for (const [offset, length] of regions) {
      if (offset < end || offset + length > entry.size) {
        throw this.error(`sparse map region [${offset}, ${length}] is out of order or beyond the file size ${entry.size}`, info.offset);
      }
      end = offset + length;
      total += length;
    }
    if (total !== info.storedSize - mapBytes) {
      throw this.error(`sparse map describes ${total} bytes of data but the member stores ${info.storedSize - mapBytes}`, info.offset);
    }
    entry.sparseMap = regions.filter(([, length]) => length > 0);
    current.regions = entry.sparseMap;
    this.announce();
    this.region = 0;
    this.regionDone = 0;
    this.dataLeft = total;
    if (total === 0) this.finishMember();
    else this.state = 'data';
  }

  private emitData(chunk: Buffer, start: number, n: number): void {
    const current = this.current!;
    const skipping = current.layout.kind === 'skip';
    if (skipping || !this.handlers.data) {
      if (this.region >= 0) this.advanceRegions(n);
      return;
    }
    if (this.region < 0) {
      this.handlers.data(chunk.subarray(start, start + n), this.fileOffset);
      this.fileOffset += n;
      return;
    }
    // Sparse: split the chunk at region boundaries.
    const regions = current.regions!;
    let i = start;
    const end = start + n;
    while (i < end) {
      const [offset, length] = regions[this.region]!;
      const take = Math.min(length - this.regionDone, end - i);
      this.handlers.data(chunk.subarray(i, i + take), offset + this.regionDone);
      i += take;
      this.regionDone += take;
      if (this.regionDone === length) {
        this.region++;
        this.regionDone = 0;
      }
    }
  }

  private advanceRegions(n: number): void {
    const regions = this.current!.regions!;
    while (n > 0) {
      const [, length] = regions[this.region]!;
      const take = Math.min(length - this.regionDone, n);
      n -= take;
      this.regionDone += take;
      if (this.regionDone === length) {
        this.region++;
        this.regionDone = 0;
      }
    }
  }

  /** Ends the current member; `skipPadding` is false when the caller already arranged the skip. */
  private finishMember(skipPadding = true): void {
    const { info, layout } = this.current!;
    this.current = undefined;
    if (skipPadding) this.skipThen(layout.kind === 'none' ? 0 : pad(info.storedSize));
    this.handlers.endEntry?.();
  }
}

function pad(n: number): number {
  const rest = n % BLOCK_SIZE;
  return rest === 0 ? 0 : BLOCK_SIZE - rest;
}
