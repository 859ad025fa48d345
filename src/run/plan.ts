/**
 * What a run would do, without doing it: for `run --dry-run` and `check`.
 * Reads the config and, if the medium is already mounted, the volumes'
 * sidecars to say full or incremental. Touches nothing.
 */
import path from 'node:path';
import type { Config, Volume } from '../config/settings.js';
import { decideKind } from '../core/chain.js';
import { mountOptionLadder } from '../host/mount.js';
import { timeOfId, VolumeStore } from '../repo/volume-store.js';
import { loadEngine } from '../engines/registry.js';
import type { EngineName } from '../medium/layout.js';
import { LocalStorage } from '../storage/local-storage.js';
import { engineOf } from './run-storages.js';

function sizeText(v: Volume): string {
  const s = v.snapshotSize;
  return s.kind === 'absolute' ? `${Math.round(s.bytes / 2 ** 20)} MiB` : `${s.percent}% of the origin`;
}

/** `mediumMounted`: the backup folder can be read (so chains can be inspected). */
export async function describePlan(cfg: Config, opts: { mediumMounted: boolean; forceFull: boolean; now: Date }): Promise<string[]> {
  const lines: string[] = [];
  if (cfg.needsLocalMedium) {
    lines.push(`medium: ${cfg.backupDevice} (${cfg.backupDeviceFs || 'auto'}) on ${cfg.backupMountpoint}${opts.mediumMounted ? ' (mounted now)' : ' (would be mounted)'}`);
  } else {
    lines.push(`medium: none needed (every volume goes to RSYNC_TARGET ${cfg.rsyncTarget!.spec}, BACKUP_DOM0 off)`);
  }
  lines.push(`then: remove leftovers under ${cfg.snapshotMountDir} and snapshot LVs tagged xenbackup-snapshot`);
  const kindOf = async (volume: string, engine: EngineName): Promise<string> => {
    if (!opts.mediumMounted) return 'full or incremental (medium not mounted: chains unknown)';
    const store = new VolumeStore(new LocalStorage(cfg.backupMountpoint), cfg.hostname, volume);
    const backups = await store.list();
    const d = decideKind(backups, opts.now, { forceFull: opts.forceFull, fullIntervalDays: cfg.fullIntervalDays, maxChainLength: cfg.maxChainLength, fullWeekday: cfg.fullWeekday, fullMonthday: cfg.fullMonthday }, timeOfId);
    // An engine that cannot build on the base (raw images and file trees: the fstype was changed) makes a full.
    const base = d.kind === 'incremental' ? backups.find((b) => b.id === d.base) : undefined;
    const refused = base && (await loadEngine(engine)).refusesBase(base);
    if (refused) return `full (${refused})`;
    return `${d.kind} (${d.reason})`;
  };
  for (const [i, v] of cfg.volumes.entries()) {
    const name = `${v.domU}/${v.part}`;
    const part = v.partition !== undefined ? `, partition ${v.partition}` : '';
    const snap = `${i + 1}. ${name}: snapshot of ${v.device} (${sizeText(v)})${part}`;
    if (v.fstype === 'raw') {
      lines.push(`${snap}, raw image, not mounted (changed chunks stored), ${await kindOf(name, engineOf(v))} -> ${path.join(cfg.backupMountpoint, cfg.hostname, v.domU, v.part)}`);
      continue;
    }
    const mp = path.join(cfg.snapshotMountDir, v.domU, v.part);
    const opts1 = mountOptionLadder(v.fstype, v.mountOptions)[0]!.options.join(',');
    const mounted = `${snap}, mount -t ${v.fstype} -o ${opts1} on ${mp}, ${v.engine} engine`;
    if (v.engine === 'rsync' && cfg.rsyncTarget) {
      // The remote chains are not read here (that would need ssh): each run there is a new dated tree anyway.
      lines.push(`${mounted}, dated tree -> ${cfg.rsyncTarget.spec.replace(/\/+$/, '')}/${cfg.hostname}/${v.domU}/${v.part} (RSYNC_TARGET)`);
      continue;
    }
    lines.push(`${mounted}, ${v.engine === 'rsync' ? 'dated tree' : await kindOf(name, engineOf(v))} -> ${path.join(cfg.backupMountpoint, cfg.hostname, v.domU, v.part)}`);
  }
  if (cfg.backupDom0) lines.push(`${cfg.volumes.length + 1}. dom0/root: ${cfg.dom0Root} (one filesystem, no snapshot), ${await kindOf('dom0/root', 'tar')} -> ${path.join(cfg.backupMountpoint, cfg.hostname, 'dom0', 'root')}`);
  lines.push(`delay between volumes: ${cfg.snapMountDelaySeconds} s; concurrency ${cfg.concurrency}; compression ${cfg.compression}`);
  lines.push(`report: ${cfg.reportWhen} to ${cfg.emailTo.join(', ') || '(nobody)'} via ${cfg.smtpUrl ? 'SMTP' : cfg.sendmailPath}; log ${cfg.logFile}`);
  return lines;
}
