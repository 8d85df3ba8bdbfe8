// What code inside a sandbox tries, as an attacker would: one Python program whose output
// lines say what it found. Shared by the sandbox.process and sandbox.k8s isolation tests.
#pragma once

#include <gtest/gtest.h>

#include <sstream>
#include <string>

namespace paddock::testing {

// Prints, one per line:
//   fds: <the descriptors open in this process, sorted>
//   seccomp: <the Seccomp field of /proc/self/status>
//   accepting: <descriptors 3..1023 on which accept() did not fail with EBADF/ENOTSOCK/EINVAL>
//   proc1 <what>: <"denied" or "READ">  for /proc/1/mem, /proc/1/environ, /proc/1/fd
//   ptrace1: <"denied" or "ATTACHED">
//   <call>: <"refused" or "ALLOWED">    for keyctl, bpf, userfaultfd, io_uring_setup,
//                                       perf_event_open, unshare(CLONE_NEWUSER), mount
inline const char kProbe[] = R"PY(
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
fds = sorted(int(x) for x in os.listdir('/proc/self/fd'))
print('fds:', ' '.join(str(f) for f in fds if os.path.exists('/proc/self/fd/%d' % f)))
print('seccomp:', [l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')][0])
accepting = []
for fd in range(3, 1024):
    try:
        d = os.dup(fd)
    except OSError:
        continue
    try:
        s = socket.socket(fileno=d)
    except OSError:
        os.close(d)
        continue
    try:
        s.setblocking(False)
        s.accept()
        accepting.append(fd)
    except BlockingIOError:
        accepting.append(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSOCK, errno.EOPNOTSUPP, errno.EBADF):
            accepting.append(fd)
    finally:
        s.close()
print('accepting:', ' '.join(map(str, accepting)))
for what in ('mem', 'environ', 'fd'):
    try:
        if what == 'fd':
            os.listdir('/proc/1/fd')
        else:
            with open('/proc/1/' + what, 'rb') as f:
                f.read(1)
        print('proc1 %s: READ' % what)
    except OSError:
        print('proc1 %s: denied' % what)
PTRACE_ATTACH = 16
r = libc.ptrace(PTRACE_ATTACH, 1, None, None)
print('ptrace1:', 'ATTACHED' if r == 0 else 'denied')
calls = {'keyctl': (250, 0, 0, 0), 'bpf': (321, 0, 0, 0), 'userfaultfd': (323, 0, 0, 0),
         'io_uring_setup': (425, 1, 0, 0), 'perf_event_open': (298, 0, 0, -1),
         'unshare': (272, 0x10000000, 0, 0), 'mount': (165, 0, 0, 0)}
for name, (nr, a, b, c) in calls.items():
    r = libc.syscall(nr, ctypes.c_long(a), ctypes.c_long(b), ctypes.c_long(c), ctypes.c_long(0))
    e = ctypes.get_errno()
    print('%s: %s' % (name, 'refused' if r == -1 and e == errno.EPERM else 'ALLOWED (%d, errno %d)' % (r, e)))
)PY";

// The value after "<key>: " on its own line of `text`.
inline std::string Line(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::string v = line.substr(key.size() + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      return v;
    }
  }
  return "<no line " + key + ">";
}

// The probe's report says the boundary holds.
inline void ExpectSealed(const std::string& probe, const std::string& who) {
  SCOPED_TRACE(who + ":\n" + probe);
  EXPECT_EQ(Line(probe, "fds"), "0 1 2");
  EXPECT_EQ(Line(probe, "seccomp"), "2");
  EXPECT_EQ(Line(probe, "accepting"), "");
  for (const char* what : {"proc1 mem", "proc1 environ", "proc1 fd"}) EXPECT_EQ(Line(probe, what), "denied");
  EXPECT_EQ(Line(probe, "ptrace1"), "denied");
  for (const char* call :
       {"keyctl", "bpf", "userfaultfd", "io_uring_setup", "perf_event_open", "unshare", "mount"})
    EXPECT_EQ(Line(probe, call), "refused") << call;
}

// The probe as one shell command.
inline std::string ProbeCommand() {
  std::string quoted;
  for (char c : std::string(kProbe)) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return "python3 -c '" + quoted + "'";
}

}  // namespace paddock::testing
