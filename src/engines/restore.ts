/**
 * Restore: pick the backup (the newest, or the newest at or before --at,
 * restore-point.ts) and hand the request to the engine that made it
 * (registry.ts). File-tree engines plan from the backup's manifest which
 * entries to recreate and write them beneath --to (restore-tree.ts); a raw
 * image is restored whole.
 */
import { VolumeStore } from '../repo/volume-store.js';
import { asStorage } from '../storage/as-storage.js';
import { loadEngine } from './registry.js';
import { chooseBackup } from './restore-point.js';
import type { RestoreRequest, RestoreResult } from './restore-request.js';

export type { RestoreRequest, RestoreResult } from './restore-request.js';

export async function restore(req: RestoreRequest): Promise<RestoreResult> {
  const store = new VolumeStore(asStorage(req.medium), req.host, req.volume);
  const backup = await chooseBackup(store, req.at, req.logger);
  return (await loadEngine(backup.engine)).restore(req, store, backup);
}


