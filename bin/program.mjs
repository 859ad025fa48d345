// Which build of the program runs, for bin/xenbackup and the VM tests' in-process runner
// (test/vm/xb-helper.mjs): the bundle `npm run build` (also run by `npm ci`) leaves in
// dist/bundle (scripts/bundle.mjs: one chunk per command, a faster start), or the compiled
// modules in dist/src when there is no bundle or it is older than them (`tsc -p .` ran alone
// since: it rewrites every module, main.js included). An emit of changed files only
// (tsc --watch) needs `npm run build`.
import { statSync } from 'node:fs';

const mtime = (rel) => statSync(new URL(rel, import.meta.url), { throwIfNoEntry: false })?.mtimeMs ?? -1;

/** The program's `main(argv) -> exit code`, from the bundle when it is current. */
export async function loadMain() {
  const bundled = mtime('../dist/bundle/main.js') >= mtime('../dist/src/cli/main.js');
  return (await import(bundled ? '../dist/bundle/main.js' : '../dist/src/cli/main.js')).main;
}
