// BlockScanner: a background thread that re-verifies every finalized replica of
// one DataNode against its checksum sidecar once per scan period
// (dfs.datanode.scan.period), so that a replica rotting on disk is found while
// good copies still exist, not when a reader finally needs it.
//
// Each pass but the first (the store checked its volumes when it opened) first
// checks every volume (BlockStore::CheckVolumes), then takes a
// snapshot of the replica list and reads each replica in pieces of whole
// chunks, recomputing every chunk's XXH3 and comparing it with the meta file.
// It paces itself to spread the pass over the period (bytes ÷ period), and
// never reads faster than max_bytes_per_second
// (dfs.block.scanner.volume.bytes.per.second); one thread reads one volume at
// a time, so that is also the limit per volume, as in Hadoop. The next pass
// starts one period after this one started, or at once when the pass took
// longer (which it logs, with what to change). Replicas written during a pass
// wait for the next one: the write pipeline verified them as they arrived.
//
// Where a pass stands (when it began, the next block id) is kept in
// `scanner.cursor` in the first data dir, written every 30 s, at the end of a
// pass and on Stop, so a restarted DataNode resumes its pass (at the pace the
// rest of the period allows) instead of starting over: lab machines are
// switched off every night, and a pass spread over a day that restarts at each
// boot would never reach the replicas at the end of the list.
//
// A replica found corrupt (a checksum mismatch, a data file shorter than
// recorded, an unreadable meta header) that is still stored unchanged when the
// scan ends is handed to `report`; the DataNode tells the NameNode, which
// copies a good replica elsewhere and then has this one deleted. Read errors
// go through the BlockStore, which takes a failing volume out of service.
//
// Thread-safety: Start and Stop from one thread; counters() from any. Stop is
// prompt: every wait is on a condition variable.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "proto/types.pb.h"

namespace dfs::datanode {

class BlockStore;

// A token bucket over bytes. The clock is passed in, so tests drive it with
// made-up times. Acquire may overdraw (a read larger than the bucket is never
// refused); the caller then waits for the debt, so over any interval T after
// the start no more than burst + rate × T bytes are used.
class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  // bytes_per_second 0 = unlimited. The bucket starts full.
  RateLimiter(uint64_t bytes_per_second, uint64_t burst_bytes, Clock::time_point now);
  // Takes n bytes; returns how long to wait before using them (zero when the bucket held them).
  Clock::duration Acquire(uint64_t n, Clock::time_point now);
  uint64_t rate() const { return static_cast<uint64_t>(rate_); }

 private:
  double rate_;
  double burst_;
  double tokens_;
  Clock::time_point last_;
};

class BlockScanner {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    std::chrono::milliseconds period{std::chrono::hours(24)};  // 0 = no scanning
    uint64_t max_bytes_per_second = 1 << 20;                   // 0 = unlimited
    size_t read_bytes = 1 << 20;                               // per read, rounded down to whole chunks
  };
  struct Counters {
    uint64_t passes = 0;            // passes finished
    uint64_t replicas_scanned = 0;  // replicas read to the end (good or corrupt)
    uint64_t bytes_scanned = 0;
    uint64_t corrupt_found = 0;  // corrupt replicas reported (again in each pass while they stay)
  };
  // Called from the scanner thread with a corrupt replica and what is wrong with it.
  using ReportFn = std::function<void(const proto::Block& block, const Status& why)>;

  BlockScanner(BlockStore* store, Options options, ReportFn report);
  ~BlockScanner();
  BlockScanner(const BlockScanner&) = delete;
  BlockScanner& operator=(const BlockScanner&) = delete;

  // Starts the thread; does nothing when the period is 0.
  void Start();
  // Stops and joins the thread, interrupting any wait. Idempotent.
  void Stop();
  Counters counters() const;

 private:
  // A pass's progress: when it began (wall clock, to survive restarts) and the
  // lowest block id not verified yet (kPassDone once it finished).
  struct Cursor {
    std::chrono::system_clock::time_point started;
    uint64_t next_id = 0;
  };
  static constexpr uint64_t kPassDone = UINT64_MAX;

  void Run();
  // Verifies the replicas from cursor.next_id on, paced to end one period
  // after `start`. False when stopped first.
  bool Pass(Clock::time_point start, Cursor cursor);
  std::optional<Cursor> LoadCursor() const;
  void SaveCursor(const Cursor& c) const;
  // Reads one replica to the end under the limiter: OK, Corruption (what is
  // wrong), Aborted when stopping, or why it could not be read.
  Status Verify(const proto::Block& block, RateLimiter* limiter);
  // Waits until `t` or Stop; false when stopping.
  bool WaitUntil(Clock::time_point t);

  BlockStore* const store_;
  const Options options_;
  const ReportFn report_;
  std::vector<char> buf_;
  std::vector<uint64_t> sums_;

  std::atomic<uint64_t> passes_{0}, replicas_scanned_{0}, bytes_scanned_{0}, corrupt_found_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace dfs::datanode
