// ReadAhead: the read path of one open file of the mount.
//
// The kernel asks for a file in pieces of at most max_pages (1 MiB here),
// several at once and not always in order. Serving each from its own block
// read would cost a round trip per piece; reading a big window and then
// serving it would leave the kernel idle while the window is fetched. So two
// windows take turns: `cur`, which requests are served from, and `next`,
// which a background task fills with the bytes that follow `cur` while `cur`
// is being served. When a request moves past `cur`, the windows swap and the
// next fill starts at once. A window starts at 1 MiB and doubles with every
// sequential fill up to dfs.fuse.readahead, so reading a file's first page
// (`file`, `head`) does not fetch megabytes.
//
// Requests behind `cur` (programs seek back, the kernel's read-ahead can
// arrive late), and requests bigger than the first window, are read on their
// own with PRead and leave the windows alone; a jump ahead starts the windows
// over at the new offset.
//
// Thread-safety: every method may be called from any thread at once. The
// input stream is used by one party at a time: the fill in flight, if any,
// else nobody (PRead, which is thread-safe, is used for reads behind).
#pragma once

#include <sys/uio.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "client/filesystem.h"
#include "common/buffer_pool.h"
#include "common/status.h"

namespace dfs::fuse {

// A few threads that run fills in the background, shared by every open file.
// The threads start with the first task.
class TaskPool {
 public:
  explicit TaskPool(int threads);
  ~TaskPool();  // runs what is queued, then joins
  void Post(std::function<void()> task);

 private:
  void Run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  const int size_;
  std::vector<std::thread> threads_;
};

class ReadAhead : public std::enable_shared_from_this<ReadAhead> {
 public:
  // Gets the data of one request: iov[0..n) hold exactly the bytes asked for
  // (cut at the end of the file; n == 0 at or past it). Valid only during the call.
  using Reply = std::function<void(const iovec* iov, int n)>;

  // `windows` hands out buffers of the largest window (dfs.fuse.readahead);
  // both outlive this object, as does `pool`.
  static std::shared_ptr<ReadAhead> Make(std::unique_ptr<client::InputStream> in, BufferPool* windows,
                                         TaskPool* pool);

  // Serves [off, off + size). On error, reply is not called and the status
  // says what failed.
  Status Read(uint64_t off, size_t size, const Reply& reply);

  uint64_t Length() const { return length_; }

  // For tests: window fills started, and requests served by PRead instead.
  struct Stats {
    uint64_t fills = 0;
    uint64_t preads = 0;
  };
  Stats stats() const;

  static constexpr size_t kFirstWindow = 1 << 20;

  ReadAhead(std::unique_ptr<client::InputStream> in, BufferPool* windows, TaskPool* pool);  // use Make

 private:
  struct Window {
    BufferPool::Buffer buf;
    uint64_t off = 0;
    size_t len = 0;
    uint64_t end() const { return off + len; }
    bool Covers(uint64_t o, size_t n) const { return len > 0 && o >= off && o + n <= end(); }
  };

  // Starts filling `next_` with up to `want` bytes from `off`, in the
  // background, and returns the fill's number. mu_ held; no fill may be running.
  uint64_t StartFill(uint64_t off, size_t want);
  // The fill itself; runs without mu_.
  void Fill(uint64_t off, size_t want);
  // The window to fetch after one of `prev` bytes.
  size_t Grow(size_t prev) const;
  void WaitForFill(std::unique_lock<std::mutex>& l);  // until no fill runs
  void Advance();  // next_ becomes cur_. mu_ held; no fill may be running.
  // Why the last fill did not bring what it was to. mu_ held.
  Status FillFailed() const;
  // Serves a request on its own with PRead, leaving the windows alone. Unlocks l.
  Status ReadDirect(std::unique_lock<std::mutex>& l, uint64_t off, size_t size, const Reply& reply);

  const std::unique_ptr<client::InputStream> in_;
  const uint64_t length_;
  BufferPool* const windows_;
  TaskPool* const pool_;
  const size_t max_window_;

  mutable std::mutex mu_;
  std::condition_variable filled_;
  Window cur_, next_;
  bool filling_ = false;  // a fill of next_ is running: it owns in_ and next_
  Status fill_status_;     // how the last fill ended
  bool fill_short_ = false;  // the last fill brought fewer bytes than it was to
  uint64_t fill_seq_ = 0;  // fills started
  Stats stats_;
};

}  // namespace dfs::fuse
