/**
 * The corpus's table of cases and how one is run: a fresh copy of the golden
 * world, the case's edit, then each command the case concerns, the sentinel
 * compared after every command. A case collects every problem before it
 * fails, so one run says all that is wrong with a medium, not the first.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildGolden, cloneWorld, fastTmp, HOST, judgeRun, quickChanges, runCli, sentinelChanges, takeSentinel, VOLUME, type World } from './hostile-media.js';

export type Cmd = 'list' | 'ls' | 'verify-quick' | 'verify' | 'restore' | 'restore-force' | 'prune-dry' | 'prune' | 'backup';

/**
 * The order commands run in: the read-only ones first, side by side (they
 * only read the medium), then restore into --to, prune (which deletes) last.
 */
const READ_ONLY: Cmd[] = ['list', 'ls', 'verify-quick', 'verify', 'prune-dry'];
const IN_TURN: Cmd[] = ['restore', 'restore-force', 'prune', 'backup'];

/** The commands a sidecar case runs unless it says otherwise: every reader of sidecars, prune for real. */
export const ALL_CMDS: Cmd[] = [...READ_ONLY, ...IN_TURN.filter((c) => c !== 'backup')];

export interface HostileCase {
  name: string;
  /** The attacker's edit of the fresh world. */
  setup?: (w: World) => void | Promise<void>;
  /** The commands to run and the exit codes the README documents for this medium. */
  expect: Partial<Record<Cmd, number | number[]>>;
  /** Arguments replacing the default ones of a command (the world's paths in hand). */
  argv?: (w: World) => Partial<Record<Cmd, string[]>>;
  /** A file name a failing verify (or the commands listed in nameIn) must mention: the damage names the file. */
  names?: string | ((w: World) => string);
  nameIn?: Cmd[];
  /** The path ls lists (default: the root). */
  lsPath?: string;
  /** Seconds a command may take (default 30). */
  timeoutSec?: number;
}

export function defaultArgs(w: World): Record<Cmd, string[]> {
  const m = ['--medium', w.medium, '--host', HOST];
  // A run lock of the world's own, beside it (the world is the sentinel): cases run two at a time, and the machine's /run/xenbackup.lock would make one exit 3.
  const rules = ['--ttl', '0', '--keep-last', '1', '--lock-file', `${w.root}.lock`];
  return {
    list: ['list', ...m],
    ls: ['ls', VOLUME, '', ...m, '-l'],
    'verify-quick': ['verify', ...m, '--quick'],
    verify: ['verify', ...m],
    restore: ['restore', VOLUME, ...m, '--to', w.to],
    'restore-force': ['restore', VOLUME, ...m, '--to', w.to, '--force'],
    'prune-dry': ['prune', ...m, ...rules, '--dry-run'],
    prune: ['prune', ...m, ...rules],
    backup: ['backup', w.src, '--volume', VOLUME, ...m],
  };
}

let golden: World | undefined;
let scratch: string | undefined;
let counter = 0;

/**
 * The golden world, built once per test file (four real backups take a few
 * seconds: ids are seconds). Synchronous, so cases that run side by side
 * (the suites run two at a time, each in a world of its own) share one.
 */
export function goldenWorld(): World {
  if (!golden) {
    scratch = fs.mkdtempSync(path.join(fastTmp(), 'xenbackup-hostile-'));
    golden = buildGolden(path.join(scratch, 'golden'));
  }
  return golden;
}

export function removeScratch(): void {
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
  golden = undefined;
}

/** Runs one case; returns every problem found (empty: the case holds). */
export async function runCase(c: HostileCase): Promise<string[]> {
  const g = goldenWorld();
  const w = cloneWorld(g, path.join(scratch!, `case-${++counter}`));
  try {
    await c.setup?.(w);
    const before = await takeSentinel(w);
    const args = { ...defaultArgs(w), ...c.argv?.(w) };
    if (c.lsPath !== undefined) args.ls = ['ls', VOLUME, c.lsPath, ...args.ls.slice(3)];
    const mustName = typeof c.names === 'function' ? c.names(w) : c.names;
    const nameIn = c.nameIn ?? ['verify-quick', 'verify'];
    const problems: string[] = [];
    const run = async (cmd: Cmd): Promise<void> => {
      const want = c.expect[cmd]!;
      const r = await runCli(args[cmd], (c.timeoutSec ?? 30) * 1000);
      const what = `${cmd} (${args[cmd].join(' ').replaceAll(w.root, '…')})`;
      problems.push(...judgeRun(what, r, Array.isArray(want) ? want : [want], nameIn.includes(cmd) ? mustName : undefined));
    };
    const group = READ_ONLY.filter((cmd) => c.expect[cmd] !== undefined);
    await Promise.all(group.map(run));
    if (group.length) for (const d of quickChanges(w, before)) problems.push(`${group.join(', ')}: changed outside: ${d}`);
    for (const cmd of IN_TURN.filter((x) => c.expect[x] !== undefined)) {
      await run(cmd);
      for (const d of quickChanges(w, before)) problems.push(`${cmd}: changed outside: ${d}`);
    }
    // The full record (xattrs and ACLs too) once at the end.
    for (const d of await sentinelChanges(w, before)) problems.push(`changed outside (full record): ${d}`);
    return problems;
  } finally {
    fs.rmSync(w.root, { recursive: true, force: true });
  }
}

export async function assertCase(c: HostileCase): Promise<void> {
  const problems = await runCase(c);
  if (problems.length) assert.fail(`${c.name}:\n  ${problems.join('\n  ')}`);
}
