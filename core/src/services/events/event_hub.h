// EventHub: the one fan-out of a process. Every open event stream subscribes here; an appended
// event is read from the store once (or not at all, when this process appended it), rendered
// once, and handed to every stream of its session from memory. A stream that resumes
// (Last-Event-ID) catches up from the store on its own, then joins the live feed.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "paddock/session_store.h"

namespace paddock {

class Metrics;

// An event as streams send it, rendered once for all of them.
struct RenderedEvent {
  std::int64_t seq = 0;
  std::string type;
  std::string json;  // the event as the API renders it
  std::string sse;   // "id: ..\nevent: ..\ndata: ..\n\n"
  TimestampMs created_at = 0;
};

// One stream, as the hub sees it. Both calls come from hub threads, in seq order for one sink,
// never two at once for the same sink, and must not block (they hand over and return).
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void Deliver(std::shared_ptr<const RenderedEvent> event) noexcept = 0;
  // The store could not be read: the stream should end (its client resumes with Last-Event-ID).
  virtual void Fail(std::string_view why) noexcept = 0;
};

// Thread safety: every method may be called concurrently.
class EventHub {
 public:
  using Renderer = std::function<std::shared_ptr<const RenderedEvent>(const Event&)>;
  using SubscriptionId = std::uint64_t;

  // `fetch_threads` read the store for catch-ups and for events appended by other processes.
  // `feed_live`: whether the store's notifications flow now (EventService::feed_live()).
  EventHub(SessionStore& store, Metrics& metrics, Renderer render, bool feed_live, int fetch_threads = 2);
  ~EventHub();
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // Delivers every event of the session with seq > after_seq, then each new one, until
  // Unsubscribe. The session must exist (the caller checked).
  SubscriptionId Subscribe(const std::string& session_id, std::int64_t after_seq,
                           std::shared_ptr<EventSink> sink);
  // After it returns the sink gets nothing more.
  void Unsubscribe(SubscriptionId id);

  // An event appended by this process (its data in hand: no store read when it is the next one).
  void Offer(const Event& event) noexcept;
  // Someone appended `seq` to the session (this process or, through the store's notifications,
  // another one).
  void OnAppended(std::string_view session_id, std::int64_t seq) noexcept;
  // The store's notifications stopped (false) or came back (true). While they are down every
  // session with streams is re-read each poll interval.
  void OnFeedState(bool live) noexcept;

  // Ends the fetch threads; later calls deliver nothing.
  void Stop();

  static constexpr int kPage = 500;
  static constexpr size_t kRecent = 256;  // events each session keeps for streams joining live

 private:
  struct Sub {
    std::string session;
    std::shared_ptr<EventSink> sink;
    std::int64_t cursor = 0;  // last seq delivered
    bool live = false;        // follows the fan-out; false while catching up from the store
  };
  struct Topic {
    std::map<SubscriptionId, Sub*> subs;
    bool head_known = false;
    std::int64_t head = 0;    // newest seq the fan-out has delivered
    std::int64_t wanted = 0;  // newest seq heard of
    bool fetching = false;
    std::deque<std::shared_ptr<const RenderedEvent>> recent;
  };

  void Post(std::function<void()> job);
  void Loop();
  void CatchUp(SubscriptionId id);
  void Fetch(const std::string& session_id);
  // REQUIRES: mu_ held. Delivers what `recent` holds past the sub's cursor when it covers the
  // gap, and makes the sub live; false when the store must be read first.
  bool JoinLiveLocked(Topic& topic, Sub& sub);
  void PushLocked(Topic& topic, std::shared_ptr<const RenderedEvent> event);
  void WantLocked(const std::string& session_id, Topic& topic, std::int64_t seq);
  void PollLoop();

  SessionStore& store_;
  Metrics& metrics_;
  Renderer render_;

  mutable std::mutex mu_;
  std::unordered_map<std::string, Topic> topics_;
  std::unordered_map<SubscriptionId, std::unique_ptr<Sub>> subs_;
  SubscriptionId next_id_ = 1;
  bool live_;

  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace paddock
