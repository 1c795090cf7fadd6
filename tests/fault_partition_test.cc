// Network partitions with `ip netns`: the cluster runs in a network namespace
// of its own ("a": the NameNode, three DataNodes, the test's clients) and one
// DataNode in another ("b"), joined by a veth pair whose link the test takes
// down and up. Nothing is added to the host's own namespace. Skipped, with the
// reason, where namespaces cannot be made (not root, no CAP_SYS_ADMIN).
#include <atomic>
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

struct Census {
  std::vector<std::vector<int>> holders;  // per block, DataNode indices (NameNode's view)
  std::vector<int> on_disk;               // per block, finalized replica files
  uint32_t live = 0, dead = 0;
  std::string ToString() const {
    std::string s = fmt::format("{} live, {} dead;", live, dead);
    for (size_t i = 0; i < holders.size(); ++i) {
      s += fmt::format(" block {}: [{}] {} on disk;", i, fmt::join(holders[i], ","), on_disk[i]);
    }
    return s;
  }
  int MaxReplicas() const {
    int m = 0;
    for (size_t i = 0; i < holders.size(); ++i) m = std::max({m, static_cast<int>(holders[i].size()), on_disk[i]});
    return m;
  }
  bool Exactly(int n, int without = -1) const {
    for (size_t i = 0; i < holders.size(); ++i) {
      if (static_cast<int>(holders[i].size()) != n || on_disk[i] != n) return false;
      if (without >= 0 && std::count(holders[i].begin(), holders[i].end(), without)) return false;
    }
    return true;
  }
};

Result<Census> Count(ProcessCluster& c, client::FileSystem& fs, const std::string& path, int exclude_from_disk = -1) {
  Census out;
  DFS_ASSIGN_OR_RETURN(auto blocks, fs.GetBlockLocations(path));
  for (const auto& b : blocks) {
    out.holders.push_back(c.Holders(b));
    int n = 0;
    for (const auto& r : c.FindReplicas(b.block.value())) n += r.datanode != exclude_from_disk;
    out.on_disk.push_back(n);
  }
  DFS_ASSIGN_OR_RETURN(auto stats, fs.GetStats());
  out.live = stats.live_datanodes();
  out.dead = stats.dead_datanodes();
  return out;
}

}  // namespace

TEST_CASE("network partition of a DataNode: a short one changes nothing, a long one copies its blocks elsewhere and "
          "the excess is trimmed when it heals",
          "[fault][partition]") {
  auto sandbox = NetnsPair::Create();
  if (!sandbox.ok()) {
    WARN(kSkipMarker << " network namespaces are not available here: " << sandbox.status().message());
    return;
  }
  NetnsPair& net = **sandbox;
  auto entered = net.EnterA();  // this thread, its clients and the daemons it starts live in "a"
  REQUIRE_OK(entered.status());

  constexpr int kPartitioned = 3;
  ProcessCluster::Options o;
  o.num_datanodes = 4;
  o.host = NetnsPair::kAddrA;
  o.datanode[kPartitioned] = {NetnsPair::kAddrB, net.b(), {}};
  // A heartbeat held up by the cut link reaches the NameNode by TCP
  // retransmission up to ~3 s after the link is back: 6 s of silence make a
  // node dead, so a 2 s cut stays well clear of it.
  o.conf = {{"dfs.namenode.datanode.dead.interval", "6s"}};
  auto pc = ProcessCluster::Start(o);
  REQUIRE_OK(pc.status());
  ProcessCluster& c = **pc;
  auto fs = c.NewClient();
  const std::string data = RandomBytes((6 << 20) - 1000, 21);  // 6 blocks
  const uint64_t want = XXH3_64bits(data.data(), data.size());
  REQUIRE_OK(WriteFile(*fs, "/f", data));
  // A second file, deleted while the node is cut off: its replicas there are orphans.
  REQUIRE_OK(WriteFile(*fs, "/g", RandomBytes(3 << 20, 22)));
  REQUIRE_OK(c.WaitForReplicas(*fs, "/f", 3));
  REQUIRE_OK(c.WaitForReplicas(*fs, "/g", 3));
  auto g_blocks = fs->GetBlockLocations("/g");
  REQUIRE_OK(g_blocks.status());

  auto census = Count(c, *fs, "/f");
  REQUIRE_OK(census.status());
  INFO("before: " << census->ToString());
  REQUIRE(census->Exactly(3));
  int on_b = 0;
  for (const auto& h : census->holders) on_b += static_cast<int>(std::count(h.begin(), h.end(), kPartitioned));
  REQUIRE(on_b > 0);  // the partitioned node holds replicas of /f (each block: 3 of 4 nodes)

  {
    // Link down for 2 s (dead interval 6 s), then up: nothing is copied.
    const auto cut = Clock::now();
    REQUIRE_OK(net.SetLinkUp(false));
    int max_seen = 0;
    uint32_t max_dead = 0;
    std::string last;
    while (MsSince(cut) < 2000) {
      auto s = Count(c, *fs, "/f");
      REQUIRE_OK(s.status());
      max_seen = std::max(max_seen, s->MaxReplicas());
      max_dead = std::max(max_dead, s->dead);
      std::this_thread::sleep_for(milliseconds(50));
    }
    REQUIRE_OK(net.SetLinkUp(true));
    // Watch until a node silent since the cut would long have been declared
    // dead (6 s) and its blocks copied.
    while (MsSince(cut) < 8000) {
      auto s = Count(c, *fs, "/f");
      REQUIRE_OK(s.status());
      last = s->ToString();
      max_seen = std::max(max_seen, s->MaxReplicas());
      max_dead = std::max(max_dead, s->dead);
      std::this_thread::sleep_for(milliseconds(50));
    }
    INFO("after the short cut: " << last);
    CHECK(max_seen == 3);  // no block ever had a 4th replica
    CHECK(max_dead == 0);  // the node was never declared dead
    auto after = Count(c, *fs, "/f");
    REQUIRE_OK(after.status());
    CHECK(after->Exactly(3));
    CHECK(after->live == 4);
  }

  // Link down for longer than the dead interval: the node is declared dead and
  // its replicas are copied elsewhere; meanwhile /g is deleted.
  const auto cut = Clock::now();
  REQUIRE_OK(net.SetLinkUp(false));
  std::string last;
  const bool rereplicated = WaitFor([&] {
    auto s = Count(c, *fs, "/f", kPartitioned);
    if (!s.ok()) return false;
    last = s->ToString();
    return s->dead == 1 && s->Exactly(3, kPartitioned);
  }, std::chrono::seconds(40));
  INFO("during the long cut: " << last);
  REQUIRE(rereplicated);
  WARN("re-replicated " << MsSince(cut) << " ms after the link went down (dead interval 6000 ms)");
  auto d = DigestFile(*fs, "/f");
  REQUIRE_OK(d.status());
  CHECK(*d == want);
  REQUIRE_OK(fs->Delete("/g", false));
  // Reads go on from a thread while the node comes back; none may return wrong bytes.
  std::atomic<bool> stop{false};
  std::atomic<int> good_reads{0}, bad_reads{0};
  std::string read_error;
  std::thread reader;
  ScopedJoin join_reader(&reader, &stop);
  reader = std::thread([&] {
    auto rfs = c.NewClient();
    while (!stop) {
      auto r = DigestFile(*rfs, "/f");
      if (r.ok() && *r == want) {
        ++good_reads;
      } else {
        ++bad_reads;
        if (read_error.empty()) read_error = r.ok() ? "wrong bytes" : r.status().ToString();
      }
    }
  });

  const auto heal = Clock::now();
  REQUIRE_OK(net.SetLinkUp(true));
  int max_after = 0;
  const bool trimmed = WaitFor([&] {
    auto s = Count(c, *fs, "/f");
    if (!s.ok()) return false;
    last = s->ToString();
    max_after = std::max(max_after, s->MaxReplicas());
    if (s->live != 4 || !s->Exactly(3)) return false;
    // The orphans of /g are gone from the returned node's disk too.
    for (const auto& b : *g_blocks) {
      if (!c.FindReplicas(b.block.value()).empty()) return false;
    }
    return true;
  }, std::chrono::seconds(40));
  join_reader.Join();
  INFO("after the long cut: " << last << "; reads: " << good_reads << " good, " << bad_reads << " failed ("
                              << read_error << ")");
  CHECK(trimmed);
  CHECK(bad_reads == 0);
  CHECK(good_reads > 0);
  WARN("back to exactly 3 replicas " << MsSince(heal) << " ms after the link came back; at most " << max_after
                                     << " replicas of a block seen");
  d = DigestFile(*fs, "/f");
  REQUIRE_OK(d.status());
  CHECK(*d == want);
  REQUIRE_OK(c.CheckDaemonsAlive());
}
