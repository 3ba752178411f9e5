/*
 * The few system calls the vfio-user transport needs and Node does not offer
 * (docs/vfio-user.md, "Native code"):
 *
 *   - Unix stream sockets whose reads and writes carry file descriptors as
 *     SCM_RIGHTS ancillary data (unix(7), cmsg(3)); Node's own sockets read
 *     with read(2), which drops them;
 *   - readiness of such a socket on Node's event loop: a libuv poll handle
 *     (uv_poll_t, the same epoll readiness libuv uses for Node's sockets) on
 *     the loop napi_get_uv_event_loop returns; callbacks run through
 *     napi_make_callback, so promises settle as after any I/O callback;
 *   - a bounded blocking wait for one socket (poll(2)), for the synchronous
 *     DMA_READ/DMA_WRITE round trip;
 *   - mmap(2) of a passed descriptor, shared, exposed as an external
 *     ArrayBuffer that munmap detaches before unmapping;
 *   - eventfd(2) and memfd_create(2), for clients and tests.
 *
 * Errors: calls that a caller retries or handles (accept, recv, send, poll,
 * close) return -errno; set-up calls throw an Error whose code is the errno
 * name. Every descriptor is created close-on-exec.
 */
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Most descriptors one recvmsg accepts (SCM_MAX_FD in the kernel is 253). */
#define MAX_RECV_FDS 253

#define CHECK(env, call)                                                                           \
  do {                                                                                             \
    if ((call) != napi_ok) return throw_message((env), "EINVAL", #call " failed");                \
  } while (0)

static napi_value throw_message(napi_env env, const char *code, const char *message) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, code, message);
  return NULL;
}

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[512];
  const char *name = strerrorname_np(err);
  snprintf(message, sizeof message, "%s: %s (%s)", what, strerror(err), name ? name : "?");
  return throw_message(env, name ? name : "EIO", message);
}

static napi_value make_int(napi_env env, int64_t value) {
  napi_value out;
  if (napi_create_int64(env, value, &out) != napi_ok) return NULL;
  return out;
}

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  if (argc < want) {
    throw_message(env, "EINVAL", "too few arguments");
    return false;
  }
  return true;
}

static bool get_i32(napi_env env, napi_value v, int32_t *out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    throw_message(env, "EINVAL", "expected an integer");
    return false;
  }
  return true;
}

static bool get_i64(napi_env env, napi_value v, int64_t *out) {
  if (napi_get_value_int64(env, v, out) != napi_ok) {
    throw_message(env, "EINVAL", "expected an integer");
    return false;
  }
  return true;
}

/* A Uint8Array or Int32Array argument: its data and its length in elements. */
static bool get_typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &type, length, data, NULL, NULL) != napi_ok || type != want) {
    throw_message(env, "EINVAL", want == napi_uint8_array ? "expected a Uint8Array" : "expected an Int32Array");
    return false;
  }
  return true;
}

static bool unix_address(napi_env env, napi_value v, struct sockaddr_un *addr) {
  size_t len = 0;
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    throw_message(env, "EINVAL", "expected a socket path");
    return false;
  }
  if (len == 0 || len >= sizeof addr->sun_path) {
    throw_errno(env, "socket path", ENAMETOOLONG);
    return false;
  }
  napi_get_value_string_utf8(env, v, addr->sun_path, sizeof addr->sun_path, &len);
  return true;
}

/* listen(path, backlog): a listening socket, mode 0600 before anyone can connect. */
static napi_value js_listen(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  struct sockaddr_un addr;
  int32_t backlog;
  if (!get_args(env, info, 2, argv) || !unix_address(env, argv[0], &addr) || !get_i32(env, argv[1], &backlog)) return NULL;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "bind", err);
  }
  /* Before listen(2): no connection can be made while the file still has the umask's mode. */
  if (chmod(addr.sun_path, S_IRUSR | S_IWUSR) < 0 || listen(fd, backlog) < 0) {
    int err = errno;
    unlink(addr.sun_path);
    close(fd);
    return throw_errno(env, "listen", err);
  }
  return make_int(env, fd);
}

/* accept(fd): a non-blocking connection, or -errno (-EAGAIN: none pending). */
static napi_value js_accept(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !get_i32(env, argv[0], &fd)) return NULL;
  int conn = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  return make_int(env, conn < 0 ? -errno : conn);
}

/* connect(path): a connected non-blocking socket (clients and tests). */
static napi_value js_connect(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct sockaddr_un addr;
  if (!get_args(env, info, 1, argv) || !unix_address(env, argv[0], &addr)) return NULL;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "connect", err);
  }
  return make_int(env, fd);
}

/*
 * recv(fd, bytes, fdsOut): one recvmsg into `bytes`. Returns the byte count (0: end of stream)
 * or -errno. fdsOut[0] = descriptors received, fdsOut[1] = 1 when the kernel truncated the
 * ancillary data (more descriptors than fdsOut holds: the kernel closed the rest),
 * fdsOut[2..] = the descriptors.
 */
static napi_value js_recv(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  void *data;
  size_t length;
  void *fds_data;
  size_t fds_length;
  if (!get_args(env, info, 3, argv) || !get_i32(env, argv[0], &fd) ||
      !get_typed(env, argv[1], napi_uint8_array, &data, &length) ||
      !get_typed(env, argv[2], napi_int32_array, &fds_data, &fds_length)) {
    return NULL;
  }
  if (fds_length < 2) return throw_message(env, "EINVAL", "fdsOut needs at least 2 slots");
  int32_t *fds_out = fds_data;
  size_t capacity = fds_length - 2;
  if (capacity > MAX_RECV_FDS) capacity = MAX_RECV_FDS;
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_RECV_FDS)];
    struct cmsghdr align;
  } control;
  struct iovec iov = {.iov_base = data, .iov_len = length};
  struct msghdr msg = {
      .msg_iov = &iov,
      .msg_iovlen = 1,
      .msg_control = capacity > 0 ? control.buf : NULL,
      .msg_controllen = capacity > 0 ? CMSG_SPACE(sizeof(int) * capacity) : 0,
  };
  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  fds_out[0] = 0;
  fds_out[1] = 0;
  if (n < 0) return make_int(env, -errno);
  size_t count = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t in = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int *received = (int *)CMSG_DATA(c);
    for (size_t i = 0; i < in; i++) {
      int one;
      memcpy(&one, received + i, sizeof one);
      if (count < capacity) fds_out[2 + count++] = one;
      else close(one);
    }
  }
  fds_out[0] = (int32_t)count;
  fds_out[1] = (msg.msg_flags & MSG_CTRUNC) ? 1 : 0;
  return make_int(env, n);
}

/* send(fd, bytes, fds | null): one sendmsg; bytes sent (possibly fewer) or -errno. */
static napi_value js_send(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd;
  void *data;
  size_t length;
  napi_valuetype fds_type;
  if (!get_args(env, info, 3, argv) || !get_i32(env, argv[0], &fd) ||
      !get_typed(env, argv[1], napi_uint8_array, &data, &length)) {
    return NULL;
  }
  CHECK(env, napi_typeof(env, argv[2], &fds_type));
  void *fds_data = NULL;
  size_t nfds = 0;
  if (fds_type != napi_null && fds_type != napi_undefined &&
      !get_typed(env, argv[2], napi_int32_array, &fds_data, &nfds)) {
    return NULL;
  }
  if (nfds > MAX_RECV_FDS) return throw_errno(env, "send", E2BIG);
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_RECV_FDS)];
    struct cmsghdr align;
  } control;
  struct iovec iov = {.iov_base = data, .iov_len = length};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds > 0) {
    memset(control.buf, 0, CMSG_SPACE(sizeof(int) * nfds));
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds_data, sizeof(int) * nfds);
  }
  ssize_t n;
  do {
    n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return make_int(env, n < 0 ? -errno : n);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* poll(fd, events, timeoutMs): POLL* bits that fired, 0 on time-out, or -errno. Blocks. */
static napi_value js_poll(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd, events, timeout;
  if (!get_args(env, info, 3, argv) || !get_i32(env, argv[0], &fd) || !get_i32(env, argv[1], &events) ||
      !get_i32(env, argv[2], &timeout)) {
    return NULL;
  }
  int64_t deadline = now_ms() + timeout;
  for (;;) {
    struct pollfd p = {.fd = fd, .events = (short)events};
    int left = timeout < 0 ? -1 : (int)(deadline - now_ms());
    if (timeout >= 0 && left < 0) left = 0;
    int r = poll(&p, 1, left);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return make_int(env, -errno);
    return make_int(env, r == 0 ? 0 : p.revents);
  }
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !get_i32(env, argv[0], &fd)) return NULL;
  return make_int(env, close(fd) < 0 ? -errno : 0);
}

/* ---- readiness watchers ---------------------------------------------------------------- */

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  /* The handle itself, held while watching: like a libuv handle, a watcher lives until unwatch. */
  napi_ref self;
  napi_async_context context;
  bool stopping;  /* unwatch or finalizer started closing the handle */
  bool closed;    /* the handle's close callback ran */
  bool finalized; /* the JS handle was collected */
} watcher_t;

static void watcher_closed(uv_handle_t *handle) {
  watcher_t *w = (watcher_t *)handle->data;
  w->closed = true;
  if (w->finalized) free(w);
}

static void watcher_stop(watcher_t *w) {
  if (w->stopping) return;
  w->stopping = true;
  uv_poll_stop(&w->poll);
  if (w->callback) napi_delete_reference(w->env, w->callback);
  w->callback = NULL;
  if (w->self) napi_delete_reference(w->env, w->self);
  w->self = NULL;
  if (w->context) napi_async_destroy(w->env, w->context);
  w->context = NULL;
  uv_close((uv_handle_t *)&w->poll, watcher_closed);
}

static void watcher_fired(uv_poll_t *handle, int status, int events) {
  watcher_t *w = (watcher_t *)handle->data;
  if (w->stopping || !w->callback) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv, args[2], result;
  if (napi_get_reference_value(env, w->callback, &fn) == napi_ok && fn != NULL &&
      napi_get_global(env, &recv) == napi_ok && napi_create_int32(env, status, &args[0]) == napi_ok &&
      napi_create_int32(env, events, &args[1]) == napi_ok) {
    if (napi_make_callback(env, w->context, recv, fn, 2, args, &result) == napi_pending_exception) {
      napi_value error;
      if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void watcher_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  watcher_t *w = data;
  w->finalized = true;
  watcher_stop(w);
  if (w->closed) free(w);
}

/*
 * watch(fd, events, callback(status, events)): a handle; events 1 readable, 2 writable. The
 * watcher stays alive (and keeps the event loop alive) until unwatch, whether or not JS keeps
 * the handle.
 */
static napi_value js_watch(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int32_t fd, events;
  napi_valuetype type;
  if (!get_args(env, info, 3, argv) || !get_i32(env, argv[0], &fd) || !get_i32(env, argv[1], &events)) return NULL;
  CHECK(env, napi_typeof(env, argv[2], &type));
  if (type != napi_function) return throw_message(env, "EINVAL", "expected a callback");
  uv_loop_t *loop;
  CHECK(env, napi_get_uv_event_loop(env, &loop));
  watcher_t *w = calloc(1, sizeof *w);
  if (!w) return throw_errno(env, "watch", ENOMEM);
  w->env = env;
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) {
    free(w);
    return throw_errno(env, "uv_poll_init", -r);
  }
  w->poll.data = w;
  napi_value name, handle;
  if (napi_create_reference(env, argv[2], 1, &w->callback) != napi_ok ||
      napi_create_string_utf8(env, "vmmr:vfio-user-socket", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &w->context) != napi_ok ||
      napi_create_external(env, w, watcher_finalize, NULL, &handle) != napi_ok) {
    /* No JS handle exists: nothing else will finalize the watcher. */
    w->finalized = true;
    watcher_stop(w);
    return throw_message(env, "EINVAL", "watch: cannot create the handle");
  }
  if (napi_create_reference(env, handle, 1, &w->self) != napi_ok) {
    watcher_stop(w);
    return throw_message(env, "EINVAL", "watch: cannot hold the handle");
  }
  r = uv_poll_start(&w->poll, events & (UV_READABLE | UV_WRITABLE), watcher_fired);
  if (r < 0) {
    watcher_stop(w);
    return throw_errno(env, "uv_poll_start", -r);
  }
  return handle;
}

static watcher_t *get_watcher(napi_env env, napi_value v) {
  void *data = NULL;
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_external ||
      napi_get_value_external(env, v, &data) != napi_ok || data == NULL) {
    throw_message(env, "EINVAL", "expected a watcher handle");
    return NULL;
  }
  return data;
}

/* setEvents(handle, events): what to wait for from now on (0: nothing, still open). */
static napi_value js_set_events(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t events;
  if (!get_args(env, info, 2, argv) || !get_i32(env, argv[1], &events)) return NULL;
  watcher_t *w = get_watcher(env, argv[0]);
  if (!w) return NULL;
  if (w->stopping) return throw_message(env, "EBADF", "setEvents: the watcher is closed");
  int r = events == 0 ? uv_poll_stop(&w->poll)
                      : uv_poll_start(&w->poll, events & (UV_READABLE | UV_WRITABLE), watcher_fired);
  if (r < 0) return throw_errno(env, "uv_poll_start", -r);
  return NULL;
}

/* unwatch(handle): stops and closes the watcher (the descriptor stays open). */
static napi_value js_unwatch(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  watcher_t *w = get_watcher(env, argv[0]);
  if (!w) return NULL;
  watcher_stop(w);
  return NULL;
}

/* ---- shared mappings --------------------------------------------------------------------- */

typedef struct {
  void *base;
  size_t length;
  bool mapped;
  int refs; /* the ArrayBuffer and the handle */
} mapping_t;

static void mapping_release(mapping_t *m) {
  if (--m->refs == 0) free(m);
}

static void buffer_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  mapping_t *m = hint;
  if (m->mapped) munmap(m->base, m->length);
  m->mapped = false;
  mapping_release(m);
}

static void handle_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  mapping_release(data);
}

/* mmap(fd, offset, length, writable): [ArrayBuffer over the shared mapping, handle]. */
static napi_value js_mmap(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int32_t fd;
  int64_t offset, length;
  bool writable;
  if (!get_args(env, info, 4, argv) || !get_i32(env, argv[0], &fd) || !get_i64(env, argv[1], &offset) ||
      !get_i64(env, argv[2], &length)) {
    return NULL;
  }
  CHECK(env, napi_get_value_bool(env, argv[3], &writable));
  if (offset < 0 || length <= 0) return throw_errno(env, "mmap", EINVAL);
  int64_t page = sysconf(_SC_PAGESIZE);
  int64_t aligned = offset & ~(page - 1);
  size_t span = (size_t)(length + (offset - aligned));
  void *base = mmap(NULL, span, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, aligned);
  if (base == MAP_FAILED) return throw_errno(env, "mmap", errno);
  mapping_t *m = calloc(1, sizeof *m);
  if (!m) {
    munmap(base, span);
    return throw_errno(env, "mmap", ENOMEM);
  }
  m->base = base;
  m->length = span;
  m->mapped = true;
  m->refs = 1;
  napi_value buffer, handle, pair;
  if (napi_create_external_arraybuffer(env, (char *)base + (offset - aligned), (size_t)length, buffer_finalize, m,
                                       &buffer) != napi_ok) {
    munmap(base, span);
    free(m);
    return throw_message(env, "ENOMEM", "mmap: cannot create an ArrayBuffer over the mapping");
  }
  m->refs = 2;
  if (napi_create_external(env, m, handle_finalize, NULL, &handle) != napi_ok) {
    m->refs = 1;
    return throw_message(env, "ENOMEM", "mmap: cannot create the mapping handle");
  }
  CHECK(env, napi_create_array_with_length(env, 2, &pair));
  CHECK(env, napi_set_element(env, pair, 0, buffer));
  CHECK(env, napi_set_element(env, pair, 1, handle));
  return pair;
}

/* munmap(handle, buffer): detaches the ArrayBuffer (its views read as empty), then unmaps. */
static napi_value js_munmap(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  void *data = NULL;
  if (!get_args(env, info, 2, argv)) return NULL;
  CHECK(env, napi_get_value_external(env, argv[0], &data));
  mapping_t *m = data;
  if (!m->mapped) return NULL;
  void *view = NULL;
  size_t view_length = 0;
  bool detached = false;
  CHECK(env, napi_is_detached_arraybuffer(env, argv[1], &detached));
  /* A detached buffer cannot be told apart from another mapping's: never unmap on its word. */
  if (detached) return throw_message(env, "EINVAL", "munmap: the ArrayBuffer is detached, the mapping is not");
  CHECK(env, napi_get_arraybuffer_info(env, argv[1], &view, &view_length));
  if ((char *)view < (char *)m->base || (char *)view + view_length > (char *)m->base + m->length) {
    return throw_message(env, "EINVAL", "munmap: the ArrayBuffer is not this mapping's");
  }
  CHECK(env, napi_detach_arraybuffer(env, argv[1]));
  munmap(m->base, m->length);
  m->mapped = false;
  return NULL;
}

/* ---- eventfd, memfd ---------------------------------------------------------------------- */

/* eventfd(initial, nonblocking): a new eventfd. */
static napi_value js_eventfd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t initial;
  bool nonblocking;
  if (!get_args(env, info, 2, argv) || !get_i32(env, argv[0], &initial)) return NULL;
  CHECK(env, napi_get_value_bool(env, argv[1], &nonblocking));
  int fd = eventfd((unsigned)initial, EFD_CLOEXEC | (nonblocking ? EFD_NONBLOCK : 0));
  if (fd < 0) return throw_errno(env, "eventfd", errno);
  return make_int(env, fd);
}

/* memfd(name, size): an anonymous shared-memory file of `size` bytes. */
static napi_value js_memfd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[64];
  size_t len;
  int64_t size;
  if (!get_args(env, info, 2, argv) || !get_i64(env, argv[1], &size)) return NULL;
  CHECK(env, napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len));
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return throw_errno(env, "memfd_create", errno);
  if (ftruncate(fd, size) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "ftruncate", err);
  }
  return make_int(env, fd);
}

NAPI_MODULE_INIT() {
  const struct {
    const char *name;
    napi_callback fn;
  } functions[] = {
      {"listen", js_listen}, {"accept", js_accept},     {"connect", js_connect}, {"recv", js_recv},
      {"send", js_send},     {"poll", js_poll},         {"close", js_close},     {"watch", js_watch},
      {"unwatch", js_unwatch}, {"setEvents", js_set_events}, {"mmap", js_mmap},   {"munmap", js_munmap},
      {"eventfd", js_eventfd}, {"memfd", js_memfd},
  };
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].fn, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, functions[i].name, fn) != napi_ok) {
      return NULL;
    }
  }
  return exports;
}
