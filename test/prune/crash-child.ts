/**
 * A prune that dies: run as a child process by prune-medium.test.ts, it
 * prunes one volume (holding its volume lock, as the CLI and the run do) and kills itself with SIGKILL right after the first
 * step named on the command line (e.g. the first sidecar removal), so the
 * test sees exactly what a power cut or kill -9 at that point leaves.
 *
 *   XENBACKUP_CRASH_CHILD=1 node crash-child.js MEDIUM HOST VOLUME NOW_ISO TTL_DAYS STEP
 */
import { pruneVolumeLocked, type PruneStep } from '../../src/repo/prune.js';
import { VolumeStore } from '../../src/repo/volume-store.js';
import { LocalStorage } from '../../src/storage/local-storage.js';

// `node --test dist/test/` runs every .js file under test/ as a test file: without its arguments this does nothing.
if (process.env['XENBACKUP_CRASH_CHILD'] === '1') {
  const [medium, host, volume, nowIso, ttl, step] = process.argv.slice(2) as [string, string, string, string, string, PruneStep];
  await pruneVolumeLocked(new VolumeStore(new LocalStorage(medium), host, volume), { ttlDays: Number(ttl), keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0 }, {
    dryRun: false,
    now: new Date(nowIso),
    afterStep: (s) => {
      if (s === step) process.kill(process.pid, 'SIGKILL');
    },
  });
  process.stdout.write('finished without crashing\n');
}
