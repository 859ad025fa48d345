/**
 * The storage of a local folder: the mounted BCKDEV, or any folder given as
 * --medium. Folders below the root are walked one component at a time with
 * lstat: one planted as a symlink would take every read, write and delete
 * of a volume somewhere else on the host, so it is MediumDamage. Files are
 * opened with O_NOFOLLOW and must be regular (medium-file.ts). Whether the
 * root itself is the medium (BCKDEV's mount) is host/medium.ts's question,
 * answered before a LocalStorage is made.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { isPlainName } from '../medium/layout.js';
import { MediumDamage } from '../medium/medium-error.js';
import { fsyncDir, PARTIAL_SUFFIX } from '../medium/atomic-file.js';
import { openMediumFileAsync, readMediumFile } from '../medium/medium-file.js';
import type { Folder, LocalAccess, LockAttempt, RsyncAccess, Storage, StoredItem } from './storage.js';

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

export class LocalStorage implements Storage {
  readonly kind = 'local';
  readonly local: LocalAccess;
  readonly rsync: RsyncAccess;

  constructor(readonly root: string) {
    this.local = { path: (folder, name) => this.pathOf(folder, name) };
    this.rsync = { location: (folder, name) => this.pathOf(folder, name), args: [] };
  }

  show(folder: Folder, name?: string): string {
    return path.join(this.root, ...folder, ...(name === undefined ? [] : [name]));
  }

  /** The path of a folder or a file in it; only plain names can be either. */
  private pathOf(folder: Folder, name?: string): string {
    for (const c of name === undefined ? folder : [...folder, name]) {
      if (!isPlainName(c)) throw new MediumDamage(this.show(folder), `refusing ${JSON.stringify(c)}: not a plain name in the medium's folder`);
    }
    return this.show(folder, name);
  }

  /**
   * Whether the folder exists, each component a real directory (created,
   * mode 0700, when `create`). The root is the caller's: only below it is
   * the medium untrusted.
   */
  private walk(folder: Folder, create: boolean): boolean {
    this.pathOf(folder);
    if (create) fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
    let p = this.root;
    for (const c of folder) {
      p = path.join(p, c);
      let st: fs.Stats;
      try {
        st = fs.lstatSync(p);
      } catch (e) {
        if (errno(e) !== 'ENOENT') throw e;
        if (!create) return false;
        try {
          fs.mkdirSync(p, { mode: 0o700 });
        } catch (m) {
          if (errno(m) !== 'EEXIST') throw m;
        }
        st = fs.lstatSync(p);
      }
      if (st.isSymbolicLink()) throw new MediumDamage(p, 'is a symlink; a folder of the medium must be a real directory');
      if (!st.isDirectory()) throw new MediumDamage(p, 'is not a directory');
    }
    return true;
  }

  /** The path of a file in an existing folder (MediumDamage for a symlinked folder, ENOENT as node gives it). */
  private fileIn(folder: Folder, name: string): string {
    const file = this.pathOf(folder, name);
    if (!this.walk(folder, false)) {
      throw Object.assign(new Error(`ENOENT: no such file or directory, ${file}`), { code: 'ENOENT', path: file });
    }
    return file;
  }

  async list(folder: Folder): Promise<StoredItem[] | undefined> {
    if (!this.walk(folder, false)) return undefined;
    const dir = this.pathOf(folder);
    const out: StoredItem[] = [];
    for (const name of fs.readdirSync(dir).sort()) {
      let st: fs.Stats;
      try {
        st = fs.lstatSync(path.join(dir, name));
      } catch (e) {
        if (errno(e) === 'ENOENT') continue;
        throw e;
      }
      out.push({ name, type: st.isFile() ? 'file' : st.isDirectory() ? 'dir' : 'other', size: st.isFile() ? st.size : 0 });
    }
    return out;
  }

  async listFolders(folder: Folder): Promise<string[]> {
    return ((await this.list(folder)) ?? []).filter((i) => i.type === 'dir' && isPlainName(i.name)).map((i) => i.name);
  }

  async ensureFolder(folder: Folder): Promise<void> {
    this.walk(folder, true);
  }

  async read(folder: Folder, name: string, maxBytes: number): Promise<Buffer> {
    return readMediumFile(this.fileIn(folder, name), maxBytes);
  }

  async readRange(folder: Folder, name: string, offset: number, length: number): Promise<Buffer> {
    const fh = await openMediumFileAsync(this.fileIn(folder, name));
    try {
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    } finally {
      await fh.close();
    }
  }

  async openRead(folder: Folder, name: string, offset = 0): Promise<Readable> {
    const fh = await openMediumFileAsync(this.fileIn(folder, name));
    return fh.createReadStream({ start: offset, autoClose: true });
  }

  async write(folder: Folder, name: string, data: Buffer): Promise<void> {
    this.walk(folder, true);
    const file = this.pathOf(folder, name);
    const partial = this.pathOf(folder, name + PARTIAL_SUFFIX);
    // A partial left by a crash (or planted) is removed, never written through: O_EXCL below.
    fs.rmSync(partial, { force: true });
    const fd = fs.openSync(partial, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } catch (e) {
      fs.closeSync(fd);
      fs.rmSync(partial, { force: true });
      throw e;
    }
    fs.closeSync(fd);
    fs.renameSync(partial, file);
    fsyncDir(path.dirname(file));
  }

  async upload(folder: Folder, name: string, localFile: string): Promise<void> {
    this.walk(folder, true);
    const file = this.pathOf(folder, name);
    fs.rmSync(file, { force: true });
    await fs.promises.copyFile(localFile, file, fs.constants.COPYFILE_EXCL);
    fs.chmodSync(file, 0o600);
  }

  async remove(folder: Folder, name: string): Promise<void> {
    if (!this.walk(folder, false)) return;
    // rm never follows a symlink it meets: a planted one is removed, not its target.
    fs.rmSync(this.pathOf(folder, name), { force: true, recursive: true });
    fsyncDir(this.pathOf(folder));
  }

  stagedName(name: string): string {
    return name + PARTIAL_SUFFIX;
  }

  async publish(folder: Folder, names: readonly string[]): Promise<void> {
    for (const name of names) this.pathOf(folder, name); // every name checked before anything is touched
    this.walk(folder, false);
    for (const name of names) {
      const staged = this.pathOf(folder, this.stagedName(name));
      // rsync copies the source root's mode onto a tree; a published tree is private (it holds /etc/shadow).
      if (fs.lstatSync(staged).isDirectory()) fs.chmodSync(staged, 0o700);
      fs.renameSync(staged, this.pathOf(folder, name));
      fsyncDir(this.pathOf(folder));
    }
  }

  async tryLock(folder: Folder, name: string, holderText: string): Promise<LockAttempt> {
    this.walk(folder, true);
    const file = this.pathOf(folder, name);
    const temporary = `${file}.${process.pid}`;
    // O_EXCL: a name planted in the folder (a symlink to elsewhere) is removed, never written through.
    fs.rmSync(temporary, { force: true });
    fs.writeFileSync(temporary, holderText, { mode: 0o600, flag: 'wx' });
    try {
      fs.linkSync(temporary, file);
      return { taken: true };
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw e;
    } finally {
      fs.rmSync(temporary, { force: true });
    }
    return { taken: false, holderText: this.lockText(file) };
  }

  /** A lock's text; '' when it is unreadable (a fifo or symlink planted as the lock). */
  private lockText(file: string): string {
    try {
      return readMediumFile(file, 64 << 10).toString('utf8');
    } catch {
      return '';
    }
  }

  async unlock(folder: Folder, name: string, holderText: string): Promise<void> {
    if (!this.walk(folder, false)) return;
    const file = this.pathOf(folder, name);
    if (this.lockText(file) === holderText) fs.rmSync(file, { force: true });
  }

  async bytesHeld(folder: Folder, names: readonly string[]): Promise<number> {
    if (!this.walk(folder, false)) return 0;
    let total = 0;
    for (const name of names) total += bytesOf(this.pathOf(folder, name));
    return total;
  }

  async freeBytes(): Promise<number | undefined> {
    try {
      const s = await fs.promises.statfs(this.root);
      return s.bavail * s.bsize;
    } catch {
      return undefined;
    }
  }
}

function bytesOf(p: string): number {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return 0; // already gone
  }
  if (!st.isDirectory()) return st.nlink > 1 ? 0 : st.size;
  let total = st.size;
  for (const name of fs.readdirSync(p)) total += bytesOf(path.join(p, name));
  return total;
}
