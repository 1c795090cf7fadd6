// Decommissioning and the replication counts of `dfs admin report` and
// `dfs fsck`, on an in-process MiniCluster: a decommissioned DataNode's blocks
// are copied elsewhere before it may be switched off, a node coming back
// loses its now-excess replicas down to the target (never below), and the
// under-replicated / missing / corrupt / excess counts are what they should be.
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <catch2/catch.hpp>

#include "client/cli/shell.h"
#include "datanode/block_store.h"
#include "datanode/datanode.h"
#include "namenode/block_manager.h"
#include "namenode/namenode.h"
#include "tests/mini_cluster.h"
#include "tests/test_util.h"

using namespace dfs;
using namespace dfs::test;

namespace {

// Short intervals: a heartbeat every 100 ms, replication work every 100 ms, and
// a silent DataNode is dead after 1 s.
MiniCluster::Options FastOptions(int datanodes) {
  MiniCluster::Options o;
  o.num_datanodes = datanodes;
  o.conf = {{"dfs.heartbeat.interval", "100ms"},
            {"dfs.namenode.replication.interval", "100ms"},
            {"dfs.namenode.datanode.dead.interval", "1s"}};
  return o;
}

proto::GetStatsResponse Stats(MiniCluster& mc) {
  proto::GetStatsResponse st;
  mc.namenode()->block_manager()->FillStats(&st);
  return st;
}

proto::DatanodeInfo NodeInfo(MiniCluster& mc, const std::string& uuid) {
  for (auto& n : mc.namenode()->block_manager()->DatanodeReport()) {
    if (n.id().uuid() == uuid) return n;
  }
  FAIL("no DataNode " << uuid);
  return {};
}

// Replicas of every block of `path`, by DataNode uuid.
std::vector<std::vector<std::string>> Replicas(client::FileSystem& fs, const std::string& path) {
  std::vector<std::vector<std::string>> out;
  auto blocks = fs.GetBlockLocations(path);
  if (!blocks.ok()) return out;
  for (const auto& b : *blocks) {
    std::vector<std::string> r;
    for (const auto& d : b.replicas) r.push_back(d.uuid());
    out.push_back(std::move(r));
  }
  return out;
}

// Runs one `dfs` command line against the cluster, as a user would.
struct ShellRun {
  int rc;
  std::string out, err;
};
ShellRun Dfs(MiniCluster& mc, std::vector<std::string> args) {
  std::ostringstream out, err;
  std::istringstream in;
  cli::ShellEnv env;
  env.connect = [&](const Config&, const std::string&) -> Result<std::shared_ptr<client::FileSystem>> {
    return std::shared_ptr<client::FileSystem>(mc.NewClient());
  };
  env.out = &out;
  env.err = &err;
  env.in = &in;
  int rc = cli::RunShell(std::move(args), env);
  return {rc, out.str(), err.str()};
}

int IndexOf(MiniCluster& mc, const std::string& uuid) {
  for (int i = 0; i < mc.num_datanodes(); ++i) {
    if (mc.datanode(i) && mc.datanode(i)->uuid() == uuid) return i;
  }
  return -1;
}

}  // namespace

TEST_CASE("a decommissioned DataNode's blocks are copied elsewhere before it is switched off", "[cluster][decommission]") {
  auto mc = MiniCluster::Start(FastOptions(4));
  REQUIRE_OK(mc.status());
  MiniCluster& c = **mc;
  auto fs = c.NewClient();
  const std::string data = RandomBytes((5 << 20) + 777, 31);  // 6 blocks
  REQUIRE_OK(WriteFile(*fs, "/big", data));
  client::CreateOptions one;
  one.replication = 1;
  const std::string single = RandomBytes((2 << 20) + 5, 32);  // 3 blocks, one replica each
  REQUIRE_OK(WriteFile(*fs, "/single", single, one));

  // The victim: the node with the most replicas.
  int victim = 0;
  for (int i = 1; i < 4; ++i) {
    if (c.datanode(i)->store()->AllReplicas().size() > c.datanode(victim)->store()->AllReplicas().size()) victim = i;
  }
  const std::string uuid = c.datanode(victim)->uuid();
  const size_t held = c.datanode(victim)->store()->AllReplicas().size();
  REQUIRE(held > 0);

  auto r = fs->SetDatanodeAdminState(uuid, true);
  REQUIRE_OK(r.status());
  CHECK(r->previous() == proto::ADMIN_NORMAL);
  CHECK(r->node().admin_state() == proto::DECOMMISSION_IN_PROGRESS);
  CHECK(r->node().decommission_under_replicated() > 0);
  CHECK(r->node().decommission_note().empty());

  // While it drains, readers get it last, and it takes no new blocks.
  for (const auto& reps : Replicas(*fs, "/big")) {
    auto it = std::find(reps.begin(), reps.end(), uuid);
    if (it != reps.end()) CHECK(it + 1 == reps.end());
  }
  REQUIRE_OK(WriteFile(*fs, "/after", RandomBytes((2 << 20) + 1, 33)));
  for (const auto& reps : Replicas(*fs, "/after")) CHECK(std::count(reps.begin(), reps.end(), uuid) == 0);

  REQUIRE(WaitFor([&] { return NodeInfo(c, uuid).admin_state() == proto::DECOMMISSIONED; }));
  const auto done = NodeInfo(c, uuid);
  CHECK(done.decommission_under_replicated() == 0);
  // Its replicas are not deleted: it stays a source until switched off.
  CHECK(c.datanode(victim)->store()->AllReplicas().size() == held);

  // Every block has its full replication without it.
  auto in_service = [&](const std::string& path, size_t want) {
    auto all = Replicas(*fs, path);
    if (all.empty()) return false;
    for (const auto& reps : all) {
      if (static_cast<size_t>(std::count_if(reps.begin(), reps.end(), [&](const auto& u) { return u != uuid; })) !=
          want) {
        return false;
      }
    }
    return true;
  };
  CHECK(in_service("/big", 3));
  CHECK(in_service("/single", 1));
  CHECK(Stats(c).under_replicated_blocks() == 0);
  CHECK(Stats(c).decommissioned_datanodes() == 1);

  auto report = Dfs(c, {"admin", "report"});
  CHECK(report.rc == 0);
  CHECK(report.out.find("Decommission Status : Decommissioned\n") != std::string::npos);
  CHECK(report.out.find("\tUnder replicated blocks: 0\n") != std::string::npos);

  // Switch it off: once it is declared dead, every block still has 3 (or 1) live replicas.
  c.StopDataNode(victim);
  REQUIRE(WaitFor([&] { return !NodeInfo(c, uuid).live(); }));
  auto st = Stats(c);
  CHECK(st.under_replicated_blocks() == 0);
  CHECK(st.missing_blocks() == 0);
  for (const auto& reps : Replicas(*fs, "/big")) CHECK(reps.size() == 3);
  for (const auto& reps : Replicas(*fs, "/single")) CHECK(reps.size() == 1);
  CHECK(*ReadFile(*fs, "/big") == data);
  CHECK(*ReadFile(*fs, "/single") == single);
}

TEST_CASE("decommission names the DataNode by uuid, ip:port or host:port and refuses unknown ones", "[cluster][decommission]") {
  auto mc = MiniCluster::Start(FastOptions(3));
  REQUIRE_OK(mc.status());
  MiniCluster& c = **mc;
  auto fs = c.NewClient();
  REQUIRE_OK(WriteFile(*fs, "/f", RandomBytes((1 << 20) + 3, 41)));  // 2 blocks on all 3 nodes

  auto unknown = fs->SetDatanodeAdminState("10.9.9.9:1", true);
  CHECK(unknown.status().IsNotFound());
  CHECK(unknown.status().message().find("uuid, ip:xferport or hostname:xferport") != std::string::npos);
  CHECK(unknown.status().message().find(c.datanode(0)->uuid()) != std::string::npos);
  auto shell = Dfs(c, {"dfsadmin", "-decommission", "nosuchhost:9866"});
  CHECK(shell.rc == 1);
  CHECK(shell.err.find("unknown DataNode 'nosuchhost:9866'") != std::string::npos);

  // ip:port form; with replication 3 on 3 DataNodes it cannot finish, and says why.
  const std::string addr = "127.0.0.1:" + std::to_string(c.datanode(1)->xfer_port());
  auto r = fs->SetDatanodeAdminState(addr, true);
  REQUIRE_OK(r.status());
  CHECK(r->node().id().uuid() == c.datanode(1)->uuid());
  CHECK(r->node().admin_state() == proto::DECOMMISSION_IN_PROGRESS);
  CHECK(r->node().decommission_note().find("need 3 replicas but only 2 DataNode(s) are in service") !=
        std::string::npos);
  CHECK(Stats(c).under_replicated_blocks() == 2);  // its replicas no longer count
  CHECK(Stats(c).decommissioning_datanodes() == 1);
  auto report = Dfs(c, {"admin", "report", "-decommissioning"});
  CHECK(report.out.find("Decommissioning datanodes (1):\n") != std::string::npos);
  CHECK(report.out.find("Decommission Status : Decommission in progress\nUnder replicated blocks: 2\n"
                        "Blocks with no live replicas: 0\nDecommission blocked: 2 block(s) need 3") !=
        std::string::npos);
  // Again: nothing changes.
  r = fs->SetDatanodeAdminState(c.datanode(1)->uuid(), true);
  REQUIRE_OK(r.status());
  CHECK(r->previous() == proto::DECOMMISSION_IN_PROGRESS);

  // Recommission by hostname:port puts it back; the blocks are whole again.
  const std::string host = NodeInfo(c, c.datanode(1)->uuid()).id().hostname() + ":" +
                           std::to_string(c.datanode(1)->xfer_port());
  auto back = Dfs(c, {"admin", "recommission", host});
  CHECK(back.rc == 0);
  CHECK(back.out.find("is back in service") != std::string::npos);
  CHECK(NodeInfo(c, c.datanode(1)->uuid()).admin_state() == proto::ADMIN_NORMAL);
  CHECK(Stats(c).under_replicated_blocks() == 0);

  // A dead DataNode is decommissioned at once.
  const std::string dead = c.datanode(2)->uuid();
  c.StopDataNode(2);
  REQUIRE(WaitFor([&] { return !NodeInfo(c, dead).live(); }));
  r = fs->SetDatanodeAdminState(dead, true);
  REQUIRE_OK(r.status());
  CHECK(r->node().admin_state() == proto::DECOMMISSIONED);
}

TEST_CASE("report and fsck count under-replicated blocks, and a returning node's excess replicas are trimmed to the target", "[cluster][decommission]") {
  auto mc = MiniCluster::Start(FastOptions(3));
  REQUIRE_OK(mc.status());
  MiniCluster& c = **mc;
  auto fs = c.NewClient();
  const std::string data = RandomBytes((2 << 20) + 9, 51);  // 3 blocks on all 3 nodes
  REQUIRE_OK(WriteFile(*fs, "/f", data));
  CHECK(Stats(c).under_replicated_blocks() == 0);

  // A DataNode dies: with replication 3 on 3 nodes, nowhere to copy to.
  const std::string uuid0 = c.datanode(0)->uuid();
  c.StopDataNode(0);
  REQUIRE(WaitFor([&] { return Stats(c).under_replicated_blocks() == 3; }));
  auto st = Stats(c);
  CHECK(st.missing_blocks() == 0);
  CHECK(st.corrupt_blocks() == 0);
  CHECK(st.dead_datanodes() == 1);
  auto report = Dfs(c, {"admin", "report"});
  CHECK(report.out.find("\tUnder replicated blocks: 3\n\tBlocks with corrupt replicas: 0\n\tMissing blocks: 0\n") !=
        std::string::npos);
  auto fsck = Dfs(c, {"fsck", "/f", "-files"});
  CHECK(fsck.rc == 0);
  CHECK(fsck.out.find("Target Replicas is 3 but found 2 live replica(s), 0 decommissioned replica(s), 0 "
                      "decommissioning replica(s).") != std::string::npos);
  CHECK(fsck.out.find(" Under-replicated blocks:\t3 (100.0 %)\n") != std::string::npos);
  CHECK(fsck.out.find(" Missing replicas:\t\t3 (33.3 %)\n") != std::string::npos);
  CHECK(fsck.out.find("is HEALTHY") != std::string::npos);

  // Set replication 2: the blocks are whole again with the two live nodes.
  REQUIRE_OK(fs->SetReplication("/f", 2));
  CHECK(Stats(c).under_replicated_blocks() == 0);

  // The dead node comes back with its 3 replicas: each block now has one too
  // many. In safe mode nothing is deleted, so the excess stays to be counted.
  REQUIRE_OK(fs->SafeMode(proto::SafeModeRequest::ENTER).status());
  REQUIRE_OK(c.StartDataNode(0));
  REQUIRE(WaitFor([&] { return Stats(c).excess_replicas() == 3; }));
  fsck = Dfs(c, {"fsck", "/f"});
  CHECK(fsck.out.find(" Over-replicated blocks:\t3 (100.0 %)\n") != std::string::npos);
  report = Dfs(c, {"admin", "report"});
  CHECK(report.out.find("\tExcess replicas: 3\n") != std::string::npos);

  // Out of safe mode the replication monitor deletes them down to 2, never below.
  REQUIRE_OK(fs->SafeMode(proto::SafeModeRequest::LEAVE).status());
  bool never_below = true;
  REQUIRE(WaitFor([&] {
    auto all = Replicas(*fs, "/f");
    bool exact = all.size() == 3;
    for (const auto& reps : all) {
      if (reps.size() < 2) never_below = false;
      if (reps.size() != 2) exact = false;
    }
    auto s = Stats(c);
    return exact && s.excess_replicas() == 0 && s.pending_deletion_blocks() == 0;
  }));
  CHECK(never_below);
  // The deletions reach the DataNodes: 3 blocks × 2 replicas remain on disk.
  CHECK(WaitFor([&] {
    size_t total = 0;
    for (int i = 0; i < 3; ++i) total += c.datanode(i)->store()->AllReplicas().size();
    return total == 6;
  }));
  CHECK(*ReadFile(*fs, "/f") == data);
  (void)uuid0;
}

TEST_CASE("report and fsck count a block whose only replica is corrupt", "[cluster][decommission]") {
  auto mc = MiniCluster::Start(FastOptions(3));
  REQUIRE_OK(mc.status());
  MiniCluster& c = **mc;
  auto fs = c.NewClient();
  client::CreateOptions one;
  one.replication = 1;
  const std::string data = RandomBytes(300000, 61);
  REQUIRE_OK(WriteFile(*fs, "/c", data, one));
  auto blocks = fs->GetBlockLocations("/c");
  REQUIRE_OK(blocks.status());
  REQUIRE(blocks->size() == 1);
  const auto& b = blocks->front();
  REQUIRE(b.replicas.size() == 1);
  const int holder = IndexOf(c, b.replicas.front().uuid());
  REQUIRE(holder >= 0);
  std::string replica;
  for (auto& e : std::filesystem::recursive_directory_iterator(c.datanode_dir(holder))) {
    const std::string name = e.path().filename().string();
    if (name.rfind(BlockName(b.block) + "_", 0) == 0 && name.find(".meta") == std::string::npos) replica = e.path();
  }
  REQUIRE_FALSE(replica.empty());
  {
    std::fstream f(replica, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4321);
    char ch = static_cast<char>(data[4321] ^ 0x20);
    f.write(&ch, 1);
  }
  CHECK_FALSE(ReadFile(*fs, "/c").ok());  // the only replica is bad: reported, and the read fails
  REQUIRE(WaitFor([&] { return Stats(c).corrupt_blocks() == 1; }));
  auto st = Stats(c);
  CHECK(st.missing_blocks() == 1);  // as in Hadoop: no readable replica left
  CHECK(st.missing_repl_one_blocks() == 1);
  CHECK(st.under_replicated_blocks() == 0);
  auto report = Dfs(c, {"admin", "report"});
  CHECK(report.out.find("\tBlocks with corrupt replicas: 1\n\tMissing blocks: 1\n"
                        "\tMissing blocks (with replication factor 1): 1\n") != std::string::npos);
  auto fsck = Dfs(c, {"fsck", "/", "-files", "-blocks", "-replicaDetails"});
  CHECK(fsck.rc == 1);
  CHECK(fsck.out.find("CORRUPT 1 blocks of total size 300000 B.") != std::string::npos);
  CHECK(fsck.out.find("Live_repl=0 CORRUPT!") != std::string::npos);
  CHECK(fsck.out.find(",DISK](CORRUPT)]") != std::string::npos);
  CHECK(fsck.out.find(" Corrupt blocks:\t\t1\n") != std::string::npos);
  CHECK(fsck.out.find("The filesystem under path '/' is CORRUPT") != std::string::npos);
}

TEST_CASE("a DataNode that dies while decommissioning stays in progress until its blocks are replicated elsewhere", "[cluster][decommission]") {
  auto mc = MiniCluster::Start(FastOptions(4));
  REQUIRE_OK(mc.status());
  MiniCluster& c = **mc;
  auto fs = c.NewClient();
  REQUIRE_OK(WriteFile(*fs, "/three", RandomBytes((1 << 20) + 5, 71)));  // 2 blocks, 3 replicas
  client::CreateOptions one;
  one.replication = 1;
  REQUIRE_OK(WriteFile(*fs, "/one", RandomBytes(1000, 72), one));
  // The victim holds /one's only replica, and maybe some of /three.
  const auto reps = Replicas(*fs, "/one");
  REQUIRE(reps.size() == 1);
  REQUIRE(reps[0].size() == 1);
  const std::string uuid = reps[0][0];
  const int victim = IndexOf(c, uuid);
  REQUIRE(victim >= 0);

  // Safe mode holds the copies back, so the node dies with its blocks still needed.
  REQUIRE_OK(fs->SafeMode(proto::SafeModeRequest::ENTER).status());
  auto r = fs->SetDatanodeAdminState(uuid, true);
  REQUIRE_OK(r.status());
  CHECK(r->node().admin_state() == proto::DECOMMISSION_IN_PROGRESS);
  CHECK(r->node().decommission_only_replicas() >= 1);
  c.StopDataNode(victim);
  REQUIRE(WaitFor([&] { return !NodeInfo(c, uuid).live(); }));
  auto info = NodeInfo(c, uuid);
  CHECK(info.admin_state() == proto::DECOMMISSION_IN_PROGRESS);
  CHECK(info.decommission_only_replicas() == 1);  // /one: its only copy died with it
  CHECK(info.decommission_note().find("have no other copy: start it again") != std::string::npos);
  CHECK(Stats(c).missing_blocks() == 1);

  // Out of safe mode, /three is re-replicated, but /one cannot be: still in progress.
  REQUIRE_OK(fs->SafeMode(proto::SafeModeRequest::LEAVE).status());
  REQUIRE(WaitFor([&] { return NodeInfo(c, uuid).decommission_under_replicated() == 1; }));
  CHECK(NodeInfo(c, uuid).admin_state() == proto::DECOMMISSION_IN_PROGRESS);
  // Its block lost for good (the file deleted), the node is decommissioned.
  REQUIRE_OK(fs->Delete("/one", false));
  CHECK(WaitFor([&] { return NodeInfo(c, uuid).admin_state() == proto::DECOMMISSIONED; }));
}
