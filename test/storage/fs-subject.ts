/**
 * The conformance suite's Subject for storages whose medium is a folder on
 * this machine (the local storage, and the ssh storage whose server is
 * this machine): a root folder in a scratch dir, a decoy folder and file
 * beside it for planted symlinks to point at, and plants made with fs
 * directly, as a hostile medium would hold them. Test-only code: mkfifo
 * runs through execFileSync.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'node:test';
import type { Folder, Storage } from '../../src/storage/storage.js';
import { makeScratchDir } from '../helpers/scratch.js';
import { DECOY, type Plant, type Subject } from './conformance.js';

/** A fresh root (its name needs quoting in a shell), with the decoys beside it. */
export function fsSubject(t: TestContext, make: (root: string) => Storage): Subject {
  const dir = makeScratchDir(t, 'storage');
  const root = path.join(dir, "root dir 'q'");
  const decoyDir = path.join(dir, 'decoy');
  const decoyFile = path.join(dir, 'decoy-file');
  fs.mkdirSync(root, { mode: 0o700 });
  fs.mkdirSync(decoyDir);
  fs.writeFileSync(path.join(decoyDir, 'x'), DECOY);
  fs.writeFileSync(decoyFile, DECOY);
  return {
    storage: make(root),
    async plant(folder: Folder, name: string, kind: Plant, data = Buffer.alloc(0)): Promise<void> {
      const where = path.join(root, ...folder);
      fs.mkdirSync(where, { recursive: true, mode: 0o700 });
      const p = path.join(where, name);
      fs.rmSync(p, { recursive: true, force: true });
      if (kind === 'symlink-dir') fs.symlinkSync(decoyDir, p);
      else if (kind === 'symlink-file') fs.symlinkSync(decoyFile, p);
      else if (kind === 'fifo') execFileSync('mkfifo', ['-m', '600', '--', p]);
      else if (kind === 'dir') fs.mkdirSync(p, { mode: 0o700 });
      else fs.writeFileSync(p, data, { mode: 0o600 });
    },
    async plantHardlink(folder: Folder, name: string): Promise<void> {
      fs.linkSync(decoyFile, path.join(root, ...folder, name));
    },
    async decoy() {
      return { names: fs.readdirSync(decoyDir).sort(), file: fs.readFileSync(decoyFile) };
    },
  };
}
