/*
 * One unchanged directory of an incremental, whole, without JavaScript per
 * child: its tar member (GNU.dumpdir of 'N' and 'D' entries) and its manifest
 * block (its own line and every child's previous line, copied).
 *
 * Most directories of a nightly incremental have not changed. Done in
 * JavaScript, each cost ~80 us on the main thread (the join, the header, the
 * directory line, a copy per child line, and their share of V8's compiler
 * threads), which on a 2-core machine competes with the walker's stat walk,
 * the part no backup can skip. Here it is a few microseconds.
 *
 * The output is byte for byte what the archiver's general path writes
 * (tar/write.ts encodeHeader for a directory; core/manifest.ts encodeDirLine
 * and the children's lines as they were; a test holds them equal). Anything
 * that path handles and this does not is declined, and the archiver takes
 * the general path (nothing counted as written: the segment past its end may
 * hold scratch bytes of the attempt, which the next write overwrites): a child that changed, is new, failed lstat
 * or is a socket or of an unknown type; a path that needs JSON escapes or
 * base64; owner ids or mtimes outside the ustar fields; no room left in the
 * archive's segment or the manifest's buffer.
 *
 * archiveUnchangedDir(parent: Buffer, at: number, records: Buffer, count: number,
 *                     data: Buffer, index: Int32Array, first: number, end: number,
 *                     rel: Buffer, member: Buffer, offset: number,
 *                     seg: Buffer, man: Buffer, match: Int32Array, out: Float64Array, dirs: Int32Array) -> boolean
 *   parent/at: the listing and record offset of the directory itself (its stat and change key);
 *   records/count: the directory's listing; data/index/first/end: its block in the previous manifest;
 *   rel: its path from the root (not the root: no record); member: `"a":"<backup id>"`;
 *   offset: the archive offset of its member; seg/man: where the member and the lines go (from their
 *   start); match: scratch of at least `count`; dirs: receives the indices of the subdirectories.
 *   out = [archive bytes, manifest bytes, manifest lines, unchanged children, their apparent bytes,
 *   previous children gone, subdirectories]. False: declined, out untouched. The records, the
 *   directory's own record and the copied lines are checked against their buffers' bounds.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include "scandir.h"
#include "manifest-merge.h"

#define BLOCK 512
#define NAME_LEN 100
/* Largest value of an 8-byte (ids) and a 12-byte (size, mtime) octal field. */
#define MAX_ID 07777777ull
#define MAX_BIG 077777777777ull

static uint32_t u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static size_t digits(uint64_t v) {
  size_t d = 1;
  while (v >= 10) {
    v /= 10;
    d++;
  }
  return d;
}

static size_t put_dec(unsigned char *o, uint64_t v) {
  size_t n = digits(v);
  for (size_t i = n; i-- > 0; v /= 10) o[i] = (unsigned char)('0' + v % 10);
  return n;
}

/* tar/pax.ts paxRecordLength: "<len> <keyword>=<value>\n", the length counting its own digits. */
static size_t pax_record_length(size_t keyword, size_t value) {
  size_t payload = keyword + value + 3, d = digits(payload), len = payload + d;
  return digits(len) > d ? len + 1 : len;
}

/* "<len> <keyword>=" at o; the caller writes the value and the "\n". Returns the bytes written. */
static size_t put_pax_prefix(unsigned char *o, const char *keyword, size_t value) {
  size_t k = strlen(keyword), n = put_dec(o, pax_record_length(k, value));
  o[n++] = ' ';
  memcpy(o + n, keyword, k);
  n += k;
  o[n++] = '=';
  return n;
}

/* tar/octal.ts writeOctal: width-1 zero-padded digits and a NUL. */
static void put_octal(unsigned char *o, size_t width, uint64_t v) {
  for (size_t i = width - 1; i-- > 0; v >>= 3) o[i] = (unsigned char)('0' + (v & 7));
  o[width - 1] = 0;
}

/* tar/write.ts putTruncated: src at pos, not past the name field that starts at field. */
static unsigned char *put_truncated(unsigned char *pos, const unsigned char *src, size_t n, unsigned char *field) {
  if (pos >= field + NAME_LEN) return pos;
  size_t room = (size_t)(field + NAME_LEN - pos);
  if (n > room) n = room;
  memcpy(pos, src, n);
  return pos + n;
}

/* The fields both blocks share, then the checksum (six octal digits, NUL, space; the field counted as spaces). */
static void finish_block(unsigned char *b, uint32_t mode, uint32_t uid, uint32_t gid, uint64_t size, uint64_t mtime, char type, bool devices) {
  put_octal(b + 100, 8, mode);
  put_octal(b + 108, 8, uid);
  put_octal(b + 116, 8, gid);
  put_octal(b + 124, 12, size);
  put_octal(b + 136, 12, mtime);
  b[156] = (unsigned char)type;
  memcpy(b + 257, "ustar\0" "00", 8);
  if (devices) {
    put_octal(b + 329, 8, 0);
    put_octal(b + 337, 8, 0);
  }
  unsigned sum = 8 * ' ';
  for (size_t i = 0; i < BLOCK; i++) sum += b[i];
  for (int i = 5; i >= 0; i--, sum >>= 3) b[148 + i] = (unsigned char)('0' + (sum & 7));
  b[154] = 0;
  b[155] = ' ';
}

static bool plain_json(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\') return false;
  return true;
}

static bool buffer_arg(napi_env env, napi_value v, unsigned char **p, size_t *n) {
  void *d;
  if (napi_get_buffer_info(env, v, &d, n) != napi_ok) return false;
  *p = d;
  return true;
}

static bool typed_arg(napi_env env, napi_value v, napi_typedarray_type want, void **p, size_t *n) {
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  return napi_get_typedarray_info(env, v, &t, n, p, &ab, &off) == napi_ok && t == want;
}

static napi_value boolean(napi_env env, bool v) {
  napi_value r;
  napi_get_boolean(env, v, &r);
  return r;
}

napi_value xbfs_archive_unchanged_dir(napi_env env, napi_callback_info info) {
  size_t argc = 16;
  napi_value argv[16];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  unsigned char *parent, *rec, *data, *rel, *member, *seg, *man;
  size_t parent_len, rec_len, data_len, rel_len, member_len, seg_len, man_len, index_len, match_len, out_len, dirs_len;
  void *index_raw, *match_raw, *out_raw, *dirs_raw;
  uint32_t at, count;
  int32_t first, end;
  double offset;
  bool ok = argc >= 16 && buffer_arg(env, argv[0], &parent, &parent_len) && napi_get_value_uint32(env, argv[1], &at) == napi_ok &&
            buffer_arg(env, argv[2], &rec, &rec_len) && napi_get_value_uint32(env, argv[3], &count) == napi_ok &&
            buffer_arg(env, argv[4], &data, &data_len) && typed_arg(env, argv[5], napi_int32_array, &index_raw, &index_len) &&
            napi_get_value_int32(env, argv[6], &first) == napi_ok && napi_get_value_int32(env, argv[7], &end) == napi_ok &&
            buffer_arg(env, argv[8], &rel, &rel_len) && buffer_arg(env, argv[9], &member, &member_len) &&
            napi_get_value_double(env, argv[10], &offset) == napi_ok && buffer_arg(env, argv[11], &seg, &seg_len) &&
            buffer_arg(env, argv[12], &man, &man_len) && typed_arg(env, argv[13], napi_int32_array, &match_raw, &match_len) &&
            typed_arg(env, argv[14], napi_float64_array, &out_raw, &out_len) && typed_arg(env, argv[15], napi_int32_array, &dirs_raw, &dirs_len) &&
            (size_t)at + HEADER <= parent_len && first >= 0 && end >= first && (size_t)end * STRIDE <= index_len && match_len >= count &&
            dirs_len >= count && out_len >= 7 && offset >= 0;
  if (!ok) {
    napi_throw_type_error(env, NULL,
                          "archiveUnchangedDir(parent, at, records, count, data, index, first, end, rel, member, offset, seg, man, match, out, dirs)");
    return NULL;
  }
  const int32_t *index = index_raw;
  int32_t *match = match_raw, *dirs = dirs_raw;
  double *out = out_raw;

  /* The directory itself, from its parent's listing. */
  const unsigned char *self = parent + at;
  uint32_t mode = u32(self + 8), uid = u32(self + 12), gid = u32(self + 16), nlink = u32(self + 20);
  int64_t mtime = (int64_t)u64(self + 32);
  uint32_t mtime_ns = u32(self + 48);
  size_t self_name = (size_t)(self[88] | self[89] << 8), self_key = (size_t)(self[90] | self[91] << 8);
  if ((size_t)at + HEADER + self_name + self_key > parent_len) return boolean(env, false);
  if (u32(self + 4) != 0 || !S_ISDIR(mode) || self_key == 0 || uid > MAX_ID || gid > MAX_ID || mtime < 0 || (uint64_t)mtime > MAX_BIG) return boolean(env, false);
  if (rel_len == 0 || !plain_json(rel, rel_len)) return boolean(env, false);

  /* Its children: all of a kind the archive takes, as they were. */
  size_t kids = 0, subdirs = 0;
  double source_bytes = 0;
  size_t off = 0;
  for (uint32_t i = 0; i < count; i++, off += u32(rec + off)) {
    /* The records as scandir.c packs them (the join walks them the same way after this check). */
    if (off + HEADER > rec_len || u32(rec + off) < HEADER || off + u32(rec + off) > rec_len) return boolean(env, false);
    const unsigned char *r = rec + off;
    uint32_t m = u32(r + 8);
    if (u32(r + 4) != 0) return boolean(env, false);
    if (S_ISDIR(m)) {
      dirs[subdirs++] = (int32_t)i;
      continue;
    }
    if (!S_ISREG(m) && !S_ISLNK(m) && !S_ISCHR(m) && !S_ISBLK(m) && !S_ISFIFO(m)) return boolean(env, false);
    kids++;
    if (S_ISREG(m)) source_bytes += (double)u64(r + 24);
  }

  /* The member's size: a pax header (path when it is long, mtime when it has nanoseconds, the dumpdir), then the ustar block. */
  char mtime_text[40];
  size_t mtime_len = 0;
  if (mtime_ns != 0) {
    uint32_t frac = mtime_ns;
    int fd = 9;
    while (frac % 10 == 0) {
      frac /= 10;
      fd--;
    }
    mtime_len = put_dec((unsigned char *)mtime_text, (uint64_t)mtime);
    mtime_text[mtime_len++] = '.';
    for (int i = fd; i-- > 0; frac /= 10) mtime_text[mtime_len + (size_t)i] = (char)('0' + frac % 10);
    mtime_len += (size_t)fd;
  }
  bool long_path = rel_len + 1 > NAME_LEN;
  size_t dump_len = xb_dumpdir_length(rec, count, NULL);
  size_t pax_len = (long_path ? pax_record_length(4, rel_len + 1) : 0) + (mtime_len ? pax_record_length(5, mtime_len) : 0) +
                   pax_record_length(11, dump_len);
  size_t pax_blocks = 1 + (pax_len + BLOCK - 1) / BLOCK;
  size_t tar_bytes = (pax_blocks + 1) * BLOCK;
  if (tar_bytes > seg_len) return boolean(env, false);

  memset(seg, 0, tar_bytes);
  unsigned char *o = seg + BLOCK;
  if (long_path) {
    o += put_pax_prefix(o, "path", rel_len + 1);
    memcpy(o, rel, rel_len);
    o += rel_len;
    *o++ = '/';
    *o++ = '\n';
  }
  if (mtime_len) {
    o += put_pax_prefix(o, "mtime", mtime_len);
    memcpy(o, mtime_text, mtime_len);
    o += mtime_len;
    *o++ = '\n';
  }
  o += put_pax_prefix(o, "GNU.dumpdir", dump_len);
  /* The join writes the dumpdir in place; every child but the subdirectories must be the same as before ('N'). */
  xb_merge_join(rec, count, NULL, data, index, first, end, match, o);
  o[dump_len] = '\n';
  size_t matched = 0;
  off = 0;
  for (uint32_t i = 0; i < count; i++, off += u32(rec + off)) {
    if (S_ISDIR(u32(rec + off + 8))) continue;
    if (match[i] < 0 || !(match[i] & 1)) return boolean(env, false);
    matched++;
  }

  /* The manifest block: the directory's line, then its children's previous lines as they are. */
  size_t need = 64 + self_key + 24 + member_len + 24 + rel_len;
  for (uint32_t i = 0; i < count; i++)
    if (match[i] >= 0) {
      const int32_t *row = index + (size_t)(match[i] >> 1) * STRIDE;
      if (row[0] < 0 || row[1] < row[0] || (size_t)row[1] > data_len) return boolean(env, false);
      need += (size_t)(row[1] - row[0]) + 1;
    }
  if (need > man_len) return boolean(env, false);
  unsigned char *w = man;
  *w++ = '{';
  memcpy(w, self + HEADER + self_name, self_key);
  w += self_key;
  if (nlink != 1) {
    memcpy(w, ",\"k\":", 5);
    w += 5;
    w += put_dec(w, nlink);
  }
  *w++ = ',';
  memcpy(w, member, member_len);
  w += member_len;
  memcpy(w, ",\"o\":", 5);
  w += 5;
  w += put_dec(w, (uint64_t)offset);
  memcpy(w, ",\"d\":\"", 6);
  w += 6;
  memcpy(w, rel, rel_len);
  w += rel_len;
  memcpy(w, "\"}\n", 3);
  w += 3;
  for (uint32_t i = 0; i < count; i++)
    if (match[i] >= 0) {
      const int32_t *row = index + (size_t)(match[i] >> 1) * STRIDE;
      size_t n = (size_t)(row[1] - row[0]);
      memcpy(w, data + row[0], n);
      w += n;
      *w++ = '\n';
    }

  /* The pax header block: "<dir>/PaxHeaders/<base>", mode 0644, owner 0, as GNU tar names it. */
  const unsigned char *slash = memrchr(rel, '/', rel_len);
  unsigned char *pos = seg;
  if (slash) pos = put_truncated(pos, rel, (size_t)(slash - rel), seg);
  else pos = put_truncated(pos, (const unsigned char *)".", 1, seg);
  pos = put_truncated(pos, (const unsigned char *)"/PaxHeaders/", 12, seg);
  const unsigned char *base = slash ? slash + 1 : rel;
  put_truncated(pos, base, (size_t)(rel + rel_len - base), seg);
  finish_block(seg, 0644, 0, 0, pax_len, (uint64_t)mtime, 'x', false);

  /* The ustar block: the path (cut at 100 bytes when the pax header holds it) with its '/'. */
  unsigned char *h = seg + (pax_blocks * BLOCK);
  pos = put_truncated(h, rel, rel_len, h);
  if (pos < h + NAME_LEN) *pos = '/';
  finish_block(h, mode & 07777, uid, gid, 0, (uint64_t)mtime, '5', true);

  out[0] = (double)tar_bytes;
  out[1] = (double)(w - man);
  out[2] = (double)(1 + matched);
  out[3] = (double)kids;
  out[4] = source_bytes;
  out[5] = (double)((size_t)(end - first) - matched);
  out[6] = (double)subdirs;
  return boolean(env, true);
}
