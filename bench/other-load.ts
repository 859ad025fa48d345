/**
 * How much CPU the rest of the machine used while the bench ran: all busy
 * CPU time (/proc/stat) minus this process's and its finished children's
 * (/proc/self/stat: utime, stime, cutime, cstime). The load average cannot
 * tell: it counts the bench's own commands, so it read "busy" after every
 * run. Everything the bench measures runs as a child it waits for, so what
 * is left is other work, which skews every number.
 */
import fs from 'node:fs';
import os from 'node:os';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/**
 * Busy time of all CPUs, without interrupt handling: the interrupts of the
 * bench's own disk I/O would count as other work. Kernel threads writing back
 * its files do count (as system time): small next to the warning's threshold.
 */
function machineBusyTicks(): number {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , , , steal] = f;
  return user! + nice! + system! + (steal ?? 0);
}

function ownTicks(): number {
  const s = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ').map(Number);
  return f[11]! + f[12]! + f[13]! + f[14]!; // utime stime cutime cstime (fields 14-17)
}

export interface OtherLoad {
  /** CPU seconds used by other processes while the bench ran. */
  otherCpuSeconds: number;
  seconds: number;
  /** otherCpuSeconds per second: how many of the machine's cores other work kept busy, on average. */
  cores: number;
}

/** Starts counting; the returned function tells what other work used since. */
export function watchOtherLoad(): () => OtherLoad {
  const busy0 = machineBusyTicks();
  const own0 = ownTicks();
  const t0 = process.hrtime.bigint();
  return () => {
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const otherCpuSeconds = Math.max(0, machineBusyTicks() - busy0 - (ownTicks() - own0)) / TICKS_PER_SECOND;
    return { otherCpuSeconds, seconds, cores: seconds > 0 ? otherCpuSeconds / seconds : 0 };
  };
}

/** One line for the output; a WARNING when other work averaged more than a tenth of a core. */
export function describeOtherLoad(o: OtherLoad): string {
  const line = `other work on the machine used ${o.otherCpuSeconds.toFixed(1)} CPU-s in the bench's ${o.seconds.toFixed(0)} s (${o.cores.toFixed(2)} of ${os.availableParallelism()} cores)`;
  return o.cores > 0.1 ? `WARNING: ${line}; these numbers are not comparable` : line;
}
