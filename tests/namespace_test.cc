// Namespace semantics through the client library: mkdir, create, delete,
// rename, listing, leases, and refusal of hostile names and malformed frames.
#include <thread>

#include <catch2/catch.hpp>

#include "common/rpc/frame.h"
#include "common/socket.h"
#include "namenode/namenode.h"
#include "namenode/namesystem.h"
#include "proto/namenode.pb.h"
#include "proto/rpc.pb.h"
#include "datanode/block_store.h"
#include "datanode/datanode.h"
#include "tests/mini_cluster.h"
#include "tests/raw_rpc.h"
#include "tests/test_util.h"

using namespace dfs;
using namespace dfs::test;

namespace {

std::unique_ptr<MiniCluster> StartCluster(int datanodes = 1,
                                          std::vector<std::pair<std::string, std::string>> conf = {}) {
  MiniCluster::Options o;
  o.num_datanodes = datanodes;
  o.conf = std::move(conf);
  o.conf.emplace_back("dfs.replication", std::to_string(std::min(datanodes, 3)));
  auto mc = MiniCluster::Start(o);
  REQUIRE_OK(mc.status());
  return std::move(mc).value();
}

}  // namespace

TEST_CASE("mkdir, create and delete follow Hadoop's rules", "[namespace]") {
  auto mc = StartCluster();
  auto fs = mc->NewClient();
  REQUIRE_OK(fs->Mkdirs("/a/b/c", 0755, true));
  CHECK_CODE(fs->Mkdirs("/x/y", 0755, false), kNotFound);
  CHECK_CODE(fs->Mkdirs("/a/b", 0755, false), kAlreadyExists);
  REQUIRE_OK(fs->Mkdirs("/a/b", 0755, true));  // -p on an existing directory is fine

  REQUIRE_OK(WriteFile(*fs, "/a/f", "one"));
  CHECK_CODE(WriteFile(*fs, "/a/f", "two"), kAlreadyExists);
  client::CreateOptions over;
  over.overwrite = true;
  REQUIRE_OK(WriteFile(*fs, "/a/f", "two", over));
  CHECK(*ReadFile(*fs, "/a/f") == "two");
  CHECK_CODE(WriteFile(*fs, "/a/b", "x", over), kIsADirectory);
  CHECK_CODE(WriteFile(*fs, "/a/f/g", "x"), kNotADirectory);
  REQUIRE_OK(WriteFile(*fs, "/new/parents/file", "p"));  // parents created, as hdfs put does

  CHECK_CODE(fs->Delete("/a", false), kNotEmpty);
  CHECK_CODE(fs->Delete("/", true), kInvalidArgument);
  CHECK_CODE(fs->Delete("/nope", true), kNotFound);
  REQUIRE_OK(fs->Delete("/a", true));
  CHECK(fs->GetFileInfo("/a").status().IsNotFound());
  CHECK(fs->GetFileInfo("/a/b/c").status().IsNotFound());

  auto root = fs->GetFileInfo("/");
  REQUIRE_OK(root.status());
  CHECK(root->is_dir);
  CHECK(fs->GetFileInfo("/tmp")->mode == 01777);
}

TEST_CASE("rename moves files and directories atomically", "[namespace]") {
  auto mc = StartCluster();
  auto fs = mc->NewClient();
  REQUIRE_OK(fs->Mkdirs("/src/sub"));
  REQUIRE_OK(WriteFile(*fs, "/src/sub/f", "data"));
  REQUIRE_OK(fs->Mkdirs("/dst"));
  REQUIRE_OK(fs->Rename("/src", "/dst/moved"));
  CHECK(*ReadFile(*fs, "/dst/moved/sub/f") == "data");
  CHECK(fs->GetFileInfo("/src").status().IsNotFound());
  CHECK(fs->GetFileInfo("/dst")->children == 1);

  CHECK_CODE(fs->Rename("/dst", "/dst/moved/inside"), kInvalidArgument);
  CHECK_CODE(fs->Rename("/nope", "/x"), kNotFound);
  CHECK_CODE(fs->Rename("/dst/moved/sub/f", "/missing/dir/f"), kNotFound);

  // Replacing a file, as editors do when they save.
  REQUIRE_OK(WriteFile(*fs, "/doc.txt", "old"));
  REQUIRE_OK(WriteFile(*fs, "/doc.txt.swp", "new"));
  CHECK_CODE(fs->Rename("/doc.txt.swp", "/doc.txt"), kAlreadyExists);
  REQUIRE_OK(fs->Rename("/doc.txt.swp", "/doc.txt", true));
  CHECK(*ReadFile(*fs, "/doc.txt") == "new");
  CHECK(fs->GetFileInfo("/doc.txt.swp").status().IsNotFound());
  CHECK_CODE(fs->Rename("/doc.txt", "/dst", true), kIsADirectory);

  // Renames within one directory keep its entry count right.
  REQUIRE_OK(fs->Rename("/doc.txt", "/doc2.txt"));
  auto root = fs->ListAll("/");
  REQUIRE_OK(root.status());
  CHECK(root->size() == 4);  // tmp, user, dst, doc2.txt
  CHECK(fs->GetFileInfo("/")->children == 4);
}

TEST_CASE("a large directory lists page by page, sorted", "[namespace]") {
  auto mc = StartCluster(1, {{"dfs.ls.limit", "100"}});
  auto fs = mc->NewClient();
  REQUIRE_OK(fs->Mkdirs("/big"));
  constexpr int kFiles = 1050;
  std::vector<std::thread> threads;
  std::vector<Status> failed(4);  // checked after the joins: Catch asserts on the test's thread only
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto c = mc->NewClient();
      for (int i = t; i < kFiles && failed[t].ok(); i += 4) {
        auto out = c->Create("/big/f" + std::to_string(100000 + i));
        failed[t] = out.ok() ? (*out)->Close() : out.status();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const Status& s : failed) REQUIRE_OK(s);
  auto all = fs->ListAll("/big");
  REQUIRE_OK(all.status());
  REQUIRE(all->size() == kFiles);
  for (int i = 0; i < kFiles; ++i) CHECK((*all)[i].name == "f" + std::to_string(100000 + i));
  CHECK(fs->GetFileInfo("/big")->children == kFiles);
  auto sum = fs->GetContentSummary("/");
  REQUIRE_OK(sum.status());
  CHECK(sum->file_count == kFiles);
}

TEST_CASE("concurrent creates share WAL syncs (group commit), as GetStats reports", "[namespace]") {
  auto mc = StartCluster(1);
  auto before = mc->NewClient()->GetStats();
  REQUIRE_OK(before.status());
  constexpr int kThreads = 8, kEach = 100;
  std::vector<std::thread> threads;
  std::vector<Status> failed(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto c = mc->NewClient();
      for (int i = 0; i < kEach && failed[t].ok(); ++i) {
        failed[t] = c->Mkdirs("/g/" + std::to_string(t) + "/" + std::to_string(i));
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const Status& s : failed) REQUIRE_OK(s);
  auto after = mc->NewClient()->GetStats();
  REQUIRE_OK(after.status());
  const uint64_t syncs = after->journal_syncs() - before->journal_syncs();
  const uint64_t transactions = after->journal_transactions() - before->journal_transactions();
  INFO("WAL syncs for " << kThreads * kEach << " mkdirs: " << syncs);
  CHECK(syncs < kThreads * kEach);
  // Each mkdir is one mutation (the parents /g and /g/<t> are more, made once).
  CHECK(transactions >= static_cast<uint64_t>(kThreads * kEach));
  CHECK(transactions <= static_cast<uint64_t>(kThreads * kEach + kThreads + 1));
  CHECK(after->journal_sync_micros() > before->journal_sync_micros());
  CHECK(mc->NewClient()->ListAll("/g/7")->size() == kEach);
}

TEST_CASE("hostile names are refused with a clear error and the NameNode keeps serving", "[namespace]") {
  auto mc = StartCluster();
  auto fs = mc->NewClient();
  for (std::string bad : {std::string("/a//b"), std::string("/a/./b"), std::string("/a/../b"), std::string("/a/"),
                          std::string("/nul\0byte", 9), "/" + std::string(256, 'n'), std::string("relative")}) {
    auto s = fs->Mkdirs(bad);
    INFO(s.ToString());
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("invalid path"));
    CHECK(WriteFile(*fs, bad, "x").code() == StatusCode::kInvalidArgument);
    CHECK(fs->Rename("/tmp", bad).code() == StatusCode::kInvalidArgument);
  }
  std::string deep;
  while (deep.size() <= 4096) deep += "/dir";
  CHECK_CODE(fs->Mkdirs(deep), kInvalidArgument);
  REQUIRE_OK(fs->Mkdirs("/still/works"));
}

TEST_CASE("malformed RPC frames get an error and a closed connection, and others are still served", "[namespace]") {
  auto mc = StartCluster();
  auto connect = [&] {
    auto s = Socket::Connect("127.0.0.1", mc->namenode()->rpc_port(), std::chrono::seconds(5));
    REQUIRE(s.ok());
    return std::move(s).value();
  };
  auto closed = [](Socket& s) {
    char c;
    return !s.ReadFull(&c, 1, std::chrono::seconds(5)).ok();
  };
  {  // A frame longer than the limit.
    Socket s = connect();
    char len[4];
    PutBE32(len, 0x7fffffff);
    REQUIRE_OK(s.WriteFull(len, 4, std::chrono::seconds(5)));
    proto::ResponseHeader h;
    REQUIRE_OK(ReadResponseFrame(s, &h));
    CHECK(h.code() == proto::PROTOCOL_ERROR);
    CHECK(closed(s));
  }
  {  // A header length past the frame, then garbage.
    Socket s = connect();
    char frame[12];
    PutBE32(frame, 8);
    PutBE32(frame + 4, 1000);
    std::memcpy(frame + 8, "junk", 4);
    REQUIRE_OK(s.WriteFull(frame, sizeof frame, std::chrono::seconds(5)));
    proto::ResponseHeader h;
    REQUIRE_OK(ReadResponseFrame(s, &h));
    CHECK(h.code() == proto::PROTOCOL_ERROR);
    CHECK(closed(s));
  }
  {  // An unknown method and a body that does not parse: errors, connection stays.
    Socket s = connect();
    proto::RequestHeader rh;
    rh.set_call_id(7);
    rh.set_method(9999);
    std::string f = rpc::EncodeFrame(rh, "");
    REQUIRE_OK(s.WriteFull(f.data(), f.size(), std::chrono::seconds(5)));
    proto::ResponseHeader h;
    REQUIRE_OK(ReadResponseFrame(s, &h));
    CHECK(h.call_id() == 7);
    CHECK(h.code() == proto::NOT_SUPPORTED);
    rh.set_call_id(8);
    rh.set_method(proto::MKDIRS);
    f = rpc::EncodeFrame(rh, "\xff\xff\xff\xff garbage");
    REQUIRE_OK(s.WriteFull(f.data(), f.size(), std::chrono::seconds(5)));
    REQUIRE_OK(ReadResponseFrame(s, &h));
    CHECK(h.call_id() == 8);
    CHECK(h.code() == proto::PROTOCOL_ERROR);
  }
  {  // A client that vanishes mid-frame.
    Socket s = connect();
    char frame[6];
    PutBE32(frame, 100);
    REQUIRE_OK(s.WriteFull(frame, sizeof frame, std::chrono::seconds(5)));
  }
  auto fs = mc->NewClient();
  REQUIRE_OK(fs->Mkdirs("/alive"));
}

TEST_CASE("one writer per file: a second writer is refused while the lease is held", "[namespace]") {
  auto mc = StartCluster();
  auto a = mc->NewClient();
  auto b = mc->NewClient();
  auto out = a->Create("/locked");
  REQUIRE_OK(out.status());
  REQUIRE_OK((*out)->Write("abc", 3));
  client::CreateOptions over;
  over.overwrite = true;
  auto second = b->Create("/locked", over);
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == StatusCode::kLeaseConflict);
  CHECK_THAT(second.status().message(), Catch::Contains("being written by another client"));
  REQUIRE_OK((*out)->Close());
  CHECK(*ReadFile(*b, "/locked") == "abc");
  REQUIRE_OK(WriteFile(*b, "/locked", "mine", over));
}

TEST_CASE("setrep raises and lowers the replica count of existing blocks", "[namespace]") {
  auto mc = StartCluster(3);
  auto fs = mc->NewClient();
  client::CreateOptions one;
  one.replication = 1;
  const std::string data = RandomBytes((2 << 20) + 10, 11);
  REQUIRE_OK(WriteFile(*fs, "/r", data, one));
  auto replicas = [&] {
    size_t min = 99, max = 0;
    auto blocks = fs->GetBlockLocations("/r");
    REQUIRE(blocks.ok());
    for (const auto& b : *blocks) {
      min = std::min(min, b.replicas.size());
      max = std::max(max, b.replicas.size());
    }
    return std::make_pair(min, max);
  };
  CHECK(replicas() == std::make_pair(size_t{1}, size_t{1}));
  REQUIRE_OK(fs->SetReplication("/r", 3));
  CHECK(WaitFor([&] { return replicas() == std::make_pair(size_t{3}, size_t{3}); }));
  REQUIRE_OK(fs->SetReplication("/r", 2));
  CHECK(WaitFor([&] { return replicas() == std::make_pair(size_t{2}, size_t{2}); }));
  CHECK(*ReadFile(*fs, "/r") == data);
}

TEST_CASE("a DataNode from another cluster is refused with a message saying how to fix it", "[namespace]") {
  auto a = StartCluster(1);
  auto b = StartCluster(1);
  // Point a DataNode whose data directory belongs to cluster A at cluster B.
  a->StopDataNode(0);
  Config c = b->ClientConfig();
  REQUIRE_OK(c.Set("dfs.datanode.address", "127.0.0.1:0"));
  REQUIRE_OK(c.Set("dfs.datanode.data.dir", a->datanode_dir(0)));
  auto dn = datanode::DataNode::Create(c);
  REQUIRE_OK(dn.status());
  REQUIRE_OK((*dn)->Start());
  CHECK(WaitFor([&] { return !(*dn)->fatal_error().ok(); }));
  auto err = (*dn)->fatal_error();
  CHECK(err.code() == StatusCode::kPermissionDenied);
  CHECK_THAT(err.message(), Catch::Contains("belongs to cluster") && Catch::Contains("dfs.datanode.data.dir"));
  (*dn)->Shutdown();
}

TEST_CASE("deleted files' replicas are removed from the DataNodes", "[namespace]") {
  auto mc = StartCluster(3);
  auto fs = mc->NewClient();
  REQUIRE_OK(WriteFile(*fs, "/gone", RandomBytes(3 << 20, 1)));
  auto replicas_on_disk = [&] {
    size_t n = 0;
    for (int i = 0; i < 3; ++i) n += mc->datanode(i)->store()->AllReplicas().size();
    return n;
  };
  CHECK(replicas_on_disk() == 9);
  REQUIRE_OK(fs->Delete("/gone", false));
  CHECK(WaitFor([&] { return replicas_on_disk() == 0; }));
}
