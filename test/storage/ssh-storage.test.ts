/**
 * What the conformance suite cannot say of SshStorage alone: no connection
 * is made for a name that is not plain; a failed step is one line naming
 * the step and the server (not the script); damage names the file as
 * user@host:/path; a stream cut off by a dropped connection fails instead
 * of ending as if complete; modes 0600 and 0700 on the server. Against a
 * real OpenSSH server on 127.0.0.1 (needs openssh-server, openssh-client
 * and root).
 */
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { parseRemoteTarget } from '../../src/host/remote-target.js';
import { MediumDamage } from '../../src/medium/medium-error.js';
import { RemoteStepError } from '../../src/storage/remote-step-error.js';
import { SshStorage } from '../../src/storage/ssh-storage.js';
import { createLogger, MemorySink } from '../../src/util/log.js';
import { makeScratchDir, type CleanupContext } from '../helpers/scratch.js';
import { ensureRunSshd, startSshd, type Sshd } from '../rsync/sshd-fixture.js';
import { binary, drain } from './conformance.js';

const cleanups: Array<() => unknown> = [];
const shared: CleanupContext = { after: (fn) => void cleanups.push(fn) };
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});
ensureRunSshd(shared);

function storage(sshd: Sshd, root: string): { s: SshStorage; sink: MemorySink } {
  const sink = new MemorySink();
  return { s: new SshStorage(parseRemoteTarget(`root@127.0.0.1:${root}`), sshd.ssh, createLogger([sink.sink], 'debug')), sink };
}

test('a name that is not plain is refused without connecting', async (t) => {
  const sshd = await startSshd(shared);
  const { s, sink } = storage(sshd, makeScratchDir(t, 'ssh-storage'));
  await assert.rejects(s.list(['h', '..']), MediumDamage);
  await assert.rejects(s.write(['h'], '../x', Buffer.from('x')), MediumDamage);
  await assert.rejects(s.publish(['h'], ['a', '']), MediumDamage);
  assert.deepEqual(
    sink.records.filter((r) => r.message.startsWith('exec:')),
    [],
  );
});

test('damage names the file on the server; a failed step is one line naming the step and the server', async (t) => {
  const sshd = await startSshd(shared);
  const root = makeScratchDir(t, 'ssh-storage');
  const { s } = storage(sshd, root);
  fs.mkdirSync(path.join(root, 'h'));
  fs.symlinkSync('/etc', path.join(root, 'h', 'd'));
  await assert.rejects(s.read(['h', 'd', 'p'], 'passwd', 1000), (e: unknown) => {
    assert.ok(e instanceof MediumDamage);
    assert.equal(e.message, `root@127.0.0.1:${root}/h/d: is a symlink, not a folder`);
    return true;
  });
  fs.mkdirSync(path.join(root, 'h', 'p'));
  fs.symlinkSync('/etc/passwd', path.join(root, 'h', 'p', 'f'));
  await assert.rejects(s.readRange(['h', 'p'], 'f', 0, 10), { message: `root@127.0.0.1:${root}/h/p/f: is a symlink, not a file xenbackup wrote` });

  await sshd.kill();
  await assert.rejects(s.list(['h']), (e: unknown) => {
    assert.ok(e instanceof RemoteStepError, String(e));
    assert.match(e.message, new RegExp(`^xenbackup-list on root@127\\.0\\.0\\.1:${root}/h failed: exit 255: .*Connection refused`));
    assert.ok(!e.message.includes('\n') && !e.message.includes('set -u'), e.message);
    return true;
  });
  assert.equal(await s.freeBytes(), undefined);
});

test('a stream cut off by a dropped connection fails; it never ends as if complete', async (t) => {
  const sshd = await startSshd(shared);
  const root = makeScratchDir(t, 'ssh-storage');
  const { s } = storage(sshd, root);
  fs.mkdirSync(path.join(root, 'h'));
  fs.writeFileSync(path.join(root, 'h', 'big'), binary(64 << 20));
  const r = await s.openRead(['h'], 'big');
  let got = 0;
  await assert.rejects(
    (async () => {
      for await (const c of r as AsyncIterable<Buffer>) {
        got += c.length;
        // Read slowly after the first chunk, so that ssh still has most of the file to send when it dies.
        if (got === c.length) await sshd.killSessions();
      }
    })(),
    RemoteStepError,
  );
  assert.ok(got < 64 << 20, `${got} bytes arrived`);
});

test('files are written mode 0600 and published trees mode 0700 on the server', async (t) => {
  const sshd = await startSshd(shared);
  const root = makeScratchDir(t, 'ssh-storage');
  const { s } = storage(sshd, root);
  const F = ['h', 'd', 'p'];
  await s.ensureFolder(F);
  const local = path.join(makeScratchDir(t, 'local'), 'manifest');
  fs.writeFileSync(local, 'm', { mode: 0o644 });
  await s.upload(F, 'm', local);
  await s.write(F, 'w', Buffer.from('w'));
  await s.ensureFolder([...F, 't.partial']);
  fs.chmodSync(path.join(root, ...F, 't.partial'), 0o755);
  await s.publish(F, ['t']);
  const mode = (...p: string[]): number => fs.statSync(path.join(root, ...p)).mode & 0o777;
  assert.equal(mode('h'), 0o700);
  assert.equal(mode(...F), 0o700);
  assert.equal(mode(...F, 'm'), 0o600);
  assert.equal(mode(...F, 'w'), 0o600);
  assert.equal(mode(...F, 't'), 0o700);
  assert.deepEqual(await drain(await s.openRead(F, 'm')), Buffer.from('m'));
});
