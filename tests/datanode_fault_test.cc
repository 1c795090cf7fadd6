// DataNode faults on an in-process MiniCluster: a replica rotting on disk found
// by the block scanner and replaced, a data dir failing with I/O errors while
// the DataNode carries on (or stops, when none is left), and a DataNode at its
// capacity limit that gets no new blocks and keeps nothing half-written.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <filesystem>
#include <thread>

#include "common/block_writer.h"
#include "common/checksum.h"
#include "datanode/block_scanner.h"
#include "datanode/block_store.h"
#include "datanode/datanode.h"
#include "namenode/block_manager.h"
#include "namenode/namenode.h"
#include "tests/mini_cluster.h"
#include "tests/test_util.h"

using namespace dfs;
using namespace dfs::test;
namespace fs = std::filesystem;

namespace {

std::string ReplicaPath(const std::string& dir, const proto::Block& b) {
  return fmt::format("{}/current/subdir{:02}/blk_{}_{}", dir, b.id() % datanode::kSubdirs, b.id(), b.gen_stamp());
}

// Whether the DataNode holds `id` and every chunk of it matches its checksum.
bool HoldsGoodReplica(datanode::DataNode* dn, uint64_t id) {
  auto b = dn->store()->GetReplica(BlockId(id));
  if (!b) return false;
  auto r = dn->store()->OpenForRead(*b);
  if (!r.ok()) return false;
  const uint32_t bpc = (*r)->bytes_per_checksum();
  std::string data((*r)->length(), '\0');
  std::vector<uint64_t> sums(NumChunks(data.size(), bpc));
  if (!(*r)->ReadData(0, data.size(), data.data()).ok()) return false;
  if (!(*r)->ReadChecksums(0, sums.size(), sums.data()).ok()) return false;
  return !VerifyChecksums(data.data(), data.size(), bpc, sums.data()).has_value();
}

std::vector<uint64_t> BlocksOf(client::FileSystem& fs, const std::string& path) {
  auto locs = fs.GetBlockLocations(path);
  REQUIRE(locs.ok());
  std::vector<uint64_t> ids;
  for (const auto& l : *locs) ids.push_back(l.block.value());
  return ids;
}

size_t CountFiles(const std::string& dir) {
  size_t n = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    n += it->is_regular_file() ? 1 : 0;
  }
  return n;
}

// A cluster whose DataNodes scan every replica a few times a second.
MiniCluster::Options ScanningCluster(int num_datanodes) {
  MiniCluster::Options o;
  o.num_datanodes = num_datanodes;
  o.conf = {{"dfs.datanode.scan.period", "300ms"}, {"dfs.block.scanner.volume.bytes.per.second", "100m"}};
  return o;
}

uint32_t ReportedFailedVolumes(MiniCluster& c, datanode::DataNode* dn) {
  for (const auto& info : c.namenode()->block_manager()->DatanodeReport()) {
    if (info.id().uuid() == dn->uuid()) return info.failed_volumes();
  }
  return 0;
}

}  // namespace

TEST_CASE("the block scanner finds a rotten replica and the NameNode replaces it with a good copy",
          "[datanode][block_scanner][slow]") {
  auto o = ScanningCluster(3);
  auto mc = MiniCluster::Start(o);
  REQUIRE_OK(mc.status());
  MiniCluster& c = **mc;
  auto fs = c.NewClient();
  const std::string data = RandomBytes((3 << 20) / 2, 1);
  REQUIRE_OK(WriteFile(*fs, "/f", data));
  const auto ids = BlocksOf(*fs, "/f");
  REQUIRE(ids.size() == 2);
  REQUIRE(WaitFor([&] { return c.namenode()->block_manager()->LiveReplicas(BlockId(ids[1])) == 3; }));

  datanode::DataNode* dn = c.datanode(0);
  auto b = dn->store()->GetReplica(BlockId(ids[1]));
  REQUIRE(b);
  {
    int fd = ::open(ReplicaPath(c.datanode_dir(0), *b).c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    char ch = 0;
    REQUIRE(::pread(fd, &ch, 1, 1000) == 1);
    ch = static_cast<char>(ch ^ 1);
    REQUIRE(::pwrite(fd, &ch, 1, 1000) == 1);
    ::close(fd);
  }
  REQUIRE_FALSE(HoldsGoodReplica(dn, ids[1]));
  REQUIRE(WaitFor([&] { return dn->scanner()->counters().corrupt_found >= 1; }));
  // Reported, deleted once a good copy existed elsewhere, and copied back:
  // the only DataNode without a replica is the one whose replica went bad.
  REQUIRE(WaitFor([&] {
    return HoldsGoodReplica(dn, ids[1]) && c.namenode()->block_manager()->LiveReplicas(BlockId(ids[1])) == 3;
  }));
  for (int i = 1; i < 3; ++i) CHECK(HoldsGoodReplica(c.datanode(i), ids[1]));
  auto back = ReadFile(*fs, "/f");
  REQUIRE_OK(back.status());
  CHECK(*back == data);
}

TEST_CASE("a data dir that returns I/O errors is taken out; the DataNode carries on and its replicas come back",
          "[datanode][volume][slow]") {
  auto o = ScanningCluster(4);
  // We need this DataNode's dirs before the cluster starts; MiniCluster names them after its own temp dir.
  TempDir dirs;
  const std::string d0 = dirs.path() + "/d0", d1 = dirs.path() + "/d1";
  o.datanode_conf[0] = {{"dfs.datanode.data.dir", d0 + "," + d1}};
  auto mc = MiniCluster::Start(o);
  REQUIRE_OK(mc.status());
  MiniCluster& c = **mc;
  datanode::DataNode* dn = c.datanode(0);
  auto fs = c.NewClient();
  client::CreateOptions everywhere;
  everywhere.replication = 4;  // every block on DataNode 0, alternating between its two dirs
  std::vector<uint64_t> ids;
  for (int f = 0; f < 6; ++f) {
    const std::string path = fmt::format("/v/{}", f);
    REQUIRE_OK(WriteFile(*fs, path, RandomBytes(300000, f), everywhere));
    for (uint64_t id : BlocksOf(*fs, path)) ids.push_back(id);
  }
  REQUIRE(WaitFor([&] { return dn->store()->num_replicas() == ids.size(); }));
  size_t on_d1 = 0;
  for (uint64_t id : ids) on_d1 += fs::exists(ReplicaPath(d1, *dn->store()->GetReplica(BlockId(id))));
  REQUIRE(on_d1 > 0);
  REQUIRE(on_d1 < ids.size());

  // d1's disk starts failing; the scanner's next read of it meets EIO.
  dn->store()->InjectFault(d1, EIO);
  REQUIRE(WaitFor([&] { return dn->store()->failed_volumes() == 1; }));
  CHECK(dn->store()->volumes() == std::vector<std::string>{d0});
  CHECK(dn->store()->num_replicas() == ids.size() - on_d1);
  // It says so in the report, keeps serving, and the lost replicas are copied
  // back (to its healthy dir: it is the only node without them).
  REQUIRE(WaitFor([&] { return ReportedFailedVolumes(c, dn) == 1; }));
  REQUIRE(WaitFor([&] {
    for (uint64_t id : ids) {
      if (c.namenode()->block_manager()->LiveReplicas(BlockId(id)) != 4 || !HoldsGoodReplica(dn, id)) return false;
    }
    return true;
  }));
  for (uint64_t id : ids) CHECK(fs::exists(ReplicaPath(d0, *dn->store()->GetReplica(BlockId(id)))));
  CHECK(dn->fatal_error().ok());
  CHECK(dn->registered());
  REQUIRE_OK(WriteFile(*fs, "/v/after", RandomBytes(200000, 99), everywhere));
  for (int f = 0; f < 6; ++f) {
    auto back = ReadFile(*fs, fmt::format("/v/{}", f));
    REQUIRE_OK(back.status());
    CHECK(*back == RandomBytes(300000, f));
  }
}

TEST_CASE("a DataNode stops with a clear error when its data dirs fail beyond what it tolerates",
          "[datanode][volume][slow]") {
  auto o = ScanningCluster(4);
  TempDir dirs;
  std::string expect;
  SECTION("its only data dir") {
    o.datanode_conf[0] = {{"dfs.datanode.data.dir", dirs.path() + "/d0"}};
    expect = "every data dir has failed";
  }
  SECTION("one of two, with dfs.datanode.failed.volumes.tolerated = 0") {
    o.datanode_conf[0] = {{"dfs.datanode.data.dir", dirs.path() + "/d0," + dirs.path() + "/d1"},
                          {"dfs.datanode.failed.volumes.tolerated", "0"}};
    expect = "dfs.datanode.failed.volumes.tolerated = 0";
  }
  auto mc = MiniCluster::Start(o);
  REQUIRE_OK(mc.status());
  MiniCluster& c = **mc;
  datanode::DataNode* dn = c.datanode(0);
  auto fs = c.NewClient();
  client::CreateOptions everywhere;
  everywhere.replication = 4;
  for (int f = 0; f < 2; ++f) REQUIRE_OK(WriteFile(*fs, fmt::format("/s/{}", f), RandomBytes(100000, f), everywhere));
  REQUIRE(WaitFor([&] { return dn->store()->num_replicas() == 2; }));
  // One dir goes bad (the two replicas are one in each dir, when there are two).
  dn->store()->InjectFault(dn->store()->volumes()[0], EIO);
  REQUIRE(WaitFor([&] { return !dn->fatal_error().ok(); }));
  CHECK_THAT(dn->fatal_error().message(), Catch::Contains(expect));
  // Its last block report already told the NameNode what it no longer has
  // (when nothing was left) or the dead interval will; the files stay readable.
  for (int f = 0; f < 2; ++f) {
    auto back = ReadFile(*fs, fmt::format("/s/{}", f));
    REQUIRE_OK(back.status());
    CHECK(*back == RandomBytes(100000, f));
  }
}

TEST_CASE(
    "a DataNode at its capacity limit gets no new blocks, the others take them, and it keeps nothing "
    "half-written after a restart",
    "[datanode][capacity][slow]") {
  MiniCluster::Options o;
  o.num_datanodes = 4;
  o.datanode_conf[3] = {{"dfs.datanode.capacity", "2560k"}};  // two and a half 1 MiB blocks
  auto mc = MiniCluster::Start(o);
  REQUIRE_OK(mc.status());
  MiniCluster& c = **mc;
  datanode::DataNode* small = c.datanode(3);
  CHECK(small->store()->capacity() == 2560u << 10);

  // Writers at once, so addBlocks come in bursts between heartbeats.
  auto fs = c.NewClient();
  std::vector<std::thread> writers;
  std::vector<Status> results(4);
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      for (int f = 0; f < 3 && results[w].ok(); ++f) {
        results[w] = WriteFile(*fs, fmt::format("/cap/{}-{}", w, f), RandomBytes(1 << 20, w * 10 + f));
      }
    });
  }
  for (auto& t : writers) t.join();
  for (const auto& s : results) REQUIRE_OK(s);
  // Every block has its three replicas; the small node holds at most what fits.
  for (int w = 0; w < 4; ++w) {
    for (int f = 0; f < 3; ++f) {
      for (uint64_t id : BlocksOf(*fs, fmt::format("/cap/{}-{}", w, f))) {
        CHECK(WaitFor([&] { return c.namenode()->block_manager()->LiveReplicas(BlockId(id)) == 3; }));
      }
    }
  }
  CHECK(small->store()->num_replicas() <= 2);
  CHECK(small->store()->dfs_used() <= 2560u << 10);
  REQUIRE(WaitFor([&] {
    for (const auto& info : c.namenode()->block_manager()->DatanodeReport()) {
      if (info.id().uuid() == small->uuid()) return info.remaining() < (1u << 20);
    }
    return false;
  }));

  // A block sent straight at it (as a stale NameNode view could) fails at the
  // limit with an error naming the node and the key, and leaves no temporary.
  proto::DatanodeId target;
  target.set_uuid(small->uuid());
  target.set_ip("127.0.0.1");
  target.set_xfer_port(small->xfer_port());
  BlockWriter::Options wo;
  wo.bytes_per_checksum = 64 << 10;
  wo.packet_size = 256 << 10;
  wo.max_packets_in_flight = 8;
  wo.socket_timeout = std::chrono::seconds(10);
  wo.client_name = "test-client";
  proto::Block b;
  b.set_id(999999);
  b.set_gen_stamp(1);
  Status ws;
  {
    auto w = BlockWriter::Open(b, {target}, wo);
    REQUIRE_OK(w.status());
    const std::string big = RandomBytes(3 << 20, 7);
    for (size_t off = 0; off < big.size() && ws.ok(); off += 256 << 10) ws = (*w)->Write(big.data() + off, 256 << 10);
    if (ws.ok()) ws = (*w)->Finish().status();
  }
  CHECK(ws.code() == StatusCode::kNoSpace);
  CHECK_THAT(ws.message(), Catch::Contains("DataNode 127.0.0.1:" + std::to_string(small->xfer_port())) &&
                               Catch::Contains("dfs.datanode.capacity"));
  const std::string tmp = c.datanode_dir(3) + "/tmp";
  CHECK(WaitFor([&] { return CountFiles(tmp) == 0; }));
  CHECK_FALSE(small->store()->GetReplica(BlockId(999999)));

  const size_t kept = small->store()->num_replicas();
  c.StopDataNode(3);
  REQUIRE_OK(c.StartDataNode(3));
  CHECK(CountFiles(tmp) == 0);
  CHECK(c.datanode(3)->store()->num_replicas() == kept);
  CHECK(CountFiles(c.datanode_dir(3) + "/current") == 2 * kept);
}
