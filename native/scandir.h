/* One directory listing in the record layout of scandir.c, shared with walker.c. */
#ifndef XB_SCANDIR_H
#define XB_SCANDIR_H
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>

#define HEADER 120
#define KEY_MAX 200

/* One listing, without N-API calls: records in malloc'd memory, or an errno and the failing call. */
typedef struct {
  char *path;
  /*
   * When base_fd >= 0: the directory is `rel` beneath base_fd, opened without following
   * a symlink in any component (openat2 RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH; ELOOP if one
   * is met). `path` then only names it in messages, and is opened when the kernel has no openat2.
   */
  int base_fd;
  const char *rel;
  bool keep_open;
  unsigned char *records;
  size_t length;
  size_t count;
  int fd;
  /* flistxattr's size for the directory itself: 0 none, > 0 some, < 0 unknown (read them by path). */
  long dir_xattrs;
  int err;
  const char *syscall;
} scan_job;

/* `rel` ("" for base itself) opened beneath `base` without following any symlink; -1 with errno (ENOSYS before Linux 5.6). */
int xb_open_beneath(int base, const char *rel, int flags);

/* Lists job->path (records sorted by name, each child fstatat'd); job->err set on failure. */
void scan_collect(scan_job *job);

/* A Buffer over malloc'd `data` (taken: freed with the Buffer), counted as V8 external memory. */
napi_value xbfs_external_buffer(napi_env env, void *data, size_t length);

/* { buffer, length, count, fd, dirXattrs } for JavaScript; takes job->records. */
napi_value scan_result(napi_env env, scan_job *job);

#endif
