/**
 * Restore's source for rsync backups: instead of tar members, the files of
 * the dated tree. Hands each planned item to the same RestoreWriter, with
 * its xattrs and ACLs read from the tree's copy.
 */
import fs from 'node:fs';
import type { PlannedItem } from '../core/restore-plan.js';
import { joinRel } from '../core/path-order.js';
import type { TarEntry } from '../tar/entry.js';
import type { Sidecar } from '../repo/sidecar.js';
import type { VolumeStore } from '../repo/volume-store.js';
import { readExtendedAttributes } from './metadata.js';
import type { RestoreWriter } from './restore-writer.js';
import { dataRegions } from './sparse-regions.js';

const CHUNK = 1 << 20;

export async function readTreeMembers(
  store: VolumeStore,
  sc: Sidecar,
  items: PlannedItem[],
  onBegin: (item: PlannedItem, meta: TarEntry) => boolean,
  writer: RestoreWriter,
): Promise<void> {
  const root = Buffer.from(store.pathOf(sc.archive));
  const buf = Buffer.allocUnsafe(CHUNK);
  for (const item of items) {
    const abs = joinRel(root, item.rel);
    const e = item.entry;
    const meta: TarEntry = { path: item.rel, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size, mtimeNs: e.mtimeNs, linkTarget: e.link };
    readExtendedAttributes(abs, meta);
    let fd: number | undefined;
    let regions: Array<[number, number]> = [[0, e.size]];
    if (e.type === 'file') {
      fd = fs.openSync(abs, 'r');
      if (e.sparse) {
        // rsync --sparse may make holes of zero runs the source stored as data: the regions differ from the
        // source's, so the region-wise hash cannot be compared; the tree's content is written as it is.
        regions = dataRegions(fd, e.size) ?? regions;
        meta.sparseMap = regions;
        item.entry = { ...e, hash: undefined };
      }
    }
    try {
      if (!onBegin(item, meta) || fd === undefined) continue;
      for (const [off, len] of regions) {
        let pos = off;
        while (pos < off + len) {
          const n = fs.readSync(fd, buf, 0, Math.min(CHUNK, off + len - pos), pos);
          if (n <= 0) break;
          writer.data(buf.subarray(0, n), pos);
          pos += n;
        }
      }
      writer.end();
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }
}
