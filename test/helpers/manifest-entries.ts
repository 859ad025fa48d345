/** Manifest entries of every shape the line format has (names needing escapes or base64, links, devices, flags). */
import type { ManifestEntry } from '../../src/core/manifest.js';

export function entries(): ManifestEntry[] {
  const base: ManifestEntry = {
    name: Buffer.from('passwd'), type: 'file', mode: 0o644, uid: 0, gid: 0, size: 1234,
    mtimeNs: 1795754920715386673n, ctimeNs: 1795754920715386673n, ino: '5308438', nlink: 1,
    hash: '0123456789abcdef', archive: '20261127T020000Z', offset: 1536,
  };
  const names = [
    'plain', 'with space', 'quote"and\\backslash', 'new\nline', 'tab\there', 'é-utf8', '日本語', '\u0001ctl', '',
  ].map((n) => Buffer.from(n));
  names.push(Buffer.from([0x6e, 0xe9, 0xff])); // not UTF-8: base64
  names.push(Buffer.from('\ufffd literal replacement char'));
  const out: ManifestEntry[] = names.map((name) => ({ ...base, name }));
  out.push({ ...base, type: 'symlink', size: 0, hash: undefined, link: Buffer.from('../target "x"') });
  out.push({ ...base, type: 'symlink', size: 0, hash: undefined, link: Buffer.from([0xc3, 0x28]) });
  out.push({ ...base, type: 'char', size: 0, hash: undefined, rdev: [1, 3] });
  out.push({ ...base, nlink: 3, dataOffset: 512 });
  out.push({ ...base, sparse: true, unread: true, mtimeNs: -123456789n, ctimeNs: 0n, uid: 4294967294, gid: 65534 });
  out.push({ ...base, type: 'fifo', size: 0, hash: undefined, mode: 0o7777 });
  return out;
}
