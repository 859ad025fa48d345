/*
 * zstd compression of one archive segment into one independent frame, in
 * a libuv worker thread, with the system's libzstd (the library the `zstd`
 * binary is built on: same frames, same checksum flag as `zstd -1`).
 *
 * Why not spawn `zstd` per segment: a fork+exec from a large Node process,
 * two pipes and a 16 MiB copy each way cost more CPU than compressing at
 * level 1 (measured: ~7 CPU-s of a 1 GB full). Here the input Buffer is read
 * in place, the frame is written once into memory handed to JavaScript
 * without a copy, and two segments compress at once while the main thread
 * fills the next. The nightly run compresses at nice 19 (dom0 serves the
 * guests while it backs them up, as the zstd child processes did): the
 * worker thread takes the nice value each job asks for.
 *
 * Decompression of one frame into a buffer the caller gives (a raw
 * restore's chunk): the frame is read in place and the chunk written once,
 * where JavaScript then hashes and writes it; a pipe through a `zstd -d`
 * child copied every byte three more times and ran on one core only.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref input_ref;
  const void *input;
  size_t input_len;
  int level;
  int nice;
  void *output;
  size_t output_len;
  /* The caller's buffer (and its capacity), or NULL: then output is malloc'd and handed over. */
  napi_ref output_ref;
  size_t output_cap;
  const char *error;
} compress_job;

/* The nice value this worker thread runs at (Linux nice values are per thread). */
static __thread int thread_nice = 0;

static void take_nice(int nice) {
  if (thread_nice != nice) {
    /* Only this worker thread; raising priority again needs CAP_SYS_NICE, else it stays low. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice) == 0) thread_nice = nice;
  }
}

static void execute(napi_env env, void *data) {
  (void)env;
  compress_job *job = data;
  take_nice(job->nice);
  size_t bound = job->output_ref ? job->output_cap : ZSTD_compressBound(job->input_len);
  if (!job->output_ref) job->output = malloc(bound ? bound : 1);
  if (!job->output) {
    job->error = "out of memory";
    return;
  }
  ZSTD_CCtx *cctx = ZSTD_createCCtx();
  if (!cctx) {
    job->error = "ZSTD_createCCtx failed";
    return;
  }
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, job->level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
  size_t n = ZSTD_compress2(cctx, job->output, bound, job->input, job->input_len);
  ZSTD_freeCCtx(cctx);
  if (ZSTD_isError(n)) {
    job->error = ZSTD_getErrorName(n);
    return;
  }
  job->output_len = n;
}

static void free_output(napi_env env, void *data, void *hint) {
  int64_t total;
  napi_adjust_external_memory(env, -(int64_t)(uintptr_t)hint, &total);
  free(data);
}

static void complete(napi_env env, napi_status status, void *data) {
  compress_job *job = data;
  napi_value result;
  if (status != napi_ok || job->error) {
    napi_value msg, err;
    napi_create_string_utf8(env, job->error ? job->error : "zstd compression was cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, job->deferred, err);
    if (!job->output_ref) free(job->output);
  } else if (job->output_ref) {
    napi_create_double(env, (double)job->output_len, &result);
    napi_resolve_deferred(env, job->deferred, result);
  } else if (napi_create_external_buffer(env, job->output_len, job->output, free_output, (void *)(uintptr_t)job->output_len, &result) == napi_ok) {
    int64_t total;
    napi_adjust_external_memory(env, (int64_t)job->output_len, &total);
    napi_resolve_deferred(env, job->deferred, result);
  } else {
    /* Some runtimes forbid external buffers: fall back to one copy. */
    void *copy;
    napi_create_buffer_copy(env, job->output_len, job->output, &copy, &result);
    free(job->output);
    napi_resolve_deferred(env, job->deferred, result);
  }
  napi_delete_reference(env, job->input_ref);
  if (job->output_ref) napi_delete_reference(env, job->output_ref);
  napi_delete_async_work(env, job->work);
  free(job);
}

/*
 * compress(input: Buffer, level: number, nice: number, output?: Buffer): Promise<Buffer>, or with
 * `output` Promise<number>: the frame written at its start (an archive reuses a few such buffers
 * instead of leaving one of ~8 MiB per segment to the garbage collector).
 */
static napi_value x_compress(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool is_buffer = false;
  if (argc < 2 || napi_is_buffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer) {
    napi_throw_type_error(env, NULL, "compress(input: Buffer, level: number)");
    return NULL;
  }
  compress_job *job = calloc(1, sizeof *job);
  void *input;
  napi_get_buffer_info(env, argv[0], &input, &job->input_len);
  job->input = input;
  int32_t level = 1;
  napi_get_value_int32(env, argv[1], &level);
  job->level = level;
  int32_t nice = 0;
  if (argc >= 3) napi_get_value_int32(env, argv[2], &nice);
  job->nice = nice;
  bool has_output = false;
  if (argc >= 4 && napi_is_buffer(env, argv[3], &has_output) == napi_ok && has_output) {
    napi_get_buffer_info(env, argv[3], &job->output, &job->output_cap);
    napi_create_reference(env, argv[3], 1, &job->output_ref);
  }
  napi_create_reference(env, argv[0], 1, &job->input_ref);
  napi_value promise, name;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "xenbackup:zstd", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref input_ref;
  napi_ref output_ref;
  const void *input;
  size_t input_len;
  void *output;
  size_t output_len;
  size_t expected;
  int nice;
  size_t produced;
  char error[160];
} decompress_job;

/* One decompression context per worker thread, kept for the thread's life: creating one per frame costs more than a small frame's decoding. */
static __thread ZSTD_DCtx *thread_dctx = NULL;

/*
 * Decodes `in`, exactly one frame of `expected` bytes, into `out` with `dctx`; returns the bytes produced,
 * or 0 with `err` set. Shared by the worker-thread and the synchronous paths.
 */
static size_t decode_frame(ZSTD_DCtx *dctx, const void *in, size_t in_len, void *out, size_t out_len, size_t expected, char *err, size_t err_len) {
  /* Exactly one frame, of the recorded size: anything else is a damaged container or index. */
  size_t frame_len = ZSTD_findFrameCompressedSize(in, in_len);
  if (ZSTD_isError(frame_len)) {
    snprintf(err, err_len, "not a zstd frame (%s)", ZSTD_getErrorName(frame_len));
    return 0;
  }
  if (frame_len != in_len) {
    snprintf(err, err_len, "the frame ends after %zu of its %zu bytes", frame_len, in_len);
    return 0;
  }
  unsigned long long content = ZSTD_getFrameContentSize(in, in_len);
  if (content != ZSTD_CONTENTSIZE_UNKNOWN && content != ZSTD_CONTENTSIZE_ERROR && content != expected) {
    snprintf(err, err_len, "the frame holds %llu bytes, expected %zu", content, expected);
    return 0;
  }
  /* Room for one byte more than expected: a frame without a content size that holds more is caught, not cut. */
  size_t room = out_len < expected + 1 ? out_len : expected + 1;
  size_t n = ZSTD_decompressDCtx(dctx, out, room, in, in_len);
  if (ZSTD_isError(n)) {
    ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
    if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall) {
      snprintf(err, err_len, "the frame decodes to more than the expected %zu bytes", expected);
    } else {
      snprintf(err, err_len, "%s", ZSTD_getErrorName(n));
    }
    return 0;
  }
  if (n != expected) {
    if (n > expected) snprintf(err, err_len, "the frame decodes to more than the expected %zu bytes", expected);
    else snprintf(err, err_len, "the frame decodes to %zu bytes, expected %zu", n, expected);
    return 0;
  }
  return n;
}

static void execute_decompress(napi_env env, void *data) {
  (void)env;
  decompress_job *job = data;
  take_nice(job->nice);
  if (!thread_dctx) thread_dctx = ZSTD_createDCtx();
  if (!thread_dctx) {
    snprintf(job->error, sizeof job->error, "ZSTD_createDCtx failed");
    return;
  }
  job->produced = decode_frame(thread_dctx, job->input, job->input_len, job->output, job->output_len, job->expected, job->error, sizeof job->error);
}

/*
 * decompressSync(frame: Buffer, output: Buffer, expected: number): number, on the calling thread: a
 * manifest's frames are small (~256 KiB) and read by synchronous walks (ls, the incremental's cursor),
 * where a round trip through the worker pool would cost more than the decoding.
 */
static napi_value x_decompress_sync(napi_env env, napi_callback_info info) {
  static ZSTD_DCtx *dctx = NULL;
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool in_buf = false, out_buf = false;
  double expected = -1;
  if (argc < 3 || napi_is_buffer(env, argv[0], &in_buf) != napi_ok || !in_buf || napi_is_buffer(env, argv[1], &out_buf) != napi_ok || !out_buf ||
      napi_get_value_double(env, argv[2], &expected) != napi_ok || !(expected >= 0)) {
    napi_throw_type_error(env, NULL, "decompressSync(frame: Buffer, output: Buffer, expected: number)");
    return NULL;
  }
  void *input, *output;
  size_t input_len, output_len;
  napi_get_buffer_info(env, argv[0], &input, &input_len);
  napi_get_buffer_info(env, argv[1], &output, &output_len);
  if ((size_t)expected > output_len) {
    napi_throw_range_error(env, NULL, "decompressSync: the output buffer is smaller than the expected size");
    return NULL;
  }
  if (!dctx) dctx = ZSTD_createDCtx();
  if (!dctx) {
    napi_throw_error(env, NULL, "ZSTD_createDCtx failed");
    return NULL;
  }
  char err[160] = "";
  size_t n = decode_frame(dctx, input, input_len, output, output_len, (size_t)expected, err, sizeof err);
  if (err[0]) {
    napi_throw_error(env, NULL, err);
    return NULL;
  }
  napi_value result;
  napi_create_double(env, (double)n, &result);
  return result;
}

/* compressSync(input: Buffer, level: number, output: Buffer): number, the frame's length at the start of output (at least the bound). */
static napi_value x_compress_sync(napi_env env, napi_callback_info info) {
  static ZSTD_CCtx *cctx = NULL;
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool in_buf = false, out_buf = false;
  int32_t level = 1;
  if (argc < 3 || napi_is_buffer(env, argv[0], &in_buf) != napi_ok || !in_buf || napi_get_value_int32(env, argv[1], &level) != napi_ok ||
      napi_is_buffer(env, argv[2], &out_buf) != napi_ok || !out_buf) {
    napi_throw_type_error(env, NULL, "compressSync(input: Buffer, level: number, output: Buffer)");
    return NULL;
  }
  void *input, *output;
  size_t input_len, output_len;
  napi_get_buffer_info(env, argv[0], &input, &input_len);
  napi_get_buffer_info(env, argv[2], &output, &output_len);
  if (!cctx) cctx = ZSTD_createCCtx();
  if (!cctx) {
    napi_throw_error(env, NULL, "ZSTD_createCCtx failed");
    return NULL;
  }
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
  size_t n = ZSTD_compress2(cctx, output, output_len, input, input_len);
  if (ZSTD_isError(n)) {
    napi_throw_error(env, NULL, ZSTD_getErrorName(n));
    return NULL;
  }
  napi_value result;
  napi_create_double(env, (double)n, &result);
  return result;
}

static void complete_decompress(napi_env env, napi_status status, void *data) {
  decompress_job *job = data;
  if (status != napi_ok || job->error[0]) {
    napi_value msg, err;
    napi_create_string_utf8(env, job->error[0] ? job->error : "zstd decompression was cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, job->deferred, err);
  } else {
    napi_value result;
    napi_create_double(env, (double)job->produced, &result);
    napi_resolve_deferred(env, job->deferred, result);
  }
  napi_delete_reference(env, job->input_ref);
  napi_delete_reference(env, job->output_ref);
  napi_delete_async_work(env, job->work);
  free(job);
}

/* decompress(frame: Buffer, output: Buffer, expected: number, nice: number): Promise<number> */
static napi_value x_decompress(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool in_buf = false, out_buf = false;
  double expected = -1;
  if (argc < 3 || napi_is_buffer(env, argv[0], &in_buf) != napi_ok || !in_buf || napi_is_buffer(env, argv[1], &out_buf) != napi_ok || !out_buf ||
      napi_get_value_double(env, argv[2], &expected) != napi_ok || !(expected >= 0)) {
    napi_throw_type_error(env, NULL, "decompress(frame: Buffer, output: Buffer, expected: number, nice?: number)");
    return NULL;
  }
  decompress_job *job = calloc(1, sizeof *job);
  if (!job) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  void *input, *output;
  napi_get_buffer_info(env, argv[0], &input, &job->input_len);
  napi_get_buffer_info(env, argv[1], &output, &job->output_len);
  job->input = input;
  job->output = output;
  job->expected = (size_t)expected;
  if (job->expected > job->output_len) {
    free(job);
    napi_throw_range_error(env, NULL, "decompress: the output buffer is smaller than the expected size");
    return NULL;
  }
  int32_t nice = 0;
  if (argc >= 4) napi_get_value_int32(env, argv[3], &nice);
  job->nice = nice;
  /* Both buffers stay alive (and the caller keeps its hands off them) until the promise settles. */
  napi_create_reference(env, argv[0], 1, &job->input_ref);
  napi_create_reference(env, argv[1], 1, &job->output_ref);
  napi_value promise, name;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "xenbackup:unzstd", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute_decompress, complete_decompress, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

static void free_aligned(napi_env env, void *data, void *hint) {
  int64_t total;
  napi_adjust_external_memory(env, -(int64_t)(uintptr_t)hint, &total);
  free(data);
}

/*
 * alignedBuffer(size: number): Buffer, zero-copy memory aligned to 4 KiB
 * (any block size up to a page): a raw restore decodes chunks into these
 * and writes them with O_DIRECT, which refuses unaligned memory, and Node
 * cannot ask for alignment itself.
 */
static napi_value x_aligned_buffer(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  double size = -1;
  if (argc < 1 || napi_get_value_double(env, argv[0], &size) != napi_ok || !(size >= 0) || size > (double)((size_t)1 << 40)) {
    napi_throw_type_error(env, NULL, "alignedBuffer(size: number)");
    return NULL;
  }
  void *mem = NULL;
  if (posix_memalign(&mem, 4096, size > 0 ? (size_t)size : 1) != 0) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  napi_value result;
  if (napi_create_external_buffer(env, (size_t)size, mem, free_aligned, (void *)(uintptr_t)size, &result) != napi_ok) {
    free(mem);
    napi_throw_error(env, NULL, "this runtime refuses external buffers");
    return NULL;
  }
  /* Tell V8 what it holds: pools of several MiB per container must not wait for a GC that sees only small objects. */
  int64_t total;
  napi_adjust_external_memory(env, (int64_t)size, &total);
  return result;
}

static napi_value x_version(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  napi_create_string_utf8(env, ZSTD_versionString(), NAPI_AUTO_LENGTH, &v);
  return v;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "compress", NULL, x_compress, NULL, NULL, NULL, napi_default, NULL },
    { "decompress", NULL, x_decompress, NULL, NULL, NULL, napi_default, NULL },
    { "compressSync", NULL, x_compress_sync, NULL, NULL, NULL, napi_default, NULL },
    { "decompressSync", NULL, x_decompress_sync, NULL, NULL, NULL, napi_default, NULL },
    { "alignedBuffer", NULL, x_aligned_buffer, NULL, NULL, NULL, napi_default, NULL },
    { "version", NULL, x_version, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
