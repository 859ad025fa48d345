/*
 * xxh64 (seed 0) in C, hashing JavaScript's bytes where they are.
 *
 * xxhash-wasm copies every byte into wasm memory before hashing it; the
 * archiver hashes each file's content straight from the archive's segment
 * buffer, and the archive's compressed frames for the sidecar, so the copy
 * was a pass over every byte for nothing. The algorithm is XXH64 as the
 * xxHash specification defines it (doc/xxhash_spec.md, Yann Collet, BSD-2);
 * test/native/xxh64.test.ts holds the results equal to xxhash-wasm's.
 *
 * JavaScript API (registered by xbfs.c):
 *   xxh64(bytes: Uint8Array): string                     16 hex digits
 *   xxh64Init(state: Buffer(XXH64_STATE_SIZE)): void     streaming state lives in JS memory
 *   xxh64Update(state, bytes: Uint8Array): void
 *   xxh64Digest(state): string                           does not change the state
 *   xxh64UpdateAsync(state, bytes): Promise<void>        the update on a libuv worker thread
 */
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "xxh64.h"

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
/* Unaligned little-endian loads (x86 and arm64 Linux are little endian; memcpy compiles to one load). */
static inline uint64_t read64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t read32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

static inline uint64_t round64(uint64_t acc, uint64_t input) {
  acc += input * P2;
  acc = rotl(acc, 31);
  return acc * P1;
}

static inline uint64_t merge_round(uint64_t acc, uint64_t val) {
  acc ^= round64(0, val);
  return acc * P1 + P4;
}

/* The last < 32 bytes and the avalanche. */
static uint64_t finish(uint64_t h, const uint8_t *p, size_t len) {
  while (len >= 8) {
    h ^= round64(0, read64(p));
    h = rotl(h, 27) * P1 + P4;
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    h ^= (uint64_t)read32(p) * P1;
    h = rotl(h, 23) * P2 + P3;
    p += 4;
    len -= 4;
  }
  while (len > 0) {
    h ^= (*p++) * P5;
    h = rotl(h, 11) * P1;
    len--;
  }
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}

static uint64_t converge(const uint64_t v[4]) {
  uint64_t h = rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18);
  for (int i = 0; i < 4; i++) h = merge_round(h, v[i]);
  return h;
}

/* Consumes whole 32-byte stripes; returns the bytes consumed. */
static size_t stripes(uint64_t v[4], const uint8_t *p, size_t len) {
  const uint8_t *start = p, *limit = p + (len & ~(size_t)31);
  uint64_t a = v[0], b = v[1], c = v[2], d = v[3];
  while (p < limit) {
    a = round64(a, read64(p));
    b = round64(b, read64(p + 8));
    c = round64(c, read64(p + 16));
    d = round64(d, read64(p + 24));
    p += 32;
  }
  v[0] = a; v[1] = b; v[2] = c; v[3] = d;
  return (size_t)(p - start);
}

uint64_t xb_xxh64(const void *data, size_t len) {
  const uint8_t *p = data;
  uint64_t h;
  if (len >= 32) {
    uint64_t v[4] = { P1 + P2, P2, 0, (uint64_t)0 - P1 };
    size_t done = stripes(v, p, len);
    h = converge(v) + (uint64_t)len;
    return finish(h, p + done, len - done);
  }
  h = P5 + (uint64_t)len;
  return finish(h, p, len);
}

void xb_xxh64_init(xb_xxh64_state *s) {
  memset(s, 0, sizeof *s);
  s->v[0] = P1 + P2;
  s->v[1] = P2;
  s->v[2] = 0;
  s->v[3] = (uint64_t)0 - P1;
}

void xb_xxh64_update(xb_xxh64_state *s, const void *data, size_t len) {
  const uint8_t *p = data;
  s->total += len;
  if (s->buffered + len < 32) {
    memcpy(s->mem + s->buffered, p, len);
    s->buffered += (uint32_t)len;
    return;
  }
  if (s->buffered) {
    size_t fill = 32 - s->buffered;
    memcpy(s->mem + s->buffered, p, fill);
    stripes(s->v, s->mem, 32);
    p += fill;
    len -= fill;
    s->buffered = 0;
  }
  size_t done = stripes(s->v, p, len);
  memcpy(s->mem, p + done, len - done);
  s->buffered = (uint32_t)(len - done);
}

uint64_t xb_xxh64_digest(const xb_xxh64_state *s) {
  uint64_t h = s->total >= 32 ? converge(s->v) : P5;
  h += s->total;
  return finish(h, s->mem, s->buffered);
}

/* ---- N-API glue ---- */

static napi_value hex(napi_env env, uint64_t h) {
  static const char digits[] = "0123456789abcdef";
  char out[16];
  for (int i = 15; i >= 0; i--) {
    out[i] = digits[h & 15];
    h >>= 4;
  }
  napi_value s;
  napi_create_string_latin1(env, out, 16, &s);
  return s;
}

/* The bytes of a Buffer / Uint8Array (any offset into its ArrayBuffer). */
static int bytes_arg(napi_env env, napi_value v, const uint8_t **data, size_t *len) {
  bool is_typed = false;
  napi_is_typedarray(env, v, &is_typed);
  if (!is_typed) {
    napi_throw_type_error(env, NULL, "xxh64: expected a Uint8Array or Buffer");
    return 0;
  }
  napi_typedarray_type type;
  void *p;
  size_t length, offset;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &length, &p, &ab, &offset) != napi_ok || (type != napi_uint8_array && type != napi_uint8_clamped_array && type != napi_int8_array)) {
    napi_throw_type_error(env, NULL, "xxh64: expected a Uint8Array or Buffer");
    return 0;
  }
  *data = p;
  *len = length;
  return 1;
}

/* The state Buffer: at least XXH64_STATE_SIZE bytes; copied in and out so its alignment does not matter. */
static int state_arg(napi_env env, napi_value v, void **at) {
  size_t len;
  if (napi_get_buffer_info(env, v, at, &len) != napi_ok || len < sizeof(xb_xxh64_state)) {
    napi_throw_type_error(env, NULL, "xxh64: bad state buffer");
    return 0;
  }
  return 1;
}

napi_value xb_napi_xxh64(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  const uint8_t *data = NULL;
  size_t len = 0;
  if (argc < 1 || !bytes_arg(env, argv[0], &data, &len)) return NULL;
  return hex(env, xb_xxh64(data ? data : (const uint8_t *)"", len));
}

napi_value xb_napi_xxh64_init(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *at;
  if (argc < 1 || !state_arg(env, argv[0], &at)) return NULL;
  xb_xxh64_state s;
  xb_xxh64_init(&s);
  memcpy(at, &s, sizeof s);
  return NULL;
}

napi_value xb_napi_xxh64_update(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *at;
  const uint8_t *data = NULL;
  size_t len = 0;
  if (argc < 2 || !state_arg(env, argv[0], &at) || !bytes_arg(env, argv[1], &data, &len)) return NULL;
  if (len == 0) return NULL;
  xb_xxh64_state s;
  memcpy(&s, at, sizeof s);
  xb_xxh64_update(&s, data, len);
  memcpy(at, &s, sizeof s);
  return NULL;
}

napi_value xb_napi_xxh64_digest(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *at;
  if (argc < 1 || !state_arg(env, argv[0], &at)) return NULL;
  xb_xxh64_state s;
  memcpy(&s, at, sizeof s);
  return hex(env, xb_xxh64_digest(&s));
}

/*
 * xxh64UpdateAsync(state, bytes): Promise<void>, the update on a libuv
 * worker thread. The archive writer hashes each compressed frame (a GiB
 * per GiB archived, at worst) there, off the thread that reads the files.
 * The caller must not touch the state or the bytes until it settles.
 */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref state_ref, bytes_ref;
  void *state_at;
  const uint8_t *data;
  size_t len;
} update_job;

static void update_execute(napi_env env, void *p) {
  (void)env;
  update_job *job = p;
  xb_xxh64_state s;
  memcpy(&s, job->state_at, sizeof s);
  xb_xxh64_update(&s, job->data, job->len);
  memcpy(job->state_at, &s, sizeof s);
}

static void update_complete(napi_env env, napi_status status, void *p) {
  update_job *job = p;
  napi_value undef;
  napi_get_undefined(env, &undef);
  if (status == napi_ok) napi_resolve_deferred(env, job->deferred, undef);
  else {
    napi_value msg, err;
    napi_create_string_utf8(env, "xxh64UpdateAsync: cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, job->deferred, err);
  }
  napi_delete_reference(env, job->state_ref);
  napi_delete_reference(env, job->bytes_ref);
  napi_delete_async_work(env, job->work);
  free(job);
}

napi_value xb_napi_xxh64_update_async(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *at;
  const uint8_t *data = NULL;
  size_t len = 0;
  if (argc < 2 || !state_arg(env, argv[0], &at) || !bytes_arg(env, argv[1], &data, &len)) return NULL;
  update_job *job = calloc(1, sizeof *job);
  if (!job) {
    napi_throw_error(env, NULL, "xxh64UpdateAsync: out of memory");
    return NULL;
  }
  job->state_at = at;
  job->data = data;
  job->len = len;
  /* References keep both alive (and their memory in place) until the worker is done. */
  napi_create_reference(env, argv[0], 1, &job->state_ref);
  napi_create_reference(env, argv[1], 1, &job->bytes_ref);
  napi_value promise, name;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "xenbackup:xxh64", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, update_execute, update_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}
