/**
 * The malformed-config corpus: every file in test/fixtures/config/bad/ is one
 * broken xenbackup.conf, volume table or backup-manager.conf (by its suffix),
 * paired with NAME.expect holding the exact message loadConfig must throw.
 * `{file}` in an expectation stands for the broken file's path, `{conf}` for
 * the good xenbackup.conf used alongside a broken table or backup-manager.conf.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig, type LoadConfigOptions } from '../../src/config/settings.js';
import { fixture, testHost } from './fixtures.js';

const badDir = fixture('bad');
const KINDS = [
  { suffix: '.xenbackup.conf', option: 'configPath' },
  { suffix: '.xenback_vols', option: 'volumesPath' },
  { suffix: '.backup-manager.conf', option: 'backupManagerConfigPath' },
] as const;

const cases = readdirSync(badDir)
  .filter((name) => !name.endsWith('.expect'))
  .sort()
  .map((name) => {
    const kind = KINDS.find((k) => name.endsWith(k.suffix));
    if (!kind) throw new Error(`${name}: unknown fixture kind (expected one of ${KINDS.map((k) => k.suffix).join(', ')})`);
    return { name, kind, path: join(badDir, name), expectPath: join(badDir, name.slice(0, -kind.suffix.length) + '.expect') };
  });

test('the corpus has at least 25 malformed files, each with its expected message', () => {
  assert.ok(cases.length >= 25, `only ${cases.length} cases`);
  for (const c of cases) assert.ok(existsSync(c.expectPath), `${c.name} has no ${c.expectPath}`);
  const kindsSeen = new Set(cases.map((c) => c.kind.suffix));
  assert.equal(kindsSeen.size, KINDS.length, 'every kind of file is represented');
});

for (const c of cases) {
  test(`malformed: ${c.name}`, () => {
    const goodConf = fixture('good.xenbackup.conf');
    const opts: LoadConfigOptions = {
      configPath: goodConf,
      volumesPath: fixture('good.xenback_vols'),
      backupManagerConfigPath: null,
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
      host: testHost,
      [c.kind.option]: c.path,
    };
    const expected = readFileSync(c.expectPath, 'utf8').trimEnd().replaceAll('{file}', c.path).replaceAll('{conf}', goodConf);
    assert.throws(
      () => loadConfig(opts),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
        assert.equal(err.message, expected);
        assert.equal(err.file, c.path, 'the error names the broken file');
        return true;
      },
    );
  });
}
