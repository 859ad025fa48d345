/**
 * Raw block mode's bench (issue 6 item 5), beside the tar bench: a 4 GiB
 * sparse image with 25% data (64 regions of 16 MiB, half random, half
 * text, not chunk-aligned) on a loop device, generated once into the cache.
 *
 *   full          raw full backup vs `zstd -1 -T0 < /dev/loopN > file`
 *                 (target: at least as fast)
 *   1%-change     an incremental after 1% of the chunks changed: bytes
 *                 written and bytes read (target: ~1% of the image
 *                 written, the device read once)
 *   rebuild       restore of full + 6 incrementals to a file vs one `cat`
 *                 of the result (target: about one read of the result),
 *                 and vs a sparse copy + fsync of it (the restore must
 *                 write the image durably too, which a cat does not;
 *                 passes at <= 1.3x the copy)
 *
 *   node dist/bench/raw-bench.js [--reps N] [--cache DIR] [--keep-work]
 *
 * Changes are written at chunk offsets through the loop device and reverted
 * afterwards (originals saved first), so the cached image stays as generated.
 */
import { describeOtherLoad, watchOtherLoad } from './other-load.js';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { planDataset, QUICK_SPEC } from './dataset.js';
import { median, runShell, sh, type Sample } from './measure.js';
import { Keystream, mixSeed, Prng } from './prng.js';
import { renderTable, type Row } from './table.js';

const MiB = 1 << 20;
const IMAGE_BYTES = 4096 * MiB;
const CHUNK = 4 * MiB;
const REGIONS = 64;
const REGION_BYTES = 16 * MiB;
const SEED = 20261127;
/** Bump when the image's content rules change: a cached image of another version is regenerated. */
const GENERATOR_VERSION = 1;

const say = (line: string): void => void process.stderr.write(line + '\n');
const here = path.dirname(fileURLToPath(import.meta.url));
const driver = path.join(here, 'raw-driver.js');

/** Region k starts 1 MiB past a 64 MiB boundary: its first and last chunks are partly zero. */
const regionStart = (k: number): number => k * (IMAGE_BYTES / REGIONS) + MiB;

function textBytes(n: number, seed: number, vocabulary: Buffer[]): Buffer {
  const rng = new Prng(seed);
  const out = Buffer.allocUnsafe(n);
  let pos = 0;
  while (pos < n) {
    for (let w = rng.between(3, 12); w > 0 && pos < n; w--) {
      pos += vocabulary[Math.floor(rng.next() ** 3 * vocabulary.length)]!.copy(out, pos);
      if (pos < n) out[pos++] = w > 1 ? 0x20 : 0x0a;
    }
  }
  return out;
}

function ensureImage(dir: string): string {
  const image = path.join(dir, 'image.raw');
  const marker = path.join(dir, 'image.json');
  try {
    if ((JSON.parse(fs.readFileSync(marker, 'utf8')) as { version: number }).version === GENERATOR_VERSION && fs.statSync(image).size === IMAGE_BYTES) return image;
  } catch {
    /* generate */
  }
  say(`generating the 4 GiB image (25% data) in ${image}`);
  fs.rmSync(marker, { force: true });
  const vocabulary = planDataset(QUICK_SPEC).vocabulary;
  const fd = fs.openSync(image, 'w');
  try {
    fs.ftruncateSync(fd, IMAGE_BYTES);
    for (let k = 0; k < REGIONS; k++) {
      const data = k % 2 ? new Keystream(SEED, 7, k).take(REGION_BYTES) : textBytes(REGION_BYTES, mixSeed(SEED, 7, k), vocabulary);
      fs.writeSync(fd, data, 0, data.length, regionStart(k));
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.writeFileSync(marker, JSON.stringify({ version: GENERATOR_VERSION, bytes: IMAGE_BYTES }) + '\n');
  return image;
}

/** 1% of the chunks (10 of 1024), spread over data and zero regions alike; `round` picks another set. */
function changeSet(round: number): number[] {
  const n = IMAGE_BYTES / CHUNK;
  return Array.from({ length: Math.round(n / 100) }, (_, i) => (i * 101 + round * 37 + 5) % n);
}

interface Saved {
  offset: number;
  bytes: Buffer;
}

/** Overwrites 64 KiB at the start of each chunk of the set through the device; returns what was there. */
function applyChange(device: string, round: number): Saved[] {
  const fd = fs.openSync(device, 'r+');
  try {
    return changeSet(round).map((c, i) => {
      const offset = c * CHUNK + 8192;
      const bytes = Buffer.alloc(64 * 1024);
      fs.readSync(fd, bytes, 0, bytes.length, offset);
      fs.writeSync(fd, new Keystream(SEED, 9, round, i).take(bytes.length), 0, bytes.length, offset);
      return { offset, bytes };
    });
  } finally {
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  }
}

function revert(device: string, saved: Saved[]): void {
  const fd = fs.openSync(device, 'r+');
  try {
    for (const s of saved.reverse()) fs.writeSync(fd, s.bytes, 0, s.bytes.length, s.offset);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

const secs = (s: number): string => `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
const mb = (b: number): string => `${(b / 1e6).toFixed(0)} MB`;

interface Sidecarish {
  archiveBytes: number;
  stats: { bytesRead: number };
  raw: { storedChunks: number; zeroChunks: number; unchangedChunks: number; chunks: number };
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { reps: { type: 'string' }, cache: { type: 'string' }, 'keep-work': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write('usage: node dist/bench/raw-bench.js [--reps N] [--cache DIR] [--keep-work]\n');
    return 0;
  }
  const reps = Number(values.reps ?? 3);
  if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps must be a positive whole number, not "${values.reps}"`);
  const base = path.join(path.resolve(values.cache ?? process.env.XENBACKUP_BENCH_DIR ?? '/var/tmp/xenbackup-bench'), 'raw');
  fs.mkdirSync(base, { recursive: true });
  const image = ensureImage(base);
  const work = path.join(base, 'work');
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  const medium = path.join(work, 'medium');
  const loadAtStart = os.loadavg()[0]!;
  const otherLoad = watchOtherLoad();

  const device = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8' }).trim();
  const detach = (): void => {
    try {
      execFileSync('losetup', ['--detach', device]);
    } catch {
      /* already detached */
    }
  };
  process.once('SIGINT', () => {
    detach();
    process.exit(130);
  });
  const saved: Saved[][] = [];
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const nextNow = (): string => new Date((clock += 3600_000)).toISOString();
  const errFile = path.join(work, 'driver.stderr');
  /** Runs the driver; on failure the error carries its whole stderr (runTimed keeps only the last line). */
  const runDriver = (args: string[]): Sample => {
    try {
      return runShell(`${[process.execPath, driver, ...args].map(sh).join(' ')} 2> ${sh(errFile)}`);
    } catch (e) {
      const stderr = fs.existsSync(errFile) ? fs.readFileSync(errFile, 'utf8').trim() : '';
      throw new Error(`${(e as Error).message}\n${stderr}`);
    }
  };
  const backup = (mode: 'full' | 'auto'): { sample: Sample; sidecar: Sidecarish } => {
    const sample = runDriver(['backup', device, medium, nextNow(), mode]);
    return { sample, sidecar: JSON.parse(sample.stdout) as Sidecarish };
  };
  const warmDevice = (): void => void runShell(`cat ${sh(device)} > /dev/null`);
  try {
    say(`image ${image} on ${device}; warming the page cache`);
    warmDevice();

    // full vs zstd -1 -T0 of the device
    const zstdRuns: Sample[] = [];
    const fullRuns: Array<{ sample: Sample; sidecar: Sidecarish }> = [];
    const zstdOut = path.join(work, 'device.zst');
    for (let r = 0; r < reps; r++) {
      say(`full: repetition ${r + 1} of ${reps}`);
      warmDevice();
      zstdRuns.push(runShell(`zstd -1 -T0 -q < ${sh(device)} > ${sh(zstdOut)}`));
      fs.rmSync(medium, { recursive: true, force: true });
      warmDevice();
      fullRuns.push(backup('full'));
    }
    const zstdBytes = fs.statSync(zstdOut).size;
    fs.rmSync(zstdOut);
    const full = fullRuns[fullRuns.length - 1]!.sidecar;

    // 1%-change incrementals (each on the previous: the chain grows by one per repetition)
    const incrRuns: Array<{ sample: Sample; sidecar: Sidecarish }> = [];
    for (let r = 0; r < reps; r++) {
      say(`1%-change incremental: repetition ${r + 1} of ${reps}`);
      saved.push(applyChange(device, r));
      warmDevice();
      incrRuns.push(backup('auto'));
    }
    // up to 6 incrementals for the rebuild
    for (let r = reps; r < 6; r++) {
      saved.push(applyChange(device, r));
      backup('auto');
    }

    // rebuild from the full + 6 incrementals vs one cat of the result
    const out = path.join(work, 'rebuilt.img');
    const rebuildRuns: Sample[] = [];
    const catRuns: Sample[] = [];
    const copyRuns: Sample[] = [];
    const copy = path.join(work, 'copy.img');
    for (let r = 0; r < reps; r++) {
      say(`rebuild: repetition ${r + 1} of ${reps}`);
      fs.rmSync(out, { force: true });
      runShell('sync');
      rebuildRuns.push(runDriver(['restore', medium, out]));
      runShell('sync');
      catRuns.push(runShell(`cat ${sh(out)} > /dev/null`));
      // A restore must also write the image durably: a sparse copy + fsync is that floor.
      copyRuns.push(runShell(`cp --sparse=always ${sh(out)} ${sh(copy)} && sync ${sh(copy)}`));
      fs.rmSync(copy);
    }
    runShell(`cmp ${sh(out)} ${sh(device)}`); // the rebuilt image is the device's content, or the bench fails
    const rebuilt = JSON.parse(rebuildRuns[rebuildRuns.length - 1]!.stdout) as { containers: string[]; bytesWritten: number };

    const fullT = median(fullRuns.map((x) => x.sample.seconds));
    const zstdT = median(zstdRuns.map((x) => x.seconds));
    const incrT = median(incrRuns.map((x) => x.sample.seconds));
    const incr = incrRuns[incrRuns.length - 1]!.sidecar;
    const rebuildT = median(rebuildRuns.map((x) => x.seconds));
    const catT = median(catRuns.map((x) => x.seconds));
    const copyT = median(copyRuns.map((x) => x.seconds));
    const written = incr.archiveBytes / IMAGE_BYTES;
    const rows: Row[] = [
      {
        work: 'raw full backup (4 GiB, 25% data)',
        xenbackup: `${secs(fullT)}, ${mb(full.archiveBytes)}`,
        references: `zstd -1 -T0 < device: ${secs(zstdT)}, ${mb(zstdBytes)}`,
        ratio: `${(fullT / zstdT).toFixed(2)}x`,
        target: '<= 1x zstd -1 -T0',
        pass: fullT <= zstdT,
      },
      {
        work: 'raw 1%-change incremental',
        xenbackup: `${secs(incrT)}, ${mb(incr.archiveBytes)} written, ${mb(incr.stats.bytesRead)} read`,
        references: `image ${mb(IMAGE_BYTES)}; full container ${mb(full.archiveBytes)}`,
        ratio: `${pct(written)} of image written, read ${(incr.stats.bytesRead / IMAGE_BYTES).toFixed(2)}x`,
        target: '~1% written, read once',
        pass: written <= 0.02 && incr.stats.bytesRead === IMAGE_BYTES,
      },
      {
        work: 'raw rebuild (full + 6 incrementals)',
        xenbackup: `${secs(rebuildT)}, ${rebuilt.containers.length} containers, ${mb(rebuilt.bytesWritten)} written`,
        references: `cat of the result: ${secs(catT)}; sparse copy + fsync of it: ${secs(copyT)}`,
        ratio: `${(rebuildT / catT).toFixed(2)}x cat, ${(rebuildT / copyT).toFixed(2)}x copy`,
        target: '<= 1.3x the sparse copy + fsync',
        pass: rebuildT <= 1.3 * copyT,
      },
    ];
    const cpuRows: Row[] = [
      { work: 'raw full backup', xenbackup: secs(median(fullRuns.map((x) => x.sample.cpuSeconds))), references: `zstd -1 -T0: ${secs(median(zstdRuns.map((x) => x.cpuSeconds)))}`, ratio: '', target: '', pass: undefined },
      { work: 'raw 1%-change incremental', xenbackup: secs(median(incrRuns.map((x) => x.sample.cpuSeconds))), references: '', ratio: '', target: '', pass: undefined },
      { work: 'raw rebuild', xenbackup: secs(median(rebuildRuns.map((x) => x.cpuSeconds))), references: `cat: ${secs(median(catRuns.map((x) => x.cpuSeconds)))}`, ratio: '', target: '', pass: undefined },
    ];
    const loadAtEnd = os.loadavg()[0]!;
    const others = otherLoad();
    process.stdout.write(
      [
        '',
        `xenbackup raw bench (4 GiB sparse image, ${REGIONS} x 16 MiB data regions, half random, half text; chunks of 4 MiB; median of ${reps}, warm cache)`,
        `machine: nproc ${os.availableParallelism()}, ${os.cpus()[0]?.model}, node ${process.version}; load average ${loadAtStart.toFixed(1)} at start, ${loadAtEnd.toFixed(1)} at end`,
        describeOtherLoad(others),
        '',
        renderTable(rows),
        '',
        'CPU seconds (user + system, children included), medians:',
        '',
        renderTable(cpuRows, false),
        `peak RSS of the raw full backup: ${(Math.max(...fullRuns.map((x) => x.sample.maxRssKiB)) / 1024).toFixed(0)} MiB`,
        '',
      ].join('\n'),
    );
    const resultsDir = path.join(base, 'results');
    fs.mkdirSync(resultsDir, { recursive: true });
    fs.writeFileSync(
      path.join(resultsDir, 'latest.json'),
      JSON.stringify({ format: 'xenbackup-raw-bench', version: 1, at: new Date().toISOString(), reps, loadAtStart, loadAtEnd, otherLoad: others, rows, cpuRows, fullRuns, zstdRuns, incrRuns, rebuildRuns, catRuns, copyRuns }, null, 1) + '\n',
    );
    return 0;
  } finally {
    for (const s of saved.reverse()) revert(device, s);
    detach();
    if (!values['keep-work']) fs.rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`raw-bench: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
