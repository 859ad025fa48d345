/**
 * Opening a file of a volume's folder for reading. The folder is untrusted:
 * a name there may be a symlink to anything on the host, or a fifo that
 * blocks an open forever. Every reader of sidecars, manifests and archives
 * opens through here: no symlink followed, only a regular file accepted.
 */
import fs from 'node:fs';
import { MediumDamage } from './medium-error.js';

export function openMediumFile(file: string): number {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new MediumDamage(file, 'is a symlink, not a file xenbackup wrote');
    throw e;
  }
  try {
    if (!fs.fstatSync(fd).isFile()) throw new MediumDamage(file, 'is not a regular file');
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  return fd;
}

/** The bytes of a regular file of the medium, refused when larger than `max`. */
export function readMediumFile(file: string, max = Number.MAX_SAFE_INTEGER): Buffer {
  const fd = openMediumFile(file);
  try {
    const size = fs.fstatSync(fd).size;
    if (size > max) throw new MediumDamage(file, `is ${size} bytes, more than the ${max} it can be`);
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** openMediumFile for asynchronous readers (archives are large; signals must get through). */
export async function openMediumFileAsync(file: string): Promise<fs.promises.FileHandle> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new MediumDamage(file, 'is a symlink, not a file xenbackup wrote');
    throw e;
  }
  try {
    if (!(await fh.stat()).isFile()) throw new MediumDamage(file, 'is not a regular file');
  } catch (e) {
    await fh.close();
    throw e;
  }
  return fh;
}
