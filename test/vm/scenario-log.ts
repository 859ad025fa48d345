/**
 * Reads the output of test/vm/guest-driver.sh back into per-scenario results, so that vm.test.ts
 * can turn each VM scenario into its own subtest with its own log.
 *
 * The driver frames each scenario with marker lines (always alone on a line):
 *   @@xenbackup-vm begin NAME
 *   @@xenbackup-vm end NAME status=N seconds=S
 *   @@xenbackup-vm summary total=T passed=P failed=F
 * A scenario that began but never ended (the VM died or was killed) has `finished: false`.
 */

export const MARKER = '@@xenbackup-vm';

export interface ScenarioResult {
  name: string;
  /** The scenario's exit status; undefined when it never finished. */
  status: number | undefined;
  seconds: number | undefined;
  finished: boolean;
  /** Its output, markers excluded. */
  log: string;
}

export interface DriverSummary {
  total: number;
  passed: number;
  failed: number;
}

export interface DriverOutput {
  scenarios: ScenarioResult[];
  summary: DriverSummary | undefined;
  /** Output outside any scenario (the driver's own messages). */
  other: string;
}

const BEGIN = /^@@xenbackup-vm begin (\S+)$/;
const END = /^@@xenbackup-vm end (\S+) status=(\d+) seconds=([\d.]+)$/;
const SUMMARY = /^@@xenbackup-vm summary total=(\d+) passed=(\d+) failed=(\d+)$/;

export function parseDriverOutput(text: string): DriverOutput {
  const scenarios: ScenarioResult[] = [];
  let summary: DriverSummary | undefined;
  const other: string[] = [];
  let current: { result: ScenarioResult; lines: string[] } | undefined;

  const close = () => {
    if (!current) return;
    current.result.log = current.lines.join('\n');
    scenarios.push(current.result);
    current = undefined;
  };

  for (const line of text.split('\n')) {
    let m: RegExpMatchArray | null;
    if ((m = line.match(BEGIN))) {
      close();
      current = { result: { name: m[1]!, status: undefined, seconds: undefined, finished: false, log: '' }, lines: [] };
    } else if ((m = line.match(END)) && current && current.result.name === m[1]) {
      current.result.status = Number(m[2]);
      current.result.seconds = Number(m[3]);
      current.result.finished = true;
      close();
    } else if ((m = line.match(SUMMARY))) {
      close();
      summary = { total: Number(m[1]), passed: Number(m[2]), failed: Number(m[3]) };
    } else if (current) {
      current.lines.push(line);
    } else {
      other.push(line);
    }
  }
  close();
  return { scenarios, summary, other: other.join('\n').trim() };
}

/** One line per scenario, for progress output: "10-foo: passed (63.2 s)". */
export function describeResult(r: ScenarioResult): string {
  if (!r.finished) return `${r.name}: did not finish`;
  return `${r.name}: ${r.status === 0 ? 'passed' : `FAILED (exit ${r.status})`} (${r.seconds} s)`;
}
