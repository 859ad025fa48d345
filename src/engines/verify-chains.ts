/**
 * verify's rules for chains, the same for every engine: each incremental's
 * base exists, is older and belongs to the same chain; each full starts its
 * own. Problems are reported against the sidecar that names them.
 */
import { sidecarName } from '../medium/layout.js';
import type { Sidecar } from '../medium/sidecar.js';
import type { VolumeStore } from '../repo/volume-store.js';

/**
 * The backups a restore point needs that are present, oldest first. Unlike
 * core/chain.needs it never throws and never loops: a base must be older
 * than the backup that names it (checkChains reports anything else).
 */
export function chainOf(all: Sidecar[], point: Sidecar): Sidecar[] {
  const byId = new Map(all.map((b) => [b.id, b]));
  const out: Sidecar[] = [];
  for (let cur: Sidecar | undefined = point; cur; ) {
    out.unshift(cur);
    if (cur.kind === 'full' || !cur.base || cur.base >= cur.id) break;
    cur = byId.get(cur.base);
  }
  return out;
}

/** Each incremental's base exists, is older, and belongs to the same chain; each full starts its own. */
export function checkChains(store: VolumeStore, all: Sidecar[], selected: Sidecar[], add: (file: string, what: string) => void): void {
  const byId = new Map(all.map((b) => [b.id, b]));
  const sidecar = (b: Sidecar): string => store.show(sidecarName(b));
  for (const b of selected) {
    if (b.kind === 'full') {
      if (b.base !== null || b.chain !== b.id) add(sidecar(b), `full backup ${b.id} names a base or another chain (${b.base}, ${b.chain})`);
      continue;
    }
    if (!b.base || b.base >= b.id) {
      add(sidecar(b), `incremental ${b.id} names ${b.base ? `a base that is not older (${b.base})` : 'no base'}`);
      continue;
    }
    const base = byId.get(b.base);
    if (!base) {
      const after = all.filter((x) => x.id > b.id && chainOf(all, x).some((y) => y.id === b.id)).length;
      add(sidecar(b), `incremental ${b.id} builds on ${b.base}, which is missing: it${after ? ` and ${after} later backup(s)` : ''} cannot be restored`);
    } else if (base.chain !== b.chain) {
      add(sidecar(b), `incremental ${b.id} says it belongs to chain ${b.chain}, its base ${base.id} to ${base.chain}`);
    }
  }
}
