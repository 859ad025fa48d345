/**
 * The folder xenbackup is installed in (package.json, bin/, build/ for the
 * native addons), found upwards from the running module: dist/src/util when
 * the compiled modules run, dist/bundle when the bundle does (bin/xenbackup
 * prefers it: see scripts/bundle.mjs). A fixed number of "../" would be right
 * for one of them only.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function installRoot(): string {
  if (cached) return cached;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown };
      if (pkg.name === 'xenbackup') return (cached = dir);
    } catch {
      /* no package.json here: one folder up */
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find xenbackup's installation folder above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}
