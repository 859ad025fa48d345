/*
 * walker: the archiver's directory listings (scandir.c), made ahead of it on
 * threads of their own.
 *
 * A backup visits a tree in one order (core/path-order.ts: depth first,
 * children by name bytes), and which directories it enters follows from the
 * listings alone: every child directory that lstat could read, that is not
 * excluded and, with one-file-system, that lies on the root's device. So
 * other threads can list the directories in that very order while the main
 * thread archives the ones before: the fstatat of every entry (the walk's
 * floor, ~5 us each) leaves the archiver's critical path. With more than one
 * thread, each lists the first directory of the walk not yet taken; the
 * archiver still receives them in walk order (the slot list below).
 *
 * With `prefetchMax` > 0 (a full backup: every file will be read) the
 * threads also read small regular files: content into the listing's data
 * buffer, its xxh64 into the record (scandir.h layout). A file is prefetched
 * only when that is the whole story: one link, no extended attributes, and
 * the same inode, size and mtime after the read as the listing saw (that
 * last check with `verifyAfterRead`, a live source); otherwise the archiver
 * reads it itself, as without prefetching. Such a listing keeps its
 * directory open for the archiver's openAt of the other files.
 *
 * Memory and open descriptors stay bounded: at most MAX_OPEN listings hold
 * their directory open, and about MAX_BYTES_* of records and content wait at
 * once; the threads sleep until the archiver takes one. One directory is
 * listed whole however large (~230 bytes of records per child: its dumpdir
 * needs every child's change key before the first member), but reads ahead
 * only what its records leave of MAX_BYTES_PREFETCH. walkerStop joins the
 * threads and releases whatever is still queued; a walker the archiver
 * dropped without stopping is stopped by its finalizer.
 *
 *   walkerStart(root: Buffer, excludes: Buffer[], oneFileSystem: boolean, prefetchMax: number, verifyAfterRead: boolean, threads: number) -> handle
 *   walkerNext(handle) -> { rel, buffer, length, count, fd, dirXattrs, data? } or { rel, error } | null at the end (blocks until ready)
 *   walkerPrefetch(handle, prefetchMax)   (listings claimed from now on; the walk may start before the kind of backup is known)
 *   walkerStop(handle)
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "scandir.h"
#include "xxh64.h"

char *xbfs_buffer_arg(napi_env env, napi_value v);
napi_value xbfs_errno_error(napi_env env, int err, const char *syscall);

/* Listings that hold their directory open (prefetching), at most. */
#define MAX_OPEN 64
/* Records and content waiting, at most: with prefetching; and listing only (~250 bytes per entry). */
#define MAX_BYTES_PREFETCH (16u << 20)
#define MAX_BYTES_LISTING (8u << 20)
/*
 * Content prefetched per listing at most: a directory of 10,000 large-ish files must not hold them all.
 * Nor more than its records leave of MAX_BYTES_PREFETCH: one directory of 200,000 files (~50 MB of
 * records) reads nothing ahead, and the archiver reads its files as without prefetching.
 */
#define MAX_DATA_PER_LISTING (8u << 20)

/*
 * One directory of the walk. Slots sit in one list in walk order: a
 * directory's subdirectories are inserted right after it when it has been
 * listed, so the list always reads depth first. Threads claim the first
 * PENDING slot; the archiver takes the head once it is DONE.
 */
enum { PENDING, LISTING, DONE };

/*
 * What a slot holds once claimed, allocated then: a directory of 200,000 subdirectories waits as
 * 200,000 PENDING slots of ~80 bytes with their paths, not ~210.
 */
typedef struct {
  scan_job job;
  unsigned char *data;
  size_t data_len;
  /* The walker's prefetchMax when this slot was claimed (it may be set after the walk started). */
  size_t prefetch_max;
} slot_work;

typedef struct listing {
  struct listing *next;
  int state;
  char *rel;
  size_t rel_len;
  /* NULL while PENDING, or when it could not be allocated (then the listing's error is ENOMEM). */
  slot_work *x;
} listing;

#define MAX_THREADS 4

typedef struct {
  pthread_t threads[MAX_THREADS];
  int n_threads;
  pthread_mutex_t mu;
  pthread_cond_t ready, work;
  char *root;
  size_t root_len;
  /* The root, open: every directory of the walk is opened beneath it, no symlink followed (scandir.h). */
  int root_fd;
  dev_t root_dev;
  char **excludes;
  size_t *exclude_lens;
  size_t n_excludes;
  bool one_fs;
  size_t prefetch_max;
  bool verify_after_read;
  listing *head;
  /*
   * Where claimable() starts looking: no PENDING slot lies before it (NULL: the head). Without it every
   * claim walked the listed-but-not-taken slots from the head, thousands of them when the walk runs far
   * ahead of a no-change incremental: ~50 ms of the walker's CPU on 5,000 directories.
   */
  listing *scan_from;
  /* Slots claimed and not yet taken by the archiver (LISTING or DONE), and their bytes. */
  size_t claimed, claimed_bytes;
  bool stopping, joined;
} walker;

static uint32_t get_u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get_u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static void set_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }

static void free_listing(listing *l) {
  if (l->x) {
    if (l->x->job.fd >= 0) close(l->x->job.fd);
    free(l->x->job.records);
    free(l->x->data);
    free(l->x);
  }
  free(l->rel);
  free(l);
}

/* Records and content a listed slot holds (what the budgets count). */
static size_t slot_bytes(const listing *l) {
  return l->x ? l->x->job.length + l->x->data_len : 0;
}

static bool excluded(const walker *w, const char *rel, size_t len) {
  for (size_t i = 0; i < w->n_excludes; i++)
    if (w->exclude_lens[i] == len && memcmp(w->excludes[i], rel, len) == 0) return true;
  return false;
}

/* rel + "/" + name (or name at the root), malloc'd. */
static char *join(const char *rel, size_t rel_len, const char *name, size_t name_len, size_t *out_len) {
  size_t n = rel_len ? rel_len + 1 + name_len : name_len;
  char *p = malloc(n + 1);
  if (!p) return NULL;
  size_t at = 0;
  if (rel_len) {
    memcpy(p, rel, rel_len);
    p[rel_len] = '/';
    at = rel_len + 1;
  }
  memcpy(p + at, name, name_len);
  p[n] = 0;
  *out_len = n;
  return p;
}

/* The directory's path: the root, or root + "/" + rel (just "/" + rel when the root is "/"). */
static char *absolute(const walker *w, const char *rel, size_t rel_len) {
  size_t base = w->root_len == 1 && w->root[0] == '/' ? 0 : w->root_len;
  char *p = malloc(base + 1 + rel_len + 1);
  if (!p) return NULL;
  if (rel_len == 0) {
    memcpy(p, w->root, w->root_len + 1);
    return p;
  }
  memcpy(p, w->root, base);
  p[base] = '/';
  memcpy(p + base + 1, rel, rel_len);
  p[base + 1 + rel_len] = 0;
  return p;
}

static const char hex[] = "0123456789abcdef";

/* Reads the small, plain regular files of one listing into its data (see the top of this file). */
static void prefetch(walker *w, listing *l) {
  scan_job *job = &l->x->job;
  size_t cap = job->length < MAX_BYTES_PREFETCH ? MAX_BYTES_PREFETCH - job->length : 0;
  if (cap > MAX_DATA_PER_LISTING) cap = MAX_DATA_PER_LISTING;
  if (cap == 0) return;
  size_t total = 0;
  for (size_t off = 0; off < job->length; off += get_u32(job->records + off)) {
    const unsigned char *r = job->records + off;
    uint64_t size = get_u64(r + 24);
    if (get_u32(r + 4) == 0 && S_ISREG(get_u32(r + 8)) && get_u32(r + 20) == 1 && size <= l->x->prefetch_max) total += size;
    if (total >= cap) break;
  }
  if (total > cap) total = cap;
  l->x->data = malloc(total ? total : 1);
  if (!l->x->data) return;
  size_t used = 0;
  for (size_t off = 0; off < job->length; off += get_u32(job->records + off)) {
    unsigned char *r = job->records + off;
    uint64_t size = get_u64(r + 24);
    if (!(get_u32(r + 4) == 0 && S_ISREG(get_u32(r + 8)) && get_u32(r + 20) == 1 && size <= l->x->prefetch_max)) continue;
    if (used + size > total) break;
    unsigned short name_len = (unsigned short)(r[88] | r[89] << 8);
    char name[NAME_MAX + 1];
    memcpy(name, r + HEADER, name_len);
    name[name_len] = 0;
    int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
    int fd = openat(job->fd, name, flags | O_NOATIME);
    if (fd < 0 && errno == EPERM) fd = openat(job->fd, name, flags);
    if (fd < 0) continue; /* the archiver opens it again and reports why it cannot */
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_ino == get_u64(r + 56) && (uint64_t)st.st_size == size &&
              flistxattr(fd, NULL, 0) == 0;
    size_t got = 0;
    while (ok && got < size) {
      ssize_t n = pread(fd, l->x->data + used + got, size - got, (off_t)got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) ok = false;
      else got += (size_t)n;
    }
    if (ok && w->verify_after_read) {
      /* A live source: a file written while read is left to the archiver, which warns about it. */
      struct stat after;
      ok = fstat(fd, &after) == 0 && after.st_size == st.st_size && after.st_mtim.tv_sec == (time_t)get_u64(r + 32) &&
           after.st_mtim.tv_nsec == (long)get_u32(r + 48);
    }
    close(fd);
    if (!ok) continue;
    uint64_t h = xb_xxh64(l->x->data + used, size);
    for (int k = 15; k >= 0; k--, h >>= 4) r[96 + k] = (unsigned char)hex[h & 15];
    set_u32(r + 112, (uint32_t)used);
    set_u32(r + 116, 1);
    used += size;
  }
  l->x->data_len = used;
}

static listing *new_slot(char *rel, size_t len) {
  listing *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->rel = rel;
  l->rel_len = len;
  return l;
}

/* Lists one claimed slot (no lock held); returns its subdirectories to enter as a chain of PENDING slots, in name order. */
static listing *list_slot(walker *w, listing *l) {
  if (!l->x) return NULL;
  char *abs = absolute(w, l->rel, l->rel_len);
  l->x->job.path = abs;
  l->x->job.base_fd = w->root_fd;
  l->x->job.rel = l->rel;
  /* Kept open only for the archiver's openAt of the files not prefetched; without prefetching it opens the
     directory itself in the rare case a child changed, and lookahead is then bounded by memory alone. */
  l->x->job.keep_open = l->x->prefetch_max > 0;
  if (abs) scan_collect(&l->x->job);
  else {
    l->x->job.err = ENOMEM;
    l->x->job.syscall = "walker";
  }
  free(abs);
  l->x->job.path = NULL;
  if (l->x->job.err) return NULL;
  listing *first = NULL, **tail = &first;
  for (size_t off = 0; off < l->x->job.length; off += get_u32(l->x->job.records + off)) {
    const unsigned char *r = l->x->job.records + off;
    if (get_u32(r + 4) != 0 || !S_ISDIR(get_u32(r + 8))) continue;
    if (w->one_fs && (dev_t)get_u64(r + 64) != w->root_dev) continue;
    size_t len = 0;
    unsigned short name_len = (unsigned short)(r[88] | r[89] << 8);
    char *rel = join(l->rel, l->rel_len, (const char *)r + HEADER, name_len, &len);
    listing *child = rel && !excluded(w, rel, len) ? new_slot(rel, len) : NULL;
    if (!child) {
      /* excluded; or out of memory, and then the archiver finds the walk out of step and fails */
      free(rel);
      continue;
    }
    *tail = child;
    tail = &child->next;
  }
  if (l->x->prefetch_max) prefetch(w, l);
  return first;
}

/* Walk order of two paths (core/path-order.ts comparePaths): by bytes, '/' before any other byte. */
static int walk_order(const char *a, size_t an, const char *b, size_t bn) {
  size_t n = an < bn ? an : bn;
  for (size_t i = 0; i < n; i++) {
    if (a[i] == b[i]) continue;
    unsigned ca = a[i] == '/' ? 0 : (unsigned char)a[i], cb = b[i] == '/' ? 0 : (unsigned char)b[i];
    return ca < cb ? -1 : 1;
  }
  return an < bn ? -1 : an > bn ? 1 : 0;
}

/* The first slot to list, or NULL when none may be claimed now. Called with the lock held. */
static listing *claimable(walker *w) {
  /* The slot the archiver waits for next is claimable whatever the bounds. Slots listed ahead of it
     count against them (a thread that ran ahead while another listed a parent; listings made before
     prefetching began, when only bytes were bounded), and if they could keep it from being listed,
     the walk would wait for itself: a backup that never ends. */
  if (w->head && w->head->state == PENDING) return w->scan_from = w->head;
  if (w->prefetch_max && w->claimed >= MAX_OPEN) return NULL;
  if (w->claimed > 0 && w->claimed_bytes >= (w->prefetch_max ? MAX_BYTES_PREFETCH : MAX_BYTES_LISTING)) return NULL;
  for (listing *l = w->scan_from ? w->scan_from : w->head; l; l = l->next)
    if (l->state == PENDING) return w->scan_from = l;
  return NULL;
}

static void *walk(void *arg) {
  walker *w = arg;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    listing *l;
    while (!w->stopping && !(l = claimable(w))) {
      if (!w->head) break; /* the walk is over */
      pthread_cond_wait(&w->work, &w->mu);
    }
    if (w->stopping || !w->head) break;
    l->state = LISTING;
    l->x = calloc(1, sizeof *l->x);
    if (l->x) {
      l->x->job.fd = -1;
      l->x->prefetch_max = w->prefetch_max;
    }
    w->claimed++;
    pthread_mutex_unlock(&w->mu);
    listing *children = list_slot(w, l);
    pthread_mutex_lock(&w->mu);
    if (children) {
      listing *last = children;
      while (last->next) last = last->next;
      last->next = l->next;
      l->next = children;
      /* One thread: l was the first PENDING slot when claimed and is still where claimable() starts, so its
         children come after that point. With more, another thread may have claimed a later slot since. */
      if (w->scan_from && walk_order(l->rel, l->rel_len, w->scan_from->rel, w->scan_from->rel_len) < 0) w->scan_from = l;
    }
    l->state = DONE;
    w->claimed_bytes += slot_bytes(l);
    pthread_cond_broadcast(&w->ready);
    pthread_cond_broadcast(&w->work);
  }
  pthread_cond_broadcast(&w->ready);
  pthread_cond_broadcast(&w->work);
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

static void stop_walker(walker *w) {
  if (w->joined) return;
  pthread_mutex_lock(&w->mu);
  w->stopping = true;
  pthread_cond_broadcast(&w->work);
  pthread_mutex_unlock(&w->mu);
  for (int i = 0; i < w->n_threads; i++) pthread_join(w->threads[i], NULL);
  w->joined = true;
  for (listing *l = w->head, *n; l; l = n) {
    n = l->next;
    free_listing(l);
  }
  w->head = w->scan_from = NULL;
  w->claimed = w->claimed_bytes = 0;
  if (w->root_fd >= 0) close(w->root_fd);
  w->root_fd = -1;
}

static void free_walker(walker *w) {
  free(w->root);
  for (size_t i = 0; i < w->n_excludes; i++) free(w->excludes[i]);
  free(w->excludes);
  free(w->exclude_lens);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->ready);
  pthread_cond_destroy(&w->work);
  free(w);
}

static void finalize_walker(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  walker *w = data;
  stop_walker(w);
  free_walker(w);
}

static walker *walker_arg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *w = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_external(env, argv[0], &w) != napi_ok || !w) {
    napi_throw_type_error(env, NULL, "expected a walker handle");
    return NULL;
  }
  return w;
}

napi_value xbfs_walker_start(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool is_array = false;
  double prefetch_max = 0;
  if (argc < 5 || napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array || napi_get_value_double(env, argv[3], &prefetch_max) != napi_ok) {
    napi_throw_type_error(env, NULL, "walkerStart(root: Buffer, excludes: Buffer[], oneFileSystem: boolean, prefetchMax: number, verifyAfterRead: boolean, threads?: number)");
    return NULL;
  }
  walker *w = calloc(1, sizeof *w);
  if (!w) {
    napi_throw_error(env, "ENOMEM", "walkerStart: out of memory");
    return NULL;
  }
  w->root_fd = -1;
  w->root = xbfs_buffer_arg(env, argv[0]);
  if (!w->root) {
    free(w);
    return NULL;
  }
  w->root_len = strlen(w->root);
  while (w->root_len > 1 && w->root[w->root_len - 1] == '/') w->root[--w->root_len] = 0;
  uint32_t n = 0;
  napi_get_array_length(env, argv[1], &n);
  w->excludes = calloc(n ? n : 1, sizeof *w->excludes);
  w->exclude_lens = calloc(n ? n : 1, sizeof *w->exclude_lens);
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    void *data;
    size_t len;
    napi_get_element(env, argv[1], i, &item);
    if (napi_get_buffer_info(env, item, &data, &len) != napi_ok) continue;
    w->excludes[w->n_excludes] = malloc(len ? len : 1);
    memcpy(w->excludes[w->n_excludes], data, len);
    w->exclude_lens[w->n_excludes++] = len;
  }
  napi_get_value_bool(env, argv[2], &w->one_fs);
  w->prefetch_max = prefetch_max > 0 ? (size_t)prefetch_max : 0;
  napi_get_value_bool(env, argv[4], &w->verify_after_read);
  int32_t threads = 1;
  if (argc >= 6) napi_get_value_int32(env, argv[5], &threads);
  if (threads < 1) threads = 1;
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  struct stat rst;
  if (lstat(w->root, &rst) == 0) w->root_dev = rst.st_dev;
  /* The root itself as given (the admin's path may pass through symlinks); below it, none. If it cannot
     be opened, its listing reports why (by path). */
  w->root_fd = open(w->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  w->head = new_slot(strdup(""), 0);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->ready, NULL);
  pthread_cond_init(&w->work, NULL);
  int err = w->head && w->head->rel ? 0 : ENOMEM;
  for (int i = 0; i < threads && !err; i++) {
    err = pthread_create(&w->threads[i], NULL, walk, w);
    if (!err) w->n_threads++;
  }
  if (err) {
    stop_walker(w);
    free_walker(w);
    napi_throw_error(env, NULL, "walkerStart: cannot start a thread");
    return NULL;
  }
  napi_value handle;
  if (napi_create_external(env, w, finalize_walker, NULL, &handle) != napi_ok) {
    stop_walker(w);
    free_walker(w);
    return NULL;
  }
  return handle;
}

napi_value xbfs_walker_next(napi_env env, napi_callback_info info) {
  walker *w = walker_arg(env, info);
  if (!w) return NULL;
  napi_value result;
  if (w->joined) {
    napi_get_null(env, &result);
    return result;
  }
  pthread_mutex_lock(&w->mu);
  while (w->head && w->head->state != DONE) pthread_cond_wait(&w->ready, &w->mu);
  listing *l = w->head;
  if (l) {
    w->head = l->next;
    if (w->scan_from == l) w->scan_from = l->next;
    w->claimed--;
    w->claimed_bytes -= slot_bytes(l);
    pthread_cond_broadcast(&w->work);
  }
  pthread_mutex_unlock(&w->mu);
  if (!l) {
    napi_get_null(env, &result);
    return result;
  }
  napi_value rel, data;
  void *copy;
  napi_create_buffer_copy(env, l->rel_len, l->rel_len ? l->rel : "", &copy, &rel);
  if (!l->x) {
    napi_create_object(env, &result);
    napi_set_named_property(env, result, "error", xbfs_errno_error(env, ENOMEM, "walker"));
  } else if (l->x->job.err) {
    napi_create_object(env, &result);
    napi_set_named_property(env, result, "error", xbfs_errno_error(env, l->x->job.err, l->x->job.syscall ? l->x->job.syscall : "scandir"));
    free(l->x->job.records);
    l->x->job.records = NULL;
  } else {
    result = scan_result(env, &l->x->job); /* takes the records */
    l->x->job.fd = -1;                     /* the archiver owns the open directory now */
    if (l->x->data_len) {
      data = xbfs_external_buffer(env, l->x->data, l->x->data_len);
      l->x->data = NULL;
      napi_set_named_property(env, result, "data", data);
    }
  }
  napi_set_named_property(env, result, "rel", rel);
  free_listing(l);
  return result;
}

/*
 * walkerOpenDir(handle, rel: Buffer) -> fd: the directory `rel` of the walk opened again, beneath the
 * root as the listings are (no symlink followed), for the archiver's openAt of a changed child when the
 * listing did not keep it open. Throws the open's errno (ELOOP: swapped for a symlink meanwhile).
 */
napi_value xbfs_walker_open_dir(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *p = NULL;
  if (argc < 2 || napi_get_value_external(env, argv[0], &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "walkerOpenDir(handle, rel: Buffer)");
    return NULL;
  }
  walker *w = p;
  char *rel = xbfs_buffer_arg(env, argv[1]);
  if (!rel) return NULL;
  int fd = -1, err = EBADF; /* a stopped walker has no root any more */
  if (w->root_fd >= 0) {
    fd = xb_open_beneath(w->root_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOSYS) {
      char *abs = absolute(w, rel, strlen(rel));
      fd = abs ? open(abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW) : -1;
      if (!abs) errno = ENOMEM;
      free(abs);
    }
    err = errno;
  }
  free(rel);
  if (fd < 0) {
    napi_throw(env, xbfs_errno_error(env, err, "open"));
    return NULL;
  }
  napi_value result;
  napi_create_int32(env, fd, &result);
  return result;
}

/* walkerPrefetch(handle, prefetchMax): from now on, listings also read small files (see the top). */
napi_value xbfs_walker_prefetch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *p = NULL;
  double max = 0;
  if (argc < 2 || napi_get_value_external(env, argv[0], &p) != napi_ok || !p || napi_get_value_double(env, argv[1], &max) != napi_ok) {
    napi_throw_type_error(env, NULL, "walkerPrefetch(handle, prefetchMax: number)");
    return NULL;
  }
  walker *w = p;
  pthread_mutex_lock(&w->mu);
  w->prefetch_max = max > 0 ? (size_t)max : 0;
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

napi_value xbfs_walker_stop(napi_env env, napi_callback_info info) {
  walker *w = walker_arg(env, info);
  if (w) stop_walker(w);
  return NULL;
}
