/** Finds the volumes a medium holds for one host: <medium>/<host>/<domU>/<part>/. */
import fs from 'node:fs';
import path from 'node:path';
import { checkHostName } from '../core/names.js';
import { MediumDamage } from '../medium/medium-error.js';
import { VolumeStore } from './volume-store.js';

export function volumesOnMedium(medium: string, host: string): VolumeStore[] {
  checkHostName(host);
  const hostDir = path.join(medium, host);
  if (!fs.existsSync(hostDir)) return [];
  if (fs.lstatSync(hostDir).isSymbolicLink()) throw new MediumDamage(hostDir, 'is a symlink; a folder of the medium must be a real directory');
  // lstat: a folder of the medium that is a symlink is damage (it would take a volume's reads and deletes elsewhere).
  const out: VolumeStore[] = [];
  for (const domU of fs.readdirSync(hostDir).sort()) {
    const d = path.join(hostDir, domU);
    if (!realDirectory(d)) continue;
    for (const part of fs.readdirSync(d).sort()) {
      if (realDirectory(path.join(d, part))) {
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

/** A directory (true), another file (false), or a symlink: MediumDamage. */
function realDirectory(p: string): boolean {
  const st = fs.lstatSync(p);
  if (st.isSymbolicLink()) throw new MediumDamage(p, 'is a symlink; a folder of the medium must be a real directory');
  return st.isDirectory();
}
