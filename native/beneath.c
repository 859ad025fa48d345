/*
 * Restore's writes confined beneath the target directory. Every call names
 * its object as (directory fd, one name): the directory is opened beneath
 * the target's fd with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
 * (beneathDir), so no symlink, whether planted by a hostile backup or by
 * someone racing the restore, leads a write outside; the last component is
 * never followed either (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW, unlinkat, l*xattr
 * through /proc/self/fd/N/name). Names arrive as Buffers: any bytes but '/'
 * and NUL, never "", "." or "..".
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <linux/openat2.h>

napi_value xbfs_throw_errno(napi_env env, int err, const char *syscall);
char *xbfs_buffer_arg(napi_env env, napi_value v);

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

#define ARGS(n) \
  size_t argc = n; napi_value argv[n]; \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n) { napi_throw_type_error(env, NULL, "beneath: too few arguments"); return NULL; }

static bool get_int(napi_env env, napi_value v, int64_t *out) {
  if (napi_get_value_int64(env, v, out) != napi_ok) { napi_throw_type_error(env, NULL, "beneath: expected a number"); return false; }
  return true;
}

/* One name (no '/', not "", ".", ".."), copied NUL-terminated into out[NAME_MAX + 1]; false with an exception. */
static bool name_arg(napi_env env, napi_value v, char *out) {
  void *data; size_t len;
  if (napi_get_buffer_info(env, v, &data, &len) != napi_ok) { napi_throw_type_error(env, NULL, "beneath: a name must be a Buffer"); return false; }
  if (len == 0 || len > NAME_MAX || memchr(data, '/', len) || memchr(data, 0, len) ||
      (len == 1 && ((char *)data)[0] == '.') || (len == 2 && ((char *)data)[0] == '.' && ((char *)data)[1] == '.')) {
    xbfs_throw_errno(env, EINVAL, "beneath (not a plain name)");
    return false;
  }
  memcpy(out, data, len);
  out[len] = 0;
  return true;
}

static napi_value int_result(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

/*
 * beneathDir(rootFd, rel: Buffer) -> an O_PATH fd of directory `rel` beneath rootFd ("" is rootFd
 * itself), no symlink followed on the way and none at the end: ELOOP if one is there, ENOTDIR if
 * something else is, EXDEV if `rel` would leave. ENOSYS before Linux 5.6: restore then refuses.
 */
static napi_value b_dir(napi_env env, napi_callback_info info) {
  ARGS(2);
  int64_t root;
  if (!get_int(env, argv[0], &root)) return NULL;
  char *rel = xbfs_buffer_arg(env, argv[1]);
  if (!rel) return NULL;
  int fd;
  if (!*rel) fd = openat((int)root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  else {
    struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS };
    fd = (int)syscall(SYS_openat2, (int)root, rel, &how, sizeof how);
  }
  int err = errno;
  free(rel);
  if (fd < 0) return xbfs_throw_errno(env, err, "openat2");
  return int_result(env, fd);
}

/* statAt(dirFd, name) -> st_mode of the name itself (lstat), or 0 when nothing is there. */
static napi_value b_stat(napi_env env, napi_callback_info info) {
  ARGS(2);
  int64_t dfd; char name[NAME_MAX + 1];
  if (!get_int(env, argv[0], &dfd) || !name_arg(env, argv[1], name)) return NULL;
  struct stat st;
  if (fstatat((int)dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return int_result(env, 0);
    return xbfs_throw_errno(env, errno, "lstat");
  }
  return int_result(env, st.st_mode);
}

/* mkdirAt(dirFd, name, mode) */
static napi_value b_mkdir(napi_env env, napi_callback_info info) {
  ARGS(3);
  int64_t dfd, mode; char name[NAME_MAX + 1];
  if (!get_int(env, argv[0], &dfd) || !name_arg(env, argv[1], name) || !get_int(env, argv[2], &mode)) return NULL;
  if (mkdirat((int)dfd, name, (mode_t)mode) != 0) return xbfs_throw_errno(env, errno, "mkdir");
  return NULL;
}

/* createAt(dirFd, name, mode) -> fd of a new regular file, write only; never an existing one, never through a symlink. */
static napi_value b_create(napi_env env, napi_callback_info info) {
  ARGS(3);
  int64_t dfd, mode; char name[NAME_MAX + 1];
  if (!get_int(env, argv[0], &dfd) || !name_arg(env, argv[1], name) || !get_int(env, argv[2], &mode)) return NULL;
  int fd = openat((int)dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode);
  if (fd < 0) return xbfs_throw_errno(env, errno, "open");
  return int_result(env, fd);
}

/* openFileAt(dirFd, name) -> fd of an existing regular file for reading (O_NOFOLLOW, O_NONBLOCK: no fifo blocks). */
static napi_value b_open_read(napi_env env, napi_callback_info info) {
  ARGS(2);
  int64_t dfd; char name[NAME_MAX + 1];
  if (!get_int(env, argv[0], &dfd) || !name_arg(env, argv[1], name)) return NULL;
  int fd = openat((int)dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return xbfs_throw_errno(env, errno, "open");
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int err = errno;
    close(fd);
    return xbfs_throw_errno(env, S_ISREG(st.st_mode) ? err : EINVAL, "open (not a regular file)");
  }
  return int_result(env, fd);
}

/* Removes name beneath dfd: a directory with everything in it, depth first; a symlink is removed, never entered. */
static int remove_tree(int dfd, const char *name, int depth) {
  if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT) return 0;
  if (errno != EISDIR && errno != EPERM) return -1;
  if (depth > 4096) { errno = ELOOP; return -1; }
  int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  DIR *d = fdopendir(fd);
  if (!d) { int e = errno; close(fd); errno = e; return -1; }
  struct dirent *ent;
  int rc = 0;
  while (rc == 0 && (errno = 0, ent = readdir(d)) != NULL) {
    if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
    rc = remove_tree(dirfd(d), ent->d_name, depth + 1);
  }
  int e = errno;
  closedir(d);
  if (rc != 0) { errno = e; return -1; }
  return unlinkat(dfd, name, AT_REMOVEDIR);
}

/* removeAt(dirFd, name): whatever is there, a directory with its contents; nothing there is fine. */
static napi_value b_remove(napi_env env, napi_callback_info info) {
  ARGS(2);
  int64_t dfd; char name[NAME_MAX + 1];
  if (!get_int(env, argv[0], &dfd) || !name_arg(env, argv[1], name)) return NULL;
  if (remove_tree((int)dfd, name, 0) != 0) return xbfs_throw_errno(env, errno, "remove");
  return NULL;
}

/* renameAt(oldDirFd, oldName, newDirFd, newName) */
static napi_value b_rename(napi_env env, napi_callback_info info) {
  ARGS(4);
  int64_t ofd, nfd; char oname[NAME_MAX + 1], nname[NAME_MAX + 1];
  if (!get_int(env, argv[0], &ofd) || !name_arg(env, argv[1], oname) || !get_int(env, argv[2], &nfd) || !name_arg(env, argv[3], nname)) return NULL;
  if (renameat((int)ofd, oname, (int)nfd, nname) != 0) return xbfs_throw_errno(env, errno, "rename");
  return NULL;
}

/* linkAt(oldDirFd, oldName, newDirFd, newName): a second name of the entry itself (a symlink is linked, not followed). */
static napi_value b_link(napi_env env, napi_callback_info info) {
  ARGS(4);
  int64_t ofd, nfd; char oname[NAME_MAX + 1], nname[NAME_MAX + 1];
  if (!get_int(env, argv[0], &ofd) || !name_arg(env, argv[1], oname) || !get_int(env, argv[2], &nfd) || !name_arg(env, argv[3], nname)) return NULL;
  if (linkat((int)ofd, oname, (int)nfd, nname, 0) != 0) return xbfs_throw_errno(env, errno, "link");
  return NULL;
}

/* symlinkAt(target: Buffer, dirFd, name) */
static napi_value b_symlink(napi_env env, napi_callback_info info) {
  ARGS(3);
  int64_t dfd; char name[NAME_MAX + 1];
  char *target = xbfs_buffer_arg(env, argv[0]);
  if (!target) return NULL;
  if (!get_int(env, argv[1], &dfd) || !name_arg(env, argv[2], name)) { free(target); return NULL; }
  int rc = symlinkat(target, (int)dfd, name);
  int err = errno;
  free(target);
  if (rc != 0) return xbfs_throw_errno(env, err, "symlink");
  return NULL;
}

/* mknodAt(dirFd, name, kind: 'c' | 'b' | 'p', mode, major, minor) */
static napi_value b_mknod(napi_env env, napi_callback_info info) {
  ARGS(6);
  int64_t dfd, mode, maj, min; char name[NAME_MAX + 1]; char kind[4]; size_t klen;
  if (!get_int(env, argv[0], &dfd) || !name_arg(env, argv[1], name)) return NULL;
  if (napi_get_value_string_latin1(env, argv[2], kind, sizeof kind, &klen) != napi_ok || klen != 1) { napi_throw_type_error(env, NULL, "mknodAt: kind is c, b or p"); return NULL; }
  if (!get_int(env, argv[3], &mode) || !get_int(env, argv[4], &maj) || !get_int(env, argv[5], &min)) return NULL;
  mode_t type = kind[0] == 'c' ? S_IFCHR : kind[0] == 'b' ? S_IFBLK : S_IFIFO;
  if (mknodat((int)dfd, name, type | ((mode_t)mode & 07777), type == S_IFIFO ? 0 : makedev((unsigned)maj, (unsigned)min)) != 0) return xbfs_throw_errno(env, errno, "mknod");
  return NULL;
}

/* chownAt(dirFd, name, uid, gid): the entry itself (lchown). */
static napi_value b_chown(napi_env env, napi_callback_info info) {
  ARGS(4);
  int64_t dfd, uid, gid; char name[NAME_MAX + 1];
  if (!get_int(env, argv[0], &dfd) || !name_arg(env, argv[1], name) || !get_int(env, argv[2], &uid) || !get_int(env, argv[3], &gid)) return NULL;
  if (fchownat((int)dfd, name, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW) != 0) return xbfs_throw_errno(env, errno, "chown");
  return NULL;
}

/*
 * chmodAt(dirFd, name, mode): the entry itself; a symlink (which has no mode of its own on Linux) is
 * left alone. fchmodat2 (Linux 6.6) refuses symlinks; before it, the entry is pinned by an O_PATH fd
 * and changed through /proc/self/fd, as glibc does.
 */
static napi_value b_chmod(napi_env env, napi_callback_info info) {
  ARGS(3);
  int64_t dfd, mode; char name[NAME_MAX + 1];
  if (!get_int(env, argv[0], &dfd) || !name_arg(env, argv[1], name) || !get_int(env, argv[2], &mode)) return NULL;
  if (syscall(SYS_fchmodat2, (int)dfd, name, (mode_t)mode, AT_SYMLINK_NOFOLLOW) == 0) return NULL;
  if (errno == EOPNOTSUPP) return NULL; /* a symlink */
  if (errno != ENOSYS) return xbfs_throw_errno(env, errno, "chmod");
  int fd = openat((int)dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return xbfs_throw_errno(env, errno, "chmod");
  struct stat st;
  int rc = fstat(fd, &st);
  if (rc == 0 && !S_ISLNK(st.st_mode)) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    rc = chmod(proc, (mode_t)mode);
  }
  int err = errno;
  close(fd);
  if (rc != 0) return xbfs_throw_errno(env, err, "chmod");
  return NULL;
}

/* utimensAt(dirFd, name, atimeSec, atimeNsec, mtimeSec, mtimeNsec): the entry itself. */
static napi_value b_utimens(napi_env env, napi_callback_info info) {
  ARGS(6);
  int64_t dfd, v[4]; char name[NAME_MAX + 1];
  if (!get_int(env, argv[0], &dfd) || !name_arg(env, argv[1], name)) return NULL;
  for (int i = 0; i < 4; i++) if (!get_int(env, argv[i + 2], &v[i])) return NULL;
  struct timespec ts[2] = { { v[0], v[1] }, { v[2], v[3] } };
  if (utimensat((int)dfd, name, ts, AT_SYMLINK_NOFOLLOW) != 0) return xbfs_throw_errno(env, errno, "utimensat");
  return NULL;
}

/*
 * setxattrAt(dirFd, name, xattrName, value: Buffer): the entry itself, a symlink too. The path
 * /proc/self/fd/<dirFd>/<name> reaches the pinned directory, and lsetxattr does not follow the last name.
 */
static napi_value b_setxattr(napi_env env, napi_callback_info info) {
  ARGS(4);
  int64_t dfd; char name[NAME_MAX + 1];
  if (!get_int(env, argv[0], &dfd) || !name_arg(env, argv[1], name)) return NULL;
  char *xname = xbfs_buffer_arg(env, argv[2]);
  if (!xname) return NULL;
  void *data; size_t len;
  if (napi_get_buffer_info(env, argv[3], &data, &len) != napi_ok) { free(xname); napi_throw_type_error(env, NULL, "setxattrAt: value must be a Buffer"); return NULL; }
  char proc[64 + NAME_MAX];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d/%s", (int)dfd, name);
  int rc = lsetxattr(proc, xname, data, len, 0);
  int err = errno;
  free(xname);
  if (rc != 0) return xbfs_throw_errno(env, err, "lsetxattr");
  return NULL;
}

void xbfs_register_beneath(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "beneathDir", NULL, b_dir, NULL, NULL, NULL, napi_default, NULL },
    { "statAt", NULL, b_stat, NULL, NULL, NULL, napi_default, NULL },
    { "mkdirAt", NULL, b_mkdir, NULL, NULL, NULL, napi_default, NULL },
    { "createAt", NULL, b_create, NULL, NULL, NULL, napi_default, NULL },
    { "openFileAt", NULL, b_open_read, NULL, NULL, NULL, napi_default, NULL },
    { "removeAt", NULL, b_remove, NULL, NULL, NULL, napi_default, NULL },
    { "renameAt", NULL, b_rename, NULL, NULL, NULL, napi_default, NULL },
    { "linkAt", NULL, b_link, NULL, NULL, NULL, napi_default, NULL },
    { "symlinkAt", NULL, b_symlink, NULL, NULL, NULL, napi_default, NULL },
    { "mknodAt", NULL, b_mknod, NULL, NULL, NULL, napi_default, NULL },
    { "chownAt", NULL, b_chown, NULL, NULL, NULL, napi_default, NULL },
    { "chmodAt", NULL, b_chmod, NULL, NULL, NULL, napi_default, NULL },
    { "utimensAt", NULL, b_utimens, NULL, NULL, NULL, napi_default, NULL },
    { "setxattrAt", NULL, b_setxattr, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
