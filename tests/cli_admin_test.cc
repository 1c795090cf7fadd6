// fsck, setrep -w and safemode on the fake file system.
#include <catch2/catch.hpp>

#include "tests/cli_fake_fs.h"

namespace dfs::cli {
namespace {

using testing::ShellHarness;

void AddTree(testing::FakeFs& fs) {
  fs.AddDir("/data");
  fs.AddFile("/data/one", std::string(1366, 'x'), 3, 1 << 20);
  fs.AddFile("/data/two", std::string((2 << 20) + 5, 'y'), 3, 1 << 20);  // 3 blocks
}

TEST_CASE("fsck reports a healthy tree in Hadoop's format", "[cli]") {
  ShellHarness h;
  AddTree(*h.fs);
  auto r = h.Run({"fsck", "/data", "-files", "-blocks", "-locations"});
  CHECK(r.rc == 0);
  CHECK(r.err.empty());
  const uint64_t one = h.fs->At("/data/one").info.inode.value() * 1000;
  CHECK(r.out.find("/data <dir>\n") != std::string::npos);
  CHECK(r.out.find("/data/one 1366 bytes, replicated: replication=3, 1 block(s):  OK\n"
                   "0. blk_" +
                   std::to_string(one) +
                   "_1001 len=1366 Live_repl=3  "
                   "[DatanodeInfoWithStorage[127.0.0.1:9866,dn-0,DISK], "
                   "DatanodeInfoWithStorage[127.0.0.1:9867,dn-1,DISK], "
                   "DatanodeInfoWithStorage[127.0.0.1:9868,dn-2,DISK]]\n") != std::string::npos);
  CHECK(r.out.find("/data/two 2097157 bytes, replicated: replication=3, 3 block(s):  OK\n") != std::string::npos);
  CHECK(r.out.find("2. blk_") != std::string::npos);
  CHECK(r.out.find("Status: HEALTHY\n") != std::string::npos);
  CHECK(r.out.find(" Total size:\t2098523 B\n") != std::string::npos);
  CHECK(r.out.find(" Total files:\t2\n") != std::string::npos);
  CHECK(r.out.find(" Total blocks (validated):\t4 (avg. block size 524630 B)\n") != std::string::npos);
  CHECK(r.out.find(" Under-replicated blocks:\t0 (0.0 %)\n") != std::string::npos);
  CHECK(r.out.find(" Missing blocks:\t\t0\n") != std::string::npos);
  CHECK(r.out.find(" Corrupt blocks:\t\t0\n") != std::string::npos);
  const std::string last = "\n\n\nThe filesystem under path '/data' is HEALTHY\n";
  REQUIRE(r.out.size() > last.size());
  CHECK(r.out.substr(r.out.size() - last.size()) == last);

  auto quiet = h.Run({"fsck", "/"});
  CHECK(quiet.rc == 0);
  CHECK(quiet.out.find("blk_") == std::string::npos);
  CHECK(quiet.out.find("The filesystem under path '/' is HEALTHY\n") != std::string::npos);
}

TEST_CASE("fsck: under-replicated is healthy, missing and corrupt are not", "[cli]") {
  ShellHarness h;
  AddTree(*h.fs);
  h.fs->max_live_replicas = 1;
  auto r = h.Run({"fsck", "/data"});
  CHECK(r.rc == 0);
  CHECK(r.out.find("/data/one:  Under replicated blk_") != std::string::npos);
  CHECK(r.out.find("Target Replicas is 3 but found 1 live replica(s), 0 decommissioned replica(s), 0 "
                   "decommissioning replica(s).") != std::string::npos);
  CHECK(r.out.find(" Missing replicas:\t\t8 (66.7 %)\n") != std::string::npos);
  CHECK(r.out.find(" Under-replicated blocks:\t4 (100.0 %)\n") != std::string::npos);
  CHECK(r.out.find("is HEALTHY\n") != std::string::npos);

  h.fs->max_live_replicas = 3;
  h.fs->locations_hook = [](const std::string& path, std::vector<client::BlockLocation>* blocks) {
    if (path == "/data/two") (*blocks)[1].replicas.clear();
    if (path == "/data/one") (*blocks)[0].corrupt = true;
  };
  r = h.Run({"fsck", "/data", "-files", "-blocks"});
  CHECK(r.rc == 1);
  CHECK(r.out.find("/data/two 2097157 bytes, replicated: replication=3, 3 block(s):  MISSING 1 blocks of total "
                   "size 1048576 B.\n") != std::string::npos);
  CHECK(r.out.find("len=1048576 Live_repl=0 MISSING!\n") != std::string::npos);
  CHECK(r.out.find("CORRUPT 1 blocks of total size 1366 B.") != std::string::npos);
  CHECK(r.out.find("Status: CORRUPT\n") != std::string::npos);
  CHECK(r.out.find(" Missing blocks:\t\t1\n") != std::string::npos);
  CHECK(r.out.find(" Corrupt blocks:\t\t1\n") != std::string::npos);
  CHECK(r.out.find("The filesystem under path '/data' is CORRUPT\n") != std::string::npos);

  auto missing = h.Run({"fsck", "/nope"});
  CHECK(missing.rc == 1);
  CHECK(missing.err == "dfs: '/nope': No such file or directory\n");
  CHECK(h.Run({"fsck", "/", "-move"}).rc == 2);
}

// Three DataNodes dn-0..dn-2 on 127.0.0.1:9866..9868, the ones FakeFs puts replicas on.
void AddDatanodes(testing::FakeFs& fs) {
  for (int i = 0; i < 3; ++i) {
    proto::DatanodeInfo d;
    d.mutable_id()->set_uuid("dn-" + std::to_string(i));
    d.mutable_id()->set_ip("127.0.0.1");
    d.mutable_id()->set_xfer_port(9866 + i);
    d.mutable_id()->set_hostname("host" + std::to_string(i));
    d.set_live(true);
    fs.datanodes.push_back(d);
  }
}

TEST_CASE("fsck counts replicas on decommissioning and decommissioned DataNodes as Hadoop does", "[cli]") {
  ShellHarness h;
  AddTree(*h.fs);
  AddDatanodes(*h.fs);
  h.fs->datanodes[2].set_admin_state(proto::DECOMMISSION_IN_PROGRESS);
  // Every block: 2 live + 1 decommissioning = 3, as many as the replication: not under-replicated.
  auto r = h.Run({"fsck", "/data", "-files", "-blocks", "-replicaDetails"});
  CHECK(r.rc == 0);
  CHECK(r.out.find("/data/one 1366 bytes, replicated: replication=3, 1 block(s):  OK\n") != std::string::npos);
  CHECK(r.out.find("len=1366 Live_repl=2  [DatanodeInfoWithStorage[127.0.0.1:9866,dn-0,DISK](LIVE), "
                   "DatanodeInfoWithStorage[127.0.0.1:9867,dn-1,DISK](LIVE), "
                   "DatanodeInfoWithStorage[127.0.0.1:9868,dn-2,DISK](DECOMMISSIONING)]\n") != std::string::npos);
  CHECK(r.out.find(" Under-replicated blocks:\t0 (0.0 %)\n Mis-replicated blocks:\t\t0 (0.0 %)\n") !=
        std::string::npos);
  CHECK(r.out.find(" Missing replicas:\t\t0 (0.0 %)\n DecommissioningReplicas:\t4\n") != std::string::npos);
  CHECK(r.out.find("DecommissionedReplicas") == std::string::npos);

  // dn-1 decommissioned and dn-2's replicas gone: 1 live + 1 decommissioned of 3.
  h.fs->datanodes[1].set_admin_state(proto::DECOMMISSIONED);
  h.fs->datanodes[2].set_admin_state(proto::ADMIN_NORMAL);
  h.fs->max_live_replicas = 2;
  r = h.Run({"fsck", "/data"});
  CHECK(r.rc == 0);
  CHECK(r.out.find("/data/one:  Under replicated blk_") != std::string::npos);
  CHECK(r.out.find("Target Replicas is 3 but found 1 live replica(s), 1 decommissioned replica(s), 0 "
                   "decommissioning replica(s).\n") != std::string::npos);
  CHECK(r.out.find(" Under-replicated blocks:\t4 (100.0 %)\n") != std::string::npos);
  CHECK(r.out.find(" Missing replicas:\t\t4 (33.3 %)\n DecommissionedReplicas:\t4\n") != std::string::npos);
  CHECK(r.out.find(" Average block replication:\t2.0\n") != std::string::npos);

  // A fourth live replica makes a block over-replicated.
  h.fs->max_live_replicas = 3;
  h.fs->datanodes[1].set_admin_state(proto::ADMIN_NORMAL);
  h.fs->locations_hook = [](const std::string& path, std::vector<client::BlockLocation>* blocks) {
    if (path != "/data/one") return;
    proto::DatanodeId extra;
    extra.set_uuid("dn-9");
    extra.set_ip("127.0.0.2");
    extra.set_xfer_port(9866);
    (*blocks)[0].replicas.push_back(extra);
  };
  r = h.Run({"fsck", "/data"});
  CHECK(r.out.find(" Over-replicated blocks:\t1 (25.0 %)\n") != std::string::npos);
  CHECK(r.out.find("is HEALTHY") != std::string::npos);
}

TEST_CASE("admin decommission and recommission", "[cli]") {
  ShellHarness h;
  AddDatanodes(*h.fs);
  h.fs->datanodes[0].set_decommission_under_replicated(5);
  auto r = h.Run({"admin", "decommission", "127.0.0.1:9866"});
  CHECK(r.rc == 0);
  CHECK(r.out == "127.0.0.1:9866 (host0) is being decommissioned: 5 block(s) still to copy to other DataNodes; "
                 "`dfs admin report` shows the progress\n");
  CHECK(h.fs->datanodes[0].admin_state() == proto::DECOMMISSION_IN_PROGRESS);
  r = h.Run({"dfsadmin", "-decommission", "dn-0"});
  CHECK(r.out.find("is already being decommissioned: 5 block(s)") != std::string::npos);

  // Several at once; an unknown one fails alone, with the accepted forms.
  h.fs->datanodes[2].set_live(false);
  r = h.Run({"admin", "decommission", "nosuch:1", "dn-2"});
  CHECK(r.rc == 1);
  CHECK(r.err == "dfs: decommission nosuch:1: unknown DataNode 'nosuch:1': name it by its uuid, ip:xferport or "
                 "hostname:xferport\n");
  CHECK(r.out.find("127.0.0.1:9868 (host2) is dead, so it is decommissioned at once") != std::string::npos);
  CHECK(h.Run({"admin", "decommission"}).rc == 2);
  CHECK(h.Run({"admin", "decommission", "-x", "dn-1"}).rc == 2);

  // A warning when it cannot finish.
  h.fs->datanodes[1].set_decommission_note("2 block(s) need 3 replicas but only 2 DataNode(s) are in service");
  r = h.Run({"admin", "decommission", "dn-1"});
  CHECK(r.rc == 0);
  CHECK(r.out.find("\nWARNING: 2 block(s) need 3 replicas but only 2 DataNode(s) are in service\n") !=
        std::string::npos);

  r = h.Run({"admin", "recommission", "dn-1"});
  CHECK(r.rc == 0);
  CHECK(r.out.rfind("127.0.0.1:9867 (host1) is back in service", 0) == 0);
  CHECK(h.Run({"admin", "recommission", "dn-1"}).out == "127.0.0.1:9867 (host1) is already in service\n");
  CHECK(h.fs->log == std::vector<std::string>{"decommission 127.0.0.1:9866", "decommission dn-0",
                                              "decommission nosuch:1", "decommission dn-2", "decommission dn-1",
                                              "recommission dn-1", "recommission dn-1"});

  // -w polls the report until the node is decommissioned.
  int polls = 0;
  h.on_sleep = [&] {
    if (++polls == 2) h.fs->datanodes[1].set_admin_state(proto::DECOMMISSIONED);
    return true;
  };
  h.fs->datanodes[1].clear_decommission_note();
  r = h.Run({"admin", "decommission", "-w", "dn-1"});
  CHECK(r.rc == 0);
  CHECK(r.out.find("Waiting for the decommission to finish ..... done: safe to switch off\n") != std::string::npos);
  CHECK(h.sleeps == 2);
}

TEST_CASE("admin report shows each DataNode's decommission status and the replication counts", "[cli]") {
  ShellHarness h;
  AddDatanodes(*h.fs);
  h.fs->datanodes[1].set_admin_state(proto::DECOMMISSION_IN_PROGRESS);
  h.fs->datanodes[1].set_decommission_under_replicated(12);
  h.fs->datanodes[1].set_decommission_only_replicas(2);
  h.fs->datanodes[2].set_admin_state(proto::DECOMMISSIONED);
  h.fs->stats.set_under_replicated_blocks(12);
  h.fs->stats.set_corrupt_blocks(1);
  h.fs->stats.set_missing_blocks(3);
  h.fs->stats.set_missing_repl_one_blocks(2);
  h.fs->stats.set_highest_priority_blocks(4);
  h.fs->stats.set_pending_deletion_blocks(5);
  h.fs->stats.set_excess_replicas(6);
  h.fs->stats.set_total_blocks(40);
  h.fs->stats.set_decommissioning_datanodes(1);
  h.fs->stats.set_decommissioned_datanodes(1);
  auto r = h.Run({"admin", "report"});
  CHECK(r.rc == 0);
  CHECK(r.out.find("Replicated Blocks:\n"
                   "\tUnder replicated blocks: 12\n"
                   "\tBlocks with corrupt replicas: 1\n"
                   "\tMissing blocks: 3\n"
                   "\tMissing blocks (with replication factor 1): 2\n"
                   "\tLow redundancy blocks with highest priority to recover: 4\n"
                   "\tPending deletion blocks: 5\n"
                   "\tExcess replicas: 6\n"
                   "\tTotal blocks: 40\n") != std::string::npos);
  CHECK(r.out.find("Decommissioning: 1 datanode(s) in progress, 1 decommissioned\n") != std::string::npos);
  CHECK(r.out.find("Name: 127.0.0.1:9866 (host0)\nHostname: host0\nDecommission Status : Normal\n"
                   "Configured Capacity:") != std::string::npos);
  CHECK(r.out.find("Name: 127.0.0.1:9867 (host1)\nHostname: host1\nDecommission Status : Decommission in progress\n"
                   "Under replicated blocks: 12\nBlocks with no live replicas: 2\nConfigured Capacity:") !=
        std::string::npos);
  CHECK(r.out.find("Hostname: host2\nDecommission Status : Decommissioned\nConfigured Capacity:") !=
        std::string::npos);

  h.fs->datanodes[1].set_decommission_note("2 block(s) need 3 replicas but only 1 DataNode(s) are in service");
  r = h.Run({"dfsadmin", "-report", "-decommissioning"});
  CHECK(r.out.find("Decommissioning datanodes (1):\n\nName: 127.0.0.1:9867 (host1)\n") != std::string::npos);
  CHECK(r.out.find("Blocks with no live replicas: 2\nDecommission blocked: 2 block(s) need 3 replicas") !=
        std::string::npos);
  CHECK(r.out.find("host0") == std::string::npos);
  CHECK(r.out.find("Live datanodes") == std::string::npos);
}

TEST_CASE("setrep sets every file and -w waits for the replicas", "[cli]") {
  ShellHarness h;
  AddTree(*h.fs);
  auto r = h.Run({"setrep", "2", "/data"});
  CHECK(r.rc == 0);
  CHECK(r.out == "Replication 2 set: /data/one\nReplication 2 set: /data/two\n");
  CHECK(h.fs->At("/data/two").info.replication == 2);

  // Replicas appear only after two polls.
  h.fs->max_live_replicas = 1;
  int polls = 0;
  h.on_sleep = [&] {
    if (++polls == 2) h.fs->max_live_replicas = 3;
    return true;
  };
  r = h.Run({"setrep", "-w", "-R", "3", "/data/one"});
  CHECK(r.rc == 0);
  CHECK(r.out == "Replication 3 set: /data/one\nWaiting for /data/one ..... done\n");
  CHECK(h.sleeps == 2);

  // Decreasing: the extra replicas linger until the user gives up with Ctrl-C.
  h.fs->locations_hook = [](const std::string&, std::vector<client::BlockLocation>* blocks) {
    for (auto& b : *blocks) b.replicas.resize(3);
  };
  h.on_sleep = [] { return false; };
  r = h.Run({"setrep", "-w", "1", "/data/one"});
  CHECK(r.rc == 1);
  CHECK(r.out.find("WARNING: the waiting time may be long for DECREASING the number of replications.") !=
        std::string::npos);
  CHECK(h.Run({"setrep", "2", "/missing"}).rc == 1);
}

TEST_CASE("safemode get, enter, leave, wait", "[cli]") {
  ShellHarness h;
  CHECK(h.Run({"admin", "safemode", "get"}).out == "Safe mode is OFF\n");
  CHECK(h.Run({"admin", "safemode", "enter"}).out == "Safe mode is ON\n");
  CHECK(h.fs->safe_mode);
  CHECK(h.Run({"dfsadmin", "-safemode", "get"}).out == "Safe mode is ON\n");
  h.fs->safe_mode_gets_until_off = 3;
  auto r = h.Run({"admin", "safemode", "wait"});
  CHECK(r.rc == 0);
  CHECK(r.out == "Safe mode is OFF\n");
  CHECK(h.sleeps == 2);
  h.Run({"admin", "safemode", "enter"});
  CHECK(h.Run({"admin", "-safemode", "leave"}).out == "Safe mode is OFF\n");
  CHECK(h.Run({"admin", "safemode", "sideways"}).rc == 2);
  CHECK(h.Run({"admin", "frob"}).rc == 2);
}

}  // namespace
}  // namespace dfs::cli
