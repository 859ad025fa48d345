/** Finds the volumes a storage holds for one host: <host>/<domU>/<part>/. */
import { checkHostName, parseVolumeName } from '../core/names.js';
import type { Storage } from '../storage/storage.js';
import { VolumeStore } from './volume-store.js';

export async function volumesOnMedium(storage: Storage, host: string): Promise<VolumeStore[]> {
  checkHostName(host);
  // listFolders refuses a folder on the way that is a symlink, and lists only real directories.
  const out: VolumeStore[] = [];
  for (const domU of await storage.listFolders([host])) {
    for (const part of await storage.listFolders([host, domU])) {
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
