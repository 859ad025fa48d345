/**
 * Issue 14, the corpus: names that become paths (--host, the volume), a
 * medium whose host or volume folder is a symlink to outside, a medium that
 * is not there, and --to targets that cannot be made. Every command that
 * takes the name must refuse it as a usage error (2) before touching
 * anything; a planted folder symlink is damage (1), never followed; a
 * missing medium is exit 4; a --to that cannot be created ends at once.
 */
import { after, describe, test } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { assertCase, removeScratch, type Cmd, type HostileCase } from './case-runner.js';
import { HOST, VOLUME, type World } from './hostile-media.js';

type Args = Partial<Record<Cmd, string[]>>;

/** Every command with `host` as --host (and `volume` as the volume). */
function withNames(w: World, host: string, volume: string): Args {
  const m = ['--medium', w.medium, '--host', host];
  return {
    backup: ['backup', w.src, '--volume', volume, ...m],
    list: ['list', volume, ...m],
    ls: ['ls', volume, '', ...m],
    'verify-quick': ['verify', volume, ...m, '--quick'],
    restore: ['restore', volume, ...m, '--to', w.to],
    prune: ['prune', volume, ...m, '--ttl', '0', '--keep-last', '1', '--lock-file', `${w.root}.lock`],
  };
}

const USAGE = { backup: 2, list: 2, ls: 2, 'verify-quick': 2, restore: 2, prune: 2 };

function badHost(shown: string, host: (w: World) => string): HostileCase {
  return { name: `--host ${shown}`, argv: (w) => withNames(w, host(w), VOLUME), expect: USAGE };
}

function badVolume(volume: string): HostileCase {
  return { name: `volume ${JSON.stringify(volume)}`, argv: (w) => withNames(w, HOST, volume), expect: USAGE };
}

/** Replaces a folder of the medium with a symlink to a copy of it outside (what prune would delete there). */
function plantedFolder(what: string, folder: (w: World) => string, target: (w: World) => string): HostileCase {
  return {
    name: `${what} folder on the medium is a symlink to outside`,
    setup: (w) => {
      fs.rmSync(folder(w), { recursive: true });
      fs.symlinkSync(target(w), folder(w));
    },
    argv: (w) => ({ ...withNames(w, HOST, VOLUME), 'verify-quick': ['verify', '--medium', w.medium, '--host', HOST, '--quick'] }),
    expect: { backup: [1, 4], list: [1], ls: [1], 'verify-quick': [1], restore: [1], prune: [1] },
  };
}

const cases: HostileCase[] = [
  badHost('../../x', () => '../../x'),
  badHost('../outside/x (into the sentinel)', () => '../outside/x'),
  badHost('an absolute path', (w) => path.join(w.outside, 'abs')),
  badHost('..', () => '..'),
  badHost('"" (empty)', () => ''),
  badHost('.', () => '.'),
  badHost('with a newline', () => 'test-host\nx'),
  badVolume('../x/y'),
  badVolume('../outside/fakevol'),
  badVolume('v/..'),
  badVolume('v/p/q'),
  badVolume('/abs/p'),
  plantedFolder('the volume', (w) => w.vol, (w) => path.join(w.outside, 'fakevol')),
  plantedFolder('the domU', (w) => path.dirname(w.vol), (w) => path.join(w.outside, 'fakehost/v')),
  plantedFolder('the host', (w) => path.join(w.medium, HOST), (w) => path.join(w.outside, 'fakehost')),
  {
    name: 'restore --to /proc/x (cannot be created) ends at once',
    argv: (w) => ({ restore: ['restore', VOLUME, '--medium', w.medium, '--host', HOST, '--to', '/proc/xenbackup-hostile-x'] }),
    expect: { restore: [1, 2] },
    timeoutSec: 10,
  },
  {
    name: 'restore --to a path below /proc/self (cannot be created) ends at once',
    argv: (w) => ({ restore: ['restore', VOLUME, '--medium', w.medium, '--host', HOST, '--to', '/proc/self/xenbackup/x'] }),
    expect: { restore: [1, 2] },
    timeoutSec: 10,
  },
  {
    name: 'restore --to an existing file',
    setup: (w) => fs.writeFileSync(w.to, 'a file where --to should be\n'),
    expect: { restore: [2], 'restore-force': [2] },
  },
  {
    name: 'restore --to a path below a file',
    setup: (w) => fs.writeFileSync(w.to, 'a file\n'),
    argv: (w) => ({ restore: ['restore', VOLUME, '--medium', w.medium, '--host', HOST, '--to', path.join(w.to, 'sub/dir')] }),
    expect: { restore: [1, 2] },
  },
  {
    name: 'the medium folder does not exist (exit 4 for every reader)',
    argv: (w) => withNames({ ...w, medium: path.join(w.root, 'no-such-medium') }, HOST, VOLUME),
    expect: { list: 4, ls: 4, 'verify-quick': 4, restore: 4, prune: 4 },
  },
  {
    name: 'the medium is a file (exit 4 for every reader)',
    setup: (w) => fs.writeFileSync(path.join(w.root, 'medium-file'), 'not a directory\n'),
    argv: (w) => withNames({ ...w, medium: path.join(w.root, 'medium-file') }, HOST, VOLUME),
    expect: { backup: 4, list: 4, ls: 4, 'verify-quick': 4, restore: 4, prune: 4 },
  },
];

describe('hostile media: names, folders and targets', { concurrency: 2 }, () => {
  after(removeScratch);
  for (const c of cases) test(c.name, () => assertCase(c));
});
