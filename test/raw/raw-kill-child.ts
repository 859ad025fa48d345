/**
 * A raw backup that is killed half way: run as a child process by
 * raw-kill.test.ts. It starts a raw backup of DEVICE and, once chunk STOP
 * has been read and handed on, prints "mid" and blocks, so the test can
 * kill it with SIGKILL while its ".partial" container and the volume lock
 * exist, exactly what a power cut or kill -9 at that point leaves.
 *
 *   XENBACKUP_RAW_KILL_CHILD=1 node raw-kill-child.js DEVICE MEDIUM HOST VOLUME NOW_ISO STOP
 */
import { prepareRawBackup } from '../../src/engines/raw/raw-backup.js';
import { createLogger } from '../../src/util/log.js';

// `node --test dist/test/` runs every .js file under test/ as a test file: without its environment this does nothing.
if (process.env['XENBACKUP_RAW_KILL_CHILD'] === '1') {
  const [device, medium, host, volume, nowIso, stop] = process.argv.slice(2) as [string, string, string, string, string, string];
  await prepareRawBackup({
    device,
    medium,
    host,
    volume,
    chunkSize: 1 << 20,
    forceFull: false,
    fullIntervalDays: 30,
    maxChainLength: 10,
    logger: createLogger([], 'error'),
    now: () => new Date(nowIso),
    onProgress: (p) => {
      if (p.chunk === Number(stop)) {
        process.stdout.write('mid\n');
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120_000); // until killed
      }
    },
  });
  process.stdout.write('finished without being killed\n');
}
