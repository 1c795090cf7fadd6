// Readers of a file being written: they see what the pipeline acknowledged of
// its last block (HDFS's visible length), learnt from a DataNode, including a
// partial chunk whose stored checksum the writer keeps rewriting.
#include <atomic>
#include <thread>

#include <catch2/catch.hpp>

#include "datanode/block_store.h"
#include "datanode/datanode.h"
#include "tests/mini_cluster.h"
#include "tests/test_util.h"

using namespace dfs;
using namespace dfs::test;

namespace {

// Reads from the stream's position to its length.
Result<std::string> ReadOn(client::InputStream& in) {
  std::string out;
  char buf[100000];
  while (in.Position() < in.Length()) {
    auto n = in.Read(buf, sizeof buf);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    out.append(buf, *n);
  }
  return out;
}

// Refreshes `in` (as tail -f does), expects the file to have `length`
// bytes, and expects the read from the stream's position on to return `expect`.
void ExpectReadOn(client::InputStream& in, uint64_t length, const std::string& expect) {
  REQUIRE_OK(in.Refresh());
  CHECK(in.Length() == length);
  auto got = ReadOn(in);
  REQUIRE_OK(got.status());
  CHECK(*got == expect);
}

uint64_t CorruptBlocks(client::FileSystem& fs) {
  auto st = fs.GetStats();
  return st.ok() ? st->corrupt_blocks() : ~0ull;
}

}  // namespace

TEST_CASE("visible length: a reader sees what the writer flushed, inside a chunk and across blocks",
          "[cluster][visible]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  auto writer = (*mc)->NewClient();
  auto reader = (*mc)->NewClient();
  const std::string data = RandomBytes((3 << 20) + 777, 11);
  auto out = writer->Create("/growing.log");
  REQUIRE_OK(out.status());

  // Nothing written yet: an empty file, not an error.
  auto in = reader->Open("/growing.log");
  REQUIRE_OK(in.status());
  CHECK((*in)->Length() == 0);

  // 1.5 blocks and 100 bytes: the last block ends inside a chunk.
  size_t at = (3 << 19) + 100;
  REQUIRE_OK((*out)->Write(data.data(), at));
  REQUIRE_OK((*out)->Flush());
  ExpectReadOn(**in, at, data.substr(0, at));

  // 50 more bytes in the same chunk: its checksum changed on every DataNode.
  REQUIRE_OK((*out)->Write(data.data() + at, 50));
  at += 50;
  REQUIRE_OK((*out)->Flush());
  ExpectReadOn(**in, at, data.substr(at - 50, 50));
  // pread of a range that ends in the partial chunk.
  std::string piece(1000, '\0');
  auto n = (*in)->PRead(at - 1000, piece.data(), piece.size());
  REQUIRE_OK(n.status());
  CHECK(*n == 1000);
  CHECK(piece == data.substr(at - 1000, 1000));

  // Into the fourth block, then a new reader opening mid-write.
  REQUIRE_OK((*out)->Write(data.data() + at, (3 << 20) + 10 - at));
  at = (3 << 20) + 10;
  REQUIRE_OK((*out)->Sync());
  auto late = reader->Open("/growing.log");
  REQUIRE_OK(late.status());
  CHECK((*late)->Length() == at);
  ExpectReadOn(**late, at, data.substr(0, at));
  // The NameNode's own length counts completed blocks only.
  auto info = reader->GetFileInfo("/growing.log");
  REQUIRE_OK(info.status());
  CHECK(info->under_construction);
  CHECK(info->length == (3u << 20));

  // Closed: the same bytes, now from finalized replicas.
  REQUIRE_OK((*out)->Write(data.data() + at, data.size() - at));
  REQUIRE_OK((*out)->Close());
  ExpectReadOn(**in, data.size(), data.substr((3 << 19) + 150));  // on from where the first reader had stopped
  CHECK(CorruptBlocks(*reader) == 0);
}

TEST_CASE("visible length: a reader following a writer that flushes odd sizes sees a prefix, never a bad checksum",
          "[cluster][visible]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  auto writer = (*mc)->NewClient();
  auto reader = (*mc)->NewClient();
  const std::string data = RandomBytes((5 << 19) + 12345, 12);  // 2.5 blocks
  // With one replica, a checksum the reader gets wrong has no other replica to hide behind.
  const uint32_t replication = GENERATE(3u, 1u);
  INFO("replication " << replication);
  client::CreateOptions opts;
  opts.replication = replication;
  auto out = writer->Create("/followed.log", opts);
  REQUIRE_OK(out.status());
  auto in = reader->Open("/followed.log");
  REQUIRE_OK(in.status());

  // The writer appends pieces of odd sizes, each flushed, so that most end
  // inside a chunk whose stored checksum the next piece rewrites while the
  // reader reads it. No Catch assertions on this thread (Catch 2 is not thread-safe).
  Status write_status;
  std::thread w([&] {
    size_t at = 0, piece = 1;
    while (at < data.size() && write_status.ok()) {
      piece = piece * 7 % 90001 + 1;
      const size_t n = std::min(piece, data.size() - at);
      write_status = (*out)->Write(data.data() + at, n);
      if (write_status.ok()) write_status = (*out)->Flush();
      at += n;
    }
    if (write_status.ok()) write_status = (*out)->Close();
  });
  std::string seen;
  Status read_status;
  size_t refreshes = 0;
  // Follows until the whole file is seen or the writer failed (with a deadline).
  const bool done = WaitFor(
      [&] {
        read_status = (*in)->Refresh();
        ++refreshes;
        if (read_status.ok()) {
          auto got = ReadOn(**in);
          if (got.ok()) {
            seen += *got;
          } else {
            read_status = got.status();
          }
        }
        return !read_status.ok() || seen.size() >= data.size();
      },
      std::chrono::seconds(60));
  w.join();
  REQUIRE_OK(write_status);
  REQUIRE_OK(read_status);
  CHECK(done);
  CHECK(seen.size() == data.size());
  CHECK(seen == data.substr(0, seen.size()));
  CHECK(refreshes > 1);
  CHECK(CorruptBlocks(*reader) == 0);
}

TEST_CASE("visible length: a reader reads on across a pipeline recovery and after its writer vanished",
          "[cluster][visible][recovery]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  auto reader = (*mc)->NewClient();
  const std::string data = RandomBytes((5 << 19) + 333, 13);  // 2.5 blocks
  size_t at = (3 << 19) + 100;
  {
    auto writer = (*mc)->NewClient();
    auto out = writer->Create("/broken.log");
    REQUIRE_OK(out.status());
    REQUIRE_OK((*out)->Write(data.data(), at));
    REQUIRE_OK((*out)->Flush());
    auto in = reader->Open("/broken.log");
    REQUIRE_OK(in.status());
    CHECK((*in)->Length() == at);

    // A DataNode of the pipeline goes: the writer rebuilds it under a new
    // generation stamp, and the reader finds the survivors.
    (*mc)->StopDataNode(1);
    REQUIRE_OK((*out)->Write(data.data() + at, 5000));
    at += 5000;
    REQUIRE_OK((*out)->Flush());
    ExpectReadOn(**in, at, data.substr(0, at));
    // The writer goes away without closing.
  }
  // Its DataNodes keep the unfinished replicas for recovery and still serve
  // what was acknowledged: a new reader sees the same bytes, and no more.
  CHECK(WaitFor([&] {
    return (*mc)->datanode(0)->store()->num_recoverable() == 1 && (*mc)->datanode(2)->store()->num_recoverable() == 1;
  }));
  auto in = reader->Open("/broken.log");
  REQUIRE_OK(in.status());
  CHECK((*in)->Length() == at);
  ExpectReadOn(**in, at, data.substr(0, at));
  auto info = reader->GetFileInfo("/broken.log");
  REQUIRE_OK(info.status());
  CHECK(info->under_construction);  // the lease recovery has not run yet (hard limit: 5 minutes)
  CHECK(CorruptBlocks(*reader) == 0);
}

TEST_CASE("visible length: when no DataNode of the block being written answers, a reader sees the completed blocks",
          "[cluster][visible]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  auto writer = (*mc)->NewClient();
  auto reader = (*mc)->NewClient();
  const std::string data = RandomBytes((1 << 20) + 5000, 14);
  client::CreateOptions one;
  one.replication = 1;
  auto out = writer->Create("/unanswered.log", one);
  REQUIRE_OK(out.status());
  REQUIRE_OK((*out)->Write(data.data(), data.size()));
  REQUIRE_OK((*out)->Flush());
  auto in = reader->Open("/unanswered.log");
  REQUIRE_OK(in.status());
  CHECK((*in)->Length() == data.size());

  // The one DataNode of the second block goes away (the NameNode still counts it live).
  auto blocks = reader->GetBlockLocations("/unanswered.log", 0, 0);
  REQUIRE_OK(blocks.status());
  REQUIRE(blocks->size() == 2);
  REQUIRE(blocks->back().replicas.size() == 1);
  const std::string uuid = blocks->back().replicas[0].uuid();
  int stopped = -1;
  for (int i = 0; i < (*mc)->num_datanodes(); ++i) {
    if ((*mc)->datanode(i)->uuid() == uuid) stopped = i;
  }
  REQUIRE(stopped >= 0);
  (*mc)->StopDataNode(stopped);
  // The length falls back to the first, completed block: no error, the client logs why.
  REQUIRE_OK((*in)->Refresh());
  CHECK((*in)->Length() == (1u << 20));
  auto late = reader->Open("/unanswered.log");
  REQUIRE_OK(late.status());
  CHECK((*late)->Length() == (1u << 20));
}
