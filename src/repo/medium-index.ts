/** Finds the volumes a medium holds for one host: <medium>/<host>/<domU>/<part>/. */
import fs from 'node:fs';
import path from 'node:path';
import { VolumeStore } from './volume-store.js';

export function volumesOnMedium(medium: string, host: string): VolumeStore[] {
  const hostDir = path.join(medium, host);
  if (!fs.existsSync(hostDir)) return [];
  const out: VolumeStore[] = [];
  for (const domU of fs.readdirSync(hostDir).sort()) {
    const d = path.join(hostDir, domU);
    if (!fs.statSync(d).isDirectory()) continue;
    for (const part of fs.readdirSync(d).sort()) {
      if (fs.statSync(path.join(d, part)).isDirectory()) {
        try {
          out.push(new VolumeStore(medium, host, `${domU}/${part}`));
        } catch {
          /* not a volume folder of ours */
        }
      }
    }
  }
  return out;
}
