/**
 * Runs the Storage conformance suite (conformance.ts) against every
 * implementation: the in-memory fake in both of its modes (with rename,
 * and as an object store without it), the ssh storage against a real
 * OpenSSH server on 127.0.0.1 whose files are this machine's (so the
 * hostile things are planted with fs directly), and the local storage.
 *
 * Needs openssh-server and openssh-client (installed by CI), and root (the
 * test's sshd logs in as root).
 */
import { after } from 'node:test';
import { parseRemoteTarget } from '../../src/host/remote-target.js';
import { LocalStorage } from '../../src/storage/local-storage.js';
import { MemoryStorage } from '../../src/storage/memory-storage.js';
import { SshStorage } from '../../src/storage/ssh-storage.js';
import { silentLogger } from '../../src/util/log.js';
import type { CleanupContext } from '../helpers/scratch.js';
import { ensureRunSshd, startSshd, type Sshd } from '../rsync/sshd-fixture.js';
import { DECOY, storageConformance, type Plant, type Subject } from './conformance.js';
import { fsSubject } from './fs-subject.js';

function memorySubject(rename: boolean): Subject {
  const storage = new MemoryStorage({ rename });
  return {
    storage,
    // Memory symlinks point nowhere: they are never followed, so the decoy cannot change.
    plant: async (folder, name, kind: Plant, data) => storage.plant(folder, name, kind.startsWith('symlink') ? 'symlink' : (kind as 'fifo' | 'file' | 'dir'), data),
    decoy: async () => ({ names: ['x'], file: DECOY }),
  };
}

storageConformance('MemoryStorage (with rename)', async () => memorySubject(true));
storageConformance('MemoryStorage (without rename, as an object store)', async () => memorySubject(false));

/** One sshd for the whole file, stopped after the last test. */
const cleanups: Array<() => unknown> = [];
const shared: CleanupContext = { after: (fn) => void cleanups.push(fn) };
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});
let server: Promise<Sshd> | undefined;
function sshd(): Promise<Sshd> {
  if (!server) {
    ensureRunSshd(shared);
    server = startSshd(shared);
  }
  return server;
}

storageConformance('SshStorage (real sshd on 127.0.0.1)', async (t) => {
  const { ssh } = await sshd();
  return fsSubject(t, (root) => new SshStorage(parseRemoteTarget(`root@127.0.0.1:${root}`), ssh, silentLogger));
});

storageConformance('LocalStorage', async (t) => fsSubject(t, (root) => new LocalStorage(root)));
