/**
 * The names of a backup's files in its volume's folder, for each engine:
 *   tar    <id>.<full|incr>.tar[.zst|.gz]   <id>.<full|incr>.manifest       <id>.<full|incr>.json
 *   raw    <id>.<full|incr>.raw.zst         <id>.<full|incr>.raw.manifest   <id>.<full|incr>.raw.json
 *   rsync  <id>.tree/                       <id>.tree.manifest              <id>.tree.json
 * A sidecar read from the medium must name exactly these files for its id,
 * kind, engine and compression (medium/sidecar.ts): a name anything else wrote
 * is damage, never a path to open or delete.
 */
import { ARCHIVE_EXTENSION, type Compression } from '../engines/compression.js';

export type BackupKind = 'full' | 'incremental';
export type Engine = 'tar' | 'rsync' | 'raw';

export interface BackupFileNames {
  archive: string;
  manifest: string;
  sidecar: string;
}

/** Archives and manifests of every engine, and their id (removeDebris, prune). */
export const BACKUP_FILE_RE = /^(\d{8}T\d{6}Z)\.(?:(?:full|incr)\.(?:tar(?:\.zst|\.gz)?|manifest|raw\.zst|raw\.manifest)|tree|tree\.manifest)$/;

export function backupFileNames(id: string, kind: BackupKind, engine: Engine, compression: Compression): BackupFileNames {
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
  return s.manifest.replace(/\.manifest$/, '.json');
}

/** A name that stays inside its folder: one component, not `.` or `..`, no NUL. */
export function isPlainName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}
