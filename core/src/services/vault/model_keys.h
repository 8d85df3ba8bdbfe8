// The vault bindings model keys get when they have none of their own: a secret named
// ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, OPENAI_API_KEY or LITELLM_API_KEY reaches a sandbox
// as a placeholder, and its value goes only to the model endpoint ([models], else the
// provider's public API) in the header that provider reads. So an agent CLI completes a turn
// with no real key in its sandbox. An endpoint that is plain HTTP gets no binding (a vault
// value goes out over TLS only): its keys go in as values, and the server says so at start.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "paddock/types.h"

namespace paddock {

struct ModelKeys {
  std::map<std::string, VaultBinding> bindings;  // secret name -> binding
  std::vector<std::string> warnings;             // one line per key that goes in as its value
};

// The Anthropic and OpenAI URLs sandboxes are given ([models]: a provider's URL, else the
// gateway, the gateway's /v1 for OpenAI); "" for none.
std::pair<std::string, std::string> ModelUrls(const std::string& gateway,
                                              const std::string& anthropic_base_url,
                                              const std::string& openai_base_url);

// `anthropic_url` and `openai_url` as the sandboxes are given them ("" for the providers'
// own: https://api.anthropic.com, https://api.openai.com/v1).
ModelKeys ModelKeyBindings(const std::string& anthropic_url, const std::string& openai_url);

}  // namespace paddock
