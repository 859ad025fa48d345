/**
 * Issue 14, the corpus: every field of a sidecar, and the sidecar, archive
 * and manifest files themselves, made hostile on a real medium. Each case
 * runs the commands that read sidecars (list, ls, verify quick and full,
 * restore with and without --force, prune dry and real) and asserts the
 * sentinel outside the volume's folder and --to is unchanged, every command
 * ends in time with single-line messages and the README's exit code, and a
 * failing verify names the damaged file.
 *
 * Exit codes: a damaged backup is damage (1) for list and verify, which must
 * report it; ls and restore may use the newest intact backup instead (0, or
 * 1 when they say so); prune may keep going around it (0) or stop (1).
 */
import { after, describe, test } from 'node:test';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { assertCase, removeScratch, type Cmd, type HostileCase } from './case-runner.js';
import type { World } from './hostile-media.js';
import { archiveFile, editSidecar, manifestFile, sidecarFile, type Json } from './media-edit.js';

type Which = 0 | 3; // A (the oldest full, what prune deletes) or D (the newest, what restore uses)

const SIDECAR_DAMAGE: Partial<Record<Cmd, number[]>> = {
  list: [1],
  ls: [0, 1],
  'verify-quick': [1],
  verify: [1],
  restore: [0, 1],
  'restore-force': [0, 1],
  'prune-dry': [0, 1],
  prune: [0, 1],
};

/** A field's value checked once for every reader: list, quick verify, restore and prune meet it. */
const FIELD_CMDS: Cmd[] = ['list', 'verify-quick', 'restore', 'prune'];
const only = (cmds: Cmd[]): Partial<Record<Cmd, number[]>> => Object.fromEntries(cmds.map((k) => [k, SIDECAR_DAMAGE[k]!]));

/** `every`: a path-like field, run through every command (the escapes of issue 14 item 1 and 3). */
function sidecarCase(name: string, which: Which, edit: (o: Json, w: World) => void, every = false): HostileCase {
  return {
    name: `sidecar of ${which === 0 ? 'A' : 'D'}: ${name}`,
    setup: (w) => editSidecar(w, w.ids[which], (o) => edit(o, w)),
    expect: every ? SIDECAR_DAMAGE : only(FIELD_CMDS),
    names: (w) => path.basename(sidecarFile(w, w.ids[which])),
  };
}

const outsideVictim = (w: World): string => path.join(w.outside, 'victim');
const up = '../../../../outside';

const cases: HostileCase[] = [
  sidecarCase('archive "../../../../outside/victim"', 0, (o) => { o.archive = `${up}/victim`; }, true),
  sidecarCase('archive "../../../../outside/victim"', 3, (o) => { o.archive = `${up}/victim`; }, true),
  sidecarCase('archive "../../../../outside" (a whole directory)', 0, (o) => { o.archive = up; }, true),
  sidecarCase('archive an absolute path', 0, (o, w) => { o.archive = outsideVictim(w); }, true),
  sidecarCase('manifest "../../../../outside/etc/passwd"', 3, (o) => { o.manifest = `${up}/etc/passwd`; }, true),
  sidecarCase('manifest "../../../../outside/etc/passwd"', 0, (o) => { o.manifest = `${up}/etc/passwd`; }, true),
  sidecarCase('manifest an absolute path', 3, (o, w) => { o.manifest = path.join(w.outside, 'etc/passwd'); }, true),
  sidecarCase('archive names a symlink planted in the folder (-> outside/sub)', 0, (o, w) => {
    const planted = `${w.ids[0]}.evil.tar.zst`;
    fs.symlinkSync(path.join(w.outside, 'sub'), path.join(w.vol, planted));
    o.archive = planted;
  }, true),
  sidecarCase('manifest names another volume\'s folder file', 3, (o) => { o.manifest = '../../../h2/v/p/' + String(o.manifest); }, true),
  sidecarCase('id "garbage"', 3, (o) => { o.id = 'garbage'; }),
  sidecarCase('id a number', 3, (o) => { o.id = 20261207; }),
  sidecarCase('id "../x"', 3, (o) => { o.id = '../x'; }, true),
  sidecarCase('stats null', 3, (o) => { o.stats = null; }),
  sidecarCase('stats.entries a string', 3, (o) => { o.stats.entries = 'many'; }),
  sidecarCase('kind "weird"', 3, (o) => { o.kind = 'weird'; }),
  sidecarCase('engine "quantum"', 3, (o) => { o.engine = 'quantum'; }),
  sidecarCase('compression "lzma9"', 3, (o) => { o.compression = 'lzma9'; }),
  sidecarCase('frames out of range', 3, (o) => { o.frames = [[0, 0], [999_999_999, 999_999_999]]; }),
  sidecarCase('frames negative', 3, (o) => { o.frames = [[-5, 0]]; }),
  sidecarCase('frames a string', 3, (o) => { o.frames = '0,0'; }),
  sidecarCase('frames decreasing', 3, (o) => { o.frames = [[0, 0], [10, 10], [5, 5]]; o.archiveBytes = Math.max(o.archiveBytes, 20); o.tarBytes = Math.max(o.tarBytes, 20); }),
  sidecarCase('base names a backup that does not exist', 3, (o) => { o.base = '20200101T000000Z'; }),
  sidecarCase('base names the other chain\'s full', 3, (o, w) => { o.base = w.ids[0]; }),
  sidecarCase('base later than the id', 3, (o) => { o.base = '20991231T235959Z'; }),
  sidecarCase('chain names the other chain', 3, (o, w) => { o.chain = w.ids[0]; }),
  sidecarCase('a full with a base', 0, (o, w) => { o.base = w.ids[2]; }),
  sidecarCase('tarBytes 1e300', 3, (o) => { o.tarBytes = 1e300; }),
  sidecarCase('archiveBytes 2^53 + 2', 3, (o) => { o.archiveBytes = 2 ** 53 + 2; }),
  sidecarCase('archiveBytes -1', 3, (o) => { o.archiveBytes = -1; }),
  sidecarCase('archiveBytes 1.5', 3, (o) => { o.archiveBytes = 1.5; }),
  sidecarCase('archiveXxh64 not hex', 3, (o) => { o.archiveXxh64 = '../../../../etc/'; }),
  {
    name: 'sidecar of D: manifestXxh64 wrong',
    setup: (w) => editSidecar(w, w.ids[3], (o) => { o.manifestXxh64 = '0123456789abcdef'; }),
    // list reads no manifest (0 or 1); ls and restore open it and hold it to the sidecar's hash.
    expect: { ...SIDECAR_DAMAGE, list: [0, 1], ls: [1], restore: [1], 'restore-force': [1] },
    names: (w) => path.basename(manifestFile(w, w.ids[3])),
  },
  sidecarCase('warnings an object', 3, (o) => { o.warnings = { length: 1e9 }; }),
  sidecarCase('unreadable a list of numbers', 3, (o) => { o.unreadable = [1, 2, 3]; }),
  sidecarCase('version 2', 3, (o) => { o.version = 2; }),
  sidecarCase('format missing', 3, (o) => { delete o.format; }),
  sidecarCase('host "../../x"', 3, (o) => { o.host = '../../x'; }),
  sidecarCase('volume "../x/y"', 3, (o) => { o.volume = '../x/y'; }),
  sidecarCase('status "exploded"', 3, (o) => { o.status = 'exploded'; }),
  sidecarCase('startedAt an object', 3, (o) => { o.startedAt = { $gt: 1 }; }),
  sidecarCase('a JSON array instead of an object', 3, (o) => { for (const k of Object.keys(o)) delete o[k]; }),
  {
    name: 'sidecar of D: truncated (not JSON)',
    setup: (w) => { const f = sidecarFile(w, w.ids[3]); fs.writeFileSync(f, fs.readFileSync(f).subarray(0, 100)); },
    expect: SIDECAR_DAMAGE,
    names: (w) => path.basename(sidecarFile(w, w.ids[3])),
  },
  {
    name: 'sidecar of D: a symlink to outside/etc/passwd',
    setup: (w) => { const f = sidecarFile(w, w.ids[3]); fs.rmSync(f); fs.symlinkSync(path.join(w.outside, 'etc/passwd'), f); },
    expect: SIDECAR_DAMAGE,
    names: (w) => `${w.ids[3]}.incr.json`,
  },
  {
    name: 'sidecar of D: a symlink to a copy of a valid sidecar outside',
    setup: (w) => {
      const f = sidecarFile(w, w.ids[3]);
      fs.renameSync(f, path.join(w.outside, 'planted.json'));
      fs.symlinkSync(path.join(w.outside, 'planted.json'), f);
    },
    expect: SIDECAR_DAMAGE,
    names: (w) => `${w.ids[3]}.incr.json`,
  },
  {
    name: 'sidecar of D: a fifo (never opened blocking)',
    setup: (w) => { const f = sidecarFile(w, w.ids[3]); fs.rmSync(f); execFileSync('mkfifo', [f]); },
    expect: SIDECAR_DAMAGE,
    names: (w) => `${w.ids[3]}.incr.json`,
    timeoutSec: 20,
  },
  {
    name: 'archive of A replaced by a symlink to an outside directory (prune deletes A)',
    setup: (w) => { const f = archiveFile(w, w.ids[0]); fs.rmSync(f); fs.symlinkSync(path.join(w.outside, 'sub'), f); },
    expect: { list: [0, 1], 'verify-quick': [1], verify: [1], restore: [0], 'prune-dry': [0, 1], prune: [0, 1] },
    names: (w) => path.basename(archiveFile(w, w.ids[0])),
  },
  {
    name: 'archive of D replaced by a symlink to an outside file',
    setup: (w) => { const f = archiveFile(w, w.ids[3]); fs.rmSync(f); fs.symlinkSync(path.join(w.outside, 'victim'), f); },
    expect: { list: [0, 1], 'verify-quick': [1], verify: [1], restore: [1], 'restore-force': [1], 'prune-dry': [0, 1], prune: [0, 1] },
    names: (w) => path.basename(archiveFile(w, w.ids[3])),
  },
  {
    name: 'manifest of D replaced by a symlink to outside/etc/passwd',
    setup: (w) => { const f = manifestFile(w, w.ids[3]); fs.rmSync(f); fs.symlinkSync(path.join(w.outside, 'etc/passwd'), f); },
    expect: { list: [0, 1], ls: [1], 'verify-quick': [1], verify: [1], restore: [1], 'restore-force': [1], 'prune-dry': [0, 1], prune: [0, 1] },
    names: (w) => path.basename(manifestFile(w, w.ids[3])),
  },
  {
    name: 'archive of D replaced by a fifo (never opened blocking)',
    setup: (w) => { const f = archiveFile(w, w.ids[3]); fs.rmSync(f); execFileSync('mkfifo', [f]); },
    expect: { list: [0, 1], 'verify-quick': [1], verify: [1], restore: [1], 'prune-dry': [0, 1], prune: [0, 1] },
    names: (w) => path.basename(archiveFile(w, w.ids[3])),
    timeoutSec: 10,
  },
  {
    name: 'manifest of D replaced by a fifo (never opened blocking)',
    setup: (w) => { const f = manifestFile(w, w.ids[3]); fs.rmSync(f); execFileSync('mkfifo', [f]); },
    expect: { ls: [1], 'verify-quick': [1], restore: [1], prune: [0, 1] },
    names: (w) => path.basename(manifestFile(w, w.ids[3])),
    timeoutSec: 10,
  },
  {
    name: 'manifest of C replaced by a symlink to /dev/zero (endless)',
    setup: (w) => { const f = manifestFile(w, w.ids[2]); fs.rmSync(f); fs.symlinkSync('/dev/zero', f); },
    expect: { 'verify-quick': [1], restore: [0, 1], prune: [0, 1] },
    names: (w) => path.basename(manifestFile(w, w.ids[2])),
    timeoutSec: 10,
  },
  {
    name: 'manifest of A replaced by a symlink to an outside directory',
    setup: (w) => { const f = manifestFile(w, w.ids[0]); fs.rmSync(f); fs.symlinkSync(path.join(w.outside, 'sub'), f); },
    expect: { list: [0, 1], 'verify-quick': [1], verify: [1], restore: [0], 'prune-dry': [0, 1], prune: [0, 1] },
    names: (w) => path.basename(manifestFile(w, w.ids[0])),
  },
];


describe('hostile media: sidecars', { concurrency: 2 }, () => {
  after(removeScratch);
  for (const c of cases) test(c.name, () => assertCase(c));
});
