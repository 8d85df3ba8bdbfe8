/* Close-on-exec from birth, for every descriptor of the process.
 *
 * Linked into each Paddock executable (paddock, paddock-runtime and the test programs), these
 * definitions interpose the C library's descriptor-creating calls for the whole process: the
 * executable's own code, the plugins it loads and every library they use (Poco's server and
 * client sockets and its poll sets, OpenSSL, libpq, SQLite, libarchive, the C++ streams). Each
 * call passes its close-on-exec flag to the kernel, so no descriptor exists even for an instant
 * without it. dup2() and dup3() are left alone: the spawn code uses them to hand a child
 * exactly the descriptors it names (paddock/process.h, runtime/src/children.cpp), and those
 * still close every other descriptor before exec.
 *
 * The real calls are made as system calls (or, for fopen, through the next definition in the
 * lookup order), never through these names again. */
#undef _FORTIFY_SOURCE
#define _GNU_SOURCE 1

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define PADDOCK_EXPORT __attribute__((visibility("default")))

static int as_int(long r) { return (int)r; }

PADDOCK_EXPORT int socket(int domain, int type, int protocol) {
  return as_int(syscall(SYS_socket, domain, type | SOCK_CLOEXEC, protocol));
}

PADDOCK_EXPORT int socketpair(int domain, int type, int protocol, int sv[2]) {
  return as_int(syscall(SYS_socketpair, domain, type | SOCK_CLOEXEC, protocol, sv));
}

PADDOCK_EXPORT int accept(int fd, struct sockaddr* addr, socklen_t* len) {
  return as_int(syscall(SYS_accept4, fd, addr, len, SOCK_CLOEXEC));
}

PADDOCK_EXPORT int accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags) {
  return as_int(syscall(SYS_accept4, fd, addr, len, flags | SOCK_CLOEXEC));
}

PADDOCK_EXPORT int pipe(int fds[2]) { return as_int(syscall(SYS_pipe2, fds, O_CLOEXEC)); }

PADDOCK_EXPORT int pipe2(int fds[2], int flags) { return as_int(syscall(SYS_pipe2, fds, flags | O_CLOEXEC)); }

PADDOCK_EXPORT int epoll_create(int size) {
  (void)size;
  return as_int(syscall(SYS_epoll_create1, EPOLL_CLOEXEC));
}

PADDOCK_EXPORT int epoll_create1(int flags) { return as_int(syscall(SYS_epoll_create1, flags | EPOLL_CLOEXEC)); }

PADDOCK_EXPORT int inotify_init(void) { return as_int(syscall(SYS_inotify_init1, IN_CLOEXEC)); }

PADDOCK_EXPORT int inotify_init1(int flags) { return as_int(syscall(SYS_inotify_init1, flags | IN_CLOEXEC)); }

PADDOCK_EXPORT int eventfd(unsigned int count, int flags) {
  return as_int(syscall(SYS_eventfd2, count, flags | EFD_CLOEXEC));
}

PADDOCK_EXPORT int timerfd_create(int clockid, int flags) {
  return as_int(syscall(SYS_timerfd_create, clockid, flags | TFD_CLOEXEC));
}

PADDOCK_EXPORT int signalfd(int fd, const sigset_t* mask, int flags) {
  return as_int(syscall(SYS_signalfd4, fd, mask, (size_t)(_NSIG / 8), flags | SFD_CLOEXEC));
}

PADDOCK_EXPORT int memfd_create(const char* name, unsigned int flags) {
  return as_int(syscall(SYS_memfd_create, name, flags | MFD_CLOEXEC));
}

PADDOCK_EXPORT int dup(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 0); }

static int open_at(int dirfd, const char* path, int flags, mode_t mode) {
  return as_int(syscall(SYS_openat, dirfd, path, flags | O_CLOEXEC, mode));
}

/* The mode argument is read only when the call can create a file, as the C library does. */
#define PADDOCK_MODE_ARG(flags, last)                           \
  mode_t mode = 0;                                               \
  if ((flags) & (O_CREAT | __O_TMPFILE)) {                       \
    va_list ap;                                                  \
    va_start(ap, last);                                          \
    mode = (mode_t)va_arg(ap, int);                              \
    va_end(ap);                                                  \
  }

PADDOCK_EXPORT int open(const char* path, int flags, ...) {
  PADDOCK_MODE_ARG(flags, flags)
  return open_at(AT_FDCWD, path, flags, mode);
}

PADDOCK_EXPORT int open64(const char* path, int flags, ...) {
  PADDOCK_MODE_ARG(flags, flags)
  return open_at(AT_FDCWD, path, flags, mode);
}

PADDOCK_EXPORT int openat(int dirfd, const char* path, int flags, ...) {
  PADDOCK_MODE_ARG(flags, flags)
  return open_at(dirfd, path, flags, mode);
}

PADDOCK_EXPORT int openat64(int dirfd, const char* path, int flags, ...) {
  PADDOCK_MODE_ARG(flags, flags)
  return open_at(dirfd, path, flags, mode);
}

/* What fortified callers (built with _FORTIFY_SOURCE) call instead of open and openat. */
PADDOCK_EXPORT int __open_2(const char* path, int flags) { return open_at(AT_FDCWD, path, flags, 0); }
PADDOCK_EXPORT int __open64_2(const char* path, int flags) { return open_at(AT_FDCWD, path, flags, 0); }
PADDOCK_EXPORT int __openat_2(int dirfd, const char* path, int flags) { return open_at(dirfd, path, flags, 0); }
PADDOCK_EXPORT int __openat64_2(int dirfd, const char* path, int flags) {
  return open_at(dirfd, path, flags, 0);
}

PADDOCK_EXPORT int creat(const char* path, mode_t mode) {
  return open_at(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}
PADDOCK_EXPORT int creat64(const char* path, mode_t mode) {
  return open_at(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

typedef FILE* (*fopen_fn)(const char*, const char*);

/* fopen with "e" (O_CLOEXEC) added to the mode. */
static FILE* fopen_cloexec(const char* symbol, fopen_fn* cache, const char* path, const char* mode) {
  fopen_fn real = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
  if (!real) {
    real = (fopen_fn)dlsym(RTLD_NEXT, symbol);
    __atomic_store_n(cache, real, __ATOMIC_RELEASE);
  }
  char with_e[16];
  size_t n = strlen(mode);
  if (n + 2 > sizeof with_e || strchr(mode, 'e')) return real(path, mode);
  memcpy(with_e, mode, n);
  with_e[n] = 'e';
  with_e[n + 1] = '\0';
  return real(path, with_e);
}

PADDOCK_EXPORT FILE* fopen(const char* path, const char* mode) {
  static fopen_fn real;
  return fopen_cloexec("fopen", &real, path, mode);
}

PADDOCK_EXPORT FILE* fopen64(const char* path, const char* mode) {
  static fopen_fn real;
  return fopen_cloexec("fopen64", &real, path, mode);
}
