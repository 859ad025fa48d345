/**
 * `xenbackup install-cron` into a scratch --root: the cron.daily script
 * (checked with sh -n and run-parts --test, and run for real under an empty
 * environment as cron would, reaching this installation's xenbackup), the
 * refusal to overwrite (exit 2, nothing written), --force, and the systemd
 * service + timer (checked with systemd-analyze verify when it is installed:
 * apt package systemd).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cronScript, systemdQuote, systemdUnits } from '../../src/cli/install-cron.js';
import { repoRoot, XENBACKUP } from './run-fixtures.js';

function scratchRoot(t: { after(fn: () => unknown): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenbackup-install-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function xenbackup(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [XENBACKUP, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

const PROGRAM = fs.realpathSync(XENBACKUP);

test('install-cron writes /etc/cron.daily/xenbackup (0755) that runs this xenbackup as cron would', async (t) => {
  const root = scratchRoot(t);
  const corpus = path.join(repoRoot, 'test/fixtures/config/bad/24-delay-not-a-number.xenbackup.conf');
  const r = xenbackup(['install-cron', '--root', root, '-c', corpus]);
  assert.equal(r.code, 0, r.stderr);
  const script = path.join(root, 'etc/cron.daily/xenbackup');
  assert.equal(fs.statSync(script).mode & 0o7777, 0o755);
  const text = fs.readFileSync(script, 'utf8');
  assert.ok(text.startsWith('#!/bin/sh\n'));
  assert.ok(text.includes(`\nexec ${PROGRAM} run -q -c ${corpus}\n`), text);
  assert.match(r.stdout, new RegExp(`^wrote ${script} \\(mode 755\\):`));
  assert.match(r.stdout, /run-parts --test \/etc\/cron\.daily/);

  execFileSync('sh', ['-n', script]);
  // run-parts skips names with dots and non-executables: this proves it would run ours
  assert.equal(execFileSync('run-parts', ['--test', path.dirname(script)], { encoding: 'utf8' }), `${script}\n`);
  // cron's environment is nearly empty: the script must find node and xenbackup by itself.
  // The config is a broken one from the corpus, so the run stops at exit 2 touching nothing.
  const run = spawnSync(script, [], { encoding: 'utf8', env: {} });
  assert.equal(run.status, 2, run.stderr);
  assert.equal(run.stderr, `xenbackup: ${corpus}:2: found SNAPMOUNTDELAY="ten", expected a whole number from 0 to 3600 (seconds)\n`);
});

test('install-cron refuses to overwrite (exit 2, file unchanged) unless --force', async (t) => {
  const root = scratchRoot(t);
  const script = path.join(root, 'etc/cron.daily/xenbackup');
  fs.mkdirSync(path.dirname(script), { recursive: true });
  fs.writeFileSync(script, '#!/bin/sh\n# the admin\'s own\n', { mode: 0o700 });
  const refused = xenbackup(['install-cron', '--root', root]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.equal(refused.stderr, `xenbackup: ${script} already exists; nothing written (use --force to replace)\n`);
  assert.equal(fs.readFileSync(script, 'utf8'), "#!/bin/sh\n# the admin's own\n");
  assert.deepEqual(fs.readdirSync(path.dirname(script)), ['xenbackup'], 'no temporary file left either');

  const forced = xenbackup(['install-cron', '--root', root, '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(forced.stdout, /, replacing the old one:/);
  assert.ok(fs.readFileSync(script, 'utf8').includes(`\nexec ${PROGRAM} run -q\n`), 'the default config is not spelled out');
  assert.equal(fs.statSync(script).mode & 0o7777, 0o755);
});

test('install-cron --systemd writes a oneshot service at idle priority and a daily persistent timer', async (t) => {
  const root = scratchRoot(t);
  const r = xenbackup(['install-cron', '--systemd', '--root', root]);
  assert.equal(r.code, 0, r.stderr);
  const unitDir = path.join(root, 'etc/systemd/system');
  assert.deepEqual(fs.readdirSync(unitDir).sort(), ['xenbackup.service', 'xenbackup.timer']);
  assert.ok(!fs.existsSync(path.join(root, 'etc/cron.daily')));
  const service = fs.readFileSync(path.join(unitDir, 'xenbackup.service'), 'utf8');
  const timer = fs.readFileSync(path.join(unitDir, 'xenbackup.timer'), 'utf8');
  for (const f of ['xenbackup.service', 'xenbackup.timer']) assert.equal(fs.statSync(path.join(unitDir, f)).mode & 0o7777, 0o644);
  for (const line of ['Type=oneshot', `ExecStart=${PROGRAM} run -q`, 'Nice=19', 'IOSchedulingClass=idle', 'KillMode=mixed']) {
    assert.ok(service.split('\n').includes(line), `${line} in\n${service}`);
  }
  for (const line of ['OnCalendar=daily', 'Persistent=true', 'RandomizedDelaySec=1h', 'WantedBy=timers.target']) {
    assert.ok(timer.split('\n').includes(line), `${line} in\n${timer}`);
  }
  assert.match(r.stdout, /systemctl daemon-reload && systemctl enable --now xenbackup\.timer/);
  if (hasCommand('systemd-analyze')) {
    // a real parser of unit files: unknown keys, a non-executable ExecStart and bad values fail it
    const v = spawnSync('systemd-analyze', ['verify', path.join(unitDir, 'xenbackup.service'), path.join(unitDir, 'xenbackup.timer')], { encoding: 'utf8' });
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stderr, '');
  } else {
    t.diagnostic('systemd-analyze not installed (apt package systemd): unit files not verified by systemd');
  }

  // one of the two units there already: refuse, and write neither
  fs.rmSync(path.join(unitDir, 'xenbackup.timer'));
  fs.writeFileSync(path.join(unitDir, 'xenbackup.service'), '# mine\n');
  const refused = xenbackup(['install-cron', '--systemd', '--root', root]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /xenbackup\.service already exists; nothing written/);
  assert.ok(!fs.existsSync(path.join(unitDir, 'xenbackup.timer')));
  assert.equal(fs.readFileSync(path.join(unitDir, 'xenbackup.service'), 'utf8'), '# mine\n');
});

test('install-cron --root must exist', () => {
  const r = xenbackup(['install-cron', '--root', '/nonexistent/xenbackup-image']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'xenbackup: --root /nonexistent/xenbackup-image does not exist\n');
});

test('unit and script texts quote odd paths for their readers', () => {
  const job = { program: '/opt/xen backup/bin/xenbackup', node: '/opt/node 20/bin/node', config: '/etc/x%y$.conf' };
  const cron = cronScript(job).text;
  assert.ok(cron.includes(`PATH='/opt/node 20/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'\n`), cron);
  assert.ok(cron.includes(`exec '/opt/xen backup/bin/xenbackup' run -q -c '/etc/x%y$.conf'\n`), cron);
  const [service] = systemdUnits(job);
  assert.ok(service!.text.includes('ExecStart="/opt/xen backup/bin/xenbackup" run -q -c "/etc/x%%y$$.conf"\n'), service!.text);
  assert.equal(systemdQuote('/usr/bin/xenbackup'), '/usr/bin/xenbackup');
  assert.equal(systemdQuote('a"b\\c'), '"a\\"b\\\\c"');
});
