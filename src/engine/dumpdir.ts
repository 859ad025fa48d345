/**
 * Builds a GNU.dumpdir value: for each child of a directory a code byte
 * ('Y' stored in this archive, 'N' unchanged, 'D' a directory), its name and
 * a NUL; a final NUL ends the list. Appends into one growing buffer instead
 * of three small Buffers per child: a no-change incremental of 100,000 files
 * writes every name once here.
 */
export class DumpdirBuilder {
  private buf = Buffer.allocUnsafe(4096);
  private used = 0;

  add(code: number, name: Buffer): void {
    const need = this.used + name.length + 3;
    if (need > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
      this.buf.copy(bigger, 0, 0, this.used);
      this.buf = bigger;
    }
    this.buf[this.used++] = code;
    this.used += name.copy(this.buf, this.used);
    this.buf[this.used++] = 0;
  }

  /** The value with its terminating NUL. */
  finish(): Buffer {
    if (this.used === this.buf.length) this.buf = Buffer.concat([this.buf, Buffer.alloc(1)]);
    this.buf[this.used++] = 0;
    return this.buf.subarray(0, this.used);
  }
}
