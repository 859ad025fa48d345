// Bundles the compiled CLI (dist/src, from tsc) and its dependencies into dist/bundle/, which
// bin/xenbackup loads. Why: every start of xenbackup resolved, read and compiled some 50-100
// ES modules one by one (commander, nodemailer and execa included); one chunk per command
// (dynamic imports stay lazy, --splitting) starts ~50 ms sooner for `backup` and ~100 ms for
// `run` on this machine, and 15-40 s sooner in the emulated VM of the test suite. tsc still
// type-checks and compiles every module (the tests import them); esbuild only joins its output.
//   node scripts/bundle.mjs      (npm run build runs it after tsc)
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, 'dist', 'bundle');
fs.rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: [path.join(root, 'dist', 'src', 'cli', 'main.js')],
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  // CommonJS dependencies (commander, nodemailer) require() node's modules: an ES module has no
  // require of its own, so each chunk gets one.
  banner: { js: "import { createRequire as __xbCreateRequire } from 'node:module'; const require = __xbCreateRequire(import.meta.url);" },
});
