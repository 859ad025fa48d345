/**
 * The shell-assignment reader: the old tool's shipped xenbackup.conf, every
 * substitution it uses (answered from real PATH directories holding real
 * executables), quoting, and the guarantee that nothing is ever executed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ConfigError } from '../../src/config/config-error.js';
import { parseShellAssignments, readShellAssignments } from '../../src/config/shell-assignments.js';
import { fixture, tempDir, testHost, writeExecutable } from './fixtures.js';

const values = (text: string, opts: Parameters<typeof parseShellAssignments>[2] = {}): Record<string, string> => {
  const parsed = parseShellAssignments(text, 'test.conf', { host: testHost, env: { PATH: '/nonexistent' }, ...opts });
  return Object.fromEntries(parsed.assignments.map((a) => [a.key, a.value]));
};

test('the old tool\'s shipped xenbackup.conf parses, with every substitution answered', (t) => {
  const bin = tempDir(t);
  writeExecutable(bin, 'sendmail');
  writeExecutable(bin, 'ssmtp');
  writeExecutable(bin, 'cut');
  const parsed = readShellAssignments(fixture('old-xenbackup.conf'), { host: testHost, env: { PATH: bin } });
  const get = (key: string): string | undefined => parsed.get(key)?.value;

  assert.equal(get('BCKDEV'), '/dev/sdb3');
  assert.equal(get('BCKDEV_FS'), 'ext4');
  assert.equal(get('BCKMNTP'), '/backup/guests');
  assert.equal(get('MNTSOURCEDIR'), '/4backup');
  assert.equal(get('SBCONFIGFILE'), '/etc/xenback_vols');
  assert.equal(get('SNAPMOUNTDELAY'), '10');
  assert.equal(get('LOGFILE'), '/var/log/xenbackup.log');
  assert.equal(get('HOSTN'), 'testhost');
  assert.equal(get('DOMAINN'), 'example.org');
  assert.equal(get('SNAPSIZE'), '7G');
  assert.equal(get('EMAIL_FROM'), 'monitor@example.org');
  assert.equal(get('EMAIL_TO'), 'monitor@example.org');
  assert.equal(get('BIN_SENDMAIL'), join(bin, 'sendmail'));
  assert.equal(get('BM_CONFIGFILE'), '/etc/backup-manager.conf');
  assert.equal(get('BIN_CUT'), join(bin, 'cut'));
  assert.equal(get('BIN_BACKUPMAN'), '', '`|| true` leaves an absent program empty, as sh does');
  assert.equal(get('SNAPBACKUPUMNT'), '', 'two blanks before || are fine');
  assert.equal(get('CONFIGURED'), 'true');
  assert.equal(parsed.assignments.filter((a) => a.key === 'BIN_TAIL').length, 2, 'a key assigned twice is kept twice, the last wins');
  assert.equal(parsed.get('HOSTN')?.line, 39);
  assert.deepEqual(parsed.skipped, []);
});

test('hostname and hostname -d: every spelling the old config could use', () => {
  for (const cmd of ['hostname', '/bin/hostname', '/usr/bin/hostname']) {
    assert.deepEqual(values(`A=\`${cmd}\`\nB=$(${cmd} -d)\nC="$(${cmd}).$(${cmd} -d)"\n`), {
      A: 'testhost',
      B: 'example.org',
      C: 'testhost.example.org',
    });
  }
  assert.deepEqual(values('A=`hostname -d`\n', { host: { hostname: 'solo', fqdn: 'solo', domain: '' } }), { A: '' });
});

test('without an injected host, `hostname` is the real node name', () => {
  const real = execFileSync('hostname', { encoding: 'utf8' }).trim();
  assert.equal(parseShellAssignments('HOSTN=`/bin/hostname`\n', 't.conf').get('HOSTN')?.value, real);
});

test('which NAME searches PATH in order and returns the first executable', (t) => {
  const first = tempDir(t);
  const second = tempDir(t);
  writeExecutable(second, 'ssmtp');
  writeExecutable(first, 'tool');
  writeExecutable(second, 'tool');
  const env = { PATH: `${first}:${second}` };
  assert.deepEqual(values('A=$(which tool)\nB=`/usr/bin/which ssmtp`\nC="$(which missing)"\n', { env }), {
    A: join(first, 'tool'),
    B: join(second, 'ssmtp'),
    C: '',
  });
});

test('`A || B` falls back only when A found nothing', (t) => {
  const bin = tempDir(t);
  const line = 'BIN_SENDMAIL=$(which sendmail) || $(which ssmtp) \n';
  assert.equal(values(line, { env: { PATH: bin } }).BIN_SENDMAIL, '', 'neither installed');
  writeExecutable(bin, 'ssmtp');
  assert.equal(values(line, { env: { PATH: bin } }).BIN_SENDMAIL, join(bin, 'ssmtp'), 'only ssmtp');
  writeExecutable(bin, 'sendmail');
  assert.equal(values(line, { env: { PATH: bin } }).BIN_SENDMAIL, join(bin, 'sendmail'), 'sendmail preferred');
  assert.equal(values('A=$(which nope) || $(which nada) || true\n', { env: { PATH: bin } }).A, '');
  assert.equal(values('A=$(which nope) || "$(which ssmtp)" # quoted alternative\n', { env: { PATH: bin } }).A, join(bin, 'ssmtp'));
  assert.equal(values('A=literal || $(which ssmtp)\n', { env: { PATH: bin } }).A, 'literal', 'a plain value never fails');
  assert.equal(values('A=$(which nope) || :\n', { env: { PATH: bin } }).A, '');
});

test('nothing is ever executed: not an unknown substitution, not the program named after ||', (t) => {
  const bin = tempDir(t);
  const marker = join(bin, 'ran');
  const touch = `#!/bin/sh\ntouch ${marker}\n`;
  writeExecutable(bin, 'uname', touch);
  writeExecutable(bin, 'ssmtp', touch);
  writeExecutable(bin, 'hostname', touch);
  const env = { PATH: bin };
  assert.throws(() => values('A=$(uname -n)\n', { env }), ConfigError);
  assert.throws(() => values('A=`uname`\n', { env }), ConfigError);
  // sh would run ssmtp here; we only look it up.
  assert.equal(values('A=$(which sendmail) || $(which ssmtp)\nB=$(hostname)\n', { env }).A, join(bin, 'ssmtp'));
  assert.equal(existsSync(marker), false);
});

test('quoting, escapes, comments and $VAR expansion behave as in sh', () => {
  const text = [
    '#!/bin/sh',
    '  # indented comment',
    "SINGLE='a \"b\" $NOT_EXPANDED'",
    'BASE=/srv',
    'DOUBLE="$BASE/x ${BASE}y \\$BASE \\"q\\" \\\\ \\z"',
    'UNQUOTED=a\\ b$BASE',
    'HASH=x#y',
    'COMMENTED=value # trailing comment',
    'EMPTY=',
    'EMPTY_QUOTES=""',
    'DOLLAR=cost$',
    'MIXED="a"\'b\'c',
    '\tTABBED="t"',
    'export EXPORTED="e"',
    'export EXPORTED BASE',
    'declare -a LIST',
    'LIST[0]="first"',
    'CONTINUED=one\\',
    'two',
  ].join('\n');
  const parsed = parseShellAssignments(text, 't.conf', { env: {} });
  const v = Object.fromEntries(parsed.assignments.map((a) => [a.key, a.value]));
  assert.deepEqual(v, {
    SINGLE: 'a "b" $NOT_EXPANDED',
    BASE: '/srv',
    DOUBLE: '/srv/x /srvy $BASE "q" \\ \\z',
    UNQUOTED: 'a b/srv',
    HASH: 'x#y',
    COMMENTED: 'value',
    EMPTY: '',
    EMPTY_QUOTES: '',
    DOLLAR: 'cost$',
    MIXED: 'abc',
    TABBED: 't',
    EXPORTED: 'e',
    'LIST[0]': 'first',
    CONTINUED: 'onetwo',
  });
  assert.equal(parsed.get('EXPORTED')?.exported, true);
  assert.equal(parsed.get('BASE')?.exported, false);
  assert.equal(parsed.get('CONTINUED')?.line, 18);
});

test('Windows line endings and a byte-order mark do not leak into values', () => {
  assert.deepEqual(values('\uFEFFA="x"\r\nB=y\r\n'), { A: 'x', B: 'y' });
});

test('$VAR comes from earlier keys, then the environment; unknown is an error unless asked otherwise', () => {
  assert.deepEqual(values('A=$HOME/x\n', { env: { HOME: '/root' } }), { A: '/root/x' });
  assert.deepEqual(values('HOME=/mine\nA=$HOME\n', { env: { HOME: '/root' } }), { HOME: '/mine', A: '/mine' });
  assert.throws(() => values('A=$LATER\nLATER=x\n'), /test\.conf:1: found `\$LATER`, expected a key assigned above/);
  assert.deepEqual(values('A="$UNSET"\n', { undefinedVariables: 'empty' }), { A: '' });
});

test('onError skip: an unreadable statement is recorded with its key and line, the rest still parses', () => {
  const parsed = parseShellAssignments('A=1\nB=$(date +%d)\nif true; then x; fi\nC="3"\n', 'bm.conf', { onError: 'skip', env: {} });
  assert.deepEqual(parsed.assignments.map((a) => [a.key, a.value]), [['A', '1'], ['C', '3']]);
  assert.deepEqual(parsed.skipped.map((s) => [s.line, s.key]), [[2, 'B'], [3, undefined]]);
  assert.match(parsed.skipped[0]!.error.message, /^bm\.conf:2: found the command substitution `\$\(date \+%d\)`/);
});

test('a missing file is a ConfigError naming it', () => {
  assert.throws(() => readShellAssignments('/nonexistent/xenbackup.conf'), {
    name: 'ConfigError',
    message: '/nonexistent/xenbackup.conf: cannot read: ENOENT',
  });
});
