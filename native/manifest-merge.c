/*
 * The previous manifest against a new listing, without a JavaScript object
 * per entry: a no-change incremental of 100,000 files spent most of its main
 * thread slicing every line of the old manifest into objects and comparing
 * them one by one.
 *
 * manifestIndex(data) -> Int32Array, 8 ints per line (the line format is
 * core/manifest.ts's; this reads it the way sliceEntryLine does):
 *   0 start   1 end (without "\n")   2 kind | encoding << 4 | unread << 8
 *   3 name start   4 name end (the JSON string's content, or base64 text)
 *   5 key start    6 key end (child lines: "t":... through the inode value)
 *   kind: 0 child entry, 1 directory line (name = its path), 2 trailer or
 *   header, 3 neither (the caller reports it). encoding: 0 the bytes as they
 *   are, 1 JSON escapes, 2 base64.
 *
 * mergeBlock(records, count, keep, data, index, first, end, match, dumpdir) -> dumpdir length
 *   Joins the listing's records (scandir.h layout, sorted by name; `keep`
 *   marks the ones the archiver keeps) with the child lines [first, end) of
 *   the index (sorted by name as written). match[i] = line * 2 + same for a
 *   kept non-directory record whose name the block has (same: the line's key
 *   equals the record's and the line is not "bad"), else -1. dumpdir is the
 *   directory's GNU.dumpdir: 'D' for kept directories, 'N' same, 'Y' other
 *   kept children, each name and a NUL, a final NUL. data may be null (no
 *   previous manifest): every kept child is 'Y'.
 *   Both results go into the caller's buffers (match: Int32Array of at
 *   least `count`; dumpdir: a Buffer), reused for every directory: a new
 *   ArrayBuffer and an external Buffer per call cost ~10 us, more than the
 *   join of a directory of thirty files. Returns the dumpdir's length, or
 *   minus the length it needs when the Buffer is too small (nothing written),
 *   or INT32_MIN when it would exceed 2 GiB.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "scandir.h"
#include "manifest-merge.h"

static bool at(const unsigned char *d, size_t i, size_t end, const char *lit) {
  size_t n = strlen(lit);
  return i + n <= end && memcmp(d + i, lit, n) == 0;
}

/* The end of the JSON string whose content starts at i (the index of its closing quote); *escaped when it has escapes. */
static size_t string_end(const unsigned char *d, size_t i, size_t end, bool *escaped) {
  *escaped = false;
  while (i < end) {
    if (d[i] == '\\') {
      *escaped = true;
      i += 2;
      continue;
    }
    if (d[i] == '"') return i;
    i++;
  }
  return end;
}

static void index_line(const unsigned char *d, size_t s, size_t e, int32_t *row) {
  row[0] = (int32_t)s;
  row[1] = (int32_t)e;
  row[2] = 3;
  bool escaped = false;
  size_t ns;
  int enc = 0;
  if (at(d, s, e, "{\"n\":\"")) ns = s + 6;
  else if (at(d, s, e, "{\"nb\":\"")) {
    ns = s + 7;
    enc = 2;
  } else {
    if (at(d, s, e, "{\"end\":") || at(d, s, e, "{\"xenbackup\":")) {
      row[2] = 2;
      return;
    }
    /* A directory line: its path is the last member, "d" or "db" (core/manifest.ts encodeDirLine). */
    for (size_t i = s; i + 6 <= e; i++) {
      if (d[i] != ',') continue;
      size_t p = 0;
      int denc = 0;
      if (at(d, i, e, ",\"d\":\"")) p = i + 6;
      else if (at(d, i, e, ",\"db\":\"")) {
        p = i + 7;
        denc = 2;
      } else continue;
      size_t q = string_end(d, p, e, &escaped);
      if (q >= e) return;
      row[2] = 1 | (denc ? denc : escaped ? 1 : 0) << 4;
      row[3] = (int32_t)p;
      row[4] = (int32_t)q;
      return;
    }
    return;
  }
  size_t close = string_end(d, ns, e, &escaped);
  if (!at(d, close, e, "\",\"t\":\"")) return;
  size_t ks = close + 2, ke = 0;
  for (size_t i = ks; i + 6 <= e; i++) {
    if (d[i] == ',' && at(d, i, e, ",\"i\":\"")) {
      for (size_t k = i + 6; k < e; k++)
        if (d[k] == '"') {
          ke = k + 1;
          break;
        }
      break;
    }
  }
  if (!ke) return;
  bool unread = e - s >= 9 && memcmp(d + e - 9, ",\"bad\":1}", 9) == 0;
  row[2] = 0 | (enc ? enc : escaped ? 1 : 0) << 4 | (unread ? 1 : 0) << 8;
  row[3] = (int32_t)ns;
  row[4] = (int32_t)close;
  row[5] = (int32_t)ks;
  row[6] = (int32_t)ke;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static size_t put_utf8(unsigned char *o, uint32_t cp) {
  if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
  if (cp < 0x800) { o[0] = (unsigned char)(0xc0 | cp >> 6); o[1] = (unsigned char)(0x80 | (cp & 0x3f)); return 2; }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xe0 | cp >> 12); o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f)); o[2] = (unsigned char)(0x80 | (cp & 0x3f));
    return 3;
  }
  o[0] = (unsigned char)(0xf0 | cp >> 18); o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
  o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f)); o[3] = (unsigned char)(0x80 | (cp & 0x3f));
  return 4;
}

static int32_t u4(const unsigned char *p) {
  int a = hexval(p[0]), b = hexval(p[1]), c = hexval(p[2]), d = hexval(p[3]);
  if (a < 0 || b < 0 || c < 0 || d < 0) return -1;
  return a << 12 | b << 8 | c << 4 | d;
}

/* A JSON string's content decoded to UTF-8 bytes in out (cap bytes at least); returns the length or -1. */
static long json_unescape(const unsigned char *s, size_t n, unsigned char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    if (o + 4 > cap) return -1;
    if (s[i] != '\\') {
      out[o++] = s[i++];
      continue;
    }
    if (i + 1 >= n) return -1;
    unsigned char c = s[i + 1];
    i += 2;
    switch (c) {
      case '"': out[o++] = '"'; break;
      case '\\': out[o++] = '\\'; break;
      case '/': out[o++] = '/'; break;
      case 'b': out[o++] = '\b'; break;
      case 'f': out[o++] = '\f'; break;
      case 'n': out[o++] = '\n'; break;
      case 'r': out[o++] = '\r'; break;
      case 't': out[o++] = '\t'; break;
      case 'u': {
        if (i + 4 > n) return -1;
        int32_t cp = u4(s + i);
        i += 4;
        if (cp < 0) return -1;
        if (cp >= 0xd800 && cp < 0xdc00 && i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u') {
          int32_t lo = u4(s + i + 2);
          if (lo >= 0xdc00 && lo < 0xe000) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            i += 6;
          }
        }
        o += put_utf8(out + o, (uint32_t)cp);
        break;
      }
      default: return -1;
    }
  }
  return (long)o;
}

static long base64_decode(const unsigned char *s, size_t n, unsigned char *out, size_t cap) {
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int c = s[i], v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else if (c == '=') break;
    else return -1;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o >= cap) return -1;
      out[o++] = (unsigned char)(acc >> bits);
    }
  }
  return (long)o;
}

/* The name of index row `row` as bytes: a pointer into data, or decoded into buf. Returns the length or -1. */
static long line_name(const unsigned char *data, const int32_t *row, unsigned char *buf, size_t cap, const unsigned char **name) {
  int enc = row[2] >> 4 & 15;
  const unsigned char *s = data + row[3];
  size_t n = (size_t)(row[4] - row[3]);
  if (enc == 0) {
    *name = s;
    return (long)n;
  }
  *name = buf;
  return enc == 1 ? json_unescape(s, n, buf, cap) : base64_decode(s, n, buf, cap);
}

static int compare_bytes(const unsigned char *a, size_t an, const unsigned char *b, size_t bn) {
  int c = memcmp(a, b, an < bn ? an : bn);
  if (c) return c;
  return an < bn ? -1 : an > bn ? 1 : 0;
}

size_t xb_dumpdir_length(const unsigned char *rec, uint32_t count, const unsigned char *keep) {
  size_t need = 1, off = 0;
  for (uint32_t i = 0; i < count; i++, off += *(const uint32_t *)(rec + off))
    if (!keep || keep[i]) need += (size_t)(rec[off + 88] | rec[off + 89] << 8) + 2;
  return need;
}

size_t xb_merge_join(const unsigned char *rec, uint32_t count, const unsigned char *keep, const unsigned char *data, const int32_t *index,
                     int32_t first, int32_t end, int32_t *m, unsigned char *dump) {
  unsigned char namebuf[4 * 256 + 16];
  int32_t line = first;
  size_t used = 0, off = 0;
  for (uint32_t i = 0; i < count; i++, off += *(const uint32_t *)(rec + off)) {
    const unsigned char *r = rec + off;
    m[i] = -1;
    if (keep && !keep[i]) continue;
    uint32_t mode;
    memcpy(&mode, r + 8, 4);
    unsigned short name_len = (unsigned short)(r[88] | r[89] << 8);
    unsigned short key_len = (unsigned short)(r[90] | r[91] << 8);
    const unsigned char *name = r + HEADER;
    bool dir = S_ISDIR(mode);
    char code = dir ? 'D' : 'Y';
    if (!dir && data) {
      /* Advance through the block's lines (sorted by name) to this name. */
      while (line < end) {
        const int32_t *row = index + (size_t)line * STRIDE;
        if ((row[2] & 15) != 0) {
          line++;
          continue;
        }
        const unsigned char *ln;
        long n = line_name(data, row, namebuf, sizeof namebuf, &ln);
        int c = n < 0 ? -1 : compare_bytes(ln, (size_t)n, name, name_len);
        if (c < 0) {
          line++;
          continue;
        }
        if (c == 0) {
          bool unread = row[2] >> 8 & 1;
          bool same = !unread && key_len > 0 && row[6] - row[5] == key_len && memcmp(data + row[5], name + name_len, key_len) == 0;
          m[i] = line * 2 + (same ? 1 : 0);
          if (same) code = 'N';
          line++;
        }
        break;
      }
    }
    dump[used++] = (unsigned char)code;
    memcpy(dump + used, name, name_len);
    used += name_len;
    dump[used++] = 0;
  }
  dump[used++] = 0;
  return used;
}

napi_value xbfs_manifest_index(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *raw;
  size_t len;
  if (argc < 1 || napi_get_buffer_info(env, argv[0], &raw, &len) != napi_ok || len > INT32_MAX) {
    napi_throw_type_error(env, NULL, "manifestIndex(data: Buffer) (under 2 GiB)");
    return NULL;
  }
  const unsigned char *d = raw;
  size_t lines = 0;
  for (const unsigned char *p = d, *e = d + len; p < e; lines++) {
    const unsigned char *nl = memchr(p, '\n', (size_t)(e - p));
    p = nl ? nl + 1 : e;
  }
  napi_value ab, arr;
  void *mem;
  if (napi_create_arraybuffer(env, lines * STRIDE * sizeof(int32_t), &mem, &ab) != napi_ok) return NULL;
  int32_t *rows = mem;
  memset(rows, 0, lines * STRIDE * sizeof(int32_t));
  size_t k = 0, s = 0;
  while (s < len) {
    const unsigned char *nl = memchr(d + s, '\n', len - s);
    size_t e = nl ? (size_t)(nl - d) : len;
    index_line(d, s, e, rows + k * STRIDE);
    k++;
    s = e + 1;
  }
  napi_create_typedarray(env, napi_int32_array, lines * STRIDE, ab, 0, &arr);
  return arr;
}

napi_value xbfs_merge_block(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *rec_raw, *keep_raw, *data_raw = NULL, *index_raw = NULL, *match_raw, *dump_raw;
  size_t rec_len, keep_len, data_len = 0, index_len = 0, match_len, dump_cap;
  uint32_t count;
  int32_t first = 0, end = 0;
  napi_valuetype data_type = napi_null;
  napi_typedarray_type keep_type, index_type = napi_int32_array, match_type;
  napi_value ab;
  size_t off0;
  bool ok = argc >= 9 && napi_get_buffer_info(env, argv[0], &rec_raw, &rec_len) == napi_ok &&
            napi_get_value_uint32(env, argv[1], &count) == napi_ok &&
            napi_get_typedarray_info(env, argv[2], &keep_type, &keep_len, &keep_raw, &ab, &off0) == napi_ok && keep_type == napi_uint8_array &&
            keep_len >= count && napi_typeof(env, argv[3], &data_type) == napi_ok &&
            napi_get_typedarray_info(env, argv[7], &match_type, &match_len, &match_raw, &ab, &off0) == napi_ok && match_type == napi_int32_array &&
            match_len >= count && napi_get_buffer_info(env, argv[8], &dump_raw, &dump_cap) == napi_ok;
  if (ok && data_type != napi_null && data_type != napi_undefined) {
    ok = napi_get_buffer_info(env, argv[3], &data_raw, &data_len) == napi_ok &&
         napi_get_typedarray_info(env, argv[4], &index_type, &index_len, &index_raw, &ab, &off0) == napi_ok && index_type == napi_int32_array &&
         napi_get_value_int32(env, argv[5], &first) == napi_ok && napi_get_value_int32(env, argv[6], &end) == napi_ok && first >= 0 &&
         end >= first && (size_t)end * STRIDE <= index_len;
  }
  if (!ok) {
    napi_throw_type_error(env, NULL, "mergeBlock(records, count, keep: Uint8Array, data: Buffer | null, index: Int32Array, first, end, match: Int32Array, dumpdir: Buffer)");
    return NULL;
  }
  const unsigned char *rec = rec_raw, *keep = keep_raw, *data = data_raw;
  const int32_t *index = index_raw;
  int32_t *m = match_raw;
  unsigned char *dump = dump_raw;
  napi_value result;

  /* The dumpdir's length first: the caller's buffer is reused for every directory and grown when too small. */
  size_t need = xb_dumpdir_length(rec, count, keep);
  if (need > dump_cap || need > INT32_MAX) {
    napi_create_int32(env, need > INT32_MAX ? INT32_MIN : -(int32_t)need, &result);
    return result;
  }
  size_t used = xb_merge_join(rec, count, keep, data, index, first, end, m, dump);
  napi_create_int32(env, (int32_t)used, &result);
  return result;
}
