// BlockManager on its own: replication scheduling without any DataNode process.
#include <catch2/catch.hpp>

#include "namenode/block_manager.h"
#include "tests/test_util.h"

using namespace dfs;
using namespace dfs::namenode;

namespace {

proto::HeartbeatRequest Stats(const std::string& uuid) {
  proto::HeartbeatRequest s;
  s.set_uuid(uuid);
  s.set_capacity(1ull << 40);
  s.set_remaining(1ull << 40);
  return s;
}

// Copies handed to `uuid` in one heartbeat.
std::vector<proto::BlockTransfer> TransfersFor(BlockManager& bm, const std::string& uuid) {
  proto::HeartbeatResponse resp;
  REQUIRE(bm.Heartbeat(Stats(uuid), &resp));
  std::vector<proto::BlockTransfer> out;
  for (const auto& c : resp.commands()) {
    if (c.action() == proto::BlockCommand::REPLICATE) out.insert(out.end(), c.transfers().begin(), c.transfers().end());
  }
  return out;
}

}  // namespace

TEST_CASE("a DataNode is never asked for more copies at once than dfs.namenode.replication.max-streams",
          "[block_manager]") {
  BlockManager::Options o;
  o.max_streams = 2;
  BlockManager bm(o);
  for (int i = 0; i < 4; ++i) {
    proto::DatanodeId id;
    id.set_uuid("dn" + std::to_string(i));
    id.set_xfer_port(static_cast<uint32_t>(9866 + i));
    REQUIRE_OK(bm.Register(id, Stats(id.uuid()), "127.0.0.1").status());
  }
  // Ten blocks that want 3 replicas and have one, all on dn0.
  std::vector<proto::Block> held;
  for (uint64_t b = 1; b <= 10; ++b) {
    bm.AddBlock(BlockId(b), InodeId(100), 1, 3);
    bm.CommitBlock(BlockId(b), 1000);
    proto::Block pb;
    pb.set_id(b);
    pb.set_gen_stamp(1);
    pb.set_num_bytes(1000);
    held.push_back(pb);
  }
  REQUIRE_OK(bm.FullBlockReport("dn0", held));
  bm.LeaveSafeMode();

  bm.ComputeReplicationWork();
  auto first = TransfersFor(bm, "dn0");
  REQUIRE(first.size() == 2);
  // The copies are under way: later passes must not pile more onto dn0.
  bm.ComputeReplicationWork();
  bm.ComputeReplicationWork();
  CHECK(TransfersFor(bm, "dn0").empty());
  // One block's copies arrive: one stream frees up.
  for (const auto& target : first[0].targets()) {
    REQUIRE_OK(bm.IncrementalBlockReport(target.uuid(), {first[0].block()}, {}));
  }
  bm.ComputeReplicationWork();
  CHECK(TransfersFor(bm, "dn0").size() == 1);
}

TEST_CASE("a block that has landed stops counting as a whole block against its DataNode's room",
          "[block_manager]") {
  BlockManager bm(BlockManager::Options{});
  constexpr uint64_t kBlock = 128ull << 20;
  proto::DatanodeId id;
  id.set_uuid("dn0");
  id.set_xfer_port(9866);
  auto stats = Stats("dn0");
  stats.set_remaining(3 * kBlock + 4096);  // room for three blocks
  REQUIRE_OK(bm.Register(id, stats, "127.0.0.1").status());
  bm.LeaveSafeMode();
  // Three small files' blocks are placed there; a fourth does not fit...
  for (uint64_t b = 1; b <= 3; ++b) {
    REQUIRE(bm.ChooseTargets(1, "", {}, kBlock).ok());
    bm.AddBlock(BlockId(b), InodeId(100 + b), 1, 1);
  }
  auto full = bm.ChooseTargets(1, "", {}, kBlock);
  CHECK(full.status().code() == StatusCode::kNoSpace);
  CHECK_THAT(full.status().message(), Catch::Contains("1 without room"));
  // ...until they land with 10 bytes each, before any heartbeat.
  for (uint64_t b = 1; b <= 3; ++b) {
    proto::Block pb;
    pb.set_id(b);
    pb.set_gen_stamp(1);
    pb.set_num_bytes(10);
    REQUIRE_OK(bm.IncrementalBlockReport("dn0", {pb}, {}));
  }
  CHECK(bm.ChooseTargets(1, "", {}, kBlock).ok());
}

TEST_CASE("a block's pipeline stands for its locations until it is committed and a replica is reported",
          "[block_manager][visible]") {
  BlockManager bm(BlockManager::Options{});
  std::vector<proto::DatanodeId> ids;
  for (int i = 0; i < 4; ++i) {
    proto::DatanodeId id;
    id.set_uuid("dn" + std::to_string(i));
    id.set_xfer_port(static_cast<uint32_t>(9866 + i));
    REQUIRE_OK(bm.Register(id, Stats(id.uuid()), "127.0.0.1").status());
    ids.push_back(id);
  }
  const auto uuids = [&](BlockId b) {
    bool corrupt = false;
    std::set<std::string> out;
    for (const auto& d : bm.Locations(b, "127.0.0.1", &corrupt)) out.insert(d.uuid());
    return out;
  };
  bm.AddBlock(BlockId(7), InodeId(100), 1, 3, {ids[0], ids[2], ids[3]});
  // Being written: readers of the file find it on its pipeline.
  CHECK(uuids(BlockId(7)) == std::set<std::string>{"dn0", "dn2", "dn3"});
  // Committed (the writer moved on to the next block) before any DataNode
  // reported it: still there, not nowhere.
  bm.CommitBlock(BlockId(7), 1000);
  CHECK(uuids(BlockId(7)) == std::set<std::string>{"dn0", "dn2", "dn3"});
  // The first report: from now on the reported replicas only.
  proto::Block pb;
  pb.set_id(7);
  pb.set_gen_stamp(1);
  pb.set_num_bytes(1000);
  REQUIRE_OK(bm.IncrementalBlockReport("dn2", {pb}, {}));
  CHECK(uuids(BlockId(7)) == std::set<std::string>{"dn2"});
}
