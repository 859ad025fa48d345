/**
 * A medium as callers name it: a local folder's path (the mounted BCKDEV,
 * `--medium /path`) or a storage already made (an ssh server, later an
 * object store). One place turns the first into the second.
 */
import { LocalStorage } from './local-storage.js';
import type { Storage } from './storage.js';

export type Medium = string | Storage;

export function asStorage(medium: Medium): Storage {
  return typeof medium === 'string' ? new LocalStorage(medium) : medium;
}
