/**
 * The one interface of the three engines (tar, rsync, raw), siblings under
 * src/engines/ that never import each other. The registry (registry.ts)
 * gives the engine a volume's configuration or a sidecar names; the nightly
 * run, `backup`, restore, verify, list and the plan call it and never branch
 * on an engine's name.
 *
 *   tar    a file tree in incremental tar archives (GNU tar can read them)
 *   rsync  a file tree as browsable dated trees, hardlinked to the previous
 *   raw    a block device's image in changed chunks
 */
import type { Logger } from '../util/log.js';
import type { FullPolicy } from '../core/chain.js';
import type { Compression, EngineName, Sidecar } from '../medium/sidecar.js';
import type { VolumeStore } from '../repo/volume-store.js';
import type { Storage } from '../storage/storage.js';
import type { RestoreRequest, RestoreResult } from './restore-request.js';
import type { VerifyDepth, VerifyProblem } from './verify-result.js';
import type { ArchiveRefs } from './verify-refs.js';

/** What every engine's backup of one volume needs; an engine ignores what is not its own. */
export interface VolumeBackupRequest extends FullPolicy {
  /** A mounted tree (tar, rsync) or a block device (raw): see Engine.reads. */
  source: string;
  storage: Storage;
  host: string;
  volume: string;
  compression: Compression;
  /** Trees: stay on the source's filesystem; paths left out; the source is live (dom0's root). */
  oneFileSystem: boolean;
  excludes: Buffer[];
  liveSource: boolean;
  /** Compress at nice 19 (the nightly run): dom0 keeps serving the guests. */
  idlePriority?: boolean;
  /** rsync --compress (RSYNC_COMPRESS) for a remote storage. */
  rsyncCompress?: boolean;
  logger: Logger;
  now?: () => Date;
  signal?: AbortSignal;
  /** The terminal's status line (a no-op under cron). */
  progress?: (text: string) => void;
}

/** A backup written and not yet counted (engines/two-phase.ts): commit or abort. */
export interface PreparedVolumeBackup {
  kind: 'full' | 'incremental' | 'mirror';
  warnings: string[];
  /** Paths that could not be read: the backup is incomplete. */
  unreadable: string[];
  /** Where the backup lives once committed, for the report: a local path, or user@host:/path/... */
  archivePath: string;
  /** The report's Source column when it is not the bytes read (raw: the image's size). */
  sourceBytes?: number;
  /** One line for the report's notes and the log, without the volume's name. */
  summary?: string;
  /** Directories of another filesystem kept empty (one filesystem per volume). */
  otherFilesystems?: string[];
  commit(): Promise<Sidecar>;
  abort(): Promise<void>;
}

/** One backup's own files checked (its manifest's shape and chain are engines/verify.ts's, shared). */
export interface BackupCheckRequest {
  store: VolumeStore;
  backup: Sidecar;
  /** Every backup of the volume (a full check of a tar archive looks at its chain). */
  all: Sidecar[];
  depth: VerifyDepth;
  /** The backup's manifest passed its checks: its entries can be the measure of the content. */
  manifestTrusted: boolean;
  /** For a chained engine's full check: what newer manifests say of this archive's members. */
  refs?: ArchiveRefs;
  logger: Logger;
  signal?: AbortSignal;
  /** Local directory for copies from a remote storage (default the system temp dir). */
  tempDir?: string;
}

export interface BackupCheck {
  /** Bytes of the backup's files read. */
  bytes: number;
  /** Members, tree entries or chunks read (full only). */
  members: number;
  problems: VerifyProblem[];
  /** What could not be checked and is not damage. */
  notes: string[];
}

export interface Engine {
  readonly name: EngineName;
  /** What its backups hold: a file tree (restore plans from a manifest, ls lists it) or a block device's image. */
  readonly reads: 'tree' | 'device';
  /** Its incrementals point into the archives of older backups of their chain (verify checks those references). */
  readonly chained: boolean;
  /** Why this engine cannot keep backups on `storage` (undefined: it can). */
  unsupported(storage: Storage): string | undefined;
  /** Why an incremental of this engine cannot build on `base` (another engine made it), or undefined. */
  refusesBase(base: Sidecar): string | undefined;
  /** Backs up one volume in two phases. */
  prepareBackup(req: VolumeBackupRequest): Promise<PreparedVolumeBackup>;
  /** Restores from the restore point `backup` (chosen by engines/restore.ts). */
  restore(req: RestoreRequest, store: VolumeStore, backup: Sidecar): Promise<RestoreResult>;
  /** Checks one backup's archive, tree or container (quick: sizes and hashes; full: the content). */
  checkBackup(req: BackupCheckRequest): Promise<BackupCheck>;
  /** What `ls` prints instead of a listing, for backups that are not trees. */
  lsInstead?(backup: Sidecar, volume: string): string[];
}

/** Engine.unsupported of an engine whose native writers and readers need the medium's files local (tar and raw today). */
export function needsLocalFiles(engine: string): (storage: Storage) => string | undefined {
  return (storage) => (storage.local ? undefined : `the ${engine} engine writes to a local medium, not to ${storage.kind} storage (${storage.root})`);
}
