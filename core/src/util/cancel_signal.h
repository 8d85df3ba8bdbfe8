// CancelSignal: a flag set once that reaches whoever waits for it at once. A thread blocked
// on something else (the runtime's answer, a watcher's condition variable) subscribes a
// callback instead of looking at the flag now and then.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>

namespace paddock {

// Thread safety: every method may be called from any thread.
class CancelSignal {
 public:
  using Id = std::uint64_t;

  // Sets the flag and runs every subscribed callback (on this thread, each once).
  void Set();
  // Lock-free: cheap enough to ask after every chunk of output.
  bool IsSet() const { return set_.load(); }
  // `fn` runs once when the flag is set — at once, on this thread, when it is set already. It
  // runs under the signal's lock: it must be short and must not call back into the signal.
  Id Subscribe(std::function<void()> fn) const;
  // From its return on, the callback neither runs nor will run.
  void Unsubscribe(Id id) const;

 private:
  mutable std::mutex mu_;
  std::atomic<bool> set_{false};  // written under mu_
  mutable Id next_ = 1;
  mutable std::map<Id, std::function<void()>> subs_;
};

}  // namespace paddock
