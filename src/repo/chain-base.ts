/**
 * The backup an incremental builds on, opened. decideKind (core/chain.ts)
 * picks the base from the sidecars alone; here the tar and the raw engine
 * open its manifest. The decision stays incremental only when the base was
 * made by an engine whose manifest this one can build on and the manifest
 * opens; otherwise the backup becomes a full, with the reason, and with a
 * warning when the manifest is damaged (never a silent wrong incremental).
 */
import type { KindDecision } from '../core/chain.js';
import type { Logger } from '../util/log.js';
import type { Sidecar } from '../medium/sidecar.js';

export interface OpenedBase<T> {
  decision: KindDecision;
  /** The base's manifest as the engine reads it; null for a full. */
  previous: T | null;
  /** The warning given when the base's manifest was unusable. */
  warning?: string;
}

export function openBase<T>(
  decision: KindDecision,
  backups: Sidecar[],
  volume: string,
  /** Why this engine cannot build on `base` (another engine made it), or undefined when it can. */
  refuse: (base: Sidecar) => string | undefined,
  /** Opens the base's manifest; throws when it is unusable (damaged, missing). */
  open: (base: Sidecar) => T,
  log: Logger,
): OpenedBase<T> {
  if (decision.kind !== 'incremental') return { decision, previous: null };
  const baseId = decision.base;
  const base = backups.find((b) => b.id === baseId)!;
  const refused = refuse(base);
  if (refused) return { decision: { kind: 'full', reason: refused }, previous: null };
  try {
    return { decision, previous: open(base) };
  } catch (e) {
    const warning = `${volume}: the manifest of ${base.id} is unusable (${(e as Error).message}); making a full backup instead`;
    log.warn(warning);
    return { decision: { kind: 'full', reason: 'previous manifest unusable' }, previous: null, warning };
  }
}
