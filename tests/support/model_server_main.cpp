// paddock-model-server: the scripted model server of the tests, on its own, for trying a harness
// by hand and for the benchmarks.
//   paddock-model-server PORT 'TRIGGER|COMMAND|ANSWER' ...
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "model_server.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s PORT 'TRIGGER|COMMAND|ANSWER' ...\n", argv[0]);
    return 2;
  }
  std::vector<paddock::testing::ScriptedTurn> script;
  for (int i = 2; i < argc; ++i) {
    std::string spec = argv[i];
    auto a = spec.find('|');
    auto b = a == std::string::npos ? a : spec.find('|', a + 1);
    if (b == std::string::npos) {
      std::fprintf(stderr, "a turn is TRIGGER|COMMAND|ANSWER: %s\n", argv[i]);
      return 2;
    }
    script.push_back({spec.substr(0, a), spec.substr(a + 1, b - a - 1), spec.substr(b + 1)});
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  paddock::testing::ModelServer server(script, std::atoi(argv[1]));
  std::printf("%s\n", server.BaseUrl().c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  return 0;
}
