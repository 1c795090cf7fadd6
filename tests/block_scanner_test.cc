// BlockScanner and its RateLimiter: the limiter's budget on a made-up clock,
// a flipped byte found and reported, the pace of a pass (never faster than
// the limit, spread over the period), and a prompt Stop.
#include "datanode/block_scanner.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include "common/data_transfer.h"
#include "datanode/block_store.h"
#include "tests/mini_cluster.h"
#include "tests/test_util.h"

using dfs::datanode::BlockScanner;
using dfs::datanode::BlockStore;
using dfs::datanode::RateLimiter;
using dfs::test::RandomBytes;
using dfs::test::TempDir;
using dfs::test::WaitFor;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

std::unique_ptr<BlockStore> OpenStore(const std::string& dir) {
  BlockStore::Options o;
  o.dirs = {dir};
  o.sync_on_close = false;
  auto r = BlockStore::Open(o);
  REQUIRE(r.ok());
  return std::move(r).value();
}

void WriteReplica(BlockStore& store, uint64_t id, const std::string& data, uint32_t bpc = 4096) {
  dfs::proto::Block b;
  b.set_id(id);
  b.set_gen_stamp(1);
  auto w = store.CreateTemporary(b, bpc);
  REQUIRE(w.ok());
  std::vector<uint64_t> sums(dfs::PacketChunks(0, data.size(), bpc));
  dfs::ComputePacketChecksums(0, data.data(), data.size(), bpc, sums.data());
  REQUIRE((*w)->Append(data.data(), data.size(), sums.data()).ok());
  REQUIRE((*w)->Finalize().ok());
}

std::string DataPath(const std::string& dir, uint64_t id) {
  char sub[16];
  snprintf(sub, sizeof sub, "subdir%02u", static_cast<unsigned>(id % dfs::datanode::kSubdirs));
  return dir + "/current/" + sub + "/blk_" + std::to_string(id) + "_1";
}

void FlipByte(const std::string& path, off_t at) {
  int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  char c;
  REQUIRE(::pread(fd, &c, 1, at) == 1);
  c ^= 0x20;
  REQUIRE(::pwrite(fd, &c, 1, at) == 1);
  ::close(fd);
}

// Files of this process open under a data dir's current/.
int OpenReplicaFiles() {
  int n = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code lec;
    auto target = std::filesystem::read_symlink(it->path(), lec).string();
    if (!lec && target.find("/current/subdir") != std::string::npos) ++n;
  }
  return n;
}

struct Reports {
  std::mutex mu;
  std::vector<uint64_t> ids;
  std::string why;
  BlockScanner::ReportFn Fn() {
    return [this](const dfs::proto::Block& b, const dfs::Status& s) {
      std::lock_guard<std::mutex> l(mu);
      ids.push_back(b.id());
      why = s.message();
    };
  }
  std::vector<uint64_t> Get() {
    std::lock_guard<std::mutex> l(mu);
    return ids;
  }
};

}  // namespace

TEST_CASE("rate limiter grants no more than burst + rate x time, on a made-up clock", "[block_scanner]") {
  const Clock::time_point t0{};
  SECTION("pieces smaller than the bucket") {
    RateLimiter lim(1000, 100, t0);
    Clock::time_point t = t0;
    uint64_t used = 0;
    for (int i = 0; i < 1000; ++i) {
      t += lim.Acquire(30, t);
      used += 30;
      const double secs = std::chrono::duration<double>(t - t0).count();
      REQUIRE(static_cast<double>(used) <= 100 + 1000 * secs + 1e-6);
    }
    // And it is not slower than the rate either: 30,000 bytes take about 29.9 s.
    const double secs = std::chrono::duration<double>(t - t0).count();
    CHECK(secs == Approx((30000.0 - 100) / 1000).epsilon(0.01));
  }
  SECTION("a piece larger than the bucket waits for its whole size") {
    RateLimiter lim(1 << 20, 64 << 10, t0);
    CHECK(lim.Acquire(64 << 10, t0) == Clock::duration::zero());
    auto wait = lim.Acquire(1 << 20, t0);
    CHECK(std::chrono::duration<double>(wait).count() == Approx(1.0).epsilon(0.001));
  }
  SECTION("idle time refills the bucket up to its size only") {
    RateLimiter lim(100, 50, t0);
    CHECK(lim.Acquire(50, t0) == Clock::duration::zero());
    const auto later = t0 + std::chrono::seconds(100);  // would be 10,000 bytes without the cap
    CHECK(lim.Acquire(50, later) == Clock::duration::zero());
    CHECK(lim.Acquire(50, later) > Clock::duration::zero());
  }
  SECTION("rate 0 is unlimited") {
    RateLimiter lim(0, 0, t0);
    CHECK(lim.Acquire(1ull << 40, t0) == Clock::duration::zero());
  }
}

TEST_CASE("block scanner finds a flipped byte and reports only that replica", "[block_scanner]") {
  TempDir t;
  auto store = OpenStore(t.path());
  for (uint64_t id = 1; id <= 4; ++id) WriteReplica(*store, id, RandomBytes(100000 + id, id));
  FlipByte(DataPath(t.path(), 3), 70000);
  Reports reports;
  BlockScanner::Options o;
  o.period = milliseconds(200);
  o.max_bytes_per_second = 0;
  BlockScanner scanner(store.get(), o, reports.Fn());
  scanner.Start();
  REQUIRE(WaitFor([&] { return scanner.counters().passes >= 2; }));
  scanner.Stop();
  auto ids = reports.Get();
  REQUIRE(!ids.empty());
  CHECK(std::set<uint64_t>(ids.begin(), ids.end()) == std::set<uint64_t>{3});
  CHECK_THAT(reports.why, Catch::Contains("checksum mismatch") && Catch::Contains("chunk 17"));
  const auto c = scanner.counters();
  CHECK(c.corrupt_found == ids.size());
  CHECK(c.replicas_scanned >= 8);
  CHECK(c.bytes_scanned >= 2 * (4 * 100000 + 10));
  // The scanner only reports: the replica stays until the NameNode says otherwise.
  CHECK(store->GetReplica(dfs::BlockId(3)).has_value());
}

TEST_CASE("block scanner never reads faster than its limit", "[block_scanner]") {
  TempDir t;
  auto store = OpenStore(t.path());
  for (uint64_t id = 1; id <= 4; ++id) WriteReplica(*store, id, RandomBytes(256 << 10, id));
  const uint64_t total = 4 * (256 << 10);
  BlockScanner::Options o;
  o.period = milliseconds(100);  // spreading alone would read at 10 MiB/s: the limit binds
  o.max_bytes_per_second = 4 << 20;
  o.read_bytes = 64 << 10;
  BlockScanner scanner(store.get(), o, nullptr);
  const auto start = Clock::now();
  scanner.Start();
  // Sampled while it runs: what it has read so far is within its budget.
  // (The limiter starts after `start`, so the bound only gets looser.)
  bool done = WaitFor([&] {
    const auto c = scanner.counters();
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    if (c.passes == 0) CHECK(static_cast<double>(c.bytes_scanned) <= o.read_bytes + 4.0 * (1 << 20) * secs);
    return c.passes >= 1;
  });
  REQUIRE(done);
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  CHECK(secs >= static_cast<double>(total - o.read_bytes) / o.max_bytes_per_second);
  scanner.Stop();
}

TEST_CASE("block scanner spreads a pass over its period and stops promptly", "[block_scanner]") {
  TempDir t;
  auto store = OpenStore(t.path());
  for (uint64_t id = 1; id <= 4; ++id) WriteReplica(*store, id, RandomBytes(128 << 10, id));
  BlockScanner::Options o;
  o.period = std::chrono::hours(1);  // 512 KiB over an hour: a read every few minutes
  o.max_bytes_per_second = 100 << 20;
  o.read_bytes = 64 << 10;
  BlockScanner scanner(store.get(), o, nullptr);
  scanner.Start();
  // The first read comes out of the full bucket at once; the next must wait.
  REQUIRE(WaitFor([&] { return scanner.counters().bytes_scanned == o.read_bytes; }));
  // Through the long wait no replica file is held open (it would keep a deleted replica's space).
  CHECK(WaitFor([&] { return OpenReplicaFiles() == 0; }));
  const auto before_stop = Clock::now();
  scanner.Stop();
  CHECK(Clock::now() - before_stop < std::chrono::seconds(5));  // not minutes: the wait is interruptible
  CHECK(scanner.counters().bytes_scanned == o.read_bytes);
  CHECK(scanner.counters().passes == 0);
}

TEST_CASE("block scanner with period 0 does nothing", "[block_scanner]") {
  TempDir t;
  auto store = OpenStore(t.path());
  BlockScanner::Options o;
  o.period = milliseconds(0);
  BlockScanner scanner(store.get(), o, nullptr);
  scanner.Start();
  scanner.Stop();
  CHECK(scanner.counters().passes == 0);
}

TEST_CASE("block scanner resumes an unfinished pass after a restart instead of starting over", "[block_scanner]") {
  TempDir t;
  auto store = OpenStore(t.path());
  for (uint64_t id = 1; id <= 4; ++id) WriteReplica(*store, id, RandomBytes(64 << 10, id));
  FlipByte(DataPath(t.path(), 1), 100);
  FlipByte(DataPath(t.path(), 3), 100);
  BlockScanner::Options o;
  o.read_bytes = 64 << 10;
  o.max_bytes_per_second = 100 << 20;
  {
    // A pass spread over an hour: block 1 at once, block 2 in a quarter of an hour.
    o.period = std::chrono::hours(1);
    Reports reports;
    BlockScanner scanner(store.get(), o, reports.Fn());
    scanner.Start();
    REQUIRE(WaitFor([&] { return reports.Get().size() == 1 && OpenReplicaFiles() == 0; }));
    scanner.Stop();  // the DataNode goes down for the night
    CHECK(reports.Get() == std::vector<uint64_t>{1});
  }
  std::ifstream cursor(t.path() + "/scanner.cursor");
  std::string text((std::istreambuf_iterator<char>(cursor)), std::istreambuf_iterator<char>());
  CHECK_THAT(text, Catch::Contains("next_block_id=2\n"));
  // Restarted: the pass goes on from block 2, so the first corrupt replica it
  // meets is 3; starting over would have met 1 again first.
  o.period = milliseconds(300);
  Reports reports;
  BlockScanner scanner(store.get(), o, reports.Fn());
  scanner.Start();
  REQUIRE(WaitFor([&] { return reports.Get().size() >= 2; }));
  scanner.Stop();
  const auto ids = reports.Get();
  CHECK(ids[0] == 3);
  CHECK(ids[1] == 1);  // the next pass covers everything
}
