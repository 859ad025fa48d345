/**
 * RSYNC_TARGET and its companion keys in /etc/xenbackup.conf, and the one
 * place a CLI --medium is told local or remote (cli/common.ts
 * resolveMedium): values parsed into the ssh options every connection
 * uses, bad values refused with the file and line, and the rule that
 * BCKDEV is needed only when something still goes to the local medium.
 * Pure parsing: no ssh is started.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig, type Config } from '../../src/config/settings.js';
import { CliError, type SshCliOptions } from '../../src/cli/common.js';
import { resolveMedium as resolveStorage, type ResolvedMedium } from '../../src/cli/medium-option.js';
import type { RemoteTarget, SshOptions } from '../../src/host/remote-target.js';
import { LocalStorage } from '../../src/storage/local-storage.js';
import { SshStorage } from '../../src/storage/ssh-storage.js';
import { silentLogger } from '../../src/util/log.js';

type Described = { kind: 'local'; dir: string } | { kind: 'remote'; remote: { target: RemoteTarget; ssh: SshOptions }; shown: string };

/** What resolveMedium chose, as plain data: a local folder's path, or the ssh server's target and settings. */
function described(r: ResolvedMedium): Described {
  if (r.storage instanceof LocalStorage) return { kind: 'local', dir: r.storage.root };
  if (r.storage instanceof SshStorage) return { kind: 'remote', remote: { target: r.storage.target, ssh: r.storage.ssh }, shown: r.shown };
  throw new Error(`resolveMedium gave a ${r.storage.kind} storage`);
}

/** resolveMedium (which now gives a storage) described as data, so the assertions compare values. */
function resolveMedium(spec: string, o: SshCliOptions, cfg?: Config): Described {
  return described(resolveStorage(spec, o, silentLogger, cfg));
}

const HOST = { hostname: 'testhost', fqdn: 'testhost.example.org', domain: 'example.org' };

/** Loads a config and volume table written to a temp dir (removed after the test). */
function load(t: { after(fn: () => void): void }, conf: string, table = 'web1|root|/dev/vg/web1-root|ext4|ro|engine=rsync\n'): { config: () => Config; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenbackup-remote-config-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'xenbackup.conf');
  const vols = path.join(dir, 'xenback_vols');
  fs.writeFileSync(file, conf);
  fs.writeFileSync(vols, table);
  return { file, config: () => loadConfig({ configPath: file, volumesPath: vols, backupManagerConfigPath: null, host: HOST, env: { PATH: dir } }) };
}

test('RSYNC_TARGET and RSYNC_SSH_*/RSYNC_COMPRESS become the ssh options of every connection', (t) => {
  const c = load(
    t,
    [
      'BCKDEV=/dev/sdb3',
      'RSYNC_TARGET="backup@store.example.org:/srv/xenbackup/"',
      'RSYNC_SSH_KEY=/root/.ssh/xenbackup',
      'RSYNC_SSH_PORT=2222',
      'RSYNC_SSH_KNOWN_HOSTS=/etc/xenbackup/known_hosts',
      'RSYNC_SSH_HOSTKEY_CHECK=accept-new',
      'RSYNC_COMPRESS=yes',
      '',
    ].join('\n'),
  ).config();
  assert.deepEqual(c.rsyncTarget, {
    spec: 'backup@store.example.org:/srv/xenbackup/',
    target: { user: 'backup', host: 'store.example.org', path: '/srv/xenbackup' },
    ssh: { identityFile: '/root/.ssh/xenbackup', port: 2222, knownHostsFile: '/etc/xenbackup/known_hosts', strictHostKeyChecking: 'accept-new' },
    compress: true,
  });
  assert.equal(c.needsLocalMedium, true, 'dom0/root (tar) still goes to BCKDEV');
  const plain = load(t, 'BCKDEV=/dev/sdb3\nRSYNC_TARGET=""\n').config();
  assert.equal(plain.rsyncTarget, undefined, 'empty: rsync volumes stay on the local medium');
});

test('bad RSYNC_* values are config errors naming the file and line', (t) => {
  const cases: Array<[string, RegExp]> = [
    ['RSYNC_TARGET=store.example.org', /found RSYNC_TARGET="store\.example\.org", expected user@host:\/absolute\/path/],
    ['RSYNC_TARGET="backup@store:relative/dir"', /expected user@host:\/absolute\/path .*must be absolute/],
    ['RSYNC_TARGET="-oProxyCommand=x:/b"', /expected user@host:\/absolute\/path/],
    ['RSYNC_SSH_PORT=70000', /found RSYNC_SSH_PORT="70000", expected a whole number from 1 to 65535/],
    ['RSYNC_SSH_HOSTKEY_CHECK=no', /found RSYNC_SSH_HOSTKEY_CHECK="no", expected one of yes, accept-new/],
    ['RSYNC_SSH_KEY=id_ed25519', /found RSYNC_SSH_KEY="id_ed25519", expected an absolute path/],
    ['RSYNC_COMPRESS=maybe', /found RSYNC_COMPRESS="maybe", expected yes or no/],
  ];
  for (const [line, message] of cases) {
    const c = load(t, `BCKDEV=/dev/sdb3\n${line}\n`);
    assert.throws(c.config, (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.ok(e.message.startsWith(`${c.file}:2: `), e.message);
      assert.match(e.message, message);
      return true;
    }, line);
  }
});

test('BCKDEV is needed only when something goes to the local medium', (t) => {
  const target = 'RSYNC_TARGET=root@store:/b\n';
  const remoteOnly = load(t, `${target}BACKUP_DOM0=no\n`).config();
  assert.equal(remoteOnly.needsLocalMedium, false);
  assert.equal(remoteOnly.backupDevice, '');
  assert.throws(load(t, `${target}BACKUP_DOM0=yes\n`).config, /found no BCKDEV, expected .*dom0\/root go there even with RSYNC_TARGET/);
  assert.throws(load(t, `${target}BACKUP_DOM0=no\n`, 'web1|root|/dev/vg/web1-root|ext4|ro\n').config, /found no BCKDEV/, 'a tar volume');
  assert.throws(load(t, 'BACKUP_DOM0=no\n').config, /found no BCKDEV/, 'without RSYNC_TARGET rsync volumes go to the local medium');
});

test('resolveMedium: a directory stays local; user@host:/path is remote, ssh settings from the options over the config', (t) => {
  const guests = fs.mkdtempSync(path.join(os.tmpdir(), 'xb-guests-'));
  t.after(() => fs.rmSync(guests, { recursive: true, force: true }));
  fs.mkdirSync(path.join(guests, 'a:b'));
  assert.deepEqual(resolveMedium(guests, {}), { kind: 'local', dir: guests });
  assert.deepEqual(resolveMedium(`${guests}/./a:b`, {}), { kind: 'local', dir: `${guests}/./a:b` });
  assert.throws(() => resolveMedium(guests, { sshPort: '22' }), CliError);
  // A local medium that is not there is exit 4, never an empty medium.
  assert.throws(() => resolveMedium(path.join(guests, 'missing'), {}), (e: unknown) => e instanceof CliError && e.code === 4);
  const cfg = load(t, 'BCKDEV=/dev/sdb3\nRSYNC_TARGET=root@store:/b\nRSYNC_SSH_KEY=/root/.ssh/xb\nRSYNC_SSH_PORT=2222\n').config();
  const r = resolveMedium('backup@other:/srv/x/', { sshPort: '2200' }, cfg);
  assert.equal(r.kind, 'remote');
  if (r.kind !== 'remote') return;
  assert.equal(r.shown, 'backup@other:/srv/x');
  assert.deepEqual(r.remote.target, { user: 'backup', host: 'other', path: '/srv/x' });
  assert.equal(r.remote.ssh.port, 2200, 'the option wins');
  assert.equal(r.remote.ssh.identityFile, '/root/.ssh/xb', 'the config fills in');
  assert.throws(() => resolveMedium('backup@other:relative', {}), /--medium: .*absolute/);
  assert.throws(() => resolveMedium('root@store:/b', { sshPort: 'x' }), /--ssh-port must be a port number/);
});
