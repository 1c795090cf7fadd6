// hsync against real processes: what a writer synced survives a kill -9 of
// every DataNode of its pipeline, and lease recovery closes the file with it.
#include <signal.h>

#include <catch2/catch.hpp>

#include "tests/process_cluster.h"
#include "tests/test_util.h"

using namespace dfs;
using namespace dfs::test;

TEST_CASE("hsync: bytes a writer synced survive a kill -9 of every DataNode, and lease recovery closes the file "
          "with them",
          "[fault][hsync]") {
  ProcessCluster::Options o;
  o.conf = {{"dfs.namenode.lease.soft-limit", "1s"}, {"dfs.namenode.lease.hard-limit", "3s"}};
  auto pc = ProcessCluster::Start(o);
  REQUIRE_OK(pc.status());
  ProcessCluster& c = **pc;
  const std::string data = RandomBytes((2 << 20) + (700 << 10) + 777, 51);
  const size_t synced = (2 << 20) + (300 << 10) + 777;  // two blocks and part of the third
  {
    auto writer = c.NewClient();
    auto out = writer->Create("/synced");
    REQUIRE_OK(out.status());
    REQUIRE_OK((*out)->Write(data.data(), synced));
    REQUIRE_OK((*out)->Sync());
    // More bytes that nobody acknowledged: some may reach the DataNodes, or none.
    REQUIRE_OK((*out)->Write(data.data() + synced, data.size() - synced));
    // Every DataNode of the pipeline (there are three) dies at once; the
    // third block exists only as replicas being written under tmp/.
    for (int i = 0; i < c.num_datanodes(); ++i) REQUIRE_OK(c.KillDataNode(i, SIGKILL));
    // The writer goes away too: its lease is no longer renewed.
  }
  for (int i = 0; i < c.num_datanodes(); ++i) REQUIRE_OK(c.StartDataNode(i));
  REQUIRE_OK(c.WaitForDatanodes(3));

  auto fs = c.NewClient();
  client::FileInfo closed;
  const bool recovered = WaitFor([&] {
    auto st = fs->GetFileInfo("/synced");
    if (!st.ok() || st->under_construction) return false;
    closed = *st;
    return true;
  }, std::chrono::seconds(60));
  INFO(c.DumpLogs());
  REQUIRE(recovered);
  WARN("closed at " << closed.length << " bytes; " << synced << " were synced, " << data.size() << " written");
  CHECK(closed.length >= synced);
  CHECK(closed.length <= data.size());
  auto bytes = ReadFile(*fs, "/synced");
  REQUIRE_OK(bytes.status());
  CHECK(bytes->size() == closed.length);
  CHECK(*bytes == data.substr(0, bytes->size()));
  auto fsck = c.RunDfs({"fsck", "/"});
  REQUIRE_OK(fsck.status());
  INFO(fsck->ToString());
  CHECK(fsck->out.find("is HEALTHY") != std::string::npos);
  REQUIRE_OK(c.CheckDaemonsAlive());
}
