// Recovery of writes that did not finish, on an in-process MiniCluster:
// pipeline recovery (a DataNode of the write pipeline goes away mid-block) and
// lease recovery (the writer goes away). The same faults against real
// processes are in fault_*_test.cc.
#include <filesystem>
#include <set>

#include <catch2/catch.hpp>
#include <xxhash.h>

#include "datanode/block_store.h"
#include "datanode/datanode.h"
#include "tests/mini_cluster.h"
#include "tests/test_util.h"

using namespace dfs;
using namespace dfs::test;

namespace {

// Every block of the file has exactly n replicas on distinct DataNodes.
bool AllBlocksHave(client::FileSystem& fs, const std::string& path, size_t n) {
  auto blocks = fs.GetBlockLocations(path);
  if (!blocks.ok()) return false;
  for (const auto& b : *blocks) {
    std::set<std::string> uuids;
    for (const auto& r : b.replicas) uuids.insert(r.uuid());
    if (b.replicas.size() != n || uuids.size() != n) return false;
  }
  return true;
}

// Leases that expire in seconds, so lease recovery runs within a test.
MiniCluster::Options ShortLeases() {
  MiniCluster::Options o;
  o.num_datanodes = 3;
  o.conf = {{"dfs.heartbeat.interval", "200ms"},
            {"dfs.namenode.lease.soft-limit", "1s"},
            {"dfs.namenode.lease.hard-limit", "2s"}};
  return o;
}

bool WaitForClose(client::FileSystem& fs, const std::string& path) {
  return WaitFor([&] {
    auto i = fs.GetFileInfo(path);
    return i.ok() && !i->under_construction;
  });
}

size_t Temporaries(MiniCluster& mc) {
  size_t n = 0;
  for (int i = 0; i < mc.num_datanodes(); ++i) {
    if (mc.datanode(i)) n += mc.datanode(i)->store()->num_recoverable();
  }
  return n;
}

}  // namespace

TEST_CASE("a DataNode that leaves the write pipeline mid-block does not fail the write", "[recovery]") {
  MiniCluster::Options o;
  o.num_datanodes = 3;
  o.conf = {{"dfs.heartbeat.interval", "200ms"}, {"dfs.namenode.replication.interval", "200ms"}};
  auto mc = MiniCluster::Start(o);
  REQUIRE_OK(mc.status());
  auto fs = (*mc)->NewClient();
  const std::string data = RandomBytes((4 << 20) + 777, 7);  // 5 blocks
  auto out = fs->Create("/f.bin");
  REQUIRE_OK(out.status());
  const size_t half = (3 << 19) + 1000;  // 1.5 MiB and a bit: inside the second block
  for (size_t off = 0; off < half; off += 64 << 10) {
    REQUIRE_OK((*out)->Write(data.data() + off, std::min<size_t>(64 << 10, half - off)));
  }
  REQUIRE_OK((*out)->Flush());
  // Every pipeline has all three DataNodes: this one is in it.
  (*mc)->StopDataNode(1);
  for (size_t off = half; off < data.size(); off += 64 << 10) {
    REQUIRE_OK((*out)->Write(data.data() + off, std::min<size_t>(64 << 10, data.size() - off)));
  }
  REQUIRE_OK((*out)->Close());

  auto digest = DigestFile(*fs, "/f.bin");
  REQUIRE_OK(digest.status());
  CHECK(*digest == XXH3_64bits(data.data(), data.size()));
  // Back to three replicas of every block once the DataNode returns; its
  // replica of the recovered block has the old generation stamp and goes.
  REQUIRE_OK((*mc)->StartDataNode(1));
  CHECK(WaitFor([&] { return AllBlocksHave(*fs, "/f.bin", 3); }));
  digest = DigestFile(*fs, "/f.bin");
  REQUIRE_OK(digest.status());
  CHECK(*digest == XXH3_64bits(data.data(), data.size()));
}

TEST_CASE("a close waits for dfs.namenode.replication.min replicas", "[recovery]") {
  MiniCluster::Options o;
  o.num_datanodes = 2;
  o.conf = {{"dfs.heartbeat.interval", "200ms"}, {"dfs.namenode.replication.interval", "200ms"}};
  auto mc = MiniCluster::Start(o);
  REQUIRE_OK(mc.status());
  auto fs = (*mc)->NewClient();
  // Replication 1 needs one replica; replication 3 on two nodes needs two.
  client::CreateOptions one;
  one.replication = 1;
  REQUIRE_OK(WriteFile(*fs, "/one", RandomBytes(1000, 1), one));
  REQUIRE_OK(WriteFile(*fs, "/three", RandomBytes(1000, 2)));
  // With one DataNode left, a file of replication 2 cannot close. Its writer
  // gives up after 3 tries of the complete (a few milliseconds) instead of
  // about 20 s; the writes above keep the default, as a busy machine can take
  // longer than that to report a block.
  (*mc)->StopDataNode(1);
  auto impatient = (*mc)->NewClient({{"dfs.client.block.write.locateFollowingBlock.retries", "3"}});
  client::CreateOptions two;
  two.replication = 2;
  auto out = impatient->Create("/two", two);
  REQUIRE_OK(out.status());
  const std::string bytes = RandomBytes(1000, 3);
  Status s = (*out)->Write(bytes.data(), bytes.size());
  if (s.ok()) s = (*out)->Close();
  INFO(s.ToString());
  CHECK_FALSE(s.ok());
}

TEST_CASE("lease recovery closes the file of a vanished writer at the bytes it flushed", "[recovery]") {
  auto mc = MiniCluster::Start(ShortLeases());
  REQUIRE_OK(mc.status());
  const std::string data = RandomBytes((5 << 19) + 4321, 11);  // 2.5 MiB and a bit: the third block is partial
  {
    auto writer = (*mc)->NewClient();
    auto out = writer->Create("/vanished.bin");
    REQUIRE_OK(out.status());
    REQUIRE_OK((*out)->Write(data.data(), data.size()));
    REQUIRE_OK((*out)->Flush());  // acknowledged by every DataNode of the pipeline
    // The writer goes away without closing: its pipeline breaks, its lease is no longer renewed.
  }
  auto fs = (*mc)->NewClient();
  auto info = fs->GetFileInfo("/vanished.bin");
  REQUIRE_OK(info.status());
  CHECK(info->under_construction);
  CHECK(WaitForClose(*fs, "/vanished.bin"));
  info = fs->GetFileInfo("/vanished.bin");
  REQUIRE_OK(info.status());
  CHECK(info->length == data.size());
  auto got = ReadFile(*fs, "/vanished.bin");
  REQUIRE_OK(got.status());
  CHECK(XXH3_64bits(got->data(), got->size()) == XXH3_64bits(data.data(), data.size()));
  CHECK(WaitFor([&] { return AllBlocksHave(*fs, "/vanished.bin", 3); }));
  CHECK(Temporaries(**mc) == 0);
  // Free for a new writer.
  REQUIRE_OK(WriteFile(*fs, "/vanished.bin", "again", {.overwrite = true}));
  got = ReadFile(*fs, "/vanished.bin");
  REQUIRE_OK(got.status());
  CHECK(*got == "again");
}

TEST_CASE("lease recovery keeps a finished block that the writer never committed", "[recovery]") {
  auto mc = MiniCluster::Start(ShortLeases());
  REQUIRE_OK(mc.status());
  const std::string data = RandomBytes(1 << 20, 5);  // exactly one block
  {
    auto writer = (*mc)->NewClient();
    auto out = writer->Create("/exact.bin");
    REQUIRE_OK(out.status());
    REQUIRE_OK((*out)->Write(data.data(), data.size()));
    // The block is finished on the DataNodes, but only the next addBlock or
    // the close would have told the NameNode its length.
  }
  auto fs = (*mc)->NewClient();
  CHECK(WaitForClose(*fs, "/exact.bin"));
  auto got = ReadFile(*fs, "/exact.bin");
  REQUIRE_OK(got.status());
  CHECK(got->size() == data.size());
  CHECK(*got == data);
}

TEST_CASE("lease recovery waits for DataNodes that do not answer, then closes at what is left", "[recovery]") {
  auto mc = MiniCluster::Start(ShortLeases());
  REQUIRE_OK(mc.status());
  const std::string data = RandomBytes((5 << 19) + 99, 13);  // two full blocks and half of a third
  {
    auto writer = (*mc)->NewClient();
    auto out = writer->Create("/unanswered.bin");
    REQUIRE_OK(out.status());
    REQUIRE_OK((*out)->Write(data.data(), data.size()));
    REQUIRE_OK((*out)->Flush());
  }
  // Every DataNode goes away (the NameNode still counts them live): the
  // recovery cannot ask anyone and must wait, not close the file.
  for (int i = 0; i < 3; ++i) (*mc)->StopDataNode(i);
  auto fs = (*mc)->NewClient();
  REQUIRE_FALSE(WaitFor([&] { return !fs->GetFileInfo("/unanswered.bin")->under_construction; },
                        std::chrono::seconds(5)));
  // They come back; a restart keeps the unfinished replicas of the third block
  // (cut to what their checksums verify) for recovery, so the file closes with
  // every byte the writer flushed.
  for (int i = 0; i < 3; ++i) REQUIRE_OK((*mc)->StartDataNode(i));
  CHECK(WaitForClose(*fs, "/unanswered.bin"));
  auto got = ReadFile(*fs, "/unanswered.bin");
  REQUIRE_OK(got.status());
  CHECK(got->size() == data.size());
  CHECK(*got == data);
  CHECK(Temporaries(**mc) == 0);
}
