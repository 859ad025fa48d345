/**
 * The engines by name: the one place that knows which module implements
 * which. Loaded on first use, so a command that touches one engine does not
 * load the others.
 */
import type { EngineName } from '../medium/layout.js';
import type { Engine } from './engine.js';

export async function loadEngine(name: EngineName): Promise<Engine> {
  switch (name) {
    case 'tar':
      return (await import('./tar/tar-engine.js')).tarEngine;
    case 'rsync':
      return (await import('./rsync/rsync-engine.js')).rsyncEngine;
    case 'raw':
      return (await import('./raw/raw-engine.js')).rawEngine;
  }
}
