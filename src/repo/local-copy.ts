/**
 * A file of a volume's folder where the local readers (the manifest cursor,
 * the block reader, the hash check) can open it: the file itself on a
 * storage with local files, otherwise a private copy streamed down into a
 * temporary folder (mode 0700) and removed when the caller is done.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { VolumeStore } from './volume-store.js';

export interface LocalCopy {
  path: string;
  /** Removes the copy (nothing for a file that is local already). */
  release(): void;
}

export async function localCopy(store: VolumeStore, name: string, tempDir = os.tmpdir()): Promise<LocalCopy> {
  if (store.storage.local) return { path: store.pathOf(name), release: () => undefined };
  const dir = fs.mkdtempSync(path.join(tempDir, 'xenbackup-copy-'));
  const release = (): void => fs.rmSync(dir, { recursive: true, force: true });
  try {
    const file = path.join(dir, path.basename(store.show(name))); // show() refuses anything but a plain name
    await pipeline(await store.storage.openRead(store.folder, name), fs.createWriteStream(file, { mode: 0o600, flags: 'wx' }));
    return { path: file, release };
  } catch (e) {
    release();
    throw e;
  }
}
