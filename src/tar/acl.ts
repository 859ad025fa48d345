/**
 * POSIX ACLs between the kernel's xattr form (system.posix_acl_access /
 * system.posix_acl_default) and the text xenbackup stores in the pax records
 * SCHILY.acl.access / SCHILY.acl.default.
 *
 * GNU tar 1.34 `--acls` stores acl_to_text() output: one entry per line,
 * "user::rwx\nuser:1234:r-x\ngroup::r-x\nmask::r-x\nother::r-x\n" (trailing
 * newline included), with user and group NAMES wherever the archiving host can
 * resolve them, even with --numeric-owner. `tar -x --acls` feeds the text to
 * acl_from_text(), which accepts names or numeric ids. xenbackup archives a
 * guest's files on dom0, where names would be resolved against the wrong
 * passwd, so aclTextFromXattr writes the same layout with numeric ids only.
 */

const TAG = { userObj: 0x01, user: 0x02, groupObj: 0x04, group: 0x08, mask: 0x10, other: 0x20 } as const;
const VERSION = 2;
const NO_ID = 0xffffffff;

/** Text form (GNU tar layout, numeric ids) of a system.posix_acl_* xattr value. */
export function aclTextFromXattr(value: Buffer): string {
  if (value.length < 4 || (value.length - 4) % 8 !== 0 || value.readUInt32LE(0) !== VERSION) {
    throw new Error(`not a POSIX ACL xattr value (${value.length} bytes, version ${value.length >= 4 ? value.readUInt32LE(0) : '?'})`);
  }
  let text = '';
  for (let off = 4; off < value.length; off += 8) {
    const tag = value.readUInt16LE(off);
    const perm = value.readUInt16LE(off + 2);
    const id = value.readUInt32LE(off + 4);
    const rights = (perm & 4 ? 'r' : '-') + (perm & 2 ? 'w' : '-') + (perm & 1 ? 'x' : '-');
    switch (tag) {
      case TAG.userObj: text += `user::${rights}\n`; break;
      case TAG.user: text += `user:${id}:${rights}\n`; break;
      case TAG.groupObj: text += `group::${rights}\n`; break;
      case TAG.group: text += `group:${id}:${rights}\n`; break;
      case TAG.mask: text += `mask::${rights}\n`; break;
      case TAG.other: text += `other::${rights}\n`; break;
      default: throw new Error(`unknown POSIX ACL tag 0x${tag.toString(16)}`);
    }
  }
  return text;
}

/**
 * The xattr value for an ACL text (long or short form, newline or comma
 * separated, "#" comments). Ids must be numeric, or given in star's fourth
 * field ("user:lisa:r-x:1001"); a bare name throws, since resolving it on
 * the restoring host could give the wrong id.
 */
export function aclXattrFromText(text: string): Buffer {
  const entries: Array<[tag: number, perm: number, id: number]> = [];
  for (const raw of text.split(/[\n,]/)) {
    const entry = raw.replace(/#.*/, '').trim();
    if (entry === '') continue;
    const fields = entry.split(':');
    if (fields.length < 3 || fields.length > 4) throw new Error(`bad ACL entry "${entry}"`);
    const [kind, qualifier, rights, starId] = fields as [string, string, string, string | undefined];
    let perm = 0;
    for (const c of rights) {
      if (c === 'r') perm |= 4;
      else if (c === 'w') perm |= 2;
      else if (c === 'x') perm |= 1;
      else if (c !== '-') throw new Error(`bad permissions in ACL entry "${entry}"`);
    }
    const named = qualifier !== '';
    let id = NO_ID;
    if (named) {
      const idText = /^\d+$/.test(qualifier) ? qualifier : starId;
      if (idText === undefined || !/^\d+$/.test(idText)) throw new Error(`ACL entry "${entry}" names a user or group without a numeric id`);
      id = Number(idText);
    }
    let tag: number;
    if (kind === 'user' || kind === 'u') tag = named ? TAG.user : TAG.userObj;
    else if (kind === 'group' || kind === 'g') tag = named ? TAG.group : TAG.groupObj;
    else if ((kind === 'mask' || kind === 'm') && !named) tag = TAG.mask;
    else if ((kind === 'other' || kind === 'o') && !named) tag = TAG.other;
    else throw new Error(`bad ACL entry "${entry}"`);
    entries.push([tag, perm, id]);
  }
  // The kernel wants entries ordered by tag, then id.
  entries.sort((a, b) => a[0] - b[0] || a[2] - b[2]);
  const value = Buffer.alloc(4 + 8 * entries.length);
  value.writeUInt32LE(VERSION, 0);
  let off = 4;
  for (const [tag, perm, id] of entries) {
    value.writeUInt16LE(tag, off);
    value.writeUInt16LE(perm, off + 2);
    value.writeUInt32LE(id, off + 4);
    off += 8;
  }
  return value;
}
