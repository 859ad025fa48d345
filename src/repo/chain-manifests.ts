/**
 * The manifests a version 2 manifest may refer to: those of the backups it
 * builds on (its base, that one's base, ... its full), and nothing else, so
 * that a reference read from the medium can only reach a file prune keeps
 * with it (core/retention.ts keeps chains whole).
 */
import { needs } from '../core/chain.js';
import { ManifestFormatError } from '../core/manifest.js';
import { isVersion2Manifest, manifestProblems } from '../medium/manifest-file.js';
import type { HolderFiles } from '../medium/manifest-reader.js';
import type { Sidecar } from '../medium/sidecar.js';
import type { VolumeStore } from './volume-store.js';

/** The backups `backup` builds on, oldest first (empty for a full, or when part of its chain is missing). */
export function ancestorsOf(backups: Sidecar[], backup: Sidecar): Sidecar[] {
  try {
    return needs(backups, backup).slice(0, -1);
  } catch {
    return [];
  }
}

/** Holder files for reading `backup`'s manifest: its ancestors' manifests, as `manifestPath` finds them. */
export function holdersFrom(ancestors: Sidecar[], manifestPath: (s: Sidecar) => string | undefined): HolderFiles {
  const byId = new Map(ancestors.map((s) => [s.id, s]));
  return (id) => {
    const s = byId.get(id);
    return s ? manifestPath(s) : undefined;
  };
}

/** holdersFrom on a storage with local files. */
export function chainHolders(store: VolumeStore, backups: Sidecar[], backup: Sidecar): HolderFiles {
  return holdersFrom(ancestorsOf(backups, backup), (s) => store.pathOf(s.manifest));
}

/**
 * Checks `base`'s manifest and the version 2 manifests it may refer to
 * against their sidecars before an incremental reads them frame by frame:
 * damage found now makes the run take a full backup, instead of failing halfway.
 */
export function checkChainManifests(store: VolumeStore, backups: Sidecar[], base: Sidecar): void {
  for (const s of [base, ...ancestorsOf(backups, base)]) {
    const file = store.pathOf(s.manifest);
    if (!isVersion2Manifest(file)) continue; // version 1 is checked whole as it is read, and never referred to
    const problems = manifestProblems(file, { ...s, volume: store.volume });
    if (problems.length) throw new ManifestFormatError(`${store.show(s.manifest)}: ${problems.join('; ')}`);
  }
}
