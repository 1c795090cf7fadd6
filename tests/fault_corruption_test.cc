// Bit rot on a DataNode's disk: random bits flipped in stored replica files
// while the daemons run. Every read returns the right bytes, the bad replica is
// replaced; when every replica of a block is bad, a read fails fast, naming
// the file and the block, and fsck says CORRUPT.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <xxhash.h>

#include "common/checksum.h"
#include "tests/process_cluster.h"
#include "tests/test_util.h"

using namespace dfs;
using namespace dfs::test;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint64_t kBlock = 1 << 20;

// Flips one bit of a file in place, as a failing disk would.
void FlipBit(const std::string& path, uint64_t offset, int bit) {
  int fd = open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  unsigned char byte = 0;
  REQUIRE(pread(fd, &byte, 1, static_cast<off_t>(offset)) == 1);
  byte ^= static_cast<unsigned char>(1u << bit);
  REQUIRE(pwrite(fd, &byte, 1, static_cast<off_t>(offset)) == 1);
  close(fd);
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A block is healthy when the NameNode lists 3 replicas and the disks hold
// exactly 3 finalized copies, each byte-identical to what was written.
bool BlockHealthy(ProcessCluster& c, client::FileSystem& fs, const client::BlockLocation& b, const std::string& want,
                  std::string* why) {
  auto blocks = fs.GetBlockLocations("/f", b.offset, 1);
  if (!blocks.ok() || blocks->empty()) {
    *why = "no locations";
    return false;
  }
  if ((*blocks)[0].replicas.size() != 3) {
    *why = fmt::format("NameNode lists {} replicas", (*blocks)[0].replicas.size());
    return false;
  }
  auto files = c.FindReplicas(b.block.value());
  if (files.size() != 3) {
    *why = fmt::format("{} replica files on disk", files.size());
    return false;
  }
  // The checksums a good meta file holds after its 16-byte header.
  std::string sums(NumChunks(want.size(), 64 << 10) * kChecksumBytes, '\0');
  ComputeChecksums(want.data(), want.size(), 64 << 10, reinterpret_cast<uint64_t*>(sums.data()));
  for (const auto& f : files) {
    const std::string meta = Slurp(f.path + ".meta");
    if (Slurp(f.path) != want || meta.size() < 16 || meta.substr(16) != sums) {
      *why = "a bad replica is still on datanode" + std::to_string(f.datanode);
      return false;
    }
  }
  return true;
}

}  // namespace

TEST_CASE("random bit flips in stored replicas never reach a reader and the bad replicas are replaced",
          "[fault][corruption]") {
  ProcessCluster::Options o;
  // Deletions and copies ride on heartbeat replies: faster heartbeats, faster rounds.
  o.conf = {{"dfs.heartbeat.interval", "300ms"}};
  auto pc = ProcessCluster::Start(o);
  REQUIRE_OK(pc.status());
  ProcessCluster& c = **pc;
  auto fs = c.NewClient();
  const std::string data = RandomBytes(4 * kBlock + 777, 11);  // 5 blocks, the last one short
  const uint64_t want = XXH3_64bits(data.data(), data.size());
  REQUIRE_OK(WriteFile(*fs, "/f", data));
  REQUIRE_OK(c.WaitForReplicas(*fs, "/f", 3));
  auto blocks = fs->GetBlockLocations("/f");
  REQUIRE_OK(blocks.status());
  REQUIRE(blocks->size() == 5);

  const uint64_t seed = TestSeed();
  INFO("seed " << seed << " (replay with --rng-seed " << seed << ")");
  std::mt19937_64 rng(seed);
  constexpr int kRounds = 3;
  int trials = 0, reads = 0;
  const auto started = Clock::now();
  for (int round = 0; round < kRounds; ++round) {
    // One replica of every block goes bad at once: 5 trials per round.
    std::vector<std::string> what;
    for (const auto& b : *blocks) {
      auto files = c.FindReplicas(b.block.value());
      REQUIRE(files.size() == 3);
      const auto& victim = files[rng() % files.size()];
      // Mostly the data; now and then a stored checksum (past the 16-byte header).
      const bool in_meta = rng() % 4 == 0;
      const std::string path = in_meta ? victim.path + ".meta" : victim.path;
      const uint64_t size = std::filesystem::file_size(path);
      const uint64_t offset = in_meta ? 16 + rng() % (size - 16) : rng() % size;
      const int bit = static_cast<int>(rng() % 8);
      FlipBit(path, offset, bit);
      what.push_back(fmt::format("{} byte {} bit {}", path, offset, bit));
      ++trials;
    }
    INFO("round " << round << " flipped: " << fmt::format("{}", fmt::join(what, "; ")));
    // Read until every bad replica was found (by a reader) and replaced.
    std::string why;
    const bool healed = WaitFor([&] {
      auto d = DigestFile(*fs, "/f");
      ++reads;
      REQUIRE_OK(d.status());
      REQUIRE(*d == want);  // a reader never sees a flipped bit
      for (size_t i = 0; i < blocks->size(); ++i) {
        const auto& b = (*blocks)[i];
        if (!BlockHealthy(c, *fs, b, data.substr(b.offset, b.length), &why)) {
          why = fmt::format("block {}: {}", i, why);
          return false;
        }
      }
      return true;
    }, std::chrono::seconds(30));
    INFO("still unhealthy: " << why);
    REQUIRE(healed);
  }
  WARN(trials << " bit flips in " << kRounds << " rounds, " << reads << " whole-file reads, all replaced after "
              << MsSince(started) << " ms");

  // Now every replica of block 2 goes bad.
  const auto& doomed = (*blocks)[2];
  for (const auto& f : c.FindReplicas(doomed.block.value())) FlipBit(f.path, rng() % doomed.length, 3);
  const std::string block_name = fmt::format("blk_{}", doomed.block.value());
  const auto read_started = Clock::now();
  auto d = DigestFile(*fs, "/f");
  const int64_t took = MsSince(read_started);
  REQUIRE_FALSE(d.ok());
  INFO(d.status().ToString());
  WARN("a read of a block with no good replica failed after " << took << " ms: " << d.status().ToString());
  CHECK(took < 5000);  // the socket timeout is 15 s
  CHECK(d.status().code() == StatusCode::kCorruption);
  CHECK(d.status().message().find("/f") != std::string::npos);
  CHECK(d.status().message().find(block_name) != std::string::npos);

  // Once the NameNode knows, a new reader is told at once, and fsck says so.
  auto again = DigestFile(*fs, "/f");
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().code() == StatusCode::kCorruption);
  CHECK(again.status().message().find("/f") != std::string::npos);
  CHECK(again.status().message().find(block_name) != std::string::npos);
  auto fsck = c.RunDfs({"fsck", "/", "-files", "-blocks"});
  REQUIRE_OK(fsck.status());
  INFO(fsck->ToString());
  CHECK(fsck->exit_code == 1);
  CHECK(fsck->out.find("CORRUPT") != std::string::npos);
  CHECK(fsck->out.find(block_name) != std::string::npos);
  // The other blocks are still readable.
  auto in = fs->Open("/f");
  REQUIRE_OK(in.status());
  std::string first(2 * kBlock, '\0');
  auto r = (*in)->PRead(0, first.data(), first.size());
  REQUIRE_OK(r.status());
  CHECK(first == data.substr(0, 2 * kBlock));
  REQUIRE_OK(c.CheckDaemonsAlive());
}

// Minimal reproduction of a reader bug: DfsInputStream remembers a DataNode
// that served a bad replica as bad for the whole stream, not for that block,
// so once every DataNode has served one bad replica the stream gives up
// ("every replica of blk_... failed; retrying") although every block still
// has a good replica. Two DataNodes, replication 2, 8 blocks; block i is bad
// on DataNode i % 2: a correct reader always succeeds; the stream as it is
// fails unless it happens to pick the good replica first every time (1 in 256).
TEST_CASE("a reader gets the right bytes when every DataNode holds a bad replica of a different block",
          "[fault][corruption]") {
  ProcessCluster::Options o;
  o.num_datanodes = 2;
  o.conf = {{"dfs.replication", "2"}};
  auto pc = ProcessCluster::Start(o);
  REQUIRE_OK(pc.status());
  ProcessCluster& c = **pc;
  auto fs = c.NewClient();
  const std::string data = RandomBytes(8 * kBlock, 12);
  REQUIRE_OK(WriteFile(*fs, "/f", data));
  REQUIRE_OK(c.WaitForReplicas(*fs, "/f", 2));
  auto blocks = fs->GetBlockLocations("/f");
  REQUIRE_OK(blocks.status());
  REQUIRE(blocks->size() == 8);
  for (size_t i = 0; i < blocks->size(); ++i) {
    for (const auto& r : c.FindReplicas((*blocks)[i].block.value())) {
      if (r.datanode == static_cast<int>(i % 2)) FlipBit(r.path, 1000 + i, 0);
    }
  }
  auto d = DigestFile(*fs, "/f");
  REQUIRE_OK(d.status());
  CHECK(*d == XXH3_64bits(data.data(), data.size()));
}
