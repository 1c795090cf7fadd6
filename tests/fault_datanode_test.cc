// DataNode faults on real processes: kill -9 and re-replication, the return of
// a dead node and the trimming of excess replicas, a node too small for a
// block, and a node killed while it writes.
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <xxhash.h>

#include "tests/process_cluster.h"
#include "tests/test_util.h"

using namespace dfs;
using namespace dfs::test;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

// Replicas of each block of `path` as the NameNode sees them: DataNode indices.
Result<std::vector<std::vector<int>>> HoldersOf(ProcessCluster& c, client::FileSystem& fs, const std::string& path) {
  DFS_ASSIGN_OR_RETURN(auto blocks, fs.GetBlockLocations(path));
  std::vector<std::vector<int>> out;
  for (const auto& b : blocks) out.push_back(c.Holders(b));
  return out;
}

std::string Describe(const std::vector<std::vector<int>>& holders) {
  std::string s;
  for (size_t i = 0; i < holders.size(); ++i) s += fmt::format("block {}: [{}] ", i, fmt::join(holders[i], ","));
  return s;
}

}  // namespace

TEST_CASE("a kill -9 DataNode's replicas come back within the dead interval and are trimmed to 3 when it returns",
          "[fault][datanode]") {
  ProcessCluster::Options o;
  o.num_datanodes = 4;
  auto pc = ProcessCluster::Start(o);
  REQUIRE_OK(pc.status());
  ProcessCluster& c = **pc;
  auto fs = c.NewClient();
  const std::string data = RandomBytes((5 << 20) + 4321, 3);  // 6 blocks
  const uint64_t want = XXH3_64bits(data.data(), data.size());
  client::CreateOptions co;
  co.replication = 3;
  REQUIRE_OK(WriteFile(*fs, "/f", data, co));
  REQUIRE_OK(c.WaitForReplicas(*fs, "/f", 3));
  auto blocks = fs->GetBlockLocations("/f");
  REQUIRE_OK(blocks.status());
  REQUIRE(blocks->size() == 6);

  // The victim: the DataNode with the most replicas.
  std::map<int, int> per_node;
  for (const auto& b : *blocks) {
    for (int h : c.Holders(b)) ++per_node[h];
  }
  int victim = 0;
  for (const auto& [n, count] : per_node) {
    if (count > per_node[victim]) victim = n;
  }
  INFO("victim datanode" << victim << " holds " << per_node[victim] << " of the 18 replicas");

  const auto killed = Clock::now();
  REQUIRE_OK(c.KillDataNode(victim, SIGKILL));
  std::string last;
  const bool rereplicated = WaitFor([&] {
    auto h = HoldersOf(c, *fs, "/f");
    if (!h.ok()) return false;
    last = Describe(*h);
    for (size_t i = 0; i < h->size(); ++i) {
      const auto& nodes = (*h)[i];
      if (nodes.size() != 3 || std::count(nodes.begin(), nodes.end(), victim)) return false;
      // ... and on disk: three finalized replicas outside the victim.
      int on_disk = 0;
      for (const auto& r : c.FindReplicas((*blocks)[i].block.value())) on_disk += r.datanode != victim;
      if (on_disk != 3) return false;
    }
    return true;
  }, std::chrono::seconds(30));
  const int64_t took = MsSince(killed);
  INFO("NameNode's view: " << last);
  REQUIRE(rereplicated);
  // Dead after 4 s (plus up to one monitor tick), then a copy per block.
  WARN("full replication back " << took << " ms after kill -9 (dead interval 4000 ms)");
  CHECK(took < 4000 + 8000);
  auto digest = DigestFile(*fs, "/f");
  REQUIRE_OK(digest.status());
  CHECK(*digest == want);

  // The victim returns with its old replicas: each block is over-replicated
  // until the NameNode trims it, and never drops below 3 meanwhile.
  REQUIRE_OK(c.StartDataNode(victim));
  const auto restarted = Clock::now();
  int min_seen = 3, max_disk = 0;
  bool stable = false;
  while (MsSince(restarted) < 30000) {
    auto h = HoldersOf(c, *fs, "/f");
    REQUIRE_OK(h.status());
    bool all_three = true;
    for (size_t i = 0; i < h->size(); ++i) {
      min_seen = std::min(min_seen, static_cast<int>((*h)[i].size()));
      const int on_disk = static_cast<int>(c.FindReplicas((*blocks)[i].block.value()).size());
      min_seen = std::min(min_seen, on_disk);
      max_disk = std::max(max_disk, on_disk);
      all_three = all_three && (*h)[i].size() == 3 && on_disk == 3;
    }
    if (all_three && max_disk > 3 && c.CheckDaemonsAlive().ok()) {
      // Trimmed: settled at 3 after having been above.
      auto st = fs->GetStats();
      if (st.ok() && st->live_datanodes() == 4) {
        stable = true;
        break;
      }
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  WARN("excess replicas trimmed " << MsSince(restarted) << " ms after the restart; at most " << max_disk
                                  << " replicas of a block on disk, fewest seen " << min_seen);
  CHECK(stable);
  CHECK(min_seen >= 3);
  digest = DigestFile(*fs, "/f");
  REQUIRE_OK(digest.status());
  CHECK(*digest == want);
  REQUIRE_OK(c.CheckDaemonsAlive());
}

TEST_CASE("a DataNode with too little capacity for a block gets no new blocks", "[fault][datanode][capacity]") {
  if (!IsKnownConfigKey("dfs.datanode.capacity")) {
    FAIL("dfs.datanode.capacity is not a configuration key in this build: DataNode capacity limits are not built yet");
  }
  ProcessCluster::Options o;
  o.num_datanodes = 4;
  o.datanode[3].conf = {{"dfs.datanode.capacity", "512k"}};  // half a block
  auto pc = ProcessCluster::Start(o);
  REQUIRE_OK(pc.status());
  ProcessCluster& c = **pc;
  auto fs = c.NewClient();
  for (int f = 0; f < 4; ++f) {
    const std::string path = fmt::format("/cap/{}", f);
    const std::string data = RandomBytes((2 << 20) + 100, static_cast<uint64_t>(f));
    REQUIRE_OK(WriteFile(*fs, path, data));
    REQUIRE_OK(c.WaitForReplicas(*fs, path, 3));
    auto h = HoldersOf(c, *fs, path);
    REQUIRE_OK(h.status());
    INFO(path << ": " << Describe(*h));
    for (const auto& nodes : *h) {
      CHECK(nodes.size() == 3);
      CHECK(std::count(nodes.begin(), nodes.end(), 3) == 0);
    }
  }
  // Nothing reached its disk either, not even a temporary replica.
  CHECK(c.TmpFiles(3).empty());
  std::error_code ec;
  int files = 0;
  for (std::filesystem::recursive_directory_iterator it(c.datanode_dir(3) + "/current", ec), end; !ec && it != end;
       it.increment(ec)) {
    files += it->is_regular_file() ? 1 : 0;
  }
  CHECK(files == 0);
  REQUIRE_OK(c.CheckDaemonsAlive());
}

TEST_CASE("a DataNode killed in the middle of a write keeps no half-written replica after its restart, only its "
          "verified prefix under tmp/ for a recovery",
          "[fault][datanode]") {
  auto pc = ProcessCluster::Start();
  REQUIRE_OK(pc.status());
  ProcessCluster& c = **pc;
  auto fs = c.NewClient();
  const std::string data = RandomBytes(6 << 20, 5);
  std::atomic<size_t> written{0};
  std::atomic<bool> release{false};
  Status write_status;
  std::thread writer;
  ScopedJoin join_writer(&writer, &release);
  writer = std::thread([&] {
    auto out = fs->Create("/w");
    if (!out.ok()) {
      write_status = out.status();
      return;
    }
    constexpr size_t kPiece = 128 << 10;
    for (size_t off = 0; off < data.size(); off += kPiece) {
      write_status = (*out)->Write(data.data() + off, kPiece);
      if (!write_status.ok()) return;
      written = off + kPiece;
      // Hold still in the middle of the third block until the DataNode is dead.
      if (written == (2 << 20) + (512 << 10)) {
        write_status = (*out)->Flush();
        if (!write_status.ok()) return;
        WaitFor([&] { return release.load(); }, std::chrono::seconds(30));
      }
    }
    write_status = (*out)->Close();
  });
  // Stop the writer mid-block; kill a DataNode that holds a replica being written.
  REQUIRE(WaitFor([&] { return written.load() >= (2 << 20) + (512 << 10); }, std::chrono::seconds(30)));
  int victim = -1;
  for (int i = 0; i < c.num_datanodes() && victim < 0; ++i) {
    if (!c.TmpFiles(i).empty()) victim = i;
  }
  INFO("victim datanode" << victim);
  const bool have_victim = victim >= 0;
  if (have_victim) REQUIRE_OK(c.KillDataNode(victim, SIGKILL));
  join_writer.Join();
  REQUIRE(have_victim);
  WARN("the write with a DataNode killed mid-block ended with: " << write_status.ToString());
  REQUIRE_FALSE(c.TmpFiles(victim).empty());  // the half-written replica it left behind

  REQUIRE_OK(c.StartDataNode(victim));
  // The unfinished replica stays under tmp/ (for a pipeline or lease recovery,
  // until it expires), cut to the bytes its checksums cover; every replica it
  // keeps, there or under current/, is whole: its checksum file covers its
  // data exactly.
  for (const auto& entry : std::filesystem::recursive_directory_iterator(c.datanode_dir(victim))) {
    const std::string p = entry.path().string();
    if (!entry.is_regular_file() || p.find("blk_") == std::string::npos || p.ends_with(".meta")) continue;
    const uint64_t size = entry.file_size();
    std::error_code ec;
    const uint64_t meta = std::filesystem::file_size(p + ".meta", ec);
    INFO(p);
    REQUIRE_FALSE(ec);
    CHECK(meta == 16 + 8 * ((size + (64 << 10) - 1) / (64 << 10)));
  }
  REQUIRE_OK(c.WaitForDatanodes(3));
  REQUIRE_OK(c.CheckDaemonsAlive());
}
