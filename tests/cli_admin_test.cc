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
  CHECK(r.out.find("Target Replicas is 3 but found 1 live replica(s).") != std::string::npos);
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
