/**
 * Reading a backup's manifest in tests, either version: a version 2
 * manifest's references are read from the other manifests of its folder
 * (the product checks which ones a chain may name; a test reads what it wrote).
 */
import fs from 'node:fs';
import path from 'node:path';
import { readBlocks as readManifestBlocks, openManifest, type ManifestBlock } from '../../src/medium/manifest-reader.js';
import type { ManifestHeader } from '../../src/core/manifest.js';

/** The manifests of `file`'s folder, by backup id. */
export function folderHolders(file: string): (id: string) => string | undefined {
  const dir = path.dirname(file);
  return (id) => {
    const name = fs.readdirSync(dir).find((n) => n.startsWith(id + '.') && n.endsWith('.manifest'));
    return name ? path.join(dir, name) : undefined;
  };
}

/** Every block of a manifest file, references followed into its folder. */
export function readBlocks(file: string): ManifestBlock[] {
  return [...readManifestBlocks(file, folderHolders(file))];
}

export function manifestHeader(file: string): ManifestHeader {
  const r = openManifest(file);
  try {
    return r.header;
  } finally {
    r.close();
  }
}
