#include "datanode/block_scanner.h"

#include <fmt/format.h>

#include <algorithm>

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

void BlockScanner::Run() {
  Log("dn")->info("block scanner: every replica is verified once every {} s, reading at most {}/s",
                  options_.period.count() / 1000, HumanSize(options_.max_bytes_per_second));
  for (bool first = true;; first = false) {
    const auto start = Clock::now();
    // Opening the store has just checked the volumes.
    if (!first) store_->CheckVolumes();
    Pass();
    if (!WaitUntil(start + options_.period)) return;
  }
}

void BlockScanner::Pass() {
  auto log = Log("dn");
  const auto start = Clock::now();
  std::vector<proto::Block> replicas = store_->AllReplicas();
  std::sort(replicas.begin(), replicas.end(), [](const auto& a, const auto& b) { return a.id() < b.id(); });
  uint64_t total = 0;
  for (const auto& b : replicas) total += b.num_bytes();
  // Spread the pass over the period, within the configured ceiling.
  const auto period_ms = static_cast<uint64_t>(options_.period.count());
  uint64_t rate = std::max<uint64_t>(1, total * 1000 / std::max<uint64_t>(period_ms, 1));
  if (options_.max_bytes_per_second > 0) rate = std::min(rate, options_.max_bytes_per_second);
  RateLimiter limiter(rate, options_.read_bytes, start);

  uint64_t verified = 0, bytes_before = bytes_scanned_.load(), corrupt = 0, skipped = 0;
  for (const auto& b : replicas) {
    Status s = Verify(b, &limiter);
    if (s.code() == StatusCode::kAborted) return;  // stopping
    if (s.ok()) {
      ++verified;
      ++replicas_scanned_;
      continue;
    }
    if (s.code() == StatusCode::kCorruption) {
      // Only a replica still stored as it was read counts: a recovery may have
      // truncated or rewritten it meanwhile.
      auto now = store_->GetReplica(BlockId(b.id()));
      if (now && now->gen_stamp() == b.gen_stamp() && now->num_bytes() == b.num_bytes()) {
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
  ++passes_;
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  const uint64_t bytes = bytes_scanned_.load() - bytes_before;
  log->info("block scanner: pass {} verified {} replicas ({}) in {:.1f} s ({}/s): {} corrupt, {} gone or unreadable",
            passes_.load(), verified, HumanSize(bytes), secs, HumanSize(static_cast<uint64_t>(bytes / std::max(secs, 1e-3))),
            corrupt, skipped);
  if (secs * 1000 > static_cast<double>(period_ms)) {
    log->warn("block scanner: the pass took {:.0f} s, longer than dfs.datanode.scan.period ({} s) allows; raise "
              "dfs.block.scanner.volume.bytes.per.second ({}/s) or the period",
              secs, period_ms / 1000, HumanSize(options_.max_bytes_per_second));
  }
}

Status BlockScanner::Verify(const proto::Block& block, RateLimiter* limiter) {
  // The replica is opened again after a long wait rather than held open: an
  // open file keeps a deleted replica's space allocated.
  constexpr auto kHoldOpen = std::chrono::seconds(1);
  std::unique_ptr<ReplicaReader> r;
  const uint64_t len = block.num_bytes();
  for (uint64_t off = 0; off < len || !r;) {
    if (!r) {
      DFS_ASSIGN_OR_RETURN(r, store_->OpenForRead(block));
      if (r->length() != len) return Status::Stale("rewritten since the scan began");
      if (len == 0) break;
    }
    const uint32_t bpc = r->bytes_per_checksum();
    const size_t chunks_per_read = std::max<size_t>(1, options_.read_bytes / bpc);
    buf_.resize(chunks_per_read * bpc);
    sums_.resize(chunks_per_read);
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf_.size(), len - off));
    const auto wait = limiter->Acquire(n, Clock::now());
    if (wait > Clock::duration::zero()) {
      if (wait > kHoldOpen) r.reset();
      if (!WaitUntil(Clock::now() + wait)) return Status::Aborted("stopping");
      if (!r) DFS_ASSIGN_OR_RETURN(r, store_->OpenForRead(block));
      if (r->length() != len || r->bytes_per_checksum() != bpc) return Status::Stale("rewritten since the scan began");
    }
    const size_t chunks = NumChunks(n, bpc);
    DFS_RETURN_IF_ERROR(r->ReadData(off, n, buf_.data()));
    DFS_RETURN_IF_ERROR(r->ReadChecksums(off / bpc, chunks, sums_.data()));
    bytes_scanned_ += n;
    if (auto bad = VerifyChecksums(buf_.data(), n, bpc, sums_.data())) {
      const uint64_t at = off + *bad * bpc;
      return Status::Corruption(fmt::format("checksum mismatch in bytes {}-{} (chunk {})", at,
                                            std::min<uint64_t>(at + bpc, len), at / bpc));
    }
    off += n;
  }
  return Status::OK();
}

}  // namespace dfs::datanode
