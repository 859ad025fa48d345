/**
 * The one error type of the tar codec. The reader throws it for anything that
 * is wrong with the bytes of an archive (bad checksum, bad number, bad pax
 * record, truncation), always naming the byte offset in the tar stream so an
 * admin can look at the spot with `dd`/`od`.
 */
export class TarFormatError extends Error {
  /** Byte offset in the (uncompressed) tar stream where the problem was found. */
  readonly offset: number;

  constructor(message: string, offset: number, source?: string) {
    super(`${source ? `${source}: ` : ''}${message} at byte ${offset}`);
    this.name = 'TarFormatError';
    this.offset = offset;
  }
}
