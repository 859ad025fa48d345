/**
 * Installs the FAKE LVM of fake-lvm-cli.ts for one test (this machine's
 * kernel has no device-mapper, so real LVM cannot run; the VM suite covers
 * the real one): a bin directory with lvs, vgs, lvcreate and lvremove shims,
 * to be put first in PATH of the xenbackup process, and a volume group
 * whose logical volumes are ext4 images made with `mkfs.ext4 -d` from
 * directories. Everything lives below `dir`, so the run fixture's cleanup
 * detaches the loop devices of snapshots a failed run left.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FakeLvmState } from './fake-lvm-cli.js';

const CLI = fileURLToPath(new URL('./fake-lvm-cli.js', import.meta.url));

export interface FakeLvm {
  /** The environment for the xenbackup process: PATH with the shims first, and the state file. */
  env: Record<string, string>;
  /** Adds an LV whose filesystem is an ext4 image of `sourceDir`: its device path /dev/VG/NAME, and the image (to change it between runs). */
  addExt4Volume(name: string, sourceDir: string, sizeMiB?: number): { device: string; image: string };
  /** LVs that exist now (snapshots a run forgot would show here). */
  lvNames(): string[];
}

export function installFakeLvm(dir: string, vg = 'vgfake'): FakeLvm {
  const root = path.join(dir, 'fake-lvm');
  const bin = path.join(root, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  const stateFile = path.join(root, 'state.json');
  const state: FakeLvmState = { vg, extentBytes: 4 * 2 ** 20, vgBytes: 16 * 2 ** 30, lvs: [] };
  fs.writeFileSync(stateFile, JSON.stringify(state));
  for (const cmd of ['lvs', 'vgs', 'lvcreate', 'lvremove']) {
    fs.writeFileSync(path.join(bin, cmd), `#!/bin/sh\n# FAKE LVM for tests (no device-mapper here): see test/rsync/fake-lvm-cli.ts\nexec '${process.execPath}' '${CLI}' ${cmd} "$@"\n`, { mode: 0o755 });
  }
  const read = (): FakeLvmState => JSON.parse(fs.readFileSync(stateFile, 'utf8')) as FakeLvmState;
  return {
    env: { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, XB_FAKE_LVM_STATE: stateFile },
    addExt4Volume(name, sourceDir, sizeMiB = 32) {
      const image = path.join(root, `${name}.img`);
      fs.writeFileSync(image, '');
      fs.truncateSync(image, sizeMiB << 20);
      execFileSync('mkfs.ext4', ['-q', '-F', '-d', sourceDir, image], { stdio: ['ignore', 'ignore', 'pipe'] });
      const s = read();
      s.lvs.push({ name, image, sizeBytes: sizeMiB << 20, tags: [] });
      fs.writeFileSync(stateFile, JSON.stringify(s));
      return { device: `/dev/${vg}/${name}`, image };
    },
    lvNames: () => read().lvs.map((lv) => lv.name),
  };
}
