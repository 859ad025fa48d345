/**
 * The old commit() of the medium's writers, for tests that write one file
 * by hand: the writers now only seal (trailer, fsync, under "<file>.partial")
 * and the storage publishes the name; here the test publishes it itself with
 * a rename, as LocalStorage.publish does.
 */
import * as fs from 'node:fs';
import { PARTIAL_SUFFIX } from '../../src/medium/layout.js';

/** Seals `writer` (whose final name is `file`) and renames its partial into place; returns what seal() returned. */
export function sealAndPublish<T>(writer: { seal(): T }, file: string): T {
  const sealed = writer.seal();
  fs.renameSync(file + PARTIAL_SUFFIX, file);
  return sealed;
}
