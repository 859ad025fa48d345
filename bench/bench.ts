/**
 * `npm run bench`: xenbackup against GNU tar and the stat-walk floor on the
 * data set of ANCHORS.md (issue 2 item 10). Generates the tree once into a
 * cache folder, measures each work (scenarios.ts) with medians of several
 * repetitions on a warm page cache, prints a table with PASS/MISS against
 * the issue's targets, and writes the numbers as JSON beside the data set.
 *
 *   node dist/bench/bench.js [--quick | --scale] [--reps N] [--cache DIR] [--profile] [--keep-work] [--fail-on-miss]
 *
 * --scale runs the million-file comparison of issue 16 instead (scale.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { datasetPaths, ensureDataset, FULL_SPEC, QUICK_SPEC, revertChange } from './dataset.js';
import { firstLine, runShell } from './measure.js';
import { benchFull, benchNoChange, benchOnePercent, benchRestore, type BenchContext, type WorkResult } from './scenarios.js';
import { renderTable, verdicts } from './table.js';
import { formatSummary } from './cpuprofile.js';
import { describeOtherLoad, watchOtherLoad } from './other-load.js';
import { environmentNote, machine } from './machine.js';
import { runScale } from './scale.js';

const HELP = `usage: npm run bench -- [options]   (or: node dist/bench/bench.js [options])

  --quick          a 10x smaller data set and 1 repetition (a smoke run)
  --scale          issue 16's table instead: 1,000,000 files of 20-300 bytes in 10,100 directories
                   (generated once into <cache>/scale/tree, ~4 GB on disk and 1M inodes), xenbackup's
                   full, incrementals, bytes added, restore, ls, verify --quick and prune --dry-run,
                   time and peak RSS, beside GNU tar -g + zstd -1 -T0
  --reps N         repetitions per measurement, the median is reported (default 3; --quick, --scale: 1)
  --cache DIR      where the data set, scratch files and results live
                   (default $XENBACKUP_BENCH_DIR or /var/tmp/xenbackup-bench)
  --profile        also run xenbackup once per work under node --cpu-prof and print where the time goes
  --keep-work      keep the scratch folder (media, archives, restores) for inspection
  --fail-on-miss   exit 3 when a target is missed (default: exit 0 once the bench ran)

Needs GNU tar, zstd and /usr/bin/time (apt-get install -y tar zstd time), and a built tree (npm run build).
Results: <cache>/<full|quick|scale>/results/latest.json`;

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function say(line: string): void {
  process.stderr.write(line + '\n');
}

function checkPrerequisites(): void {
  const missing: string[] = [];
  if (!firstLine('tar', ['--version'])?.includes('GNU tar')) missing.push('GNU tar (package tar)');
  if (!firstLine('zstd', ['--version'])) missing.push('zstd (package zstd)');
  if (!fs.existsSync('/usr/bin/time')) missing.push('/usr/bin/time (package time)');
  if (missing.length) throw new Error(`missing: ${missing.join(', ')}; install with apt-get install -y tar zstd time`);
  if (!fs.existsSync(path.join(projectRoot, 'dist', 'src', 'cli', 'main.js'))) {
    throw new Error(`${path.join(projectRoot, 'dist')} holds no build of xenbackup; run npm run build first`);
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      scale: { type: 'boolean' },
      reps: { type: 'string' },
      cache: { type: 'string' },
      profile: { type: 'boolean' },
      'keep-work': { type: 'boolean' },
      'fail-on-miss': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (values.quick && values.scale) throw new Error('--quick and --scale are two different data sets: give one');
  if (values.scale && values.profile) throw new Error('--profile is not available with --scale');
  const spec = values.quick ? QUICK_SPEC : FULL_SPEC;
  const reps = values.reps !== undefined ? Number(values.reps) : values.quick || values.scale ? 1 : 3;
  if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps must be a positive whole number, not "${values.reps}"`);
  const cacheDir = path.resolve(values.cache ?? process.env.XENBACKUP_BENCH_DIR ?? '/var/tmp/xenbackup-bench');
  checkPrerequisites();
  fs.mkdirSync(cacheDir, { recursive: true });

  const host = machine(cacheDir);
  if (values.scale) {
    return runScale({ cacheDir, reps, projectRoot, host, keepWork: !!values['keep-work'], failOnMiss: !!values['fail-on-miss'], say });
  }
  say(`machine: ${host.nproc} cores, ${host.cpu}, ${host.memoryGiB} GiB, ${host.filesystem}; ${host.tar}; zstd ${host.zstd}`);
  const dataset = ensureDataset(cacheDir, spec, say);
  const paths = datasetPaths(cacheDir, spec);
  const work = path.join(paths.base, 'work');
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const ctx: BenchContext = {
    root: dataset.root,
    work,
    reps,
    projectRoot,
    plan: dataset.plan,
    dirtyMarker: paths.dirty,
    say,
    profileDir: values.profile ? path.join(paths.base, 'profiles', stamp) : undefined,
  };

  say(`data set: ${dataset.plan.small.length + dataset.plan.big.length} files, ${dataset.plan.dirs.length} directories, ` +
    `${(dataset.plan.totalBytes / 1e9).toFixed(2)} GB in ${dataset.root}${dataset.generated ? ' (generated now)' : ' (cached)'}`);
  say('warming the page cache');
  runShell(`tar -cf - -C '${dataset.root.replace(/'/g, `'\\''`)}' . | cat > /dev/null`);

  const results: WorkResult[] = [];
  const started = Date.now();
  const otherLoad = watchOtherLoad();
  try {
    for (const [name, bench] of [
      ['full backup', benchFull],
      ['no-change incremental', benchNoChange],
      ['1%-change incremental', benchOnePercent],
      ['one-file restore', benchRestore],
    ] as const) {
      say(`measuring: ${name} (${reps} repetition${reps > 1 ? 's' : ''})`);
      results.push(bench(ctx));
    }
  } finally {
    if (fs.existsSync(paths.dirty)) revertChange(dataset.plan, dataset.root, paths.dirty);
    if (!values['keep-work']) fs.rmSync(work, { recursive: true, force: true });
  }

  host.loadAtEnd = os.loadavg()[0]!;
  host.otherLoad = otherLoad();
  const envNote = environmentNote();
  const rows = verdicts(results);
  const fullFacts = results[0]?.facts ?? {};
  const compressed = Number(fullFacts.gnuArchiveBytes) / dataset.plan.totalBytes;
  const out = [
    '',
    `xenbackup bench (${spec.name} data set: ${dataset.plan.small.length} small files in ${dataset.plan.dirs.length} directories + ` +
      `${dataset.plan.big.length} x ${spec.bigBytes >> 20} MiB, ${(dataset.plan.totalBytes / 1e9).toFixed(2)} GB, ` +
      `zstd -1 keeps ${(100 * compressed).toFixed(0)}%; median of ${reps}, warm cache)`,
    `machine: nproc ${host.nproc}, ${host.cpu}, ${host.memoryGiB} GiB RAM, ${host.kernel}, node ${host.node}, ${host.tar}, zstd ${host.zstd}, ${host.filesystem}; ` +
      `load average ${host.loadAtStart.toFixed(1)} at start, ${host.loadAtEnd.toFixed(1)} at end`,
    describeOtherLoad(host.otherLoad),
    '',
    renderTable(rows),
    'Times are wall-clock medians; peak RSS is GNU time\'s %M (the largest single process of the command), the highest of the repetitions.',
    ...(envNote ? [envNote] : []),
    '',
    'CPU seconds (user + system, child processes included), medians:',
    '',
    renderTable(verdicts(results, 'cpu'), false),
    '',
  ];
  for (const r of results) if (r.profile) out.push(`profile of xenbackup, ${r.work}:`, formatSummary(r.profile), '');
  process.stdout.write(out.join('\n') + '\n');

  const resultsDir = path.join(paths.base, 'results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const json = JSON.stringify(
    { format: 'xenbackup-bench', version: 1, at: new Date().toISOString(), seconds: (Date.now() - started) / 1000, machine: host, spec, reps, totalBytes: dataset.plan.totalBytes, rows, results },
    null,
    1,
  );
  fs.writeFileSync(path.join(resultsDir, `${stamp}.json`), json + '\n');
  fs.writeFileSync(path.join(resultsDir, 'latest.json'), json + '\n');
  say(`results: ${path.join(resultsDir, 'latest.json')}`);
  return values['fail-on-miss'] && rows.some((r) => r.pass === false) ? 3 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
