/**
 * Where a profiled xenbackup run spends its time: reads the .cpuprofile that
 * `node --cpu-prof` writes and sums self time per function and per source
 * file. The bench prints these for `--profile`; run on its own it
 * summarises any profile: `node dist/bench/cpuprofile.js FILE [TOP]`.
 * Only the main thread is profiled: time in child processes (zstd) shows up
 * as idle here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface HotSpot {
  /** Function name and where it is (file:line), or a file alone for the per-file list. */
  name: string;
  selfMs: number;
  /** Share of the profile's wall time. */
  share: number;
}

export interface ProfileSummary {
  file: string;
  wallMs: number;
  functions: HotSpot[];
  files: HotSpot[];
}

/** A file URL made short: relative to the project, or node's own "node:..." name. */
function shortUrl(url: string, projectRoot: string): string {
  if (!url) return '';
  if (url.startsWith('file://')) {
    const p = fileURLToPath(url);
    return p.startsWith(projectRoot + path.sep) ? path.relative(projectRoot, p) : p;
  }
  return url;
}

export function summariseCpuProfile(file: string, projectRoot: string, top = 15): ProfileSummary {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

  const functions = new Map<string, number>();
  const files = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)!.callFrame;
    const where = shortUrl(cf.url, projectRoot);
    const name = (cf.functionName || '(anonymous)') + (where ? ` ${where}:${cf.lineNumber + 1}` : '');
    functions.set(name, (functions.get(name) ?? 0) + us);
    const fileKey = where || cf.functionName;
    files.set(fileKey, (files.get(fileKey) ?? 0) + us);
  }
  const wallUs = profile.endTime - profile.startTime;
  const rank = (m: Map<string, number>): HotSpot[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, selfMs: us / 1000, share: us / wallUs }));
  return { file, wallMs: wallUs / 1000, functions: rank(functions), files: rank(files) };
}

/** The newest .cpuprofile in a folder (node names them by time and pid). */
export function newestProfile(dir: string): string {
  const names = fs.readdirSync(dir).filter((n) => n.endsWith('.cpuprofile'));
  if (names.length === 0) throw new Error(`no .cpuprofile written in ${dir}`);
  return path.join(dir, names.map((n) => [fs.statSync(path.join(dir, n)).mtimeMs, n] as const).sort((a, b) => b[0] - a[0])[0]![1]);
}

export function formatSummary(s: ProfileSummary): string {
  const line = (h: HotSpot): string => `  ${h.selfMs.toFixed(0).padStart(7)} ms ${(100 * h.share).toFixed(1).padStart(5)}%  ${h.name}`;
  return [
    `${s.file}: ${s.wallMs.toFixed(0)} ms profiled (main thread)`,
    ' top self time by function:',
    ...s.functions.map(line),
    ' by source file:',
    ...s.files.map(line),
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node dist/bench/cpuprofile.js FILE.cpuprofile [TOP]\n');
    process.exit(2);
  }
  const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  process.stdout.write(formatSummary(summariseCpuProfile(file, projectRoot, top ? Number(top) : 15)) + '\n');
}
