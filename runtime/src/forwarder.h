// The sandbox's way out: a TCP listener on 127.0.0.1:<port> inside the sandbox whose every
// connection is piped to the egress proxy's unix socket, mounted in from the control plane.
#pragma once

#include <string>

namespace paddock::runtime {

// Listens and serves in background threads. Returns "" or an error.
std::string StartForwarder(int port, const std::string& unix_socket);

}  // namespace paddock::runtime
