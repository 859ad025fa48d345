/**
 * The VM suite: real LVM and device-mapper snapshots, which this machine's kernel cannot do, in a
 * qemu guest (TCG). Builds the guest once (test/vm/build-guest.sh, cached), boots one VM per host
 * core (XENBACKUP_VM_PARALLEL), one vCPU each, deals the scenarios of
 * test/vm/scenarios/ out among them (scenario-plan.ts), each VM running its share through
 * test/vm/guest-driver.sh, then reports each scenario as its own subtest with its log. See docs/TESTING.md.
 *
 * It never skips: a host that cannot build or boot the guest fails this test with the reason.
 * Environment: XENBACKUP_VM_SCENARIOS="10 20" runs only those; XENBACKUP_VM_UPDATE_FIXTURES=1 copies
 * the LVM output captured in the VM into test/fixtures/lvm/; XENBACKUP_VM_VERBOSE=1 streams the VM's
 * output; the XENBACKUP_VM_* variables of run-in-vm.sh apply too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseDriverOutput, describeResult, MARKER } from './scenario-log.js';
import { dealScenarios, scenarioNames, selectScenarios } from './scenario-plan.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const VM_DIR = path.join(ROOT, 'test/vm');
const FIXTURES = path.join(ROOT, 'test/fixtures/lvm');
/** The VM's own limit (run-in-vm.sh kills it after XENBACKUP_VM_TIMEOUT); this test waits a little longer. */
const VM_LIMIT_S = Number(process.env.XENBACKUP_VM_TIMEOUT ?? 3000);
const BUILD_LIMIT_MS = 15 * 60 * 1000;

/** VMs booted side by side: XENBACKUP_VM_PARALLEL, else one per host core, at most 2. */
function vmCount(): number {
  const asked = Number(process.env.XENBACKUP_VM_PARALLEL);
  if (Number.isInteger(asked) && asked >= 1) return asked;
  return Math.max(1, Math.min(2, os.availableParallelism()));
}

/**
 * vCPUs per VM (XENBACKUP_VM_CPUS wins): the host's cores shared out. More vCPU threads than cores
 * costs more than it gives under multi-threaded TCG: a vCPU that waits for a descheduled sibling
 * (TLB flushes, exclusive sections) spins. Measured: two 2-vCPU VMs on 2 cores ran each scenario
 * ~1.6x slower than one VM alone.
 */
function cpusPerVm(vms: number): string {
  return process.env.XENBACKUP_VM_CPUS ?? String(Math.max(1, Math.floor(os.availableParallelism() / vms)));
}

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command; stdout is collected (and shown live with `echo`), stderr collected. Never rejects. */
function runCommand(
  file: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs: number; onStdoutLine?: (line: string) => void; echo?: boolean },
): Promise<Finished> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { cwd: ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (opts.echo) process.stderr.write(chunk);
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) opts.onStdoutLine?.(line);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      if (opts.echo) process.stderr.write(chunk);
    });
    // run-in-vm.sh has its own limit; this one is only a backstop if the script itself hangs.
    const timer = setTimeout(() => child.kill('SIGTERM'), opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, stdout, stderr: `${stderr}\n${file}: ${err.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (partial) opts.onStdoutLine?.(partial);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * The lvs/vgs argument lists xenbackup itself uses (src/host/lvm-report.ts), so the VM captures
 * reports in exactly that format too; tab-separated for the guest's shell. Computed here because
 * importing the module in the guest costs node ~15 s under emulation. Empty if the module is absent.
 */
async function productReportArgs(): Promise<Record<string, string>> {
  const modulePath = path.join(ROOT, 'dist/src/host/lvm-report.js');
  if (!fs.existsSync(modulePath)) return {};
  const m = (await import(pathToFileURL(modulePath).href)) as { lvsArgs?: (t: string[]) => string[]; vgsArgs?: (t: string[]) => string[] };
  if (typeof m.lvsArgs !== 'function' || typeof m.vgsArgs !== 'function') return {};
  return { XENBACKUP_VM_LVS_ARGS: m.lvsArgs([]).join('\t'), XENBACKUP_VM_VGS_ARGS: m.vgsArgs([]).join('\t') };
}

const tail = (text: string, lines: number) => text.trimEnd().split('\n').slice(-lines).join('\n');

/** The top-level keys of each report entry, e.g. {"lv": ["lv_name", ...]}: what a parser depends on. */
function reportShape(json: string): Record<string, string[]> {
  const parsed = JSON.parse(json) as { report: Record<string, Record<string, string>[]>[] };
  const shape: Record<string, string[]> = {};
  for (const part of parsed.report) {
    for (const [kind, rows] of Object.entries(part)) shape[kind] = [...new Set(rows.flatMap((r) => Object.keys(r)))].sort();
  }
  return shape;
}

test('VM suite: real LVM snapshots in a qemu guest', { timeout: BUILD_LIMIT_MS + (VM_LIMIT_S + 120) * 1000 }, async (t) => {
  const verbose = process.env.XENBACKUP_VM_VERBOSE === '1';
  const artifacts = fs.mkdtempSync(path.join(os.tmpdir(), 'xenbackup-vm-artifacts-'));
  t.after(() => fs.rmSync(artifacts, { recursive: true, force: true }));

  const build = await runCommand('bash', [path.join(VM_DIR, 'build-guest.sh')], { timeoutMs: BUILD_LIMIT_MS, echo: verbose });
  if (build.code !== 0) {
    assert.fail(
      `cannot build the VM guest (test/vm/build-guest.sh exited ${build.code ?? build.signal}); ` +
        `the VM suite needs qemu-system-x86, debootstrap, cpio, busybox-static and the Debian mirror:\n${tail(build.stderr, 40)}`,
    );
  }

  const names = selectScenarios(
    scenarioNames(fs.readdirSync(path.join(VM_DIR, 'scenarios'))),
    (process.env.XENBACKUP_VM_SCENARIOS ?? '').split(/\s+/).filter(Boolean),
  );
  assert.ok(names.length > 0, `no scenario in test/vm/scenarios matches XENBACKUP_VM_SCENARIOS=${process.env.XENBACKUP_VM_SCENARIOS}`);
  const groups = dealScenarios(names, vmCount());
  const cpus = cpusPerVm(groups.length);
  const reportArgs = await productReportArgs();
  const started = Date.now();
  const vms = await Promise.all(
    groups.map(async (group, i) => {
      const vmArtifacts = path.join(artifacts, `vm${i + 1}`);
      fs.mkdirSync(vmArtifacts);
      process.stderr.write(`vm${i + 1} (${cpus} vCPU): ${group.join(' ')}\n`);
      const run = await runCommand('bash', [path.join(VM_DIR, 'run-in-vm.sh'), path.join(VM_DIR, 'guest-driver.sh'), ...group], {
        env: { ...process.env, ...reportArgs, XENBACKUP_VM_ARTIFACTS: vmArtifacts, XENBACKUP_VM_CPUS: cpus },
        timeoutMs: (VM_LIMIT_S + 60) * 1000,
        echo: verbose,
        onStdoutLine: (line) => {
          // Progress in the test log even when not verbose: one line per finished scenario.
          if (!verbose && line.startsWith(`${MARKER} end `)) process.stderr.write(`vm${i + 1}: ${line.slice(MARKER.length + 1)}\n`);
        },
      });
      return { name: `vm${i + 1}`, group, run, output: parseDriverOutput(run.stdout), artifacts: vmArtifacts };
    }),
  );
  const wall = ((Date.now() - started) / 1000).toFixed(0);
  const ran = vms.flatMap((vm) => vm.output.scenarios.map((scenario) => ({ vm, scenario })));
  process.stderr.write(`vm: ${ran.length} scenario(s) in ${vms.length} VM(s), wall time ${wall} s (exit ${vms.map((vm) => vm.run.code ?? vm.run.signal).join(', ')})\n`);

  for (const vm of vms) {
    if (vm.output.scenarios.length === 0) {
      assert.fail(`${vm.name} ran no scenario (run-in-vm.sh exited ${vm.run.code ?? vm.run.signal}):\n${tail(vm.run.stdout, 30)}\n${tail(vm.run.stderr, 80)}`);
    }
  }
  ran.sort((a, b) => a.scenario.name.localeCompare(b.scenario.name));
  for (const { vm, scenario } of ran) {
    await t.test(scenario.name, () => {
      if (scenario.finished && scenario.status === 0) return;
      // A scenario cut short by a dead VM: the console log (on stderr of run-in-vm.sh) says why.
      const why = scenario.finished ? '' : `\n--- run-in-vm.sh (${vm.name}) ---\n${tail(vm.run.stderr, 80)}`;
      assert.fail(`${describeResult(scenario)}\n--- scenario log ---\n${scenario.log}${why}`);
    });
  }
  await t.test('every VM finished and its driver reported every scenario it was given', () => {
    for (const vm of vms) {
      const { summary, scenarios } = vm.output;
      assert.ok(summary, `${vm.name}: no summary from the driver (VM exit ${vm.run.code ?? vm.run.signal}):\n${tail(vm.run.stderr, 80)}`);
      assert.equal(summary.total, scenarios.length);
      assert.deepEqual(scenarios.map((s) => s.name), vm.group, `${vm.name} ran other scenarios than it was given`);
      assert.equal(vm.run.code, summary.failed === 0 ? 0 : 1, `${vm.name}: run-in-vm.sh exit status:\n${tail(vm.run.stderr, 40)}`);
    }
  });

  await t.test('LVM output captured in the VM has the shape of the committed fixtures', () => {
    // Whichever VM ran the capturing scenario holds them.
    const captured = vms.map((vm) => path.join(vm.artifacts, 'fixtures/lvm')).find((dir) => fs.existsSync(dir)) ?? '';
    const names = captured ? fs.readdirSync(captured).sort() : [];
    if (process.env.XENBACKUP_VM_UPDATE_FIXTURES === '1') {
      fs.mkdirSync(FIXTURES, { recursive: true });
      for (const name of names) fs.copyFileSync(path.join(captured, name), path.join(FIXTURES, name));
      process.stderr.write(`vm: copied ${names.length} fixtures into ${FIXTURES}\n`);
    }
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      const committed = path.join(FIXTURES, name);
      // Scenarios only run in part (XENBACKUP_VM_SCENARIOS) or new captures: nothing to compare yet.
      if (!fs.existsSync(committed)) continue;
      assert.deepEqual(
        reportShape(fs.readFileSync(path.join(captured, name), 'utf8')),
        reportShape(fs.readFileSync(committed, 'utf8')),
        `${name}: the VM's LVM (or xenbackup's lvsArgs/vgsArgs, for vm-*-xenbackup-*) now reports other fields ` +
          `than test/fixtures/lvm/${name}; refresh with XENBACKUP_VM_UPDATE_FIXTURES=1 (docs/TESTING.md)`,
      );
    }
  });
});
