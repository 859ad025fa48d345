/** Finds the volumes a storage holds for one host: <host>/<domU>/<part>/. */
import { checkHostName, parseVolumeName, unsafePathComponent } from '../core/names.js';
import { isPlainName } from '../medium/layout.js';
import type { Folder, Storage } from '../storage/storage.js';
import { VolumeStore } from './volume-store.js';

export async function volumesOnMedium(storage: Storage, host: string): Promise<VolumeStore[]> {
  checkHostName(host);
  // list refuses a folder on the way that is a symlink.
  const out: VolumeStore[] = [];
  for (const domU of await foldersIn(storage, [host])) {
    for (const part of await foldersIn(storage, [host, domU])) {
      try {
        parseVolumeName(`${domU}/${part}`);
      } catch {
        continue; // not a volume folder of ours
      }
      out.push(new VolumeStore(storage, host, `${domU}/${part}`));
    }
  }
  return out;
}

/**
 * The real sub-folders of `folder`. Where one of ours could be, something
 * that is neither a file nor a directory (a planted symlink) is damage, as
 * on every other way into a volume: skipping it would let `verify` or the
 * run's prune pass over a volume silently. Asking the storage to list it
 * makes the storage say what it is (MediumDamage).
 */
async function foldersIn(storage: Storage, folder: Folder): Promise<string[]> {
  const items = (await storage.list(folder)) ?? [];
  for (const i of items) {
    if (i.type === 'other' && unsafePathComponent(i.name) === undefined) await storage.list([...folder, i.name]);
  }
  return items.filter((i) => i.type === 'dir' && isPlainName(i.name)).map((i) => i.name);
}
