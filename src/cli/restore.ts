/**
 * `xenbackup restore` and `xenbackup ls`: read a volume's backups back,
 * whatever engine made them and wherever they are kept: the backup is
 * chosen here (engines/restore-point.ts) and its engine restores it
 * (engines/restore.ts). A raw backup (a block device's image) is restored
 * whole to a file or onto a device; ls on it says how to get at its files.
 */
import type { Command } from 'commander';
import { normaliseRequest, listDirectory, planRestore, UnsafePathError } from '../core/restore-plan.js';
import { baseName, safeComponents, showPath } from '../core/path-order.js';
import { ManifestFormatError, type ManifestEntry } from '../core/manifest.js';
import { loadEngine } from '../engines/registry.js';
import { chooseBackup, withPlanBlocks } from '../engines/restore-point.js';
import { RestoreError } from '../engines/restore-errors.js';
import { VolumeStore } from '../repo/volume-store.js';
import { addSshOptions, CliError, defaultHost, EXIT, openConsole, parseAt, type SshCliOptions } from './common.js';
import { requireMediumRoot, resolveMedium, type ResolvedMedium } from './medium-option.js';
import type { Logger } from '../util/log.js';
import type { Sidecar } from '../medium/sidecar.js';

/** The volume's folder on the medium; one with no backups is a usage error (a medium that is not there: exit 4). */
async function volumeStore(volume: string, medium: ResolvedMedium, host: string, log: Logger): Promise<VolumeStore> {
  let store: VolumeStore;
  try {
    store = new VolumeStore(medium.storage, host, volume);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  if (!(await store.exists()) || (await store.list((m) => log.warn(m))).length === 0) {
    await requireMediumRoot(medium);
    throw new CliError(`unknown volume ${volume}: no backups of it on ${medium.shown} for host ${host}`);
  }
  return store;
}

const TYPE_CHAR: Record<ManifestEntry['type'], string> = { file: '-', dir: 'd', symlink: 'l', char: 'c', block: 'b', fifo: 'p' };
function modeString(e: ManifestEntry): string {
  const m = e.mode;
  const r = (bits: number, s: number, sChar: string): string =>
    (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (s ? (bits & 1 ? sChar : sChar.toUpperCase()) : bits & 1 ? 'x' : '-');
  return TYPE_CHAR[e.type] + r(m >> 6, m & 0o4000, 's') + r(m >> 3, m & 0o2000, 's') + r(m, m & 0o1000, 't');
}

/** The newest backup at or before --at, for the CLI: no backups or none that early is a usage error. */
async function chosenBackup(store: VolumeStore, at: Date | undefined, log: Logger): Promise<Sidecar> {
  try {
    return await chooseBackup(store, at, log);
  } catch (e) {
    // none that early is usage; a damaged medium keeps its own code (error-exit.ts)
    if (e instanceof RestoreError) throw new CliError(e.message);
    throw e;
  }
}

export function registerRestore(program: Command): void {
  const restoreCmd = program
    .command('restore')
    .description('restore files, a subtree or a whole volume as of the newest backup or --at')
    .argument('<domU/part>', 'the volume')
    .argument('[path...]', 'paths inside the volume (default: everything)')
    .requiredOption('--medium <dir>', 'the backup medium: a directory, or user@host:/path (RSYNC_TARGET) over ssh')
    .requiredOption('--to <dir>', 'where to restore (a directory, created if missing; paths keep their place below it); for a raw backup: a file or block device')
    .option('--host <name>', 'host folder on the medium', defaultHost())
    .option('--at <when>', 'the newest backup at or before this ISO date/time')
    .option('--force', 'replace files that already exist in the target; for a raw backup: replace the file, or write onto the block device')
    .option('-q, --quiet', 'only warnings and errors')
    .option('-v, --verbose', 'also debug lines');
  addSshOptions(restoreCmd)
    .addHelpText('after', `
Examples:
  xenbackup restore web1/root etc/passwd --medium /backup/guests --to /tmp/r
  xenbackup restore web1/root etc --medium backup@store:/srv/xenbackup --ssh-key /root/.ssh/xb --to /tmp/r
  xenbackup restore web1/root var/www --at 2026-11-20 --medium /backup/guests --to /tmp/r
  xenbackup restore web1/root --medium /backup/guests --to /mnt/newdisk     (whole volume)
  xenbackup restore win1/disk --medium /backup/guests --to /var/tmp/win1-disk.img   (raw backup)
  xenbackup restore win1/disk --medium /backup/guests --to /dev/vg0/win1-disk --force

Every file's content is checked against the checksum recorded at backup time.
Nothing is overwritten without --force; restore never writes outside --to.
A raw backup (fstype raw) is an image: it is restored whole, to a file (sparse;
written as FILE.partial and renamed once every chunk and the whole-image xxh64
matched) or onto a block device (needs --force; must not be mounted).
Exit codes: 0 restored; 1 a file failed its checksum, or the backup is damaged or hostile
(bad manifest checksum, unsafe names, a truncated archive); 2 bad arguments, unknown volume
or path, or a file or device in the way (without --force); 4 the --medium folder is not there.`)
    .action(async (volume: string, paths: string[], o: Record<string, string | boolean | undefined>) => {
      const { log } = openConsole({ quiet: !!o.quiet, verbose: !!o.verbose });
      const medium = resolveMedium(String(o.medium), o as SshCliOptions, log);
      const wanted = paths.map(normaliseRequest);
      for (const w of wanted) if (!safeComponents(w)) throw new CliError(new UnsafePathError(w).message);
      const store = await volumeStore(volume, medium, String(o.host), log);
      const backup = await chosenBackup(store, parseAt(o.at as string | undefined), log);
      try {
        const r = await (await loadEngine(backup.engine)).restore(
          { medium: medium.storage, host: String(o.host), volume, paths: wanted, targetDir: String(o.to), at: parseAt(o.at as string | undefined), force: !!o.force, logger: log },
          store,
          backup,
        );
        log.info(`${volume}: ${r.summary}`);
        for (const w of r.warnings) log.warn(`${volume}: ${w}`);
        if (r.errors.length) {
          process.exitCode = EXIT.failed;
          log.error(`${r.errors.length} file(s) did not match their checksum`);
        }
      } catch (e) {
        if (e instanceof RestoreError) throw new CliError(e.message);
        // What the medium holds is damaged or hostile: one line, and the exit code of a failure.
        if (e instanceof UnsafePathError || e instanceof ManifestFormatError) throw new CliError(`backup of ${volume}${store.storage.local ? '' : ` on ${medium.shown}`}: ${e.message}`, EXIT.failed);
        if (e instanceof Error && (e.name === 'RawManifestError' || e.name === 'RawContainerError')) throw new CliError(`backup of ${volume}: ${e.message}`, EXIT.failed);
        throw e;
      }
    });

  const lsCmd = program
    .command('ls')
    .description('list a directory (or one entry) of a volume as of the newest backup or --at')
    .argument('<domU/part>', 'the volume')
    .argument('[path]', 'a path inside the volume', '')
    .requiredOption('--medium <dir>', 'the backup medium: a directory, or user@host:/path (RSYNC_TARGET) over ssh')
    .option('--host <name>', 'host folder on the medium', defaultHost())
    .option('--at <when>', 'the newest backup at or before this ISO date/time')
    .option('-l, --long', 'mode, owner, size, time, and the backup holding each version');
  addSshOptions(lsCmd)
    .addHelpText('after', `
Examples:
  xenbackup ls web1/root etc --medium /backup/guests -l
  xenbackup ls web1/root var/log/syslog --at 2026-11-20T06:00:00Z --medium /backup/guests -l
  xenbackup ls web1/root etc --medium backup@store:/srv/xenbackup --ssh-key /root/.ssh/xb

Exit codes: 0 listed; 1 the backup is damaged or hostile; 2 bad arguments, unknown volume
or path; 4 the --medium folder is not there.`)
    .action(async (volume: string, p: string, o: SshCliOptions & { medium: string; host: string; at?: string; long?: boolean }) => {
      // Quiet: ls prints the listing only; the copies' commands would be noise (warnings still show).
      const { log } = openConsole({ quiet: true });
      const medium = resolveMedium(o.medium, o, log);
      const want = normaliseRequest(p);
      const store = await volumeStore(volume, medium, o.host, log);
      await printListing(store, await chosenBackup(store, parseAt(o.at), log), volume, want, !!o.long);
    });
}

/** ls's output: the children of `want` in the backup, or `want` itself when it is not a directory. */
async function printListing(store: VolumeStore, backup: Sidecar, volume: string, want: Buffer, long: boolean): Promise<void> {
  const engine = await loadEngine(backup.engine);
  if (engine.reads !== 'tree') {
    // An image, not a tree: say so and how to look inside (exit 0, this is an answer, not an error).
    for (const l of engine.lsInstead?.(backup, volume) ?? []) process.stdout.write(l + '\n');
    return;
  }
  const show = (rel: Buffer, e: ManifestEntry): string => {
    const name = showPath(baseName(rel)) + (e.type === 'symlink' && e.link ? ` -> ${showPath(e.link)}` : '');
    if (!long) return name;
    const t = new Date(Number(e.mtimeNs / 1_000_000n)).toISOString().replace('T', ' ').slice(0, 19);
    return `${modeString(e)} ${String(e.uid).padStart(6)} ${String(e.gid).padStart(6)} ${String(e.size).padStart(12)} ${t}  ${name}  [${e.archive}]`;
  };
  if (!safeComponents(want)) throw new CliError(new UnsafePathError(want).message);
  let listing: ReturnType<typeof listDirectory>;
  let single: ReturnType<typeof planRestore> | undefined;
  try {
    [listing, single] = await withPlanBlocks(store, backup, (blocks) => {
      const l = listDirectory(blocks([want]), want);
      return [l, l ? undefined : planRestore(blocks([want]), [want])] as const;
    });
    if (listing) {
      for (const c of listing.children) process.stdout.write(show(c.rel, c.entry) + '\n');
      return;
    }
  } catch (e) {
    if (e instanceof UnsafePathError || e instanceof ManifestFormatError) throw new CliError(`backup ${backup.id} of ${volume}: ${e.message}`, EXIT.failed);
    throw e;
  }
  if (!single || single.missing.length || single.items.length === 0) {
    throw new CliError(`${showPath(want)} is not in backup ${backup.id} of ${volume}`);
  }
  process.stdout.write(show(want, single.items[0]!.entry) + '\n');
}
