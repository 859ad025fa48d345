/**
 * A fake Storage that keeps its files in memory. The core's tests (a
 * volume's folder, its lock, prune, restore planning) need a storage
 * without a disk, an ssh server or root, and one that behaves like an
 * object store: with `{ rename: false }` a staged name is the final name
 * and publish() does nothing, so code that relied on a rename to hide a
 * half-written file shows it. plant() puts what a hostile medium holds (a
 * symlink, a fifo, a file where a folder belongs) where the code under test
 * must refuse it; the refusals are the same as on the real storages
 * (test/storage/conformance.ts holds all of them to one behaviour).
 *
 * Nothing is followed or waited on here (a symlink has no target, a fifo no
 * writer); what makes it a fake is only that the bytes live in a Map.
 */
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { MediumDamage } from '../medium/medium-error.js';
import { checkCount, checkFolder, checkName, notFound } from './storage-checks.js';
import type { Folder, LockAttempt, Storage, StoredItem } from './storage.js';

type Node = { kind: 'dir'; items: Map<string, Node> } | { kind: 'file'; data: Buffer } | { kind: 'symlink' } | { kind: 'fifo' };

export type PlantedKind = 'symlink' | 'fifo' | 'file' | 'dir';

export interface MemoryStorageOptions {
  /** false: a store without rename (stagedName(name) === name, publish does nothing). Default true. */
  rename?: boolean;
  /** What freeBytes() says (default: undefined, "cannot say"). */
  freeBytes?: number;
}

const dir = (): Node => ({ kind: 'dir', items: new Map() });

export class MemoryStorage implements Storage {
  readonly kind = 'memory';
  readonly root = 'memory:';
  private readonly top = dir() as Extract<Node, { kind: 'dir' }>;
  private readonly rename: boolean;

  constructor(private readonly options: MemoryStorageOptions = {}) {
    this.rename = options.rename ?? true;
  }

  show(folder: Folder, name?: string): string {
    return `${this.root}/${[...folder, ...(name === undefined ? [] : [name])].join('/')}`;
  }

  /**
   * Puts `kind` under `name` in `folder` (made where missing), replacing
   * what was there: a test's hostile medium. A symlink or fifo planted here
   * is refused wherever a folder or a file is expected.
   */
  plant(folder: Folder, name: string, kind: PlantedKind, data: Buffer = Buffer.alloc(0)): void {
    checkFolder(folder, this.show(folder));
    checkName(name, this.show(folder, name));
    const items = this.walk(folder, true)!;
    items.set(name, kind === 'dir' ? dir() : kind === 'file' ? { kind: 'file', data: Buffer.from(data) } : { kind });
  }

  /** The folder's items; undefined when a component is missing (or, with make, creates it); MediumDamage for a symlink or non-folder on the way. */
  private walk(folder: Folder, make = false): Map<string, Node> | undefined {
    checkFolder(folder, this.show(folder));
    let items = this.top.items;
    for (let i = 0; i < folder.length; i++) {
      let node = items.get(folder[i]!);
      if (node === undefined) {
        if (!make) return undefined;
        node = dir();
        items.set(folder[i]!, node);
      }
      if (node.kind === 'symlink') throw new MediumDamage(this.show(folder.slice(0, i + 1)), 'is a symlink, not a folder');
      if (node.kind !== 'dir') throw new MediumDamage(this.show(folder.slice(0, i + 1)), 'is not a folder');
      items = node.items;
    }
    return items;
  }

  /** The folder, which must exist. */
  private existing(folder: Folder): Map<string, Node> {
    const items = this.walk(folder);
    if (!items) throw notFound(this.show(folder), 'no such folder');
    return items;
  }

  /** A regular file's bytes. */
  private file(folder: Folder, name: string): Buffer {
    checkName(name, this.show(folder, name));
    const node = this.existing(folder).get(name);
    const shown = this.show(folder, name);
    if (node === undefined) throw notFound(shown);
    if (node.kind === 'symlink') throw new MediumDamage(shown, 'is a symlink, not a file xenbackup wrote');
    if (node.kind !== 'file') throw new MediumDamage(shown, 'is not a regular file');
    return node.data;
  }

  async list(folder: Folder): Promise<StoredItem[] | undefined> {
    const items = this.walk(folder);
    if (!items) return undefined;
    return [...items]
      .map(([name, n]): StoredItem => ({ name, type: n.kind === 'file' ? 'file' : n.kind === 'dir' ? 'dir' : 'other', size: n.kind === 'file' ? n.data.length : 0 }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async listFolders(folder: Folder): Promise<string[]> {
    return ((await this.list(folder)) ?? []).filter((i) => i.type === 'dir').map((i) => i.name);
  }

  async ensureFolder(folder: Folder): Promise<void> {
    this.walk(folder, true);
  }

  async read(folder: Folder, name: string, maxBytes: number): Promise<Buffer> {
    const data = this.file(folder, name);
    if (data.length > maxBytes) throw new MediumDamage(this.show(folder, name), `is ${data.length} bytes, more than the ${maxBytes} it can be`);
    return Buffer.from(data);
  }

  async readRange(folder: Folder, name: string, offset: number, length: number): Promise<Buffer> {
    checkCount(offset, 'offset', this.show(folder, name));
    checkCount(length, 'length', this.show(folder, name));
    return Buffer.from(this.file(folder, name).subarray(offset, offset + length));
  }

  async openRead(folder: Folder, name: string, offset = 0): Promise<Readable> {
    checkCount(offset, 'offset', this.show(folder, name));
    return Readable.from([Buffer.from(this.file(folder, name).subarray(offset))]);
  }

  async write(folder: Folder, name: string, data: Buffer): Promise<void> {
    checkName(name, this.show(folder, name));
    const items = this.walk(folder, true)!;
    if (items.get(name)?.kind === 'dir') throw new MediumDamage(this.show(folder, name), 'is a folder, not a file');
    items.set(name, { kind: 'file', data: Buffer.from(data) });
  }

  async upload(folder: Folder, name: string, localFile: string): Promise<void> {
    checkName(name, this.show(folder, name));
    const items = this.walk(folder, true)!;
    const node = items.get(name);
    if (node !== undefined && node.kind !== 'file') throw new MediumDamage(this.show(folder, name), 'is in the way: not a regular file');
    items.set(name, { kind: 'file', data: await fs.promises.readFile(localFile) });
  }

  async remove(folder: Folder, name: string): Promise<void> {
    checkName(name, this.show(folder, name));
    this.walk(folder)?.delete(name);
  }

  stagedName(name: string): string {
    return this.rename ? `${name}.partial` : name;
  }

  async publish(folder: Folder, names: readonly string[]): Promise<void> {
    for (const n of names) checkName(n, this.show(folder, n));
    const items = this.existing(folder);
    // Without rename the staged name is the final one: there is nothing to move, only to have been written.
    if (!this.rename) {
      for (const n of names) if (!items.has(n)) throw notFound(this.show(folder, n));
      return;
    }
    for (const n of names) {
      const staged = items.get(this.stagedName(n));
      const shown = this.show(folder, this.stagedName(n));
      if (staged === undefined) throw notFound(shown);
      if (staged.kind !== 'file' && staged.kind !== 'dir') throw new MediumDamage(shown, 'is not a regular file or a folder');
      items.delete(this.stagedName(n));
      items.set(n, staged);
    }
  }

  async tryLock(folder: Folder, name: string, holderText: string): Promise<LockAttempt> {
    checkName(name, this.show(folder, name));
    const items = this.walk(folder, true)!;
    const node = items.get(name);
    if (node === undefined) {
      items.set(name, { kind: 'file', data: Buffer.from(holderText) });
      return { taken: true };
    }
    return { taken: false, holderText: node.kind === 'file' ? node.data.subarray(0, 64 << 10).toString() : '' };
  }

  /** A lock that is not a regular file reads as '' (as tryLock reports it); a folder is never a lock to remove. */
  async unlock(folder: Folder, name: string, holderText: string): Promise<void> {
    checkName(name, this.show(folder, name));
    const items = this.walk(folder);
    const node = items?.get(name);
    if (node === undefined || node.kind === 'dir') return;
    const text = node.kind === 'file' ? node.data : Buffer.alloc(0);
    if (text.equals(Buffer.from(holderText))) items!.delete(name);
  }

  async bytesHeld(folder: Folder, names: readonly string[]): Promise<number> {
    for (const n of names) checkName(n, this.show(folder, n));
    const items = this.walk(folder);
    const size = (n: Node | undefined): number =>
      n === undefined ? 0 : n.kind === 'file' ? n.data.length : n.kind === 'dir' ? [...n.items.values()].reduce((t, c) => t + size(c), 0) : 0;
    return names.reduce((t, n) => t + size(items?.get(n)), 0);
  }

  async freeBytes(): Promise<number | undefined> {
    return this.options.freeBytes;
  }
}
