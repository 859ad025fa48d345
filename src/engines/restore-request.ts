/**
 * What a restore is asked and what it answers, for every engine: restore.ts
 * chooses the backup and hands the request to the backup's engine.
 */
import type { Logger } from '../util/log.js';
import type { Sidecar } from '../medium/sidecar.js';
import type { Medium } from '../storage/as-storage.js';

export interface RestoreRequest {
  medium: Medium;
  host: string;
  volume: string;
  /** Paths relative to the volume's root (a tree); none: the whole volume (a raw image is always whole). */
  paths: Buffer[];
  /** A directory for a tree; for a raw image a file or a block device. */
  targetDir: string;
  at?: Date;
  force: boolean;
  logger: Logger;
  signal?: AbortSignal;
  /** Local directory for copies of a remote storage's manifests (default the system temp dir). */
  tempDir?: string;
}

export interface RestoreResult {
  backup: Sidecar;
  entries: number;
  /** Regular files restored and their bytes. */
  files: number;
  bytes: number;
  /** Files that failed their check: the restore is not faithful (exit 1). */
  errors: string[];
  /** What was done, one line for the log, without the volume's name. */
  summary: string;
  warnings: string[];
}
