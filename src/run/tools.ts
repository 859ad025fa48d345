/**
 * The programs a run of this config will start, each with why and the
 * Debian package that has it, so `check` can name every missing one before
 * a night finds it. Only what this config reaches is listed (no rsync
 * without an rsync volume or RSYNC_TARGET). The archives themselves need
 * no tar or zstd binary: xenbackup writes tar and zstd in-process; only
 * reading a zstd archive back (VERIFY_AFTER_RUN=full) runs `zstd -d`.
 *
 * A guest fstype's own helpers (ntfs-3g, btrfstune ...) are checked per
 * volume by preflight (host/guest-fs.ts toolsFor), with the volume's line.
 */
import { access, constants, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/settings.js';

export interface NeededTool {
  program: string;
  /** What of the run needs it, e.g. "the sweep of leftover snapshots". */
  why: string;
  pkg: string;
}

export function toolsNeeded(cfg: Config): NeededTool[] {
  const tools: NeededTool[] = [];
  const need = (program: string, why: string, pkg: string): void => {
    const known = tools.find((t) => t.program === program);
    if (!known) tools.push({ program, why, pkg });
  };
  // Every run sweeps leftovers of a crashed one: snapshots tagged as ours (lvs, lvremove) and mounts.
  need('lvs', 'the sweep of leftover snapshots (every run)', 'lvm2');
  const guests = cfg.volumes.length > 0;
  if (guests) {
    need('lvcreate', 'the snapshot of each volume', 'lvm2');
    need('lvremove', 'removing each snapshot', 'lvm2');
  }
  const mountsGuests = cfg.volumes.some((v) => v.fstype !== 'raw');
  if (cfg.needsLocalMedium) need('mount', 'mounting the medium BCKDEV', 'mount');
  else if (mountsGuests) need('mount', 'mounting the snapshots', 'mount');
  if (cfg.needsLocalMedium || mountsGuests) need('umount', cfg.needsLocalMedium ? 'unmounting the medium' : 'unmounting the snapshots', 'mount');
  if (cfg.needsLocalMedium && /^(UUID|LABEL|PARTUUID|PARTLABEL)=/.test(cfg.backupDevice)) need('findfs', `finding BCKDEV ${cfg.backupDevice}`, 'util-linux');
  if (cfg.volumes.some((v) => v.partition !== undefined)) {
    need('losetup', 'the partition= of a volume (a loop device on the snapshot)', 'mount');
    need('partx', 'the partition= of a volume', 'util-linux');
  }
  if (cfg.volumes.some((v) => v.engine === 'rsync')) need('rsync', 'the volumes with engine=rsync', 'rsync');
  if (cfg.rsyncTarget) {
    need('rsync', `RSYNC_TARGET ${cfg.rsyncTarget.spec}`, 'rsync');
    need('ssh', `RSYNC_TARGET ${cfg.rsyncTarget.spec}`, 'openssh-client');
  }
  if (cfg.verifyAfterRun === 'full' && cfg.compression === 'zstd') need('zstd', 'VERIFY_AFTER_RUN=full reading zstd archives back', 'zstd');
  return tools;
}

/**
 * Whether `program` is on the PATH a run uses: the caller's, plus the sbin
 * directories host/exec.ts adds (a user crontab's PATH lacks them).
 */
export async function onRunPath(program: string, envPath: string | undefined = process.env.PATH): Promise<boolean> {
  const dirs = [...(envPath ?? '').split(':').filter(Boolean), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const d of dirs) if (await isExecutableFile(path.join(d, program))) return true;
  return false;
}

async function isExecutableFile(p: string): Promise<boolean> {
  try {
    await access(p, constants.X_OK);
  } catch {
    return false;
  }
  return (await stat(p).catch(() => undefined))?.isFile() ?? false;
}

/** One line per tool the config needs that is not installed; empty when all are. */
export async function missingTools(cfg: Config): Promise<string[]> {
  const problems: string[] = [];
  for (const t of toolsNeeded(cfg)) {
    if (!(await onRunPath(t.program))) problems.push(`${t.program} is not installed (or not on PATH), and ${t.why} needs it (apt-get install ${t.pkg})`);
  }
  return problems;
}
