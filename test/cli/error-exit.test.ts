/**
 * The one mapping of errors to exit codes and lines (src/cli/error-exit.ts):
 * each kind of error the code base throws for something a user can meet has
 * its documented code and prints one line; anything else is a bug, printed as
 * one line that says so and how to see its stack.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { errorExit, reportError, DEBUG_ENV, wantsStack } from '../../src/cli/error-exit.js';
import { CliError } from '../../src/cli/common.js';
import { NameError } from '../../src/core/names.js';
import { MediumDamage, MediumMissing } from '../../src/medium/medium-error.js';
import { ConfigError } from '../../src/config/config-error.js';
import { RestoreError } from '../../src/engines/restore-writer.js';
import { TarFormatError } from '../../src/tar/errors.js';
import { CommandError } from '../../src/host/command-error.js';
import { MediumUnavailableError } from '../../src/host/medium.js';
import { LockHeldError } from '../../src/host/lock.js';
import { RawRestoreError } from '../../src/engines/raw/raw-restore.js';

/** A class as another module defines it: mapped by its name. */
class DamagedBackupError extends Error {
  readonly code = 'EBACKUPDAMAGED';
  constructor(message: string) {
    super(message);
    this.name = 'DamagedBackupError';
  }
}

test('each kind of error has its documented exit code and its own message as the line', () => {
  const cases: Array<[unknown, number, string]> = [
    [new CliError('bad --at', 2), 2, 'bad --at'],
    [new CliError('medium gone', 4), 4, 'medium gone'],
    [new NameError('host "../x" is not usable'), 2, 'host "../x" is not usable'],
    [new ConfigError('/etc/xenbackup.conf', 3, 'BCKDEV is empty'), 2, '/etc/xenbackup.conf:3: BCKDEV is empty'],
    [new MediumDamage('/m/h/web1/root/x.json', 'id is not a backup id'), 1, '/m/h/web1/root/x.json: id is not a backup id'],
    [new MediumMissing('the volume folder is gone'), 4, 'the volume folder is gone'],
    [new MediumUnavailableError('/dev/sdb1', '/backup', 'not mounted'), 4, 'backup medium /dev/sdb1 on /backup unavailable: not mounted'],
    [new RestoreError('etc/passwd exists in the target (use --force to replace it)'), 2, 'etc/passwd exists in the target (use --force to replace it)'],
    [new DamagedBackupError('x.tar.zst ended early'), 1, 'x.tar.zst ended early'],
    [new TarFormatError('bad pax record length', 1536, 'x.tar'), 1, 'x.tar: bad pax record length at byte 1536'],
    [new CommandError('lvs --reportformat json', 5, 'boom', 'exit 5: boom'), 1, 'lvs --reportformat json: exit 5: boom'],
    [new LockHeldError('/run/xenbackup.lock', { pid: 42, host: 'h', acquiredAt: 'then' } as never), 3, ''],
    [new RawRestoreError('the target is mounted', true), 2, 'the target is mounted'],
    [new RawRestoreError('a chunk failed its xxh64', false), 1, 'a chunk failed its xxh64'],
    [Object.assign(new Error("ENOSPC: no space left on device, write '/m/x'"), { code: 'ENOSPC' }), 1, "ENOSPC: no space left on device, write '/m/x'"],
  ];
  for (const [e, code, message] of cases) {
    const r = errorExit(e);
    assert.equal(r.code, code, `${(e as Error).name}: ${(e as Error).message}`);
    assert.equal(r.unexpected, false, (e as Error).name);
    if (message) assert.equal(r.message, message);
  }
});

test('a message of several lines (a command\'s stderr) is one line', () => {
  const r = errorExit(new CommandError('mount /dev/x /m', 32, '', 'exit 32:\nmount: wrong fs type\n  dmesg may help\n'));
  assert.equal(r.message, 'mount /dev/x /m: exit 32: | mount: wrong fs type | dmesg may help');
});

test('a bug is one line that says so and how to see the stack; the stack only when asked', () => {
  const bug = new TypeError("Cannot read properties of null (reading 'entries')");
  assert.equal(errorExit(Object.assign(new TypeError('The "path" argument must be of type string'), { code: 'ERR_INVALID_ARG_TYPE' })).unexpected, true, "node's ERR_ codes are bugs");
  const r = errorExit(bug);
  assert.equal(r.code, 1);
  assert.equal(r.unexpected, true);
  let out = '';
  const saved = process.env[DEBUG_ENV];
  delete process.env[DEBUG_ENV];
  try {
    assert.equal(reportError(bug, ['node', 'xenbackup', 'list'], (s) => (out += s)), 1);
    assert.equal(out, `xenbackup: unexpected error (a bug, please report it): TypeError: Cannot read properties of null (reading 'entries'); rerun with ${DEBUG_ENV}=1 to see where it happened\n`);
    out = '';
    process.env[DEBUG_ENV] = '1';
    reportError(bug, ['node', 'xenbackup', 'list'], (s) => (out += s));
    const lines = out.trimEnd().split('\n');
    assert.match(lines[0]!, /^xenbackup: unexpected error \(a bug, please report it\): TypeError: /);
    assert.ok(lines.length > 1 && lines.slice(1).every((l) => /^\s+at /.test(l)), out);
    // something thrown that is not an Error at all
    out = '';
    delete process.env[DEBUG_ENV];
    reportError('a string', ['node', 'xenbackup', 'ls'], (s) => (out += s));
    assert.match(out, /^xenbackup: unexpected error \(a bug, please report it\): a string; rerun with /);
  } finally {
    if (saved === undefined) delete process.env[DEBUG_ENV];
    else process.env[DEBUG_ENV] = saved;
  }
  assert.equal(wantsStack(['node', 'xenbackup', 'run', '--verbose'], {}), true);
  assert.equal(wantsStack(['node', 'xenbackup', 'run'], { [DEBUG_ENV]: '0' }), false);
  // an expected error never shows a stack, even when asked
  out = '';
  reportError(new NameError('volume "x" must be DOMU/PART'), ['node', 'xenbackup', 'ls', '-v'], (s) => (out += s));
  assert.equal(out, 'xenbackup: volume "x" must be DOMU/PART\n');
});
