/** `which` done in code: the same answer as Debian's which, from real PATH directories. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { whichSync } from '../../src/config/which.js';
import { tempDir, writeExecutable, writeFile } from './fixtures.js';

test('agrees with /usr/bin/which for real programs', () => {
  const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  for (const name of ['sh', 'ls', 'tar', 'mount']) {
    const expected = execFileSync('/usr/bin/which', [name], { encoding: 'utf8', env: { PATH } }).trim();
    assert.equal(whichSync(name, PATH), expected, name);
  }
});

test('skips directories, non-executable files and relative PATH entries; refuses names with /', (t) => {
  const a = tempDir(t);
  const b = tempDir(t);
  mkdirSync(join(a, 'tool'));
  writeFile(a, 'other', 'not executable');
  writeExecutable(b, 'tool');
  writeExecutable(b, 'other');
  assert.equal(whichSync('tool', `${a}:${b}`), join(b, 'tool'));
  assert.equal(whichSync('other', `${a}:${b}`), join(b, 'other'));
  assert.equal(whichSync('tool', `.:relative:${a}`), undefined);
  assert.equal(whichSync(`${b}/tool`, b), undefined);
  assert.equal(whichSync('missing', `${a}:${b}`), undefined);
});
