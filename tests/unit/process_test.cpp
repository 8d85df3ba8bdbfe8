// RunAndStream and CancelSignal: a child is followed by its events (output, exit, a cancel
// descriptor, the deadline), and a cancel reaches a waiting thread once, or not at all after
// it unsubscribed.
#include <gtest/gtest.h>
#include <sys/eventfd.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>

#include "paddock/process.h"
#include "paddock/testing/assert.h"
#include "util/cancel_signal.h"

namespace paddock {
namespace {

process::ChildSpec Shell(const std::string& script) {
  process::ChildSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = {"PATH=/usr/bin:/bin"};
  return spec;
}

TEST(RunAndStream, StreamsOutputInOrderAndReportsTheExit) {
  std::string out, err;
  auto r = process::RunAndStream(
      Shell("echo one; echo two >&2; echo three; exit 3"), {},
      [&](ExecStream s, std::string_view chunk) { (s == ExecStream::kStdout ? out : err).append(chunk); });
  ASSERT_OK(r);
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(out, "one\nthree\n");
  EXPECT_EQ(err, "two\n");
  EXPECT_FALSE(r->timed_out);
  EXPECT_FALSE(r->cancelled);
}

TEST(RunAndStream, AChildWhoseBackgroundProcessKeepsThePipesEndsWithTheChild) {
  // The pipes stay open in the background `sleep`: the exit is what ends the wait.
  process::RunLimits limits;
  limits.timeout = std::chrono::seconds(60);
  auto r =
      process::RunAndStream(Shell("(sleep 30 &); echo started"), limits, [](ExecStream, std::string_view) {});
  ASSERT_OK(r);
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_FALSE(r->timed_out);
}

TEST(RunAndStream, TheCancelDescriptorKillsTheWholeGroup) {
  const int cancel = eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(cancel, 0);
  process::RunLimits limits;
  limits.cancel_fd = cancel;
  std::atomic<bool> ready{false};
  std::string out;
  std::thread canceller([&] {
    while (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const std::uint64_t one = 1;
    ASSERT_EQ(write(cancel, &one, sizeof one), static_cast<ssize_t>(sizeof one));
  });
  auto r = process::RunAndStream(Shell("sleep 60 & echo \"ready $!\"; wait; echo never"), limits,
                                 [&](ExecStream, std::string_view chunk) {
                                   out.append(chunk);
                                   if (out.find('\n') != std::string::npos) ready = true;
                                 });
  canceller.join();
  close(cancel);
  ASSERT_OK(r);
  EXPECT_TRUE(r->cancelled);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->exit_code, 128 + SIGKILL);
  EXPECT_EQ(out.find("never"), std::string::npos);
  // The background `sleep` went with the shell: gone, or a zombie waiting for its reaper.
  const pid_t sleeper = std::atoi(out.substr(out.find(' ') + 1).c_str());
  ASSERT_GT(sleeper, 0) << out;
  bool dead = false;
  for (int i = 0; i < 500 && !dead; ++i) {
    std::ifstream stat("/proc/" + std::to_string(sleeper) + "/stat");
    std::string pid, comm, state;
    dead = !(stat >> pid >> comm >> state) || state == "Z";
    if (!dead) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(dead) << "the background sleep " << sleeper << " outlived the cancel";
}

TEST(RunAndStream, TheDeadlineKillsACommandThatPrintsNothing) {
  process::RunLimits limits;
  limits.timeout = std::chrono::milliseconds(200);
  auto r = process::RunAndStream(Shell("sleep 60"), limits, [](ExecStream, std::string_view) {});
  ASSERT_OK(r);
  EXPECT_TRUE(r->timed_out);
  EXPECT_FALSE(r->cancelled);
  EXPECT_EQ(r->exit_code, 128 + SIGKILL);
}

TEST(CancelSignal, ReachesEachSubscriberOnceAndNoneThatLeft) {
  CancelSignal signal;
  int first = 0, gone = 0, late = 0;
  signal.Subscribe([&] { ++first; });
  const CancelSignal::Id left = signal.Subscribe([&] { ++gone; });
  signal.Unsubscribe(left);
  EXPECT_FALSE(signal.IsSet());
  signal.Set();
  signal.Set();
  EXPECT_TRUE(signal.IsSet());
  EXPECT_EQ(first, 1);
  EXPECT_EQ(gone, 0);
  signal.Subscribe([&] { ++late; });  // set already: runs at once
  EXPECT_EQ(late, 1);
}

TEST(CancelSignal, WakesAThreadBlockedOnItsOwnCondition) {
  CancelSignal signal;
  std::mutex mu;
  std::condition_variable cv;
  bool woken = false;
  signal.Subscribe([&] {
    std::lock_guard lock(mu);
    woken = true;
    cv.notify_all();
  });
  std::thread waiter([&] {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return woken; });  // no timeout: only the signal ends this
  });
  signal.Set();
  waiter.join();
  EXPECT_TRUE(woken);
}

}  // namespace
}  // namespace paddock
