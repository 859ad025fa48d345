/**
 * Which VM runs which scenario. The suite boots one VM per host core, each with one vCPU (on 2 cores
 * two 1-vCPU VMs ran the suite in 841 s, one 2-vCPU VM in 1158 s; see vm.test.ts), and deals the
 * scenarios out by how long each took when measured (longest first, each to the least loaded VM),
 * so that the VMs finish at about the same time.
 */

/** Seconds each scenario took in one 2-vCPU VM on an idle 2-core host (docs/TESTING.md): weights for the dealing; a new one counts as 120. */
export const MEASURED_SECONDS: Readonly<Record<string, number>> = {
  '10-snapshot-ext4-xfs': 54,
  '20-snapshot-overflow': 26,
  '30-run-live': 155,
  '31-run-failures': 220,
  '32-run-kill-early': 121,
  '33-run-kill-late': 214,
  '34-run-dirty-partitioned': 81,
  '35-run-no-medium': 29,
  '40-run-guest-kinds': 176,
  '45-run-raw': 77,
};
const UNKNOWN_SECONDS = 120;

/** The scenario names of a folder listing (NN-name.sh|mjs|ts), in name order, as guest-driver.sh runs them. */
export function scenarioNames(files: readonly string[]): string[] {
  return files
    .filter((f) => /^\d+-.*\.(sh|mjs|ts)$/.test(f) && !f.endsWith('.d.ts'))
    .map((f) => f.replace(/\.(sh|mjs|ts)$/, ''))
    .sort();
}

/** The names that XENBACKUP_VM_SCENARIOS-style filters (names or name prefixes) select; all when none. */
export function selectScenarios(names: readonly string[], filters: readonly string[]): string[] {
  if (filters.length === 0) return [...names];
  return names.filter((n) => filters.some((f) => n.startsWith(f)));
}

/** Splits scenarios over at most `vms` VMs; each group keeps name order (the driver runs it so). No empty groups. */
export function dealScenarios(names: readonly string[], vms: number, seconds: Readonly<Record<string, number>> = MEASURED_SECONDS): string[][] {
  const count = Math.max(1, Math.min(Math.floor(vms), names.length));
  const groups = Array.from({ length: count }, () => ({ names: [] as string[], load: 0 }));
  const cost = (n: string) => seconds[n] ?? UNKNOWN_SECONDS;
  const longestFirst = [...names].sort((a, b) => cost(b) - cost(a) || a.localeCompare(b));
  for (const name of longestFirst) {
    const lightest = groups.reduce((min, g) => (g.load < min.load ? g : min));
    lightest.names.push(name);
    lightest.load += cost(name);
  }
  return groups.filter((g) => g.names.length > 0).map((g) => g.names.sort());
}
