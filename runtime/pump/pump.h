// Copying a byte stream both ways between two connected sockets; shared by paddock-runtime's
// egress forwarder and the control plane's egress proxy.
#pragma once

#include <string_view>

namespace paddock::net {

// Copies bytes both ways until both directions are done, then closes both descriptors.
// `a_first` is sent to `b` before anything else (bytes already read from `a`).
void Pump(int a, int b, std::string_view a_first = {});

}  // namespace paddock::net
