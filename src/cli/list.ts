/**
 * `xenbackup list`: the backups per volume in chain order. The --json form is
 * a stable interface (documented in the README): an array of volumes, each
 * with its backups {id, time, kind, base, chain, status, files, bytes,
 * archiveBytes, archive, manifest}.
 */
import type { Command } from 'commander';
import { volumesOnMedium } from '../repo/medium-index.js';
import { timeOfId, VolumeStore } from '../repo/volume-store.js';
import { formatBytes, formatCount } from '../report/format.js';
import { CliError, defaultHost } from './common.js';

export interface ListedBackup {
  id: string;
  time: string;
  kind: 'full' | 'incremental';
  base: string | null;
  chain: string;
  status: 'complete' | 'partial';
  files: number;
  bytes: number;
  archiveBytes: number;
  archive: string;
  manifest: string;
}

export function listVolume(store: VolumeStore): ListedBackup[] {
  return store.list().map((s) => ({
    id: s.id,
    time: timeOfId(s.id).toISOString(),
    kind: s.kind,
    base: s.base,
    chain: s.chain,
    status: s.status,
    files: s.stats.entries,
    bytes: s.stats.sourceBytes,
    archiveBytes: s.archiveBytes,
    archive: store.pathOf(s.archive),
    manifest: store.pathOf(s.manifest),
  }));
}

export function registerList(program: Command): void {
  program
    .command('list')
    .description('list the backups on the medium, per volume, in chain order')
    .argument('[domU/part]', 'only this volume')
    .requiredOption('--medium <dir>', 'the backup medium')
    .option('--host <name>', 'host folder on the medium', defaultHost())
    .option('--json', 'machine-readable output (stable; see README)')
    .addHelpText('after', `
Examples:
  xenbackup list --medium /backup/guests
  xenbackup list web1/root --medium /backup/guests --json | jq '.[0].backups[-1].archive'`)
    .action((volume: string | undefined, o: { medium: string; host: string; json?: boolean }) => {
      const stores = volume ? [new VolumeStore(o.medium, o.host, volume)] : volumesOnMedium(o.medium, o.host);
      if (volume && !stores[0]!.exists()) throw new CliError(`no backups of ${volume} on ${o.medium} for host ${o.host}`);
      const data = stores.map((s) => ({ volume: s.volume, backups: listVolume(s) }));
      if (o.json) {
        process.stdout.write(JSON.stringify(data, null, 2) + '\n');
        return;
      }
      if (data.length === 0) {
        process.stdout.write(`no backups on ${o.medium} for host ${o.host}\n`);
        return;
      }
      for (const v of data) {
        process.stdout.write(`${v.volume}\n`);
        for (const b of v.backups) {
          const mark = b.kind === 'full' ? 'full' : ' incr';
          process.stdout.write(
            `  ${b.id}  ${mark.padEnd(5)} ${b.status === 'partial' ? 'PARTIAL ' : ''}${formatCount(b.files).padStart(9)} entries ${formatBytes(b.bytes).padStart(10)} -> ${formatBytes(b.archiveBytes).padStart(10)}  ${b.archive}\n`,
          );
        }
      }
    });
}
