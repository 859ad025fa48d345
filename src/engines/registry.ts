/**
 * The engines by name: the one place that knows which module implements
 * which. (Imported statically: loading each engine on first use split the
 * bundle into more chunks, and reading them cost every backup ~10 ms more
 * than compiling the two engines it does not use.)
 */
import type { EngineName } from '../medium/layout.js';
import type { Engine } from './engine.js';
import { rawEngine } from './raw/raw-engine.js';
import { rsyncEngine } from './rsync/rsync-engine.js';
import { tarEngine } from './tar/tar-engine.js';

const ENGINES: Record<EngineName, Engine> = { tar: tarEngine, rsync: rsyncEngine, raw: rawEngine };

export async function loadEngine(name: EngineName): Promise<Engine> {
  return ENGINES[name];
}
