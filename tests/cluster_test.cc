// End-to-end tests of the file system on an in-process MiniCluster.
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include <catch2/catch.hpp>
#include <xxhash.h>

#include "datanode/block_store.h"
#include "datanode/datanode.h"
#include "namenode/block_manager.h"
#include "namenode/namenode.h"
#include "tests/mini_cluster.h"
#include "tests/test_util.h"

using namespace dfs;
using namespace dfs::test;


TEST_CASE("multi-block file round-trips byte-identical with 3 replicas on distinct DataNodes", "[cluster]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  auto fs = (*mc)->NewClient();
  const std::string data = RandomBytes((5 << 20) + 12345, 42);  // 5 MiB and a bit: 6 blocks
  REQUIRE_OK(WriteFile(*fs, "/data/file.bin", data));

  auto info = fs->GetFileInfo("/data/file.bin");
  REQUIRE_OK(info.status());
  CHECK(info->length == data.size());
  CHECK(info->replication == 3);
  CHECK_FALSE(info->under_construction);

  auto digest = DigestFile(*fs, "/data/file.bin");
  REQUIRE_OK(digest.status());
  CHECK(*digest == XXH3_64bits(data.data(), data.size()));

  auto blocks = fs->GetBlockLocations("/data/file.bin");
  REQUIRE_OK(blocks.status());
  REQUIRE(blocks->size() == 6);
  uint64_t offset = 0;
  for (const auto& b : *blocks) {
    CHECK(b.offset == offset);
    offset += b.length;
    std::set<std::string> nodes;
    for (const auto& r : b.replicas) nodes.insert(r.uuid());
    CHECK(nodes.size() == 3);
  }
  CHECK(offset == data.size());
}

TEST_CASE("pread reads any range", "[cluster]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  auto fs = (*mc)->NewClient();
  const std::string data = RandomBytes((3 << 20) + 777, 7);
  REQUIRE_OK(WriteFile(*fs, "/f", data));
  auto in = fs->Open("/f");
  REQUIRE_OK(in.status());
  std::mt19937 rng(1);
  for (int i = 0; i < 50; ++i) {
    uint64_t off = rng() % data.size();
    size_t len = std::min<size_t>(rng() % (2 << 20), data.size() - off);
    std::string buf(len, '\0');
    auto r = (*in)->PRead(off, buf.data(), len);
    REQUIRE_OK(r.status());
    REQUIRE(*r == len);
    REQUIRE(buf == data.substr(off, len));
  }
}

TEST_CASE("concurrent writers to different files", "[cluster]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  constexpr int kWriters = 6;
  std::vector<std::thread> threads;
  std::vector<Status> results(kWriters);
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] {
      auto fs = (*mc)->NewClient();
      results[i] = WriteFile(*fs, "/w/" + std::to_string(i), RandomBytes((2 << 20) + i * 1000, i));
    });
  }
  for (auto& t : threads) t.join();
  auto fs = (*mc)->NewClient();
  for (int i = 0; i < kWriters; ++i) {
    REQUIRE_OK(results[i]);
    auto got = ReadFile(*fs, "/w/" + std::to_string(i));
    REQUIRE_OK(got.status());
    CHECK(*got == RandomBytes((2 << 20) + i * 1000, i));
  }
}

TEST_CASE("a NameNode restart keeps the namespace and every file stays readable", "[cluster]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  std::string big = RandomBytes((3 << 20) + 5, 3);
  {
    auto fs = (*mc)->NewClient();
    REQUIRE_OK(fs->Mkdirs("/a/b/c"));
    REQUIRE_OK(WriteFile(*fs, "/a/b/small", "hello"));
    REQUIRE_OK(WriteFile(*fs, "/a/big", big));
    REQUIRE_OK(fs->Rename("/a/b/small", "/a/b/c/moved"));
    REQUIRE_OK(fs->Delete("/a/big", false));
    REQUIRE_OK(WriteFile(*fs, "/a/big2", big));
  }
  REQUIRE_OK((*mc)->RestartNameNode());
  REQUIRE_OK((*mc)->WaitForDatanodes(3));
  auto fs = (*mc)->NewClient();
  CHECK(fs->GetFileInfo("/a/b/c")->is_dir);
  CHECK(fs->GetFileInfo("/a/big").status().IsNotFound());
  CHECK(fs->GetFileInfo("/a/b/small").status().IsNotFound());
  CHECK(*ReadFile(*fs, "/a/b/c/moved") == "hello");
  CHECK(*ReadFile(*fs, "/a/big2") == big);
}

TEST_CASE("a flipped byte in one replica is detected and the read still returns the right data", "[cluster]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  auto fs = (*mc)->NewClient();
  const std::string data = RandomBytes(300000, 9);
  REQUIRE_OK(WriteFile(*fs, "/c", data));
  auto blocks = fs->GetBlockLocations("/c");
  REQUIRE_OK(blocks.status());
  const auto& b = blocks->front();
  // Corrupt the replica the client will read first.
  const std::string uuid = b.replicas.front().uuid();
  int victim = -1;
  for (int i = 0; i < (*mc)->num_datanodes(); ++i) {
    if ((*mc)->datanode(i)->uuid() == uuid) victim = i;
  }
  REQUIRE(victim >= 0);
  std::string replica;
  for (auto& e : std::filesystem::recursive_directory_iterator((*mc)->datanode_dir(victim))) {
    std::string name = e.path().filename().string();
    if (name.rfind(BlockName(b.block) + "_", 0) == 0 && name.find(".meta") == std::string::npos) replica = e.path();
  }
  REQUIRE_FALSE(replica.empty());
  {
    std::fstream f(replica, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1234);
    char c = static_cast<char>(data[1234] ^ 0x40);
    f.write(&c, 1);
  }
  auto got = ReadFile(*fs, "/c");
  REQUIRE_OK(got.status());
  CHECK(*got == data);
  // The bad replica was reported and is replaced (re-replicated, then deleted).
  CHECK(WaitFor([&] {
    proto::GetStatsResponse st;
    (*mc)->namenode()->block_manager()->FillStats(&st);
    return st.under_replicated_blocks() == 0 && st.corrupt_blocks() == 0;
  }));
}

TEST_CASE("reads fail over to another replica when a DataNode is down", "[cluster]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  auto fs = (*mc)->NewClient();
  const std::string data = RandomBytes((4 << 20) + 99, 21);
  REQUIRE_OK(WriteFile(*fs, "/f", data));
  (*mc)->StopDataNode(1);  // not yet declared dead: the NameNode still lists its replicas
  auto got = ReadFile(*fs, "/f");
  REQUIRE_OK(got.status());
  CHECK(*got == data);
}

TEST_CASE("a restarted DataNode rescans its replicas and reports them", "[cluster]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  auto fs = (*mc)->NewClient();
  const std::string data = RandomBytes((3 << 20) + 1, 22);
  REQUIRE_OK(WriteFile(*fs, "/f", data));
  const size_t before = (*mc)->datanode(0)->store()->AllReplicas().size();
  CHECK(before == 4);
  (*mc)->StopDataNode(0);
  REQUIRE_OK((*mc)->StartDataNode(0));
  CHECK((*mc)->datanode(0)->store()->AllReplicas().size() == before);
  CHECK(WaitFor([&] {
    auto blocks = fs->GetBlockLocations("/f");
    if (!blocks.ok()) return false;
    for (const auto& b : *blocks) {
      if (b.replicas.size() != 3) return false;
    }
    return true;
  }));
  (*mc)->StopDataNode(1);
  (*mc)->StopDataNode(2);
  auto got = ReadFile(*fs, "/f");  // only the restarted node is left
  REQUIRE_OK(got.status());
  CHECK(*got == data);
}
