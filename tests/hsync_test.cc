// OutputStream::Sync (hsync) on an in-process MiniCluster: every DataNode of
// the pipeline fdatasyncs the replica before the writer hears back, on an
// empty stream, after a block boundary, with a slow or failing disk. What a
// synced replica is worth after a kill -9 is in fault_sync_test.cc.
#include <cerrno>
#include <chrono>

#include <catch2/catch.hpp>
#include <xxhash.h>

#include "datanode/block_store.h"
#include "datanode/datanode.h"
#include "tests/mini_cluster.h"
#include "tests/test_util.h"

using namespace dfs;
using namespace dfs::test;
using Clock = std::chrono::steady_clock;

namespace {

// fdatasyncs served by every DataNode of the cluster so far.
uint64_t Syncs(MiniCluster& mc) {
  uint64_t n = 0;
  for (int i = 0; i < mc.num_datanodes(); ++i) {
    if (mc.datanode(i)) n += mc.datanode(i)->store()->sync_count();
  }
  return n;
}

}  // namespace

TEST_CASE("hsync: Sync returns once every DataNode synced, and another client reads the bytes after the close",
          "[cluster][hsync]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  auto fs = (*mc)->NewClient();
  const std::string data = RandomBytes((2 << 20) + 300000, 3);  // three blocks, the last one partial
  auto out = fs->Create("/synced.bin");
  REQUIRE_OK(out.status());

  // A partial packet in the middle of the first block: one fdatasync per DataNode.
  REQUIRE_OK((*out)->Write(data.data(), 100000));
  REQUIRE_OK((*out)->Sync());
  CHECK(Syncs(**mc) == 3);
  CHECK((*out)->Position() == 100000);
  // Across a block boundary and into the third block.
  REQUIRE_OK((*out)->Write(data.data() + 100000, (2 << 20) - 100000 + 4321));
  REQUIRE_OK((*out)->Sync());
  CHECK(Syncs(**mc) == 6);
  REQUIRE_OK((*out)->Write(data.data() + (2 << 20) + 4321, data.size() - (2 << 20) - 4321));
  REQUIRE_OK((*out)->Close());

  auto reader = (*mc)->NewClient();
  auto got = ReadFile(*reader, "/synced.bin");
  REQUIRE_OK(got.status());
  CHECK(got->size() == data.size());
  CHECK(XXH3_64bits(got->data(), got->size()) == XXH3_64bits(data.data(), data.size()));
}

TEST_CASE("hsync: on an empty stream, right after a block filled up, twice in a row and after a Flush",
          "[cluster][hsync]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  auto fs = (*mc)->NewClient();
  const std::string data = RandomBytes((1 << 20) + 70000, 4);
  auto out = fs->Create("/edges.bin");
  REQUIRE_OK(out.status());
  // Nothing written: no block, no pipeline, nothing to sync.
  REQUIRE_OK((*out)->Sync());
  CHECK(Syncs(**mc) == 0);
  // Exactly one block: it was finished (and finalized) by the Write itself.
  REQUIRE_OK((*out)->Write(data.data(), 1 << 20));
  REQUIRE_OK((*out)->Sync());
  CHECK(Syncs(**mc) == 0);
  // The second block: a partial packet, then an empty sync packet twice.
  REQUIRE_OK((*out)->Write(data.data() + (1 << 20), 1000));
  REQUIRE_OK((*out)->Sync());
  CHECK(Syncs(**mc) == 3);
  REQUIRE_OK((*out)->Sync());
  CHECK(Syncs(**mc) == 6);
  REQUIRE_OK((*out)->Write(data.data() + (1 << 20) + 1000, 50000));
  REQUIRE_OK((*out)->Flush());
  REQUIRE_OK((*out)->Sync());  // everything was sent already: an empty packet carries the flag
  CHECK(Syncs(**mc) == 9);
  // The next packet starts inside a chunk whose sum the sync left partial.
  REQUIRE_OK((*out)->Write(data.data() + (1 << 20) + 51000, data.size() - (1 << 20) - 51000));
  REQUIRE_OK((*out)->Close());
  auto got = ReadFile(*fs, "/edges.bin");
  REQUIRE_OK(got.status());
  CHECK(*got == data);

  // A file that never gets a byte: Sync and Close work, and it is empty.
  auto empty = fs->Create("/empty");
  REQUIRE_OK(empty.status());
  REQUIRE_OK((*empty)->Sync());
  REQUIRE_OK((*empty)->Close());
  auto info = fs->GetFileInfo("/empty");
  REQUIRE_OK(info.status());
  CHECK(info->length == 0);
}

TEST_CASE("hsync: the ack waits for the slowest DataNode's fdatasync, a Flush does not", "[cluster][hsync]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  auto fs = (*mc)->NewClient();
  const std::string data = RandomBytes(200000, 5);
  auto out = fs->Create("/slow.bin");
  REQUIRE_OK(out.status());
  REQUIRE_OK((*out)->Write(data.data(), 1000));
  REQUIRE_OK((*out)->Flush());  // the pipeline is up
  // Every pipeline holds all three DataNodes; one of them has a slow disk.
  constexpr auto kDelay = std::chrono::milliseconds(600);
  (*mc)->datanode(1)->store()->InjectSyncDelay(kDelay);
  auto t0 = Clock::now();
  REQUIRE_OK((*out)->Write(data.data() + 1000, 50000));
  REQUIRE_OK((*out)->Flush());
  CHECK(Clock::now() - t0 < kDelay);
  t0 = Clock::now();
  REQUIRE_OK((*out)->Write(data.data() + 51000, 50000));
  REQUIRE_OK((*out)->Sync());
  CHECK(Clock::now() - t0 >= kDelay);
  CHECK(Syncs(**mc) == 3);
  (*mc)->datanode(1)->store()->InjectSyncDelay(std::chrono::milliseconds(0));
  REQUIRE_OK((*out)->Write(data.data() + 101000, data.size() - 101000));
  REQUIRE_OK((*out)->Close());
  auto got = ReadFile(*fs, "/slow.bin");
  REQUIRE_OK(got.status());
  CHECK(*got == data);
}

TEST_CASE("hsync: a DataNode whose fdatasync fails leaves the pipeline and the Sync succeeds on the others",
          "[cluster][hsync]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  auto fs = (*mc)->NewClient();
  const std::string data = RandomBytes(300000, 6);
  auto out = fs->Create("/failing.bin");
  REQUIRE_OK(out.status());
  REQUIRE_OK((*out)->Write(data.data(), 100000));
  REQUIRE_OK((*out)->Flush());
  // The sync packet is empty (everything was flushed), so only the sync meets
  // the fault. EACCES is not a disk error: the volume stays in service.
  (*mc)->datanode(2)->store()->InjectFault((*mc)->datanode_dir(2), EACCES);
  REQUIRE_OK((*out)->Sync());
  // The others synced on the rebuilt pipeline (and maybe on the broken one too:
  // the packet had gone downstream before the failing node tried).
  auto syncs = [&](int i) { return (*mc)->datanode(i)->store()->sync_count(); };
  CHECK(syncs(2) == 0);
  const uint64_t before0 = syncs(0), before1 = syncs(1);
  CHECK(before0 >= 1);
  CHECK(before1 >= 1);
  (*mc)->datanode(2)->store()->InjectFault((*mc)->datanode_dir(2), 0);
  REQUIRE_OK((*out)->Write(data.data() + 100000, data.size() - 100000));
  REQUIRE_OK((*out)->Sync());
  CHECK(syncs(0) == before0 + 1);  // the rebuilt pipeline is the two others
  CHECK(syncs(1) == before1 + 1);
  CHECK(syncs(2) == 0);
  REQUIRE_OK((*out)->Close());
  auto got = ReadFile(*fs, "/failing.bin");
  REQUIRE_OK(got.status());
  CHECK(*got == data);
}
