/**
 * `npm run bench -- --scale`: issue 16's table. Generates the million-file
 * tree once (scale-dataset.ts), measures each work (scale-works.ts) on a
 * warm page cache with medians of --reps (default 1: a full at this size
 * takes a while), prints the table with PASS/MISS against the issue's targets
 * (scale-table.ts) and writes the numbers as JSON beside the tree.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runShell, sh } from './measure.js';
import { environmentNote, type Machine } from './machine.js';
import { describeOtherLoad, watchOtherLoad } from './other-load.js';
import { renderTable } from './table.js';
import type { WorkResult } from './scenarios.js';
import { ensureScaleDataset, revertScaleChange, SCALE_SPEC, scalePaths } from './scale-dataset.js';
import { scaleVerdicts } from './scale-table.js';
import {
  LS_DIR,
  RESTORE_FILE,
  scaleFull,
  scaleLs,
  scaleNoChange,
  scaleOnePercent,
  scalePrune,
  scaleRestore,
  scaleVerify,
  SCALE_VOLUME,
  type ScaleContext,
} from './scale-works.js';

export interface ScaleOptions {
  cacheDir: string;
  reps: number;
  projectRoot: string;
  host: Machine;
  keepWork: boolean;
  failOnMiss: boolean;
  say: (line: string) => void;
}

export async function runScale(opts: ScaleOptions): Promise<number> {
  const { say, host, reps } = opts;
  say(`machine: ${host.nproc} cores, ${host.cpu}, ${host.memoryGiB} GiB, ${host.filesystem}; ${host.tar}; zstd ${host.zstd}`);
  const dataset = ensureScaleDataset(opts.cacheDir, say);
  const paths = scalePaths(opts.cacheDir);
  const work = path.join(paths.base, 'work');
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  const ctx: ScaleContext = { root: dataset.root, work, reps, projectRoot: opts.projectRoot, paths, say };
  say(
    `scale tree: ${dataset.files} files, ${dataset.directories} directories, ${(dataset.bytes / 1e6).toFixed(0)} MB of content in ${dataset.root}` +
      (dataset.generatedSeconds !== undefined ? ` (generated now in ${dataset.generatedSeconds.toFixed(0)} s)` : ' (cached)'),
  );
  say('warming the page cache');
  runShell(`tar -cf - -C ${sh(dataset.root)} . | cat > /dev/null`);

  const results: WorkResult[] = [];
  const started = Date.now();
  const otherLoad = watchOtherLoad();
  try {
    for (const [name, bench] of [
      ['full backup', scaleFull],
      ['no-change incremental', scaleNoChange],
      ['1%-change incremental', scaleOnePercent],
      ['one-file restore', scaleRestore],
      ['ls of one directory', scaleLs],
      ['verify --quick', scaleVerify],
      ['prune --dry-run', scalePrune],
    ] as const) {
      const t = Date.now();
      say(`measuring: ${name} (${reps} repetition${reps > 1 ? 's' : ''})`);
      results.push(bench(ctx));
      say(`  done in ${((Date.now() - t) / 1000).toFixed(0)} s`);
    }
  } finally {
    if (fs.existsSync(paths.dirty)) revertScaleChange(paths);
    if (!opts.keepWork) fs.rmSync(work, { recursive: true, force: true });
  }

  host.loadAtEnd = os.loadavg()[0]!;
  host.otherLoad = otherLoad();
  const envNote = environmentNote();
  const rows = scaleVerdicts(results);
  const out = [
    '',
    `xenbackup bench --scale (${dataset.files} files of ${SCALE_SPEC.minBytes}-${SCALE_SPEC.maxBytes} bytes, ${(dataset.bytes / 1e6).toFixed(0)} MB, ` +
      `in ${dataset.directories} directories; volume ${SCALE_VOLUME}, compression zstd; median of ${reps}${reps === 1 ? ' (the default for --scale)' : ''}, warm cache)`,
    `machine: nproc ${host.nproc}, ${host.cpu}, ${host.memoryGiB} GiB RAM, ${host.kernel}, node ${host.node}, ${host.tar}, zstd ${host.zstd}, ${host.filesystem}; ` +
      `load average ${host.loadAtStart.toFixed(1)} at start, ${host.loadAtEnd.toFixed(1)} at end`,
    describeOtherLoad(host.otherLoad),
    '',
    renderTable(rows, true, { xenbackup: 'xenbackup time, peak RSS', references: 'GNU tar 1.34 time, peak RSS' }),
    '',
    'Times are wall-clock medians; peak RSS is GNU time\'s %M (the largest single process of the command), the highest of the repetitions.',
    `Restore, ls, verify and prune read a chain of two (the full and a no-change incremental); restore takes ${RESTORE_FILE} ` +
      `(GNU tar extracts that member from its full), ls lists ${LS_DIR} (99 files). Bytes are the sizes of the files each incremental adds; ` +
      `for GNU tar, its level-1 archive and the snapshot file (the whole listing, rewritten every night).`,
    ...(envNote ? [envNote] : []),
    '',
  ];
  process.stdout.write(out.join('\n') + '\n');

  const resultsDir = path.join(paths.base, 'results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const json = JSON.stringify(
    {
      format: 'xenbackup-bench-scale',
      version: 1,
      at: new Date().toISOString(),
      seconds: (Date.now() - started) / 1000,
      machine: host,
      spec: SCALE_SPEC,
      dataset,
      reps,
      rows,
      results,
    },
    null,
    1,
  );
  fs.writeFileSync(path.join(resultsDir, `${stamp}.json`), json + '\n');
  fs.writeFileSync(path.join(resultsDir, 'latest.json'), json + '\n');
  say(`results: ${path.join(resultsDir, 'latest.json')}`);
  return opts.failOnMiss && rows.some((r) => r.pass === false) ? 3 : 0;
}
