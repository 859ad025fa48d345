/**
 * A garbage collection when the native memory V8 holds for JavaScript
 * objects has grown by `step` bytes since the last one. A backup hands V8
 * many short-lived native buffers (listings, manifest frames) and little
 * else, and V8 left ~80 MB of them uncollected at times. Node offers gc()
 * only with --expose-gc; the flag set at run time gives it to a new
 * context, and that gc() collects the whole isolate.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

let gc: (() => void) | undefined;
let after = 0;

export function collectGarbageAbove(step: number): void {
  const external = v8.getHeapStatistics().external_memory;
  if (external < after + step) return;
  if (!gc) {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as () => void;
  }
  gc();
  after = v8.getHeapStatistics().external_memory;
}
