/**
 * `xenbackup prune` and `xenbackup list` as a user runs them (bin/xenbackup
 * in a child process), and the run's prune step (pruneAfterRun) with a real
 * config: dry run and --json, refused rules and bad arguments, --config with
 * the medium mounted (a real loop-mounted ext4), not mounted or another
 * device (exit 4, nothing touched), the run lock (exit 3), the list's
 * chains, needs, sizes and next-prune verdicts, and BM_ARCHIVE_TTL honoured
 * when migrating from backup-manager.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeScratchDir, withLoopFs } from '../helpers/scratch.js';
import { assertOneLineError, show, xenbackup } from '../engine/engine-fixtures.js';
import { loadConfig } from '../../src/config/settings.js';
import { acquireLock } from '../../src/host/lock.js';
import { lockVolume } from '../../src/repo/volume-lock.js';
import { archiveBytesOf, type Sidecar } from '../../src/medium/sidecar.js';
import { pruneAfterRun, pruneStep } from '../../src/run/prune-step.js';
import { createLogger, MemorySink } from '../../src/util/log.js';
import { backupAt, DAY_MS, folderNames, HOST, put, storeOf } from './prune-fixtures.js';

const VOLUME = 'web1/root';

/** `count` nightly backups ending an hour ago (the CLI prunes by the real clock), a full every 7. */
async function recentNights(medium: string, scratch: string, count: number, volume = VOLUME): Promise<Sidecar[]> {
  const source = path.join(scratch, `source-${volume.replace('/', '-')}`);
  const last = Date.now() - 3_600_000;
  const out: Sidecar[] = [];
  for (let n = 0; n < count; n++) {
    put(source, `etc/night-${n}`, `night ${n}\n`);
    out.push(await backupAt(source, medium, volume, new Date(last - (count - 1 - n) * DAY_MS)));
  }
  return out;
}

const ids = (bs: Sidecar[]): string[] => bs.map((b) => b.id);

interface ConfigEnv {
  scratch: string;
  /** A new config file with these keys over the defaults. */
  write(keys: Record<string, string>): string;
}

function configEnv(t: test.TestContext, base: Record<string, string>): ConfigEnv {
  const scratch = makeScratchDir(t, 'prune-cli-config');
  const vols = path.join(scratch, 'xenback_vols');
  fs.writeFileSync(vols, '# no guest volumes\n');
  fs.mkdirSync(path.join(scratch, '4backup'));
  let written = 0;
  return {
    scratch,
    write(keys) {
      const all: Record<string, string> = {
        MNTSOURCEDIR: path.join(scratch, '4backup'),
        SBCONFIGFILE: vols,
        HOSTN: HOST,
        DOMAINN: 'example.org',
        LOGFILE: path.join(scratch, 'xenbackup.log'),
        LOCKFILE: path.join(scratch, 'xenbackup.lock'),
        BM_CONFIGFILE: path.join(scratch, 'backup-manager.conf'),
        BACKUP_DOM0: 'no',
        ...base,
        ...keys,
      };
      const file = path.join(scratch, `xenbackup-${++written}.conf`);
      fs.writeFileSync(file, Object.entries(all).map(([k, v]) => `${k}="${v}"\n`).join(''));
      return file;
    },
  };
}

test('prune and list are in --help, with examples', () => {
  const top = xenbackup(['--help']);
  assert.match(top.stdout, /^ {2}prune \[options\]/m);
  const help = xenbackup(['prune', '--help']);
  assert.equal(help.code, 0, show(help));
  assert.match(help.stdout, /Examples:\n {2}xenbackup prune --config \/etc\/xenbackup\.conf --dry-run/);
  for (const opt of ['--medium', '--config', '--host', '--ttl', '--keep-last', '--keep-daily', '--keep-weekly', '--keep-monthly', '--dry-run', '--json']) {
    assert.ok(help.stdout.includes(opt), `prune --help names ${opt}`);
  }
  assert.match(xenbackup(['list', '--help']).stdout, /xenbackup list --config \/etc\/xenbackup\.conf/);
});

test('prune --dry-run prints what would go and why each backup stays; then prune deletes exactly that', async (t) => {
  const scratch = makeScratchDir(t, 'prune-cli-dry');
  const medium = path.join(scratch, 'medium');
  const backups = await recentNights(medium, scratch, 14); // fulls 13 and 6 days ago: nights 9..13 are within 5 days and need 7 and 8
  const before = folderNames(medium, VOLUME);

  const dry = xenbackup(['prune', '--medium', medium, '--host', HOST, '--ttl', '5', '--dry-run']);
  assert.equal(dry.code, 0, show(dry));
  assert.deepEqual(folderNames(medium, VOLUME), before, 'a dry run deletes nothing');
  const lines = dry.stdout.split('\n');
  assert.match(lines[0]!, /^dry run: nothing is deleted\. prune .* host prune-host \(TTL 5 days\)$/);
  for (const b of backups.slice(0, 7)) assert.ok(lines.some((l) => l.startsWith(`  WOULD DELETE ${b.id} `) && l.includes('chosen by no rule')), `${b.id} would go:\n${dry.stdout}`);
  assert.ok(lines.some((l) => l.startsWith(`  keep         ${backups[9]!.id} incr`) && l.includes(`within the 5-day TTL (4.0 days old); needed by ${backups[13]!.id}`)), dry.stdout);
  assert.ok(lines.some((l) => l.startsWith(`  keep         ${backups[7]!.id} full`) && l.endsWith(`needed by ${backups[13]!.id} (and 4 more)`)), dry.stdout);
  assert.match(dry.stdout, /^would delete 7 backups, /m);

  const json = xenbackup(['prune', '--medium', medium, '--host', HOST, '--ttl', '5', '--dry-run', '--json']);
  assert.equal(json.code, 0, show(json));
  const data = JSON.parse(json.stdout) as { dryRun: boolean; rules: Record<string, number>; volumes: Array<{ volume: string; delete: Array<{ id: string; files: string[]; bytes: number }>; backups: Array<{ id: string; action: string; reasons: string[]; needs: string[] }> }> };
  assert.equal(data.dryRun, true);
  assert.deepEqual(data.rules, { ttlDays: 5, keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0 });
  const v = data.volumes[0]!;
  assert.deepEqual(v.delete.map((d) => d.id), ids(backups.slice(0, 7)).reverse());
  assert.ok(v.delete.every((d) => d.files.length === 3 && d.bytes > 0));
  assert.deepEqual(v.backups.map((b) => b.action), [...Array(7).fill('delete'), ...Array(7).fill('keep')]);
  assert.deepEqual(v.backups[13]!.needs, ids(backups.slice(7)));

  const real = xenbackup(['prune', '--medium', medium, '--host', HOST, '--ttl', '5', '--lock-file', path.join(scratch, 'lock')]);
  assert.equal(real.code, 0, show(real));
  assert.match(real.stdout, /^web1\/root: deleted 7 backups \(.*\); kept 7 backups, 7 restorable back to /m);
  assert.deepEqual(ids((await storeOf(medium, VOLUME).list())), ids(backups.slice(7)));
  const again = xenbackup(['prune', '--medium', medium, '--host', HOST, '--ttl', '5', '--lock-file', path.join(scratch, 'lock')]);
  assert.equal(again.code, 0, show(again));
  assert.match(again.stdout, /^web1\/root: nothing to delete; kept 7 backups/m);
});

test('keep rules on the command line, and only the volumes named', async (t) => {
  const scratch = makeScratchDir(t, 'prune-cli-keep');
  const medium = path.join(scratch, 'medium');
  const web = await recentNights(medium, scratch, 10);
  const db = await recentNights(medium, scratch, 10, 'db1/data');
  const r = xenbackup(['prune', 'db1/data', '--medium', medium, '--host', HOST, '--ttl', '0', '--keep-last', '1', '--lock-file', path.join(scratch, 'lock')]);
  assert.equal(r.code, 0, show(r));
  assert.deepEqual(ids((await storeOf(medium, 'db1/data').list())), ids(db.slice(7)), 'the newest restore point and the chain it needs');
  assert.deepEqual(ids((await storeOf(medium, VOLUME).list())), ids(web), 'a volume not named is not touched');
});

test('bad prune arguments: one clear line, exit 2, nothing deleted', async (t) => {
  const scratch = makeScratchDir(t, 'prune-cli-bad');
  const medium = path.join(scratch, 'medium');
  await recentNights(medium, scratch, 3);
  const before = folderNames(medium, VOLUME);
  const p = (...args: string[]) => xenbackup(['prune', ...args]);
  assertOneLineError(p('--medium', medium, '--host', HOST, '--ttl', '0'), /the retention rules keep nothing .*refusing to prune/, 2);
  assertOneLineError(p('--medium', medium, '--host', HOST, '--ttl', '0', '--dry-run'), /keep nothing/, 2);
  assertOneLineError(p('--medium', medium, '--host', HOST, '--ttl', 'five'), /--ttl must be a whole number >= 0, not "five"/, 2);
  assertOneLineError(p('--medium', medium, '--host', HOST, '--keep-daily', '-1'), /--keep-daily must be a whole number/, 2);
  assertOneLineError(p('--host', HOST), /--medium DIR or --config FILE/, 2);
  assertOneLineError(p('--medium', medium, '--config', '/etc/xenbackup.conf'), /either --medium DIR or --config FILE, not both/, 2);
  assertOneLineError(p('ghost/root', '--medium', medium, '--host', HOST), /no backups of ghost\/root on /, 2);
  assertOneLineError(p('../etc', '--medium', medium, '--host', HOST), /must be DOMU\/PART/, 2);
  assertOneLineError(p('--config', path.join(scratch, 'no-such.conf')), /no-such\.conf/, 2);
  assert.deepEqual(folderNames(medium, VOLUME), before);
});

test('prune --config: rules, BCKMNTP and HOSTN from the config; the medium must be mounted (exit 4 otherwise, nothing touched); the run lock is respected', async (t) => {
  const medium = withLoopFs(t, { fsType: 'ext4', sizeMiB: 32 });
  const env = configEnv(t, { BCKDEV: medium.device, BCKDEV_FS: 'ext4', BCKMNTP: medium.dir, ARCHIVE_TTL_DAYS: '3' });
  const backups = await recentNights(medium.dir, env.scratch, 10);
  const conf = env.write({});

  const dry = xenbackup(['prune', '--config', conf, '--dry-run']);
  assert.equal(dry.code, 0, show(dry));
  assert.match(dry.stdout, new RegExp(`prune ${medium.dir} host ${HOST} \\(TTL 3 days\\)`));
  assert.match(dry.stdout, /would delete 7 backups/, 'TTL 3 keeps nights 7..9: all of the last chain');

  const elsewhere = path.join(env.scratch, 'not-a-mountpoint');
  fs.mkdirSync(elsewhere);
  const notMounted = env.write({ BCKMNTP: elsewhere });
  assertOneLineError(xenbackup(['prune', '--config', notMounted]), new RegExp(`backup medium ${medium.device} is not mounted on ${elsewhere} \\(BCKMNTP\\); xenbackup does not mount it`), 4);
  assertOneLineError(xenbackup(['list', '--config', notMounted]), /is not mounted on/, 4);
  assert.deepEqual(fs.readdirSync(elsewhere), [], 'nothing written below the bare mountpoint');
  const wrongDevice = env.write({ BCKDEV: '/dev/xenbackup-no-such-disk' });
  assertOneLineError(xenbackup(['prune', '--config', wrongDevice]), /backup medium \/dev\/xenbackup-no-such-disk is not what is mounted there: .*does not exist/, 4);

  const lock = await acquireLock(path.join(env.scratch, 'xenbackup.lock'));
  try {
    assertOneLineError(xenbackup(['prune', '--config', conf]), /another xenbackup run holds the lock .*; not pruning while it runs/, 3);
    assert.equal((await storeOf(medium.dir, VOLUME).list()).length, 10);
    assert.equal(xenbackup(['prune', '--config', conf, '--dry-run']).code, 0, 'a dry run needs no lock');
  } finally {
    await lock.release();
  }
  const real = xenbackup(['prune', '--config', conf]);
  assert.equal(real.code, 0, show(real));
  assert.deepEqual(ids((await storeOf(medium.dir, VOLUME).list())), ids(backups.slice(7)));
  const override = xenbackup(['prune', '--config', conf, '--ttl', '1', '--dry-run']);
  assert.equal(override.code, 0, show(override));
  assert.match(override.stdout, /\(TTL 1 day\)/, 'an option beats the config');
});

test('list: chains, what each backup needs, sizes, and what the next prune would do', async (t) => {
  const scratch = makeScratchDir(t, 'prune-cli-list');
  const medium = path.join(scratch, 'medium');
  const backups = await recentNights(medium, scratch, 14);
  const r = xenbackup(['list', '--medium', medium, '--host', HOST, '--json']);
  assert.equal(r.code, 0, show(r));
  type Listed = {
    volume: string;
    chains: Array<{ full: string; backups: string[]; archiveBytes: number; sizeBytes: number; restorable: boolean }>;
    newestCompleteRestorePoint: string;
    prune: { rules: Record<string, number>; delete: string[]; freedBytes: number; keep: number };
    backups: Array<Record<string, unknown> & { id: string; needs: string[]; restorable: boolean; sizeBytes: number; restoreBytes: number; archiveBytes: number; prune: { action: string; reasons: string[] } }>;
  };
  const [v] = JSON.parse(r.stdout) as Listed[];
  for (const key of ['id', 'time', 'kind', 'base', 'chain', 'status', 'files', 'bytes', 'archiveBytes', 'archive', 'manifest']) {
    assert.ok(key in v!.backups[0]!, `the documented field ${key} is still there`);
  }
  assert.deepEqual(v!.chains.map((c) => [c.full, c.backups.length, c.restorable]), [[backups[0]!.id, 7, true], [backups[7]!.id, 7, true]]);
  assert.equal(v!.newestCompleteRestorePoint, backups[13]!.id);
  assert.deepEqual(v!.prune.delete, ids(backups.slice(0, 7)), 'the default rules: TTL 5 days');
  const nine = v!.backups[9]!;
  assert.deepEqual(nine.needs, ids(backups.slice(7, 10)));
  assert.equal(nine.restoreBytes, backups.slice(7, 10).reduce((n, b) => n + archiveBytesOf(b), 0));
  const store = storeOf(medium, VOLUME);
  assert.equal(nine.sizeBytes, [backups[9]!.archive, backups[9]!.manifest, `${backups[9]!.id}.incr.json`].reduce((n, f) => n + fs.statSync(store.pathOf(f)).size, 0));
  assert.deepEqual(v!.backups[7]!.prune, { action: 'keep', reasons: [`needed by ${backups[13]!.id} (and 4 more)`] });
  assert.equal(v!.backups[0]!.prune.action, 'delete');
  assert.equal(v!.chains[0]!.sizeBytes, v!.backups.slice(0, 7).reduce((n, b) => n + b.sizeBytes, 0));

  const text = xenbackup(['list', '--medium', medium, '--host', HOST]);
  assert.equal(text.code, 0, show(text));
  assert.match(text.stdout, /^ {2}2 chains, 14 backups, .*; next prune \(TTL 5 days\) deletes 7 \(.*\), keeps 7$/m);
  const keepLast = xenbackup(['list', VOLUME, '--medium', medium, '--host', HOST, '--keep-last', '8']);
  assert.equal(keepLast.code, 0, show(keepLast));
  assert.match(keepLast.stdout, /^ {2}2 chains, 14 backups, .*; next prune \(TTL 5 days, keep-last 8\) deletes nothing$/m, 'night 6 is the 8th newest; it needs the first chain');
  assert.match(text.stdout, new RegExp(`^ {2}chain of ${backups[7]!.id}: 7 backups, `, 'm'));
  assert.match(text.stdout, new RegExp(`^ {6}needs 3 archives from ${backups[7]!.id} \\(.*\\); next prune: keep \\(within the 5-day TTL`, 'm'));
  assert.match(text.stdout, /^ {6}needs only itself \(.*\); next prune: DELETE \(chosen by no rule/m);
  const refused = xenbackup(['list', '--medium', medium, '--host', HOST, '--ttl', '0']);
  assert.equal(refused.code, 0, 'list still lists when the rules would be refused');
  assert.match(refused.stdout, /prune refuses these rules: the retention rules keep nothing/);
});

test('pruneAfterRun: the config\'s TTL (BM_ARCHIVE_TTL when migrating) and KEEP_* rules, report lines, every volume of the host', async (t) => {
  const scratch = makeScratchDir(t, 'prune-step');
  const medium = path.join(scratch, 'medium');
  const env = configEnv(t, { BCKDEV: '/dev/null', BCKMNTP: medium });
  const web = await recentNights(medium, scratch, 10);
  const db = await recentNights(medium, scratch, 10, 'db1/data');
  fs.writeFileSync(path.join(env.scratch, 'backup-manager.conf'), 'export BM_ARCHIVE_TTL="2"\n');
  const cfg = loadConfig({ configPath: env.write({}) });
  assert.equal(cfg.archiveTtlDays, 2, 'BM_ARCHIVE_TTL migrated');
  const sink = new MemorySink();
  const lines = await pruneAfterRun(cfg, medium, createLogger([sink.sink]));
  assert.match(lines[0]!, /^prune \(TTL 2 days\): 14 backups deleted in 2 volumes, .* freed$/);
  assert.match(lines[1]!, /^prune db1\/data: deleted 7 backups \(.*: \d{8}T\d{6}Z to \d{8}T\d{6}Z\); kept 3 backups, 3 restorable back to /);
  assert.equal(lines.length, 3);
  assert.deepEqual(ids((await storeOf(medium, VOLUME).list())), ids(web.slice(7)));
  assert.deepEqual(ids((await storeOf(medium, 'db1/data').list())), ids(db.slice(7)));
  assert.ok(sink.records.some((r) => r.message === lines[0]), 'the lines are logged too');

  const off = loadConfig({ configPath: env.write({ ARCHIVE_TTL_DAYS: '0' }) });
  const skipped = await pruneStep(off, medium, createLogger([]));
  assert.equal(skipped.warnings.length, 1);
  assert.match(skipped.lines[0]!, /^prune skipped: the retention rules keep nothing .*ARCHIVE_TTL_DAYS=0, KEEP_LAST\/DAILY\/WEEKLY\/MONTHLY=0\/0\/0\/0 in /);
  assert.equal((await storeOf(medium, VOLUME).list()).length, 3);
  const weekly = loadConfig({ configPath: env.write({ ARCHIVE_TTL_DAYS: '0', KEEP_LAST: '1' }) });
  assert.deepEqual((await pruneStep(weekly, medium, createLogger([]))).errors, []);
  assert.equal((await storeOf(medium, VOLUME).list()).length, 3, 'keep-last 1 still needs the whole chain');
});

test('a volume with a backup running (its volume lock held) is not pruned: prune says so, the run step leaves it for next time', async (t) => {
  const scratch = makeScratchDir(t, 'prune-busy');
  const medium = path.join(scratch, 'medium');
  const env = configEnv(t, { BCKDEV: '/dev/null', BCKMNTP: medium });
  await recentNights(medium, scratch, 14);
  await recentNights(medium, scratch, 14, 'db1/data');
  const busy = await lockVolume(storeOf(medium, VOLUME), createLogger([])); // as prepareBackup holds it
  try {
    const r = xenbackup(['prune', '--medium', medium, '--host', HOST, '--lock-file', path.join(scratch, 'lock')]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /^xenbackup: web1\/root: another backup of this volume is running \(pid \d+ .*\); not pruned$/m);
    assert.equal((await storeOf(medium, VOLUME).list()).length, 14);
    assert.equal((await storeOf(medium, 'db1/data').list()).length, 7, 'the other volume is pruned');
    assert.equal(xenbackup(['prune', '--medium', medium, '--host', HOST, '--dry-run']).code, 0, 'a dry run needs no volume lock');
    const step = await pruneStep(loadConfig({ configPath: env.write({}) }), medium, createLogger([]));
    assert.deepEqual(step.errors, []);
    assert.equal(step.warnings.length, 1);
    assert.match(step.warnings[0]!, /^prune web1\/root: another backup of this volume is running .*; not pruned this time$/);
    assert.equal((await storeOf(medium, VOLUME).list()).length, 14);
  } finally {
    await busy.release();
  }
  assert.deepEqual((await pruneStep(loadConfig({ configPath: env.write({}) }), medium, createLogger([]))).warnings, []);
  assert.equal((await storeOf(medium, VOLUME).list()).length, 7);
});
