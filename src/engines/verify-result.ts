/**
 * What a verification finds, shared by the tar and rsync checks
 * (engines/verify.ts) and the raw ones (engines/raw/raw-verify.ts): depth, problems
 * per file on the medium, the per-volume result and its report lines. Its
 * own module so that no engine imports another's module for them.
 */
import { showPath } from '../core/path-order.js';

export type VerifyDepth = 'quick' | 'full';

export interface VerifyProblem {
  /** The file on the medium that is damaged or missing (archive, manifest or sidecar). */
  file: string;
  /** What is wrong, in words. */
  what: string;
  /** Path inside the volume of the first bad member, when one is known. */
  member?: string;
}

export interface VolumeVerification {
  volume: string;
  depth: VerifyDepth;
  /** Backups checked, and the chains they belong to. */
  backups: number;
  chains: number;
  /** Bytes of archive files (and, full, of rsync tree files) read; members or tree entries read (full only). */
  archiveBytes: number;
  members: number;
  problems: VerifyProblem[];
  /** What could not be checked and is not damage (e.g. sparse files in rsync trees). */
  notes: string[];
  /** For the run report: a summary line, one line per problem, then the notes. */
  lines: string[];
}

/** The request cannot be answered (no backups, --at before the first): not damage. */
export class VerifyUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VerifyUsageError';
  }
}

export function problemLine(p: VerifyProblem): string {
  return `${p.file}: ${p.what}${p.member !== undefined ? `; first bad member: ${p.member || '/'}` : ''}`;
}

/** What reading one backup's content against its manifest found (a tar archive, an rsync tree). */
export interface ContentCheck {
  /** Members (or tree entries) read. */
  members: number;
  /** File bytes read, where not counted otherwise (rsync trees). */
  bytes?: number;
  problems: VerifyProblem[];
  /** Things that could not be checked, which are not damage. */
  notes: string[];
}

/** Members that disagree with the manifest: counted, the first one kept for the report. */
export class Mismatches {
  count = 0;
  first: { path: string; what: string } | undefined;

  readonly add = (rel: Buffer, what: string): void => {
    this.count++;
    this.first ??= { path: showPath(rel), what };
  };

  /** One problem line for `file`, or undefined when nothing disagreed. */
  problem(file: string): VerifyProblem | undefined {
    if (!this.first) return undefined;
    return { file, what: `${this.count} member(s) do not match the manifest, the first: ${this.first.path || '/'}: ${this.first.what}`, member: this.first.path };
  }
}

