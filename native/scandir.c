/*
 * scanDir: one directory's children with their lstat, in one call.
 *
 * The incremental backup's floor is a stat walk (`find -printf`): ~5 us per
 * entry. Node's fs.readdirSync + one lstatSync per child costs twice that,
 * mostly in crossing into C and building a Stats object per child. Here one
 * call lists a directory, fstatat()s every child relative to the open
 * directory (no path lookups from /), sorts the children by name bytes (the
 * walk order of core/path-order.ts) and packs them into one Buffer.
 *
 * Each record also carries its change-detection key as the exact text the
 * manifest stores for it (core/manifest.ts entryToJson: type, mode, uid,
 * gid, size, mtime, ctime, inode), so the archiver judges an unchanged file
 * by comparing bytes with the previous manifest's line, without decoding
 * either side.
 *
 * With `keepOpen`, the directory stays open and its fd is returned: the
 * archiver then opens each changed child relative to it (openAt: no path
 * walk from the root per file), reads it (readAt) and closes it (closeFd),
 * and reads the directory's own xattrs through the fd (xbfs.c flistxattr).
 *
 * Record layout (little endian), records back to back, each 8-aligned:
 *   0 u32 record length     4 u32 errno of fstatat (0: the stat is valid)
 *   8 u32 st_mode          12 u32 uid     16 u32 gid     20 u32 nlink
 *  24 u64 size             32 i64 mtime s 40 i64 ctime s
 *  48 u32 mtime ns         52 u32 ctime ns
 *  56 u64 ino              64 u64 dev     72 u64 rdev    80 u64 blocks
 *  88 u16 name length      90 u16 key length     92 u32 (unused)
 *  96 16 bytes: the xxh64 (hex) of the content, when prefetched (walker.c)
 * 112 u32 offset of the prefetched content in the listing's data buffer
 * 116 u32 1 when the content was prefetched (walker.c), else 0
 * 120 name bytes, then key bytes
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <linux/openat2.h>
#include "scandir.h"

napi_value xbfs_throw_errno(napi_env env, int err, const char *syscall);
napi_value xbfs_errno_error(napi_env env, int err, const char *syscall);
char *xbfs_buffer_arg(napi_env env, napi_value v);


/* A child's name: NUL-terminated at `at` in the listing's one name arena (no allocation per child). */
typedef struct {
  size_t at;
  unsigned short name_len;
} child;

static int by_name(const void *a, const void *b, void *arena) {
  const child *x = a, *y = b;
  const char *names = arena;
  size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
  int c = memcmp(names + x->at, names + y->at, n);
  if (c) return c;
  return (int)x->name_len - (int)y->name_len;
}

static char type_code(mode_t m) {
  switch (m & S_IFMT) {
    case S_IFREG: return 'f';
    case S_IFDIR: return 'd';
    case S_IFLNK: return 'l';
    case S_IFCHR: return 'c';
    case S_IFBLK: return 'b';
    case S_IFIFO: return 'p';
    default: return '?';
  }
}

static void put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

/* Decimal digits of v at out; returns the count. */
static int put_u64_dec(char *out, uint64_t v) {
  char tmp[20];
  int i = 0;
  do {
    tmp[i++] = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v);
  for (int k = 0; k < i; k++) out[k] = tmp[i - 1 - k];
  return i;
}

/* v as exactly nine digits (a nanosecond part below whole seconds). */
static void put_nine(char *out, uint32_t v) {
  for (int k = 8; k >= 0; k--) {
    out[k] = (char)('0' + (int)(v % 10));
    v /= 10;
  }
}

/*
 * Nanoseconds since the epoch (sec * 1e9 + nsec, 0 <= nsec < 1e9) as
 * decimal text, like BigInt#toString (negative before 1970), without 128-bit
 * division: the whole seconds' digits, then the nanoseconds as nine digits.
 */
static int ns_text(char *out, int64_t sec, long nsec) {
  int n = 0;
  uint64_t whole;
  uint32_t frac;
  if (sec >= 0) {
    whole = (uint64_t)sec;
    frac = (uint32_t)nsec;
  } else {
    /* -(|sec| * 1e9 - nsec) = -((|sec| - 1) * 1e9 + (1e9 - nsec)) when nsec > 0 */
    out[n++] = '-';
    whole = (uint64_t)0 - (uint64_t)sec;
    frac = 0;
    if (nsec > 0) {
      whole -= 1;
      frac = (uint32_t)(1000000000L - nsec);
    }
  }
  if (whole == 0) return n + put_u64_dec(out + n, frac);
  n += put_u64_dec(out + n, whole);
  put_nine(out + n, frac);
  return n + 9;
}

#define PUT_LITERAL(lit) do { memcpy(out + n, lit, sizeof(lit) - 1); n += sizeof(lit) - 1; } while (0)

/*
 * The change key, byte for byte what core/manifest.ts encodeEntry writes:
 *   "t":"f","m":420,"u":0,"g":0,"s":5,"mt":"<ns>","ct":"<ns>","i":"<ino>"
 * (at most ~150 bytes: well inside KEY_MAX).
 */
static int format_key(char *out, const struct stat *st) {
  int n = 0;
  PUT_LITERAL("\"t\":\"");
  out[n++] = type_code(st->st_mode);
  PUT_LITERAL("\",\"m\":");
  n += put_u64_dec(out + n, (unsigned)(st->st_mode & 07777));
  PUT_LITERAL(",\"u\":");
  n += put_u64_dec(out + n, (unsigned)st->st_uid);
  PUT_LITERAL(",\"g\":");
  n += put_u64_dec(out + n, (unsigned)st->st_gid);
  PUT_LITERAL(",\"s\":");
  n += put_u64_dec(out + n, S_ISREG(st->st_mode) ? (uint64_t)st->st_size : 0);
  PUT_LITERAL(",\"mt\":\"");
  n += ns_text(out + n, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
  PUT_LITERAL("\",\"ct\":\"");
  n += ns_text(out + n, st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
  PUT_LITERAL("\",\"i\":\"");
  n += put_u64_dec(out + n, (uint64_t)st->st_ino);
  out[n++] = '"';
  return n;
}


/*
 * `rel` beneath `base` as a directory, no symlink followed anywhere on the way: a directory
 * of a live source swapped for a symlink after its parent was listed fails (ELOOP) instead
 * of taking the walk elsewhere, into another tree or round in a loop. -1 with errno; ENOSYS
 * on kernels before 5.6.
 */
int xb_open_beneath(int base, const char *rel, int flags) {
  if (!*rel) return openat(base, ".", flags);
  struct open_how how = { .flags = (uint64_t)flags, .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH };
  return (int)syscall(SYS_openat2, base, rel, &how, sizeof how);
}

static int open_directory(const scan_job *job, int flags) {
  if (job->base_fd >= 0) {
    int fd = xb_open_beneath(job->base_fd, job->rel, flags);
    if (fd >= 0 || errno != ENOSYS) return fd;
  }
  return open(job->path, flags);
}

void scan_collect(scan_job *job) {
  job->records = NULL;
  job->length = job->count = 0;
  job->fd = -1;
  job->dir_xattrs = -1;
  job->err = 0;
  int dfd = open_directory(job, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOATIME);
  if (dfd < 0 && errno == EPERM) dfd = open_directory(job, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    job->err = errno;
    job->syscall = "opendir";
    return;
  }
  DIR *dir = fdopendir(dfd);
  if (!dir) {
    job->err = errno;
    job->syscall = "fdopendir";
    close(dfd);
    return;
  }

  size_t count = 0, cap = 64, names_bytes = 0, arena_cap = 4096;
  child *kids = malloc(cap * sizeof *kids);
  char *arena = malloc(arena_cap);
  struct dirent *d;
  errno = 0;
  while ((d = readdir(dir)) != NULL) {
    if (d->d_name[0] == '.' && (d->d_name[1] == 0 || (d->d_name[1] == '.' && d->d_name[2] == 0))) continue;
    if (count == cap) {
      cap *= 2;
      kids = realloc(kids, cap * sizeof *kids);
    }
    size_t len = strlen(d->d_name);
    if (names_bytes + len + 1 > arena_cap) {
      while (names_bytes + len + 1 > arena_cap) arena_cap *= 2;
      arena = realloc(arena, arena_cap);
    }
    memcpy(arena + names_bytes, d->d_name, len + 1);
    kids[count].at = names_bytes;
    kids[count].name_len = (unsigned short)len;
    names_bytes += len + 1;
    count++;
  }
  int read_errno = errno;
  if (read_errno || !kids || !arena) {
    free(kids);
    free(arena);
    closedir(dir);
    job->err = read_errno ? read_errno : ENOMEM;
    job->syscall = read_errno ? "readdir" : "scanDir";
    return;
  }
  qsort_r(kids, count, sizeof *kids, by_name, arena);
  /* The directory's own xattrs, while it is open: most have none, and then the archiver need not ask again. */
  job->dir_xattrs = flistxattr(dirfd(dir), NULL, 0);

  size_t total = count * (HEADER + KEY_MAX + 8) + names_bytes;
  unsigned char *out = malloc(total ? total : 1);
  if (!out) {
    free(kids);
    free(arena);
    closedir(dir);
    job->err = ENOMEM;
    job->syscall = "scanDir";
    return;
  }
  size_t off = 0;
  for (size_t i = 0; i < count; i++) {
    unsigned char *r = out + off;
    const char *name = arena + kids[i].at;
    memset(r, 0, HEADER);
    struct stat st;
    int key_len = 0;
    if (fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      put_u32(r + 4, (uint32_t)errno);
    } else {
      put_u32(r + 8, (uint32_t)st.st_mode);
      put_u32(r + 12, (uint32_t)st.st_uid);
      put_u32(r + 16, (uint32_t)st.st_gid);
      put_u32(r + 20, (uint32_t)st.st_nlink);
      put_u64(r + 24, (uint64_t)st.st_size);
      put_u64(r + 32, (uint64_t)(int64_t)st.st_mtim.tv_sec);
      put_u64(r + 40, (uint64_t)(int64_t)st.st_ctim.tv_sec);
      put_u32(r + 48, (uint32_t)st.st_mtim.tv_nsec);
      put_u32(r + 52, (uint32_t)st.st_ctim.tv_nsec);
      put_u64(r + 56, (uint64_t)st.st_ino);
      put_u64(r + 64, (uint64_t)st.st_dev);
      put_u64(r + 72, (uint64_t)st.st_rdev);
      put_u64(r + 80, (uint64_t)st.st_blocks);
      key_len = format_key((char *)r + HEADER + kids[i].name_len, &st);
      if (key_len < 0 || key_len >= KEY_MAX) key_len = 0;
    }
    r[88] = kids[i].name_len & 0xff;
    r[89] = kids[i].name_len >> 8;
    r[90] = key_len & 0xff;
    r[91] = key_len >> 8;
    memcpy(r + HEADER, name, kids[i].name_len);
    size_t len = (HEADER + kids[i].name_len + key_len + 7) & ~(size_t)7;
    put_u32(r, (uint32_t)len);
    off += len;
  }
  free(kids);
  free(arena);
  if (job->keep_open) {
    /* dup: closedir() frees the DIR and closes its fd; the caller owns the copy. */
    job->fd = fcntl(dirfd(dir), F_DUPFD_CLOEXEC, 0);
    if (job->fd < 0) {
      job->err = errno;
      job->syscall = "dup";
      free(out);
      closedir(dir);
      return;
    }
  }
  closedir(dir);
  job->records = out;
  job->length = off;
  job->count = count;
}

/*
 * Records and prefetched content live outside V8's heap: they are counted as
 * external memory (and uncounted when freed), so that V8 collects their
 * Buffers as soon as that memory adds up instead of letting them pile up.
 */
static void free_records(napi_env env, void *data, void *hint) {
  int64_t ignored;
  napi_adjust_external_memory(env, -(int64_t)(uintptr_t)hint, &ignored);
  free(data);
}

napi_value xbfs_external_buffer(napi_env env, void *data, size_t length) {
  napi_value buffer;
  int64_t ignored;
  if (napi_create_external_buffer(env, length, data, free_records, (void *)(uintptr_t)length, &buffer) == napi_ok) {
    napi_adjust_external_memory(env, (int64_t)length, &ignored);
    return buffer;
  }
  void *copy;
  napi_create_buffer_copy(env, length, data, &copy, &buffer);
  free(data);
  return buffer;
}

/* { buffer, length, count, fd }: the records fill `length` bytes of `buffer`; fd -1 unless kept open. Takes the records. */
napi_value scan_result(napi_env env, scan_job *job) {
  napi_value out_obj, buffer, length, n, fdval, xattrs;
  buffer = xbfs_external_buffer(env, job->records, job->length);
  job->records = NULL;
  napi_create_object(env, &out_obj);
  napi_create_uint32(env, (uint32_t)job->length, &length);
  napi_create_uint32(env, (uint32_t)job->count, &n);
  napi_create_int32(env, job->fd, &fdval);
  napi_set_named_property(env, out_obj, "buffer", buffer);
  napi_set_named_property(env, out_obj, "length", length);
  napi_set_named_property(env, out_obj, "count", n);
  napi_set_named_property(env, out_obj, "fd", fdval);
  napi_create_int64(env, job->dir_xattrs, &xattrs);
  napi_set_named_property(env, out_obj, "dirXattrs", xattrs);
  return out_obj;
}

static int scan_args(napi_env env, napi_callback_info info, scan_job *job, char **rel, const char *usage) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  *rel = NULL;
  if (argc < 1) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  job->keep_open = false;
  job->base_fd = -1;
  job->rel = NULL;
  if (argc >= 2) napi_get_value_bool(env, argv[1], &job->keep_open);
  if (argc >= 4) {
    int32_t base = -1;
    napi_valuetype t;
    if (napi_typeof(env, argv[2], &t) == napi_ok && t == napi_number && napi_get_value_int32(env, argv[2], &base) == napi_ok && base >= 0) {
      *rel = xbfs_buffer_arg(env, argv[3]);
      if (!*rel) return 0;
      job->base_fd = base;
      job->rel = *rel;
    }
  }
  job->path = xbfs_buffer_arg(env, argv[0]);
  if (!job->path) {
    free(*rel);
    *rel = NULL;
  }
  return job->path != NULL;
}

/*
 * scanDir(path: Buffer, keepOpen?: boolean, baseFd?: number, rel?: Buffer): records (layout above),
 * children sorted by name. With baseFd, the directory is `rel` beneath it, no symlink followed
 * (xb_open_beneath; `path` names it in messages, and is opened on kernels without openat2).
 */
napi_value xbfs_scandir(napi_env env, napi_callback_info info) {
  scan_job job;
  char *rel;
  if (!scan_args(env, info, &job, &rel, "scanDir(path: Buffer, keepOpen?: boolean, baseFd?: number, rel?: Buffer)")) return NULL;
  scan_collect(&job);
  free(job.path);
  free(rel);
  if (job.err) return xbfs_throw_errno(env, job.err, job.syscall);
  return scan_result(env, &job);
}

/*
 * openAt(dirFd, name: Buffer) -> fd of a regular file child, for reading.
 * O_NOFOLLOW and O_NONBLOCK: a child swapped for a symlink or a fifo since
 * the scan fails or is refused instead of being followed or blocking.
 * O_NOATIME where permitted (it needs ownership or CAP_FOWNER).
 */
napi_value xbfs_openat(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t dfd;
  void *data;
  size_t len;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &dfd) != napi_ok || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "openAt(dirFd: number, name: Buffer)");
    return NULL;
  }
  char namez[NAME_MAX + 1];
  if (len == 0 || len > NAME_MAX || memchr(data, '/', len) || memchr(data, 0, len)) return xbfs_throw_errno(env, EINVAL, "openat");
  memcpy(namez, data, len);
  namez[len] = 0;
  int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
  int fd = openat(dfd, namez, flags | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = openat(dfd, namez, flags);
  if (fd < 0) return xbfs_throw_errno(env, errno, "open");
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return xbfs_throw_errno(env, e, "fstat");
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return xbfs_throw_errno(env, EINVAL, "open (no longer a regular file)");
  }
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

/* readAt(fd, buffer, offset, length, position) -> bytes read (0 at end of file); fs.readSync without its checks. */
napi_value xbfs_readat(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  int64_t off, want, pos;
  void *data;
  size_t cap;
  if (argc < 5 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_buffer_info(env, argv[1], &data, &cap) != napi_ok ||
      napi_get_value_int64(env, argv[2], &off) != napi_ok || napi_get_value_int64(env, argv[3], &want) != napi_ok ||
      napi_get_value_int64(env, argv[4], &pos) != napi_ok || off < 0 || want < 0 || pos < 0 || (uint64_t)off + (uint64_t)want > cap) {
    napi_throw_range_error(env, NULL, "readAt(fd, buffer, offset, length, position): out of range");
    return NULL;
  }
  ssize_t n;
  do n = pread(fd, (char *)data + off, (size_t)want, (off_t)pos);
  while (n < 0 && errno == EINTR);
  if (n < 0) return xbfs_throw_errno(env, errno, "read");
  napi_value out;
  napi_create_int64(env, (int64_t)n, &out);
  return out;
}

/* closeFd(fd): close(2); errors are ignored (a read-only fd has nothing to lose). */
napi_value xbfs_closefd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "closeFd(fd: number)");
    return NULL;
  }
  close(fd);
  return NULL;
}
