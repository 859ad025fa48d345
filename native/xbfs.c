/*
 * The few system calls xenbackup needs and Node's fs lacks:
 *  - l{list,get,set}xattr: extended attributes and POSIX ACLs (stored as
 *    system.posix_acl_* xattrs) without following symlinks;
 *  - utimensat with nanoseconds: libuv truncates times to microseconds;
 *  - lseek SEEK_DATA/SEEK_HOLE: to skip holes of sparse files instead of
 *    reading a 1 TiB lastlog as zeros;
 *  - f{list,get}xattr on an fd the archiver holds already (scandir.c), and
 *    xxh64 over bytes in place (xxh64.c): the backup's per-file hot path.
 * Paths arrive as Buffers so that names that are not valid UTF-8 survive.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, "xbfs: napi call failed"); return NULL; } } while (0)

/* An Error like Node's fs errors (code, errno, message naming the call), not thrown. */
static napi_value errno_error(napi_env env, int err, const char *syscall) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", syscall, strerror(err));
  napi_value code, message, error, errnoval;
  const char *name = "EIO";
  switch (err) {
    case ENOENT: name = "ENOENT"; break;
    case ENODATA: name = "ENODATA"; break;
    case ENOTSUP: name = "ENOTSUP"; break;
    case EACCES: name = "EACCES"; break;
    case EPERM: name = "EPERM"; break;
    case ENXIO: name = "ENXIO"; break;
    case ERANGE: name = "ERANGE"; break;
    case ENOSPC: name = "ENOSPC"; break;
    case EINVAL: name = "EINVAL"; break;
    case E2BIG: name = "E2BIG"; break;
    case ENOTDIR: name = "ENOTDIR"; break;
    case ELOOP: name = "ELOOP"; break;
    default: break;
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, -err, &errnoval);
  napi_set_named_property(env, error, "errno", errnoval);
  napi_set_named_property(env, error, "code", code);
  return error;
}

static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  napi_throw(env, errno_error(env, err, syscall));
  return NULL;
}

/* Copies a Buffer argument into a NUL-terminated C string (caller frees). */
static char *buffer_arg(napi_env env, napi_value v) {
  bool is_buffer = false;
  napi_is_buffer(env, v, &is_buffer);
  if (is_buffer) {
    void *data; size_t len;
    napi_get_buffer_info(env, v, &data, &len);
    char *s = malloc(len + 1);
    memcpy(s, data, len);
    s[len] = 0;
    return s;
  }
  size_t len;
  if (napi_get_value_string_latin1(env, v, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "xbfs: expected a Buffer or string");
    return NULL;
  }
  char *s = malloc(len + 1);
  napi_get_value_string_latin1(env, v, s, len + 1, &len);
  return s;
}

static napi_value x_llistxattr(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *path = buffer_arg(env, argv[0]);
  if (!path) return NULL;
  ssize_t size = llistxattr(path, NULL, 0);
  char *names = NULL;
  for (int tries = 0; size > 0 && tries < 5; tries++) {
    names = realloc(names, size);
    ssize_t got = llistxattr(path, names, size);
    if (got >= 0) { size = got; break; }
    if (errno != ERANGE) { size = -1; break; }
    size = llistxattr(path, NULL, 0);
  }
  int err = errno;
  free(path);
  if (size < 0) { free(names); if (err == ENOTSUP) size = 0; else return throw_errno(env, err, "llistxattr"); }
  napi_value result; napi_create_array(env, &result);
  uint32_t i = 0;
  for (ssize_t off = 0; off < size; ) {
    size_t n = strlen(names + off);
    napi_value s; napi_create_string_latin1(env, names + off, n, &s);
    napi_set_element(env, result, i++, s);
    off += n + 1;
  }
  free(names);
  return result;
}

/* flistxattr(fd): the xattr names of an open file or directory (no path lookup). */
static napi_value x_flistxattr(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  char stack[1024];
  char *names = stack;
  ssize_t size = flistxattr(fd, stack, sizeof stack);
  for (int tries = 0; size < 0 && errno == ERANGE && tries < 5; tries++) {
    ssize_t need = flistxattr(fd, NULL, 0);
    if (need < 0) break;
    if (names != stack) free(names);
    names = malloc(need ? need : 1);
    size = flistxattr(fd, names, need);
  }
  int err = errno;
  napi_value result; napi_create_array(env, &result);
  if (size < 0) {
    if (names != stack) free(names);
    if (err == ENOTSUP) return result;
    return throw_errno(env, err, "flistxattr");
  }
  uint32_t i = 0;
  for (ssize_t off = 0; off < size; ) {
    size_t n = strlen(names + off);
    napi_value s; napi_create_string_latin1(env, names + off, n, &s);
    napi_set_element(env, result, i++, s);
    off += n + 1;
  }
  if (names != stack) free(names);
  return result;
}

/* Where an xattr's value is read from: an open fd, or a path (not followed). */
typedef struct { int fd; const char *path; } xattr_target;

static ssize_t get_value(const xattr_target *t, const char *name, void *buf, size_t size) {
  return t->path ? lgetxattr(t->path, name, buf, size) : fgetxattr(t->fd, name, buf, size);
}

/* One xattr's value as a new Buffer; retries while the value grows between the size query and the read. */
static napi_value xattr_value(napi_env env, const xattr_target *t, char *name, const char *syscall) {
  ssize_t size = get_value(t, name, NULL, 0);
  char *value = NULL;
  for (int tries = 0; size >= 0 && tries < 5; tries++) {
    value = realloc(value, size ? size : 1);
    ssize_t got = get_value(t, name, value, size);
    if (got >= 0) { size = got; break; }
    if (errno != ERANGE) { size = -1; break; }
    size = get_value(t, name, NULL, 0);
  }
  int err = errno;
  if (size < 0) { free(value); return throw_errno(env, err, syscall); }
  napi_value result; void *dst;
  napi_create_buffer_copy(env, size, value ? value : "", &dst, &result);
  free(value);
  return result;
}

/* fgetxattr(fd, name): one xattr's value of an open file or directory. */
static napi_value x_fgetxattr(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  char *name = buffer_arg(env, argv[1]);
  if (!name) return NULL;
  xattr_target t = { fd, NULL };
  napi_value result = xattr_value(env, &t, name, "fgetxattr");
  free(name);
  return result;
}

static napi_value x_lgetxattr(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *path = buffer_arg(env, argv[0]);
  if (!path) return NULL;
  char *name = buffer_arg(env, argv[1]);
  if (!name) { free(path); return NULL; }
  xattr_target t = { -1, path };
  napi_value result = xattr_value(env, &t, name, "lgetxattr");
  free(path); free(name);
  return result;
}

static napi_value x_lsetxattr(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *path = buffer_arg(env, argv[0]);
  if (!path) return NULL;
  char *name = buffer_arg(env, argv[1]);
  if (!name) { free(path); return NULL; }
  void *data; size_t len;
  if (napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) {
    free(path); free(name);
    napi_throw_type_error(env, NULL, "xbfs: value must be a Buffer");
    return NULL;
  }
  int rc = lsetxattr(path, name, data, len, 0);
  int err = errno;
  free(path); free(name);
  if (rc != 0) return throw_errno(env, err, "lsetxattr");
  return NULL;
}

/* lutimens(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec): never follows a symlink. */
static napi_value x_lutimens(napi_env env, napi_callback_info info) {
  size_t argc = 5; napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *path = buffer_arg(env, argv[0]);
  if (!path) return NULL;
  int64_t v[4];
  for (int i = 0; i < 4; i++) CHECK(napi_get_value_int64(env, argv[i + 1], &v[i]));
  struct timespec ts[2] = { { v[0], v[1] }, { v[2], v[3] } };
  int rc = utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
  int err = errno;
  free(path);
  if (rc != 0) return throw_errno(env, err, "utimensat");
  return NULL;
}

/* seek(fd, offset, whence: 3 = SEEK_DATA, 4 = SEEK_HOLE) -> offset, or -1 when there is no more data (ENXIO). */
static napi_value x_seek(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, whence; int64_t offset;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_value_int64(env, argv[1], &offset));
  CHECK(napi_get_value_int32(env, argv[2], &whence));
  off_t r = lseek(fd, (off_t)offset, whence == 3 ? SEEK_DATA : SEEK_HOLE);
  if (r < 0) {
    if (errno == ENXIO) r = -1;
    else return throw_errno(env, errno, "lseek");
  }
  napi_value result; napi_create_int64(env, (int64_t)r, &result);
  return result;
}

/* Shared with scandir.c. */
napi_value xbfs_throw_errno(napi_env env, int err, const char *syscall) { return throw_errno(env, err, syscall); }
napi_value xbfs_errno_error(napi_env env, int err, const char *syscall) { return errno_error(env, err, syscall); }
char *xbfs_buffer_arg(napi_env env, napi_value v) { return buffer_arg(env, v); }
napi_value xbfs_scandir(napi_env env, napi_callback_info info);
napi_value xbfs_openat(napi_env env, napi_callback_info info);
napi_value xbfs_readat(napi_env env, napi_callback_info info);
napi_value xbfs_closefd(napi_env env, napi_callback_info info);
napi_value xbfs_walker_start(napi_env env, napi_callback_info info);
napi_value xbfs_walker_prefetch(napi_env env, napi_callback_info info);
napi_value xbfs_manifest_index(napi_env env, napi_callback_info info);
napi_value xbfs_merge_block(napi_env env, napi_callback_info info);
napi_value xbfs_archive_unchanged_dir(napi_env env, napi_callback_info info);
napi_value xbfs_walker_next(napi_env env, napi_callback_info info);
napi_value xbfs_walker_stop(napi_env env, napi_callback_info info);
napi_value xbfs_walker_open_dir(napi_env env, napi_callback_info info);
napi_value xb_napi_xxh64(napi_env env, napi_callback_info info);
napi_value xb_napi_xxh64_init(napi_env env, napi_callback_info info);
napi_value xb_napi_xxh64_update(napi_env env, napi_callback_info info);
napi_value xb_napi_xxh64_digest(napi_env env, napi_callback_info info);
napi_value xb_napi_xxh64_update_async(napi_env env, napi_callback_info info);
void xbfs_register_beneath(napi_env env, napi_value exports);

static napi_value init(napi_env env, napi_value exports) {
  /*
   * Blocks of 128 KiB and more come straight from mmap and go back at free:
   * glibc's default raises that threshold to the largest block freed so far,
   * after which a backup's megabyte-sized buffers (archive segments, zstd
   * frames, listings freed on another thread than the one that allocated
   * them) stayed in its arenas and a full backup's peak RSS grew by ~40 MB.
   */
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  napi_property_descriptor props[] = {
    { "llistxattr", NULL, x_llistxattr, NULL, NULL, NULL, napi_default, NULL },
    { "lgetxattr", NULL, x_lgetxattr, NULL, NULL, NULL, napi_default, NULL },
    { "lsetxattr", NULL, x_lsetxattr, NULL, NULL, NULL, napi_default, NULL },
    { "lutimens", NULL, x_lutimens, NULL, NULL, NULL, napi_default, NULL },
    { "seek", NULL, x_seek, NULL, NULL, NULL, napi_default, NULL },
    { "scanDir", NULL, xbfs_scandir, NULL, NULL, NULL, napi_default, NULL },
    { "openAt", NULL, xbfs_openat, NULL, NULL, NULL, napi_default, NULL },
    { "readAt", NULL, xbfs_readat, NULL, NULL, NULL, napi_default, NULL },
    { "closeFd", NULL, xbfs_closefd, NULL, NULL, NULL, napi_default, NULL },
    { "manifestIndex", NULL, xbfs_manifest_index, NULL, NULL, NULL, napi_default, NULL },
    { "mergeBlock", NULL, xbfs_merge_block, NULL, NULL, NULL, napi_default, NULL },
    { "archiveUnchangedDir", NULL, xbfs_archive_unchanged_dir, NULL, NULL, NULL, napi_default, NULL },
    { "walkerStart", NULL, xbfs_walker_start, NULL, NULL, NULL, napi_default, NULL },
    { "walkerPrefetch", NULL, xbfs_walker_prefetch, NULL, NULL, NULL, napi_default, NULL },
    { "walkerNext", NULL, xbfs_walker_next, NULL, NULL, NULL, napi_default, NULL },
    { "walkerStop", NULL, xbfs_walker_stop, NULL, NULL, NULL, napi_default, NULL },
    { "walkerOpenDir", NULL, xbfs_walker_open_dir, NULL, NULL, NULL, napi_default, NULL },
    { "flistxattr", NULL, x_flistxattr, NULL, NULL, NULL, napi_default, NULL },
    { "fgetxattr", NULL, x_fgetxattr, NULL, NULL, NULL, napi_default, NULL },
    { "xxh64", NULL, xb_napi_xxh64, NULL, NULL, NULL, napi_default, NULL },
    { "xxh64Init", NULL, xb_napi_xxh64_init, NULL, NULL, NULL, napi_default, NULL },
    { "xxh64Update", NULL, xb_napi_xxh64_update, NULL, NULL, NULL, napi_default, NULL },
    { "xxh64Digest", NULL, xb_napi_xxh64_digest, NULL, NULL, NULL, napi_default, NULL },
    { "xxh64UpdateAsync", NULL, xb_napi_xxh64_update_async, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  xbfs_register_beneath(env, exports); /* beneath.c: restore's writes under the target's fd */
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
