/**
 * What is read from the medium is untrusted: a damaged disk, or anyone who
 * can write the backup folder. Anything that is not what xenbackup writes is
 * this error, naming the file, and it is never acted on.
 */
export class MediumDamage extends Error {
  constructor(
    readonly file: string,
    readonly what: string,
  ) {
    super(`${file}: ${what}`);
    this.name = 'MediumDamage';
  }
}

/** The medium (or the volume's folder on it) is not there or not usable: exit 4. */
export class MediumMissing extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MediumMissing';
  }
}
