// How much of the kernel a sandbox's code may reach: the syscall filter every provider applies
// by default, and what a profile may relax ([profiles.<name>] seccomp, seccomp_allow,
// runtime_class). docs/architecture.md, "The sandbox boundary", says why each call is refused.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace paddock {

// Refused (EPERM) by the default filter, whatever their arguments. Besides these, clone() that
// asks for a new namespace is refused, clone3() answers ENOSYS (its flags cannot be inspected;
// the C library falls back to clone) and every call of another ABI (32-bit, x32) kills the
// process. It is at least what the default profiles of Docker and containerd refuse to a
// container without capabilities, plus io_uring.
inline constexpr std::string_view kRefusedSyscalls[] = {
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "settimeofday",
    "create_module",
    "delete_module",
    "finit_module",
    "init_module",
    "get_kernel_syms",
    "query_module",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "request_key",
    "lookup_dcookie",
    "mount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "name_to_handle_at",
    "open_by_handle_at",
    "nfsservctl",
    "perf_event_open",
    "fanotify_init",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "setns",
    "unshare",
    "swapon",
    "swapoff",
    "sysfs",
    "_sysctl",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
    "iopl",
    "ioperm",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "syslog",
    "get_mempolicy",
    "set_mempolicy",
    "mbind",
    "move_pages",
};

inline bool IsRefusedSyscall(std::string_view name) {
  return std::find(std::begin(kRefusedSyscalls), std::end(kRefusedSyscalls), name) !=
         std::end(kRefusedSyscalls);
}

struct SandboxHardening {
  // The syscall filter above, and no nested user namespaces. false: neither (an explicit,
  // logged choice of the profile).
  bool seccomp = true;
  // Calls of kRefusedSyscalls this profile lets through (e.g. "perf_event_open" for profiling).
  std::vector<std::string> seccomp_allow;
  // Kubernetes: the runtimeClassName of the profile's pods (gVisor, Kata); empty: the
  // cluster's default. Other providers ignore it.
  std::string runtime_class;
};

// One line for logs and the sandbox's limits: "default filter", "default filter, allowing x, y"
// or "off".
inline std::string Describe(const SandboxHardening& h) {
  if (!h.seccomp) return "off";
  std::string out = "default filter (" + std::to_string(std::size(kRefusedSyscalls)) + " syscalls refused";
  if (!h.seccomp_allow.empty()) {
    out += "; allowed by the profile:";
    for (const auto& s : h.seccomp_allow) out += " " + s;
  }
  return out + ")";
}

}  // namespace paddock
