/** `xenbackup backup`: one tree into its volume's folder on the medium (the engine without LVM). */
import fs from 'node:fs';
import type { Command } from 'commander';
import type { PreparedVolumeBackup } from '../engines/engine.js';
import { loadEngine } from '../engines/registry.js';
import { archiveBytesOf, type Sidecar } from '../medium/sidecar.js';
import { LocalStorage } from '../storage/local-storage.js';
import { COMPRESSIONS, type Compression } from '../engines/compression.js';
import { checkHostName, parseVolumeName } from '../core/names.js';
import { formatBytes, formatCount } from '../report/format.js';
import { CliError, defaultHost, EXIT, openConsole } from './common.js';

export function checkMediumWritable(medium: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(medium);
  } catch {
    throw new CliError(`medium ${medium} does not exist`, EXIT.medium);
  }
  if (!st.isDirectory()) throw new CliError(`medium ${medium} is not a directory`, EXIT.medium);
  try {
    fs.accessSync(medium, fs.constants.W_OK);
  } catch {
    throw new CliError(`medium ${medium} is not writable`, EXIT.medium);
  }
}

/** The source must be a directory we can list and enter; existsSync would call an unreadable one missing. */
export function checkSourceReadable(source: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(source);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new CliError(`source ${source} does not exist`);
    throw new CliError(`source ${source} cannot be read: ${code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
  }
  if (!st.isDirectory()) throw new CliError(`source ${source} is not a directory`);
  try {
    fs.accessSync(source, fs.constants.R_OK | fs.constants.X_OK);
  } catch {
    throw new CliError(`source ${source} cannot be read: permission denied`);
  }
}

export function registerBackup(program: Command): void {
  program
    .command('backup')
    .description('back up one directory tree (e.g. a mounted snapshot) as a full or incremental archive')
    .argument('<source-dir>', 'the tree to back up')
    .requiredOption('--volume <domU/part>', 'which volume this tree is, e.g. mydomu1/root')
    .requiredOption('--medium <dir>', 'the backup medium (a mounted directory)')
    .option('--host <name>', 'host folder on the medium', defaultHost())
    .option('--full', 'make a full backup even if an incremental is possible')
    .option('--compress <kind>', 'zstd | gzip | none', 'zstd')
    .option('--full-interval <days>', 'start a new chain when the last full is this old', '7')
    .option('--max-chain <n>', 'start a new chain after this many backups', '14')
    .option('--one-file-system', 'do not descend into other mounted filesystems')
    .option('--nice', 'compress at idle CPU priority (nice 19), as the nightly `run` always does')
    .option('-q, --quiet', 'only warnings and errors')
    .option('-v, --verbose', 'also debug lines (every command run)')
    .addHelpText(
      'after',
      `
Examples:
  xenbackup backup /mnt/snap --volume web1/root --medium /backup/guests
  xenbackup backup /srv/data --volume dom0/data --medium /backup/guests --full --compress gzip

Exit codes: 0 backed up; 1 failed or partial (unreadable files, listed); 2 bad arguments
or source; 4 the medium is missing or not writable.`,
    )
    .action(async (source: string, o: Record<string, string | boolean | undefined>) => {
      const { log, terminal } = openConsole({ quiet: !!o.quiet, verbose: !!o.verbose });
      const compression = String(o.compress) as Compression;
      if (!COMPRESSIONS.includes(compression)) throw new CliError(`--compress must be one of ${COMPRESSIONS.join(', ')}`);
      try {
        parseVolumeName(String(o.volume));
        checkHostName(String(o.host), '--host');
      } catch (e) {
        throw new CliError((e as Error).message);
      }
      checkSourceReadable(source);
      checkMediumWritable(String(o.medium));
      const fullInterval = Number(o.fullInterval);
      const maxChain = Number(o.maxChain);
      if (!(fullInterval > 0) || !(maxChain >= 1)) throw new CliError('--full-interval and --max-chain must be positive numbers');
      const started = Date.now();
      let prepared: PreparedVolumeBackup;
      let sidecar: Sidecar;
      try {
        // The tar engine, as the nightly run calls it for a mounted snapshot.
        prepared = await (await loadEngine('tar')).prepareBackup({
          source,
          storage: new LocalStorage(String(o.medium)),
          host: String(o.host),
          volume: String(o.volume),
          compression,
          idlePriority: !!o.nice,
          forceFull: !!o.full,
          fullIntervalDays: fullInterval,
          maxChainLength: maxChain,
          oneFileSystem: !!o.oneFileSystem,
          excludes: [],
          liveSource: false,
          logger: log,
          progress: (text) => terminal.progress(text),
        });
        terminal.clearProgress();
        sidecar = await prepared.commit();
      } catch (e) {
        terminal.clearProgress();
        // One line for the user (the engine's errors name the file or command); the stack only with -v.
        log.debug(String((e as Error).stack ?? e));
        throw new CliError(`backup of ${String(o.volume)} failed: ${(e as Error).message ?? String(e)}`, EXIT.failed);
      }
      for (const w of prepared.warnings) log.warn(w);
      const s = sidecar.stats;
      log.info(
        `${sidecar.volume}: ${sidecar.kind} backup ${sidecar.id} done in ${((Date.now() - started) / 1000).toFixed(1)} s: ` +
          `${formatCount(s.entries)} entries, ${formatCount(s.stored)} stored, ${formatCount(s.unchanged)} unchanged, ${formatCount(s.deleted)} deleted; ` +
          `${formatBytes(archiveBytesOf(sidecar))} written to ${prepared.archivePath}`,
      );
      if (sidecar.status === 'partial') {
        log.error(`${sidecar.volume}: backup ${sidecar.id} is PARTIAL: ${sidecar.unreadable.length} path(s) could not be read`);
        process.exitCode = EXIT.failed;
      }
    });
}
