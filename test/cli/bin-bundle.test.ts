// bin/xenbackup runs the bundle that `npm run build` makes (scripts/bundle.mjs), and falls back to
// the compiled modules when the bundle is missing or older than them: a stale bundle must never run.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = path.join(root, 'bin', 'xenbackup');
const bundleMain = path.join(root, 'dist', 'bundle', 'main.js');
const modulesMain = path.join(root, 'dist', 'src', 'cli', 'main.js');

/** The file: URLs of xenbackup's own modules that `bin/xenbackup ARGS` loaded (an ESM resolve hook logs them). */
function loadedModules(args: string[]): { status: number | null; urls: string[]; stdout: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xb-bundle-'));
  try {
    const log = path.join(dir, 'loaded');
    fs.writeFileSync(
      path.join(dir, 'hooks.mjs'),
      `import fs from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (r.url.startsWith('file:')) fs.appendFileSync(${JSON.stringify(log)}, r.url + '\\n');
  return r;
}`,
    );
    fs.writeFileSync(path.join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(`file://${dir}/hooks.mjs`)});\n`);
    const r = spawnSync(process.execPath, ['--import', path.join(dir, 'register.mjs'), bin, ...args], { encoding: 'utf8' });
    const urls = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : [];
    return { status: r.status, urls: urls.filter((u) => u.startsWith(`file://${root}/dist/`)), stdout: r.stdout };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('the build leaves a bundle newer than the compiled modules, and bin/xenbackup runs it', () => {
  assert.ok(fs.statSync(bundleMain).mtimeMs >= fs.statSync(modulesMain).mtimeMs, 'npm run build bundles after tsc');
  const r = loadedModules(['backup', '--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /--volume/);
  assert.ok(r.urls.length > 0 && r.urls.every((u) => u.includes('/dist/bundle/')), `loaded: ${r.urls.join(' ')}`);
});

test('a bundle older than the compiled modules (tsc ran alone) is not run: the modules are', (t) => {
  const st = fs.statSync(bundleMain);
  t.after(() => fs.utimesSync(bundleMain, st.atime, st.mtime));
  const past = new Date(fs.statSync(modulesMain).mtimeMs - 60_000);
  fs.utimesSync(bundleMain, past, past);
  const r = loadedModules(['backup', '--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /--volume/);
  assert.ok(r.urls.some((u) => u.includes('/dist/src/cli/main.js')), `loaded: ${r.urls.join(' ')}`);
  assert.ok(!r.urls.some((u) => u.includes('/dist/bundle/')), `loaded: ${r.urls.join(' ')}`);
});
