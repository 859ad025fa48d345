/**
 * Shared helpers for the config tests: where the fixtures are (the tests run
 * from dist/, the fixtures stay in test/fixtures/config/), a fixed host
 * identity and PATH so results do not depend on the machine, and temp dirs
 * removed after each test.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import type { HostIdentity } from '../../src/config/host-identity.js';

/** The repository root (this file runs as dist/test/config/fixtures.js). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const fixtureDir = join(repoRoot, 'test/fixtures/config');
export const fixture = (name: string): string => join(fixtureDir, name);

export const testHost: HostIdentity = { hostname: 'testhost', fqdn: 'testhost.example.org', domain: 'example.org' };

/** A temp dir that is removed when the test ends, whatever happens. */
export function tempDir(t: TestContext, prefix = 'xenbackup-config-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `text` to dir/name and returns the path. */
export function writeFile(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** A real executable shell script in dir (for `which` lookups and "was it run?" checks). */
export function writeExecutable(dir: string, name: string, script = '#!/bin/sh\nexit 0\n'): string {
  const path = writeFile(dir, name, script);
  chmodSync(path, 0o755);
  return path;
}
