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
    const buf = this.buf;
    let at = this.used;
    buf[at++] = code;
    // Names are short: a byte loop beats Buffer#copy's native call.
    if (name.length > 64) at += name.copy(buf, at);
    else for (let i = 0; i < name.length; i++) buf[at++] = name[i]!;
    buf[at++] = 0;
    this.used = at;
  }

  /** The value with its terminating NUL. */
  finish(): Buffer {
    if (this.used === this.buf.length) this.buf = Buffer.concat([this.buf, Buffer.alloc(1)]);
    this.buf[this.used++] = 0;
    return this.buf.subarray(0, this.used);
  }
}
