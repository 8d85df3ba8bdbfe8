#include "syscall_filter.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace paddock::plugins::sandbox_process {
namespace {

// clone() flags that make a new namespace; each refused on its own (libseccomp compares one
// masked value per rule).
constexpr unsigned long kNamespaceFlags[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,   CLONE_NEWUSER,
                                             CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP};

bool Allowed(const SandboxHardening& h, std::string_view call) {
  for (const auto& a : h.seccomp_allow) {
    if (a == call) return true;
  }
  return false;
}

}  // namespace

Result<int> CompileFilter(const SandboxHardening& hardening) {
  std::unique_ptr<void, void (*)(scmp_filter_ctx)> ctx(seccomp_init(SCMP_ACT_ALLOW), seccomp_release);
  if (!ctx) return Status::Internal("seccomp_init failed");
  // Calls of any other ABI (i386 through int 0x80, x32) kill the process: no way around the
  // rules below by another syscall table.
  if (seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) != 0) {
    return Status::Internal("seccomp: cannot set the action for other ABIs");
  }
  const uint32_t refuse = SCMP_ACT_ERRNO(EPERM);
  for (std::string_view name : kRefusedSyscalls) {
    if (Allowed(hardening, name)) continue;
    int nr = seccomp_syscall_resolve_name(std::string(name).c_str());
    if (nr == __NR_SCMP_ERROR) continue;  // not a call of this architecture (vm86 on x86_64)
    int rc = seccomp_rule_add(ctx.get(), refuse, nr, 0);
    if (rc != 0)
      return Status::Internal("seccomp: cannot refuse " + std::string(name) + ": " + strerror(-rc));
  }
  if (!Allowed(hardening, "unshare")) {
    for (unsigned long flag : kNamespaceFlags) {
      int rc =
          seccomp_rule_add(ctx.get(), refuse, SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
      if (rc != 0) return Status::Internal(std::string("seccomp: clone rule: ") + strerror(-rc));
    }
  }
  // clone3 passes its flags in memory the filter cannot read: ENOSYS sends the C library back
  // to clone(), whose flags it can.
  int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (rc != 0) return Status::Internal(std::string("seccomp: clone3 rule: ") + strerror(-rc));

  int fd = memfd_create("paddock-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return Status::Unavailable(std::string("memfd_create: ") + strerror(errno));
  rc = seccomp_export_bpf(ctx.get(), fd);
  if (rc != 0 || lseek(fd, 0, SEEK_SET) != 0 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    close(fd);
    return Status::Internal("seccomp: cannot export the filter");
  }
  return fd;
}

}  // namespace paddock::plugins::sandbox_process
