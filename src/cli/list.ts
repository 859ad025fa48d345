/**
 * `xenbackup list`: the backups per volume in chain order, with what each
 * needs to be restored, its size, and what `prune` would do next (by the
 * rules of --config or --ttl/--keep-*, as prune takes them). The --json form
 * is a stable interface (documented in the README): an array of volumes
 * {volume, backups, chains, newestCompleteRestorePoint, prune}, each backup
 * {id, time, kind, base, chain, status, files, bytes, archiveBytes, archive,
 * manifest} plus {needs, restorable, sizeBytes, restoreBytes, prune}, and
 * {engine, raw}: raw is null except for a raw backup (an image of a block
 * device), where it holds {imageBytes, chunkSize, chunks, storedChunks,
 * zeroChunks, unchangedChunks} (files counts the image's chunks, bytes is
 * the image's size). Fields are only ever added.
 */
import type { Command } from 'commander';
import pLimit from 'p-limit';
import { needs } from '../core/chain.js';
import { describeRules, RetentionRulesError, type RetentionRules } from '../core/retention.js';
import { backupBytes, pruneVolume, type VolumePruneResult } from '../repo/prune.js';
import { archiveBytesOf, type RawInfo, type Sidecar } from '../medium/sidecar.js';
import { timeOfId, type VolumeStore } from '../repo/volume-store.js';
import { formatBytes, formatCount } from '../report/format.js';
import { addSshOptions, EXIT, openConsole, type SshCliOptions } from './common.js';
import { addRuleOptions, resolveTarget, storesFor, type RuleOptions } from './prune.js';

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
  engine: Sidecar['engine'];
  /** A raw backup's image and chunk counts; null for tar and rsync backups. */
  raw: ListedRawImage | null;
}

/** A raw backup's image and chunk counts (the sidecar's raw section, less the device and hash). */
export type ListedRawImage = Omit<RawInfo, 'imageXxh64' | 'device'>;

function rawImageOf(s: Sidecar): ListedRawImage | null {
  if (s.engine !== 'raw') return null;
  const r = s.raw;
  return { imageBytes: r.imageBytes, chunkSize: r.chunkSize, chunks: r.chunks, storedChunks: r.storedChunks, zeroChunks: r.zeroChunks, unchangedChunks: r.unchangedChunks };
}

/** `onProblem`: each sidecar that cannot be read (damaged or hostile), named with its file; it is left out of the list. */
export async function listVolume(store: VolumeStore, onProblem?: (msg: string) => void): Promise<ListedBackup[]> {
  return listedBackups(store, await store.list(onProblem));
}

function listedBackups(store: VolumeStore, sidecars: Sidecar[]): ListedBackup[] {
  return sidecars.map((s) => ({
    id: s.id,
    time: timeOfId(s.id).toISOString(),
    kind: s.kind,
    base: s.base,
    chain: s.chain,
    status: s.status,
    files: s.stats.entries,
    bytes: s.stats.sourceBytes,
    archiveBytes: archiveBytesOf(s),
    archive: store.show(s.archive),
    manifest: store.show(s.manifest),
    engine: s.engine,
    raw: rawImageOf(s),
  }));
}

/** What `list` adds to each backup: its chain, its size, and prune's verdict. */
export interface ListedBackupDetail extends ListedBackup {
  /** Ids a restore of this backup reads, oldest first, itself last; empty when its chain is broken. */
  needs: string[];
  restorable: boolean;
  /** Bytes of its files on the medium: archive, manifest and sidecar. */
  sizeBytes: number;
  /** Archive bytes a whole-volume restore of it reads (the archives it needs). */
  restoreBytes: number;
  /** What the next prune would do; null when the rules are refused. */
  prune: { action: 'keep' | 'delete'; reasons: string[] } | null;
}

export interface ListedChain {
  /** The id of the full that starts it. */
  full: string;
  backups: string[];
  archiveBytes: number;
  sizeBytes: number;
  /** The full is on the medium, so every backup of the chain can be restored. */
  restorable: boolean;
}

export interface ListedVolume {
  volume: string;
  backups: ListedBackupDetail[];
  chains: ListedChain[];
  newestCompleteRestorePoint: string | null;
  prune: { rules: RetentionRules; delete: string[]; freedBytes: number; keep: number; refused?: string };
}

/** One volume with its chains and what prune would do next by `rules`. */
export async function listVolumeDetail(store: VolumeStore, rules: RetentionRules, now: Date, onProblem?: (msg: string) => void): Promise<ListedVolume> {
  const sidecars = await store.list(onProblem);
  let pruned: VolumePruneResult | undefined;
  let refused: string | undefined;
  try {
    pruned = await pruneVolume(store, rules, { dryRun: true, now });
  } catch (e) {
    if (!(e instanceof RetentionRulesError)) throw e;
    refused = e.message;
  }
  const item = new Map(pruned?.decision.items.map((i) => [i.backup.id, i]));
  const byId = new Map(sidecars.map((s) => [s.id, s]));
  const needsOf = (s: Sidecar): string[] => {
    try {
      return needs(sidecars, s).map((x) => x.id);
    } catch {
      return [];
    }
  };
  // A few sizes at once: on an ssh server each is a round trip.
  const limit = pLimit(4);
  const sizes = await Promise.all(sidecars.map((s) => limit(() => backupBytes(store, s))));
  const backups = listedBackups(store, sidecars).map((b, i): ListedBackupDetail => {
    const s = sidecars[i]!;
    const need = needsOf(s);
    const verdict = item.get(s.id);
    return {
      ...b,
      needs: need,
      restorable: need.length > 0,
      sizeBytes: sizes[i]!,
      restoreBytes: need.reduce((n, id) => n + archiveBytesOf(byId.get(id)!), 0),
      prune: verdict ? { action: verdict.keep ? 'keep' : 'delete', reasons: verdict.reasons } : null,
    };
  });
  const chains = new Map<string, ListedChain>();
  for (const b of backups) {
    const c = chains.get(b.chain) ?? { full: b.chain, backups: [], archiveBytes: 0, sizeBytes: 0, restorable: byId.get(b.chain)?.kind === 'full' };
    c.backups.push(b.id);
    c.archiveBytes += b.archiveBytes;
    c.sizeBytes += b.sizeBytes;
    chains.set(b.chain, c);
  }
  return {
    volume: store.volume,
    backups,
    chains: [...chains.values()],
    newestCompleteRestorePoint: pruned?.decision.newestComplete?.id ?? null,
    prune: {
      rules,
      delete: pruned ? pruned.deleted.map((d) => d.id).reverse() : [],
      freedBytes: pruned ? pruned.deleted.reduce((n, d) => n + d.bytes, 0) : 0,
      keep: pruned ? pruned.decision.keep.length : sidecars.length,
      ...(refused ? { refused } : {}),
    },
  };
}

function printVolume(v: ListedVolume, write: (s: string) => void): void {
  const size = v.chains.reduce((n, c) => n + c.sizeBytes, 0);
  const next = v.prune.refused
    ? `prune refuses these rules: ${v.prune.refused}`
    : v.prune.delete.length
      ? `next prune (${describeRules(v.prune.rules)}) deletes ${v.prune.delete.length} (${formatBytes(v.prune.freedBytes)}), keeps ${v.prune.keep}`
      : `next prune (${describeRules(v.prune.rules)}) deletes nothing`;
  write(`${v.volume}\n`);
  write(`  ${v.chains.length} chain${v.chains.length === 1 ? '' : 's'}, ${v.backups.length} backups, ${formatBytes(size)}; ${next}\n`);
  for (const c of v.chains) {
    write(`  chain of ${c.full}: ${c.backups.length} backup${c.backups.length === 1 ? '' : 's'}, ${formatBytes(c.sizeBytes)}${c.restorable ? '' : ' (its full is gone: cannot be restored)'}\n`);
    for (const b of v.backups.filter((x) => x.chain === c.full)) {
      const mark = b.kind === 'full' ? 'full' : ' incr';
      const what = b.raw
        ? `raw image ${formatBytes(b.raw.imageBytes)}: ${formatCount(b.raw.chunks)} chunks (${formatCount(b.raw.storedChunks)} stored, ${formatCount(b.raw.zeroChunks)} zero, ${formatCount(b.raw.unchangedChunks)} unchanged)`
        : `${formatCount(b.files).padStart(9)} entries ${formatBytes(b.bytes).padStart(10)}`;
      write(`  ${b.id}  ${mark.padEnd(5)} ${b.status === 'partial' ? 'PARTIAL ' : ''}${what} -> ${formatBytes(b.archiveBytes).padStart(10)}  ${b.archive}\n`);
      const needText = b.restorable ? `needs ${b.needs.length === 1 ? 'only itself' : `${b.needs.length} archives from ${b.needs[0]}`} (${formatBytes(b.restoreBytes)})` : 'CANNOT BE RESTORED (chain broken)';
      const pruneText = b.prune ? `next prune: ${b.prune.action === 'keep' ? 'keep' : 'DELETE'} (${b.prune.reasons.join('; ')})` : '';
      write(`      ${needText}${pruneText ? `; ${pruneText}` : ''}\n`);
    }
  }
}

export function registerList(program: Command): void {
  const cmd = program
    .command('list')
    .description('list the backups per volume in chain order: what each needs, its size, and what prune would do next')
    .argument('[domU/part]', 'only this volume')
    .option('--medium <dir>', 'the backup medium: a directory, or user@host:/path (RSYNC_TARGET) over ssh')
    .option('-c, --config <file>', 'take BCKMNTP, HOSTN and the prune rules from this config (the medium must be mounted; with a remote --medium: also RSYNC_SSH_*)')
    .option('--host <name>', "host folder on the medium (default: HOSTN of --config, else this machine's name)")
    .option('--json', 'machine-readable output (stable; see README)');
  addRuleOptions(addSshOptions(cmd)).addHelpText('after', `
The "next prune" column uses the rules of --config, or --ttl/--keep-* (default
ARCHIVE_TTL_DAYS=5, no KEEP_* rule), exactly as \`xenbackup prune\` would.
On a remote medium (user@host:/path) the sidecars are read over ssh, and each
backup's size is measured on that host.

Examples:
  xenbackup list --medium /backup/guests
  xenbackup list --config /etc/xenbackup.conf
  xenbackup list web1/root --medium /backup/guests --ttl 3 --keep-weekly 4
  xenbackup list web1/root --medium /backup/guests --json | jq '.[0].backups[-1].archive'
  xenbackup list --medium backup@store:/srv/xenbackup --ssh-key /root/.ssh/xenbackup

Exit codes: 0 listed (also when the medium holds no backups of the host); 1 a file
there is damaged or hostile (the line names it); 2 bad arguments or config error;
4 the --medium folder does not exist, or the medium of --config is not mounted.`)
    .action(async (volume: string | undefined, o: RuleOptions & SshCliOptions & { medium?: string; config?: string; host?: string; json?: boolean }) => {
      const { log } = openConsole({ quiet: true });
      const target = await resolveTarget(o, false, log);
      const now = new Date();
      // A sidecar that cannot be read is left out of the list and named on stderr, one line each; exit 1.
      const problems: string[] = [];
      const data: ListedVolume[] = [];
      for (const store of await storesFor(target.medium, target.host, volume ? [volume] : [])) {
        data.push(await listVolumeDetail(store, target.rules, now, (m) => problems.push(m)));
      }
      for (const p of problems) process.stderr.write(`xenbackup: ${p}\n`);
      if (problems.length) process.exitCode = EXIT.failed;
      if (o.json) {
        process.stdout.write(JSON.stringify(data, null, 2) + '\n');
        return;
      }
      if (data.length === 0) {
        process.stdout.write(`no backups on ${target.medium.shown} for host ${target.host}\n`);
        return;
      }
      for (const v of data) printVolume(v, (s) => process.stdout.write(s));
    });
}
