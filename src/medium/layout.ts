/**
 * The names of a volume's folder, <root>/<host>/<domU>/<part>/, for every
 * engine: the one owner of every file name and pattern on the medium.
 *   tar    <id>.<full|incr>.tar[.zst|.gz]   <id>.<full|incr>.manifest       <id>.<full|incr>.json
 *   raw    <id>.<full|incr>.raw.zst         <id>.<full|incr>.raw.manifest   <id>.<full|incr>.raw.json
 *   rsync  <id>.tree/                       <id>.tree.manifest              <id>.tree.json
 *   .backup.lock                            one backup or prune of the volume at a time
 *   <name>.partial                          a file being written, on storages that can rename
 * where <id> is the backup's UTC start time, 20261127T013600Z. A sidecar
 * read from the medium must name exactly these files for its id, kind,
 * engine and compression (sidecar.ts): a name anything else wrote is
 * damage, never a path to open or delete.
 */

export type BackupKind = 'full' | 'incremental';
export type EngineName = 'tar' | 'rsync' | 'raw';
export const ENGINE_NAMES: readonly EngineName[] = ['tar', 'rsync', 'raw'];

/** How a tar archive's segments are compressed (engines/compression.ts does it). */
export type Compression = 'zstd' | 'gzip' | 'none';
export const COMPRESSIONS: readonly Compression[] = ['zstd', 'gzip', 'none'];

export const ARCHIVE_EXTENSION: Record<Compression, string> = {
  zstd: '.tar.zst',
  gzip: '.tar.gz',
  none: '.tar',
};

/** A file or tree being written, where the storage can rename (Storage.stagedName). */
export const PARTIAL_SUFFIX = '.partial';

/** The volume's lock (repo/volume-lock.ts). */
export const VOLUME_LOCK_NAME = '.backup.lock';

export interface BackupFileNames {
  archive: string;
  manifest: string;
  sidecar: string;
}

/** Archives and manifests of every engine, and their id (debris, prune). */
export const BACKUP_FILE_RE = /^(\d{8}T\d{6}Z)\.(?:(?:full|incr)\.(?:tar(?:\.zst|\.gz)?|manifest|raw\.zst|raw\.manifest)|tree|tree\.manifest)$/;

/** Every sidecar's name ends so; list reads each such file as one (and reports one that does not parse). */
export const SIDECAR_SUFFIX = '.json';

/** A sidecar's name (any engine), and its id. */
export const SIDECAR_FILE_RE = /^(\d{8}T\d{6}Z)\.(?:(?:full|incr)(?:\.raw)?|tree)\.json$/;

export function backupFileNames(id: string, kind: BackupKind, engine: EngineName, compression: Compression): BackupFileNames {
  if (engine === 'rsync') return { archive: `${id}.tree`, manifest: `${id}.tree.manifest`, sidecar: `${id}.tree.json` };
  const stem = `${id}.${kind === 'full' ? 'full' : 'incr'}${engine === 'raw' ? '.raw' : ''}`;
  return {
    archive: stem + (engine === 'raw' ? '.zst' : ARCHIVE_EXTENSION[compression]),
    manifest: stem + '.manifest',
    sidecar: stem + '.json',
  };
}

/** A sidecar's own file name, from the manifest name it carries (all engines: ".manifest" -> ".json"). */
export function sidecarName(s: { manifest: string }): string {
  return s.manifest.replace(/\.manifest$/, SIDECAR_SUFFIX);
}

/** A backup's file names in deletion order (prune): the sidecar first, as it is what makes the backup exist. */
export function backupFiles(s: { archive: string; manifest: string }): string[] {
  return [sidecarName(s), s.archive, s.manifest];
}

/** A name that stays inside its folder: one component, not `.` or `..`, no NUL. */
export function isPlainName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}
