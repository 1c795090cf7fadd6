#include "datanode/block_scanner.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/checksum.h"
#include "common/config.h"
#include "common/ids.h"
#include "common/logging.h"
#include "datanode/block_store.h"

namespace dfs::datanode {

// ---------------------------------------------------------------------------
// RateLimiter

RateLimiter::RateLimiter(uint64_t bytes_per_second, uint64_t burst_bytes, Clock::time_point now)
    : rate_(static_cast<double>(bytes_per_second)),
      burst_(static_cast<double>(burst_bytes)),
      tokens_(static_cast<double>(burst_bytes)),
      last_(now) {}

RateLimiter::Clock::duration RateLimiter::Acquire(uint64_t n, Clock::time_point now) {
  if (rate_ <= 0) return Clock::duration::zero();
  if (now > last_) {
    tokens_ = std::min(burst_, tokens_ + rate_ * std::chrono::duration<double>(now - last_).count());
    last_ = now;
  }
  tokens_ -= static_cast<double>(n);
  if (tokens_ >= 0) return Clock::duration::zero();
  // The debt is paid off by the time the caller may go on; round up so it never goes early.
  auto wait = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(-tokens_ / rate_));
  return wait + Clock::duration(1);
}

// ---------------------------------------------------------------------------
// BlockScanner

BlockScanner::BlockScanner(BlockStore* store, Options options, ReportFn report)
    : store_(store), options_(options), report_(std::move(report)) {}

BlockScanner::~BlockScanner() { Stop(); }

void BlockScanner::Start() {
  if (options_.period.count() <= 0 || thread_.joinable()) return;
  thread_ = std::thread([this] { Run(); });
}

void BlockScanner::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

BlockScanner::Counters BlockScanner::counters() const {
  Counters c;
  c.passes = passes_.load();
  c.replicas_scanned = replicas_scanned_.load();
  c.bytes_scanned = bytes_scanned_.load();
  c.corrupt_found = corrupt_found_.load();
  return c;
}

bool BlockScanner::WaitUntil(Clock::time_point t) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait_until(l, t, [this] { return stopping_; });
  return !stopping_;
}

namespace {

using SysClock = std::chrono::system_clock;
constexpr const char* kCursorFile = "scanner.cursor";
constexpr auto kCursorSaveEvery = std::chrono::seconds(30);

int64_t UnixMs(SysClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

std::optional<BlockScanner::Cursor> BlockScanner::LoadCursor() const {
  std::optional<Cursor> best;
  for (const auto& dir : store_->volumes()) {
    std::ifstream in(dir + "/" + kCursorFile);
    std::optional<int64_t> started;
    std::optional<uint64_t> next;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("pass_started_unix_ms=", 0) == 0) started = std::strtoll(line.c_str() + 21, nullptr, 10);
      if (line.rfind("next_block_id=", 0) == 0) next = std::strtoull(line.c_str() + 14, nullptr, 10);
    }
    if (!started || !next) continue;
    Cursor c{SysClock::time_point(std::chrono::milliseconds(*started)), *next};
    if (!best || c.started > best->started) best = c;
  }
  return best;
}

void BlockScanner::SaveCursor(const Cursor& c) const {
  const auto dirs = store_->volumes();
  if (dirs.empty()) return;
  const std::string path = dirs[0] + "/" + kCursorFile;
  {
    std::ofstream out(path + ".tmp");
    out << "# dfs block scanner progress; safe to delete (the pass then starts over)\n"
        << "pass_started_unix_ms=" << UnixMs(c.started) << "\nnext_block_id=" << c.next_id << "\n";
    if (!out) return;  // a failing volume: the store hears about it elsewhere
  }
  std::error_code ec;
  std::filesystem::rename(path + ".tmp", path, ec);
}

void BlockScanner::Run() {
  Log("dn")->info("block scanner: every replica is verified once every {} s, reading at most {}/s",
                  options_.period.count() / 1000, HumanSize(options_.max_bytes_per_second));
  std::optional<Cursor> saved = LoadCursor();
  bool volumes_checked = true;  // opening the store has just checked them
  while (true) {
    const auto sys_now = SysClock::now();
    Cursor cursor{sys_now, 0};
    if (saved) {
      cursor = *saved;
      saved.reset();
      cursor.started = std::min(cursor.started, sys_now);  // the clock went back
    }
    const auto start = Clock::now() - std::chrono::duration_cast<Clock::duration>(sys_now - cursor.started);
    if (cursor.next_id == kPassDone) {
      // Restarted after a finished pass: the next one is due a period after that one began.
      if (!WaitUntil(start + options_.period)) return;
      volumes_checked = false;
      continue;
    }
    if (!volumes_checked) store_->CheckVolumes();
    volumes_checked = false;
    if (!Pass(start, cursor)) return;
    if (!WaitUntil(start + options_.period)) return;
  }
}

bool BlockScanner::Pass(Clock::time_point start, Cursor cursor) {
  auto log = Log("dn");
  std::vector<proto::Block> replicas = store_->AllReplicas();
  std::erase_if(replicas, [&](const proto::Block& b) { return b.id() < cursor.next_id; });
  std::sort(replicas.begin(), replicas.end(), [](const auto& a, const auto& b) { return a.id() < b.id(); });
  uint64_t total = 0;
  for (const auto& b : replicas) total += b.num_bytes();
  // Spread what is left over what is left of the period, within the ceiling.
  const auto now = Clock::now();
  const int64_t left_ms = std::chrono::duration_cast<std::chrono::milliseconds>(start + options_.period - now).count();
  // (0 = unlimited: overdue, with no ceiling)
  const uint64_t max = options_.max_bytes_per_second;
  const uint64_t spread = left_ms > 0 ? std::max<uint64_t>(1, total * 1000 / static_cast<uint64_t>(left_ms)) : 0;
  const uint64_t rate = spread == 0 ? max : max == 0 ? spread : std::min(spread, max);
  RateLimiter limiter(rate, options_.read_bytes, now);

  uint64_t verified = 0, bytes_before = bytes_scanned_.load(), corrupt = 0, skipped = 0;
  auto saved_at = now;
  for (const auto& b : replicas) {
    if (Clock::now() - saved_at >= kCursorSaveEvery) {
      cursor.next_id = b.id();
      SaveCursor(cursor);
      saved_at = Clock::now();
    }
    Status s = Verify(b, &limiter);
    if (s.code() == StatusCode::kAborted) {  // stopping: the next start resumes here
      cursor.next_id = b.id();
      SaveCursor(cursor);
      return false;
    }
    if (s.ok()) {
      ++verified;
      ++replicas_scanned_;
      continue;
    }
    if (s.code() == StatusCode::kCorruption) {
      // Only a replica still stored as it was read counts: a recovery may have
      // truncated or rewritten it meanwhile.
      auto stored = store_->GetReplica(BlockId(b.id()));
      if (stored && stored->gen_stamp() == b.gen_stamp() && stored->num_bytes() == b.num_bytes()) {
        ++verified;
        ++corrupt;
        ++replicas_scanned_;
        ++corrupt_found_;
        log->warn("block scanner: {} is corrupt: {}; reporting it to the NameNode", BlockName(BlockId(b.id())),
                  s.message());
        if (report_) report_(b, s);
        continue;
      }
    }
    // Deleted or replaced since the snapshot, or unreadable (the store has
    // dealt with a failing volume).
    ++skipped;
    if (s.code() != StatusCode::kNotFound && s.code() != StatusCode::kStale && s.code() != StatusCode::kCorruption) {
      log->info("block scanner: could not verify {}: {}", BlockName(BlockId(b.id())), s.message());
    }
  }
  cursor.next_id = kPassDone;
  SaveCursor(cursor);
  ++passes_;
  const double secs = std::chrono::duration<double>(Clock::now() - now).count();
  const uint64_t bytes = bytes_scanned_.load() - bytes_before;
  log->info("block scanner: pass {} verified {} replicas ({}) in {:.1f} s ({}/s): {} corrupt, {} gone or unreadable",
            passes_.load(), verified, HumanSize(bytes), secs,
            HumanSize(static_cast<uint64_t>(static_cast<double>(bytes) / std::max(secs, 1e-3))), corrupt, skipped);
  if (Clock::now() - start > options_.period) {
    log->warn(
        "block scanner: the pass took longer than dfs.datanode.scan.period ({} s) allows; raise "
        "dfs.block.scanner.volume.bytes.per.second ({}/s) or the period",
        options_.period.count() / 1000, HumanSize(options_.max_bytes_per_second));
  }
  return true;
}

Status BlockScanner::Verify(const proto::Block& block, RateLimiter* limiter) {
  const uint64_t len = block.num_bytes();
  std::unique_ptr<ReplicaReader> r;
  auto open = [&]() -> Status {
    DFS_ASSIGN_OR_RETURN(r, store_->OpenForRead(block));
    return r->length() == len ? Status::OK() : Status::Stale("rewritten since the scan began");
  };
  DFS_RETURN_IF_ERROR(open());
  const uint32_t bpc = r->bytes_per_checksum();
  const size_t chunks_per_read = std::max<size_t>(1, options_.read_bytes / bpc);
  buf_.resize(chunks_per_read * bpc);
  sums_.resize(chunks_per_read);
  // Across a long wait the replica is closed and opened again: an open file
  // would keep a deleted replica's space allocated meanwhile.
  constexpr auto kHoldOpen = std::chrono::seconds(1);
  for (uint64_t off = 0; off < len;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf_.size(), len - off));
    const auto wait = limiter->Acquire(n, Clock::now());
    if (wait > Clock::duration::zero()) {
      if (wait > kHoldOpen) r.reset();
      if (!WaitUntil(Clock::now() + wait)) return Status::Aborted("stopping");
      if (!r) DFS_RETURN_IF_ERROR(open());
      if (r->bytes_per_checksum() != bpc) return Status::Stale("rewritten since the scan began");
    }
    DFS_RETURN_IF_ERROR(r->ReadData(off, n, buf_.data()));
    DFS_RETURN_IF_ERROR(r->ReadChecksums(off / bpc, NumChunks(n, bpc), sums_.data()));
    bytes_scanned_ += n;
    if (auto bad = VerifyChecksums(buf_.data(), n, bpc, sums_.data())) {
      const uint64_t at = off + *bad * bpc;
      return Status::Corruption(
          fmt::format("checksum mismatch in bytes {}-{} (chunk {})", at, std::min<uint64_t>(at + bpc, len), at / bpc));
    }
    off += n;
  }
  return Status::OK();
}

}  // namespace dfs::datanode
