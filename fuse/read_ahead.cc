#include "fuse/read_ahead.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <utility>

#include "common/logging.h"

namespace dfs::fuse {

// ------------------------------------------------------------------ TaskPool

TaskPool::TaskPool(int threads) : size_(threads) {}

TaskPool::~TaskPool() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void TaskPool::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(std::move(task));
    if (threads_.empty()) {
      // Started at the first task, not before: the mount daemonizes (forks)
      // after it is built, and threads do not cross a fork. They take no
      // signals: the mount waits for SIGTERM in a thread of its own, and a
      // signal handled here would be lost.
      sigset_t all, old;
      sigfillset(&all);
      pthread_sigmask(SIG_BLOCK, &all, &old);
      for (int i = 0; i < size_; ++i) threads_.emplace_back([this] { Run(); });
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
    }
  }
  cv_.notify_one();
}

void TaskPool::Run() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to run
    auto task = std::move(queue_.front());
    queue_.pop_front();
    l.unlock();
    task();
    task = nullptr;  // drop what it holds before waiting again
    l.lock();
  }
}

// ------------------------------------------------------------------ ReadAhead

std::shared_ptr<ReadAhead> ReadAhead::Make(std::unique_ptr<client::InputStream> in, BufferPool* windows,
                                           TaskPool* pool) {
  return std::make_shared<ReadAhead>(std::move(in), windows, pool);
}

ReadAhead::ReadAhead(std::unique_ptr<client::InputStream> in, BufferPool* windows, TaskPool* pool)
    : in_(std::move(in)),
      length_(in_->Length()),
      windows_(windows),
      pool_(pool),
      max_window_(windows->buffer_bytes()) {}

ReadAhead::Stats ReadAhead::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

size_t ReadAhead::Grow(size_t prev) const {
  return std::min(max_window_, std::max(kFirstWindow, prev * 2));
}

uint64_t ReadAhead::StartFill(uint64_t off, size_t want) {
  filling_ = true;
  next_.off = off;
  next_.len = 0;
  want = static_cast<size_t>(std::min<uint64_t>({want, max_window_, length_ - off}));
  ++stats_.fills;
  pool_->Post([self = shared_from_this(), off, want] { self->Fill(off, want); });
  return ++fill_seq_;
}

void ReadAhead::Fill(uint64_t off, size_t want) {
  // filling_ gives this task in_ and next_ until it clears it.
  if (!next_.buf) next_.buf = windows_->Get();
  Status s;
  if (in_->Position() != off) s = in_->Seek(off);
  size_t got = 0;
  while (s.ok() && got < want) {
    auto r = in_->Read(next_.buf.data() + got, want - got);
    if (!r.ok()) {
      s = r.status();
    } else if (*r == 0) {
      break;  // the file is shorter than the NameNode said when it was opened
    } else {
      got += *r;
    }
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    next_.len = got;
    fill_status_ = s;
    fill_short_ = got < want;
    filling_ = false;
  }
  filled_.notify_all();
}

Status ReadAhead::ReadDirect(std::unique_lock<std::mutex>& l, uint64_t off, size_t size, const Reply& reply) {
  ++stats_.preads;
  l.unlock();
  // A warm window buffer (requests through the mount, at most max_read,
  // always fit one): fresh pages cost a fault each.
  BufferPool::Buffer buf = windows_->GetAtLeast(size);
  char* const tmp = buf.data();
  size_t got = 0;
  while (got < size) {
    auto r = in_->PRead(off + got, tmp + got, size - got);
    if (!r.ok()) return r.status();
    if (*r == 0) break;
    got += *r;
  }
  iovec v{tmp, got};
  reply(&v, 1);
  return Status::OK();
}

Status ReadAhead::FillFailed() const {
  if (!fill_status_.ok()) return fill_status_;
  return Status::IOError("the file ended before the length the NameNode gave when it was opened; it may have "
                         "been replaced meanwhile: open it again");
}

void ReadAhead::WaitForFill(std::unique_lock<std::mutex>& l) {
  filled_.wait(l, [this] { return !filling_; });
}

void ReadAhead::Advance() {
  std::swap(cur_, next_);
  next_.len = 0;
}

Status ReadAhead::Read(uint64_t off, size_t size, const Reply& reply) {
  if (off >= length_ || size == 0) {
    reply(nullptr, 0);
    return Status::OK();
  }
  size = static_cast<size_t>(std::min<uint64_t>(size, length_ - off));
  std::unique_lock<std::mutex> l(mu_);
  if (size > kFirstWindow) return ReadDirect(l, off, size, reply);  // more than two windows may hold
  // The fill this request started, if any. Another request may start one
  // after it before this one looks, replacing next_: then it tries again, and
  // after a few such races (requests all over the file) reads on its own.
  uint64_t my_fill = 0;
  int attempts = 0;
  constexpr int kMaxAttempts = 3;
  Status done;  // the answer, when fill_for_this_request gives up
  auto fill_for_this_request = [&](uint64_t from, size_t want) {
    if (my_fill != 0 && fill_seq_ == my_fill && (fill_short_ || !fill_status_.ok())) {
      done = FillFailed();  // its fill failed or ended early: the file is not what it was
      return false;
    }
    // Otherwise its fill is whole but did not cover all of it (a request
    // that starts just past the windows and ends past the window fetched),
    // or another request's fill replaced it: fill again, a few times at most.
    if (attempts++ == kMaxAttempts) {
      done = ReadDirect(l, off, size, reply);
      return false;
    }
    my_fill = StartFill(from, want);
    return true;
  };
  for (;;) {
    if (cur_.Covers(off, size)) {
      // Keep the next window coming while this one is read.
      if (!filling_ && cur_.end() < length_ && !(next_.len > 0 && next_.off == cur_.end())) {
        StartFill(cur_.end(), Grow(cur_.len));
      }
      iovec v{cur_.buf.data() + (off - cur_.off), size};
      reply(&v, 1);
      return Status::OK();
    }
    if (!filling_ && next_.Covers(off, size)) {
      Advance();
      continue;  // serves it, and starts the fill after it
    }
    if (cur_.len > 0 && off >= cur_.off && off < cur_.end()) {
      // Straddles the end of cur_: the rest comes from the window after it.
      if (filling_) {
        WaitForFill(l);
        continue;
      }
      const uint64_t rest = off + size - cur_.end();
      if (next_.len > 0 && next_.off == cur_.end() && next_.len >= rest) {
        iovec v[2] = {{cur_.buf.data() + (off - cur_.off), static_cast<size_t>(cur_.end() - off)},
                      {next_.buf.data(), static_cast<size_t>(rest)}};
        reply(v, 2);
        return Status::OK();
      }
      if (!fill_for_this_request(cur_.end(), Grow(cur_.len))) return done;
      continue;
    }
    if (cur_.len > 0 && off < cur_.off) return ReadDirect(l, off, size, reply);
    if (filling_) {
      // The fill in flight may bring it (a sequential read that caught up
      // with it); if not, in_ is free once it is done.
      WaitForFill(l);
      continue;
    }
    const bool next_follows = cur_.len > 0 && next_.len > 0 && next_.off == cur_.end();
    const Window& last = next_follows ? next_ : cur_;
    if (last.len > 0 && off >= last.end() && off < last.end() + Grow(last.len) && last.end() < length_) {
      // Just past the windows (the kernel reading further ahead than they
      // reach): move on by one window, filling on from where they end.
      if (next_follows) Advance();
      if (!fill_for_this_request(cur_.end(), Grow(cur_.len))) return done;
      continue;
    }
    // A first read, or a jump ahead: start the windows over at `off`.
    if (!fill_for_this_request(off, std::max(kFirstWindow, size))) return done;
  }
}

}  // namespace dfs::fuse
