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
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <zstd.h>

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
  const char *error;
} compress_job;

/* The nice value this worker thread runs at (Linux nice values are per thread). */
static __thread int thread_nice = 0;

static void execute(napi_env env, void *data) {
  (void)env;
  compress_job *job = data;
  if (thread_nice != job->nice) {
    /* Only this worker thread; raising priority again needs CAP_SYS_NICE, else it stays low. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), job->nice) == 0) thread_nice = job->nice;
  }
  size_t bound = ZSTD_compressBound(job->input_len);
  job->output = malloc(bound ? bound : 1);
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
  (void)env;
  (void)hint;
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
    free(job->output);
  } else if (napi_create_external_buffer(env, job->output_len, job->output, free_output, NULL, &result) == napi_ok) {
    napi_adjust_external_memory(env, 0, NULL);
    napi_resolve_deferred(env, job->deferred, result);
  } else {
    /* Some runtimes forbid external buffers: fall back to one copy. */
    void *copy;
    napi_create_buffer_copy(env, job->output_len, job->output, &copy, &result);
    free(job->output);
    napi_resolve_deferred(env, job->deferred, result);
  }
  napi_delete_reference(env, job->input_ref);
  napi_delete_async_work(env, job->work);
  free(job);
}

/* compress(input: Buffer, level: number, nice: number): Promise<Buffer> */
static napi_value x_compress(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
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
  napi_create_reference(env, argv[0], 1, &job->input_ref);
  napi_value promise, name;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "xenbackup:zstd", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, execute, complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
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
    { "version", NULL, x_version, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
