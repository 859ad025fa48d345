/**
 * Shared helpers of the tar codec tests: temp dirs that clean up after
 * themselves, building an archive from entries with our writer, running the
 * real GNU tar, parsing with our reader, and reading back what is on disk
 * (names as bytes, lstat with ns, xattrs via getfattr, ACLs via getfacl).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import type { TarEntry } from '../../src/tar/entry.js';
import { TarParser, type TarMemberInfo } from '../../src/tar/read.js';
import { END_OF_ARCHIVE, encodeHeader, encodeSparseMap, padding, storedSize } from '../../src/tar/write.js';

/** A fresh directory under the system temp dir, removed when the test ends. */
export function tempDir(t: TestContext, prefix = 'xb-tar-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** One member to write: file data for regular files, one buffer per region for sparse ones. */
export interface Member {
  entry: TarEntry;
  data?: Buffer;
  regions?: Buffer[];
}

export function b(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}

/** The whole archive as our writer produces it, end-of-archive blocks included. */
export function buildArchive(members: Member[]): Buffer {
  const parts: Buffer[] = [];
  for (const { entry, data, regions } of members) {
    parts.push(encodeHeader(entry));
    if (entry.sparseMap) {
      parts.push(encodeSparseMap(entry.sparseMap, entry.size));
      parts.push(...(regions ?? []));
    } else if (entry.type === 'file') {
      parts.push(data ?? Buffer.alloc(0));
    }
    parts.push(Buffer.alloc(padding(storedSize(entry))));
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

/** Runs GNU tar; throws with its stderr if it fails. */
export function gnuTar(args: string[], opts: { cwd?: string; locale?: string } = {}): { stdout: Buffer; stderr: Buffer } {
  const result = spawnSync('tar', args, {
    cwd: opts.cwd,
    env: { ...process.env, LC_ALL: opts.locale ?? 'C.UTF-8', LANG: opts.locale ?? 'C.UTF-8' },
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 256 << 20,
  });
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`tar ${args.join(' ')} exited ${result.status}: ${result.stderr.toString()}`);
  return { stdout: result.stdout, stderr: result.stderr };
}

/** Extracts an archive file the way a restore with stock tools would. */
export function gnuExtract(archive: string, dest: string, locale?: string, extra: string[] = []): void {
  // Timestamp warnings are about our deliberately odd mtimes, not the format.
  const { stderr } = gnuTar(['-x', '--warning=no-timestamp', '--xattrs', '--xattrs-include=*', '--acls', '-G', '--numeric-owner', '-f', archive, '-C', dest, ...extra], { locale });
  if (stderr.length > 0) throw new Error(`tar -x warned: ${stderr.toString()}`);
}

export interface ParsedMember {
  entry: TarEntry;
  info: TarMemberInfo;
  /** [fileOffset, bytes] of every data chunk, merged where contiguous. */
  data: Array<[number, Buffer]>;
}

/** Parses a whole archive with our reader, fed in chunks of `chunkSize` bytes. */
export function parseArchive(archive: Buffer, chunkSize = archive.length): ParsedMember[] {
  const members: ParsedMember[] = [];
  let current: ParsedMember | undefined;
  let ended = false;
  const parser = new TarParser({
    entry(entry, info) {
      current = { entry, info, data: [] };
    },
    data(chunk, fileOffset) {
      const last = current!.data[current!.data.length - 1];
      if (last && last[0] + last[1].length === fileOffset) last[1] = Buffer.concat([last[1], chunk]);
      else current!.data.push([fileOffset, Buffer.from(chunk)]);
    },
    endEntry() {
      members.push(current!);
      current = undefined;
    },
    end() {
      ended = true;
    },
  });
  for (let i = 0; i < archive.length; i += chunkSize) parser.write(archive.subarray(i, i + chunkSize));
  parser.end();
  if (!ended) throw new Error('parser did not report the end of the archive');
  return members;
}

/** The full content of a non-sparse member. */
export function memberData(m: ParsedMember): Buffer {
  return Buffer.concat(m.data.map(([, d]) => d));
}

/** Paths (relative, as bytes) of everything under root, sorted, directories included. */
export function listTree(root: string): Buffer[] {
  const out: Buffer[] = [];
  const walk = (rel: Buffer): void => {
    const abs = rel.length === 0 ? Buffer.from(root) : Buffer.concat([Buffer.from(root + '/'), rel]);
    for (const name of fs.readdirSync(abs, { encoding: 'buffer' }).sort(Buffer.compare)) {
      const child = rel.length === 0 ? name : Buffer.concat([rel, b('/'), name]);
      out.push(child);
      if (fs.lstatSync(Buffer.concat([Buffer.from(root + '/'), child])).isDirectory()) walk(child);
    }
  };
  walk(Buffer.alloc(0));
  return out;
}

export function under(root: string, rel: Buffer): Buffer {
  return Buffer.concat([Buffer.from(root + '/'), rel]);
}

/** glibc's major()/minor() of a dev_t. */
export function devParts(rdev: bigint): [number, number] {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return [major, minor];
}

/** xattrs of a file other than system.* (ACLs), via getfattr, values as hex. */
export function getXattrs(file: string): Map<string, string> {
  const text = execFileSync('getfattr', ['-h', '-d', '-m', '^(user|trusted|security)\\.', '-e', 'hex', '--absolute-names', file], {
    encoding: 'latin1',
  });
  const result = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([^#=][^=]*)=0x([0-9a-f]*)$/.exec(line) ?? /^([^#=][^=]*)$/.exec(line);
    if (!m) continue;
    // getfattr escapes unusual bytes in names as \ooo octal.
    const name = Buffer.from(m[1]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))), 'latin1').toString('utf8');
    result.set(name, m[2] ?? '');
  }
  return result;
}

/** Access and default ACL entries of a file via getfacl, numeric, without comments or effective rights. */
export function getAcl(file: string): string {
  return execFileSync('getfacl', ['-n', '-E', '-c', '-p', file], { encoding: 'utf8' }).trim();
}
