/**
 * A test hook for the VM suite (test/vm/scenarios/32-run-kill.sh): with
 * XENBACKUP_DEBUG_PAUSE=POINT[,POINT...] in the environment, a run that reaches
 * one of those points writes "POINT" to XENBACKUP_DEBUG_PAUSE_FILE and then
 * waits forever, so the test can `kill -9` it at exactly that point (right
 * after lvcreate, after the snapshot mount, before lvremove), which polling
 * from outside cannot hit reliably. Without the variable it does nothing.
 */
import { appendFileSync } from 'node:fs';

export type PausePoint = 'after-lvcreate' | 'after-mount' | 'before-lvremove';

export async function debugPause(point: PausePoint): Promise<void> {
  const wanted = process.env.XENBACKUP_DEBUG_PAUSE;
  if (!wanted || !wanted.split(',').includes(point)) return;
  const marker = process.env.XENBACKUP_DEBUG_PAUSE_FILE;
  if (marker) appendFileSync(marker, `${point}\n`);
  // never resolves: the test kills the process here (a timer keeps the event loop alive)
  await new Promise<never>(() => setInterval(() => undefined, 60_000));
}
