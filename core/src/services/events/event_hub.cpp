#include "services/events/event_hub.h"

#include <chrono>

#include "util/log.h"

namespace paddock {

EventHub::EventHub(SessionStore& store, Metrics& metrics, Renderer render, bool feed_live, int fetch_threads)
    : store_(store), metrics_(metrics), render_(std::move(render)), live_(feed_live) {
  for (int i = 0; i < std::max(1, fetch_threads); ++i) threads_.emplace_back([this] { Loop(); });
  threads_.emplace_back([this] { PollLoop(); });
}

EventHub::~EventHub() { Stop(); }

void EventHub::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    jobs_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  std::lock_guard lock(mu_);
  topics_.clear();
  subs_.clear();
}

void EventHub::Post(std::function<void()> job) {
  // REQUIRES: mu_ held (every caller holds it).
  if (stopping_) return;
  jobs_.push_back(std::move(job));
  cv_.notify_all();  // the poll thread waits on it too
}

void EventHub::Loop() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    try {
      job();
    } catch (const std::exception& e) {
      LogError(std::string("event hub: ") + e.what());
    }
    lock.lock();
  }
}

void EventHub::PollLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::milliseconds(500));
    if (stopping_ || live_) continue;
    for (auto& [session, topic] : topics_) WantLocked(session, topic, topic.head + 1);
  }
}

EventHub::SubscriptionId EventHub::Subscribe(const std::string& session_id, std::int64_t after_seq,
                                             std::shared_ptr<EventSink> sink) {
  std::lock_guard lock(mu_);
  const SubscriptionId id = next_id_++;
  auto sub = std::make_unique<Sub>();
  sub->session = session_id;
  sub->sink = std::move(sink);
  sub->cursor = after_seq;
  topics_[session_id].subs[id] = sub.get();
  subs_[id] = std::move(sub);
  Post([this, id] { CatchUp(id); });
  return id;
}

void EventHub::Unsubscribe(SubscriptionId id) {
  std::lock_guard lock(mu_);
  auto it = subs_.find(id);
  if (it == subs_.end()) return;
  auto topic = topics_.find(it->second->session);
  if (topic != topics_.end()) {
    topic->second.subs.erase(id);
    if (topic->second.subs.empty() && !topic->second.fetching) topics_.erase(topic);
  }
  subs_.erase(it);
}

bool EventHub::JoinLiveLocked(Topic& topic, Sub& sub) {
  if (!topic.head_known) return false;
  if (sub.cursor >= topic.head) {
    sub.live = true;
    return true;
  }
  if (topic.recent.empty() || topic.recent.front()->seq > sub.cursor + 1) return false;
  for (const auto& e : topic.recent) {
    if (e->seq == sub.cursor + 1) {
      sub.sink->Deliver(e);
      sub.cursor = e->seq;
    }
  }
  sub.live = true;
  return true;
}

void EventHub::CatchUp(SubscriptionId id) {
  while (true) {
    std::string session;
    std::int64_t cursor = 0;
    {
      std::lock_guard lock(mu_);
      auto it = subs_.find(id);
      if (it == subs_.end() || stopping_) return;
      Sub& sub = *it->second;
      if (JoinLiveLocked(topics_[sub.session], sub)) return;
      session = sub.session;
      cursor = sub.cursor;
    }
    Result<std::vector<Event>> page = store_.ListEvents(session, cursor, kPage);
    std::vector<std::shared_ptr<const RenderedEvent>> rendered;
    if (page.ok()) {
      rendered.reserve(page->size());
      for (const Event& e : *page) rendered.push_back(render_(e));
    }
    std::lock_guard lock(mu_);
    auto it = subs_.find(id);
    if (it == subs_.end() || stopping_) return;
    Sub& sub = *it->second;
    if (!page.ok()) {
      sub.sink->Fail("event store unavailable: " + page.status().message());
      return;
    }
    for (const auto& e : rendered) {
      if (e->seq > sub.cursor) {  // the store's seqs are gap-free and ascending
        sub.sink->Deliver(e);
        sub.cursor = e->seq;
      }
    }
    if (static_cast<int>(rendered.size()) == kPage) continue;
    // The store had nothing newer when it was read: what comes later is announced.
    Topic& topic = topics_[sub.session];
    if (!topic.head_known) {
      topic.head_known = true;
      topic.head = sub.cursor;
      if (topic.wanted > topic.head) WantLocked(sub.session, topic, topic.wanted);
    }
    if (JoinLiveLocked(topic, sub)) return;
  }
}

void EventHub::WantLocked(const std::string& session_id, Topic& topic, std::int64_t seq) {
  if (seq > topic.wanted) topic.wanted = seq;
  if (!topic.head_known || topic.fetching || topic.wanted <= topic.head || topic.subs.empty()) return;
  topic.fetching = true;
  Post([this, session_id] { Fetch(session_id); });
}

void EventHub::PushLocked(Topic& topic, std::shared_ptr<const RenderedEvent> event) {
  topic.head = event->seq;
  if (topic.wanted < topic.head) topic.wanted = topic.head;
  topic.recent.push_back(event);
  if (topic.recent.size() > kRecent) topic.recent.pop_front();
  for (auto& [id, sub] : topic.subs) {
    if (!sub->live) continue;
    if (event->seq == sub->cursor + 1) {
      sub->sink->Deliver(event);
      sub->cursor = event->seq;
    } else if (event->seq > sub->cursor + 1) {
      // A gap (cannot happen while the fan-out delivers in order, but a sub that fell behind
      // reads what it missed rather than skipping it).
      sub->live = false;
      Post([this, sid = id] { CatchUp(sid); });
    }
  }
}

void EventHub::Fetch(const std::string& session_id) {
  while (true) {
    std::int64_t from = 0;
    {
      std::lock_guard lock(mu_);
      auto it = topics_.find(session_id);
      if (it == topics_.end() || stopping_) return;
      Topic& topic = it->second;
      if (topic.subs.empty() || topic.wanted <= topic.head) {
        topic.fetching = false;
        if (topic.subs.empty()) topics_.erase(it);
        return;
      }
      from = topic.head;
    }
    Result<std::vector<Event>> page = store_.ListEvents(session_id, from, kPage);
    std::vector<std::shared_ptr<const RenderedEvent>> rendered;
    if (page.ok()) {
      for (const Event& e : *page) rendered.push_back(render_(e));
    }
    std::lock_guard lock(mu_);
    auto it = topics_.find(session_id);
    if (it == topics_.end() || stopping_) return;
    Topic& topic = it->second;
    if (!page.ok()) {
      // Streams keep their place; the next announcement or poll tries again.
      LogWarn("event hub: reading " + session_id + ": " + page.status().message());
      topic.fetching = false;
      return;
    }
    if (rendered.empty()) topic.wanted = topic.head;  // announced but not (yet) visible
    for (auto& e : rendered) {
      if (e->seq > topic.head) PushLocked(topic, std::move(e));
    }
  }
}

void EventHub::Offer(const Event& event) noexcept {
  try {
    std::unique_lock lock(mu_);
    auto it = topics_.find(event.session_id);
    if (it == topics_.end()) return;
    Topic& topic = it->second;
    if (topic.head_known && !topic.fetching && event.seq == topic.head + 1 && !topic.subs.empty()) {
      lock.unlock();
      std::shared_ptr<const RenderedEvent> rendered = render_(event);
      lock.lock();
      it = topics_.find(event.session_id);
      if (it == topics_.end()) return;
      if (it->second.head_known && !it->second.fetching && event.seq == it->second.head + 1) {
        PushLocked(it->second, std::move(rendered));
        return;
      }
    }
    WantLocked(event.session_id, it->second, event.seq);
  } catch (...) {
    // Out of memory: the next announcement or poll delivers it.
  }
}

void EventHub::OnAppended(std::string_view session_id, std::int64_t seq) noexcept {
  try {
    std::lock_guard lock(mu_);
    auto it = topics_.find(std::string(session_id));
    if (it == topics_.end()) return;
    WantLocked(it->first, it->second, seq);
  } catch (...) {
  }
}

void EventHub::OnFeedState(bool live) noexcept {
  try {
    std::lock_guard lock(mu_);
    const bool back = live && !live_;
    live_ = live;
    if (!back) return;
    for (auto& [session, topic] : topics_) WantLocked(session, topic, topic.head + 1);
  } catch (...) {
  }
}

}  // namespace paddock
