/**
 * A remote --medium (user@host:/path, over a real sshd on 127.0.0.1) whose
 * folder does not exist on its host is not available: exit 4 and one line
 * for list, prune, ls, verify and restore, as for a local folder. One that exists
 * but holds nothing of the host is still "no backups" (exit 0 for list).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { makeScratchDir } from '../helpers/scratch.js';
import { assertOneLineError, HOST, show, xenbackup } from '../engine/engine-fixtures.js';
import { ensureRunSshd, startSshd } from '../rsync/sshd-fixture.js';

test('a remote --medium whose folder is not there: exit 4 for list, prune, ls, verify and restore; an empty one lists no backups', async (t) => {
  ensureRunSshd(t);
  const sshd = await startSshd(t);
  const scratch = makeScratchDir(t, 'cli-remote-medium');
  const ssh = ['--ssh-key', sshd.ssh.identityFile!, '--ssh-port', String(sshd.port), '--known-hosts', sshd.ssh.knownHostsFile!];
  const gone = path.join(scratch, 'no-such-medium');
  const spec = `root@127.0.0.1:${gone}`;
  const to = path.join(scratch, 'to');
  for (const args of [['list'], ['list', '--json'], ['prune', '--dry-run'], ['ls', 'web1/root'], ['verify', '--quick'], ['restore', 'web1/root', '--to', to]]) {
    const r = xenbackup([...args, '--medium', spec, '--host', HOST, ...ssh]);
    assertOneLineError(r, new RegExp(`^xenbackup: the backup medium root@127\\.0\\.0\\.1:${gone} is not available: ${gone} is not a directory on 127\\.0\\.0\\.1$`), 4);
  }
  assert.ok(!fs.existsSync(gone) && !fs.existsSync(to));

  const empty = path.join(scratch, 'empty-medium');
  fs.mkdirSync(empty);
  const r = xenbackup(['list', '--medium', `root@127.0.0.1:${empty}`, '--host', HOST, ...ssh]);
  assert.equal(r.code, 0, show(r));
  assert.match(r.stdout, /^no backups on /);
});
