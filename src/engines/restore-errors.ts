/**
 * Restore's two kinds of failure. A RestoreError is about the request or
 * the target (a path in the way, a target that cannot be made): nothing or
 * little was written. A DamagedBackupError is about what the medium holds:
 * a manifest that contradicts itself, an archive member that is not what
 * the manifest says, an archive that cannot be parsed or ends early. Its
 * `code` makes the CLI's catch-all print its one line and exit 1 (a failure).
 */
export class RestoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RestoreError';
  }
}

export class DamagedBackupError extends Error {
  readonly code = 'EBACKUPDAMAGED';
  constructor(message: string) {
    super(message);
    this.name = 'DamagedBackupError';
  }
}

/** Something in the target where a directory on the way to a path should be: a symlink (never followed) or another file. */
export class PathInTheWay extends RestoreError {
  constructor(
    message: string,
    readonly symlink: boolean,
  ) {
    super(message);
  }
}
