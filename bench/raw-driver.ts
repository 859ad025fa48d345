/**
 * The raw bench's measured process (bench/raw-bench.ts): one raw backup or
 * one raw restore, run in a fresh node as the CLI would be, so its wall
 * time, CPU and peak RSS are measured like the tar bench's xenbackup runs.
 * Prints the sidecar or the restore result as JSON on stdout.
 *
 *   node dist/bench/raw-driver.js backup DEVICE MEDIUM NOW_ISO full|auto
 *   node dist/bench/raw-driver.js restore MEDIUM TARGET
 */
import { prepareRawBackup } from '../src/engines/raw/raw-backup.js';
import { restoreRawImage } from '../src/engines/raw/raw-restore.js';
import { createLogger } from '../src/util/log.js';

export const RAW_BENCH_HOST = 'bench';
export const RAW_BENCH_VOLUME = 'raw/disk';

const logger = createLogger([(r) => process.stderr.write(`${r.level}: ${r.message}\n`)], 'warn');

async function main(argv: string[]): Promise<void> {
  const [what, ...args] = argv;
  if (what === 'backup') {
    const [device, medium, nowIso, mode] = args as [string, string, string, string];
    const p = await prepareRawBackup({
      device,
      medium,
      host: RAW_BENCH_HOST,
      volume: RAW_BENCH_VOLUME,
      forceFull: mode === 'full',
      fullIntervalDays: 365,
      maxChainLength: 100,
      // as `xenbackup backup` (the tar bench's runs) compresses: at the caller's priority
      idlePriority: false,
      logger,
      now: () => new Date(nowIso),
    });
    process.stdout.write(JSON.stringify(p.commit()) + '\n');
  } else if (what === 'restore') {
    const [medium, to] = args as [string, string];
    const r = await restoreRawImage({ medium, host: RAW_BENCH_HOST, volume: RAW_BENCH_VOLUME, to, force: true, logger });
    process.stdout.write(JSON.stringify({ ...r, backup: r.backup.id }) + '\n');
  } else {
    throw new Error('usage: raw-driver.js backup DEVICE MEDIUM NOW_ISO full|auto | restore MEDIUM TARGET');
  }
}

// Imported by raw-bench.ts for its constants: only run when started as a program.
if (process.argv[1]?.endsWith('raw-driver.js')) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`raw-driver: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
