/**
 * The checks every Storage implementation makes before it touches anything:
 * each folder component and each name is a plain name (medium/layout.ts
 * isPlainName), and the one shape of "no such file" (code ENOENT, as fs
 * gives it locally) so that callers treat an absent file alike on every
 * storage.
 */
import { isPlainName } from '../medium/layout.js';
import { MediumDamage } from '../medium/medium-error.js';
import type { Folder } from './storage.js';

/** Throws MediumDamage unless every component of `folder` is a plain name; `shown` is how the folder appears in the message. */
export function checkFolder(folder: Folder, shown: string): void {
  for (const c of folder) {
    if (!isPlainName(c)) throw new MediumDamage(shown, `folder component ${JSON.stringify(c)} is not a plain name`);
  }
}

/** Throws MediumDamage unless `name` is a plain name. */
export function checkName(name: string, shown: string): void {
  if (!isPlainName(name)) throw new MediumDamage(shown, `${JSON.stringify(name)} is not a plain name`);
}

/** A byte offset or length: a non-negative safe integer. */
export function checkCount(n: number, what: string, shown: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${shown}: ${what} ${n} is not a byte count`);
}

/** The error of a file or folder that is not there: code ENOENT like fs's own. */
export function notFound(shown: string, what = 'no such file'): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(`${shown}: ${what}`);
  e.code = 'ENOENT';
  return e;
}
