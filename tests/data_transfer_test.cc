// The data path end to end: in-process XferServers on loopback forming write
// pipelines, BlockWriter/BlockReader, and what the server does with bad input.
#include "common/data_transfer.h"

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>

#include "tests/mini_cluster.h"
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "common/block_reader.h"
#include "common/block_writer.h"
#include "common/checksum.h"
#include "datanode/block_store.h"
#include "datanode/xfer_server.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using dfs::Millis;
using dfs::Socket;
using dfs::StatusCode;
using dfs::datanode::BlockStore;
using dfs::datanode::XferServer;

namespace {

using dfs::test::TempDir;

// Polls `cond` until it holds or `limit` passes.
template <typename F>
bool Eventually(F cond, Millis limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

dfs::proto::Block Blk(uint64_t id, uint64_t gs, uint64_t len = 0) {
  dfs::proto::Block b;
  b.set_id(id);
  b.set_gen_stamp(gs);
  b.set_num_bytes(len);
  return b;
}

using dfs::test::RandomBytes;

struct Node {
  std::unique_ptr<BlockStore> store;
  std::unique_ptr<XferServer> server;
  dfs::proto::DatanodeId id;
  std::mutex mu;
  std::vector<dfs::proto::Block> received;

  size_t num_received() {
    std::lock_guard<std::mutex> l(mu);
    return received.size();
  }
};

struct Cluster {
  TempDir root;
  std::vector<std::unique_ptr<Node>> nodes;

  explicit Cluster(int n, int max_threads = 32, Millis timeout = 10s, bool sync = false) {
    for (int i = 0; i < n; ++i) {
      auto node = std::make_unique<Node>();
      BlockStore::Options so;
      so.dirs = {root.path() + "/dn" + std::to_string(i)};
      so.sync_on_close = sync;
      auto s = BlockStore::Open(so);
      REQUIRE(s.ok());
      node->store = std::move(s).value();
      XferServer::Options xo;
      xo.max_threads = max_threads;
      xo.socket_timeout = timeout;
      Node* raw = node.get();
      node->server = std::make_unique<XferServer>(node->store.get(), xo, [raw](const dfs::proto::Block& b) {
        std::lock_guard<std::mutex> l(raw->mu);
        raw->received.push_back(b);
      });
      REQUIRE(node->server->Start().ok());
      node->id.set_uuid("dn-" + std::to_string(i));
      node->id.set_ip("127.0.0.1");
      node->id.set_xfer_port(node->server->port());
      nodes.push_back(std::move(node));
    }
  }
  ~Cluster() {
    for (auto& n : nodes) n->server->Shutdown();
  }
  std::vector<dfs::proto::DatanodeId> Targets(std::initializer_list<int> idx) const {
    std::vector<dfs::proto::DatanodeId> t;
    for (int i : idx) t.push_back(nodes[static_cast<size_t>(i)]->id);
    return t;
  }
};

dfs::BlockWriter::Options WriterOptions() {
  dfs::BlockWriter::Options o;
  o.bytes_per_checksum = 512;
  o.packet_size = 16 << 10;
  o.max_packets_in_flight = 8;
  o.socket_timeout = 10s;
  o.client_name = "test-client";
  return o;
}

dfs::BlockReader::Options ReaderOptions() {
  dfs::BlockReader::Options o;
  o.socket_timeout = 10s;
  o.client_name = "test-client";
  return o;
}

// Writes `data` as one block through `targets` in pieces of random size.
uint64_t WriteBlock(const dfs::proto::Block& b, const std::vector<dfs::proto::DatanodeId>& targets,
                    const std::string& data, uint64_t seed, bool flush_midway = false) {
  auto w = dfs::BlockWriter::Open(b, targets, WriterOptions());
  REQUIRE(w.ok());
  std::mt19937_64 rng(seed);
  size_t off = 0;
  bool flushed = false;
  while (off < data.size()) {
    size_t n = std::min<size_t>(data.size() - off, 1 + rng() % 40000);
    REQUIRE((*w)->Write(data.data() + off, n).ok());
    off += n;
    if (flush_midway && !flushed && off > data.size() / 2) {
      REQUIRE((*w)->Flush().ok());
      CHECK((*w)->bytes_acked() == off);
      flushed = true;
    }
  }
  auto len = (*w)->Finish();
  REQUIRE(len.ok());
  return *len;
}

dfs::Result<std::string> ReadRange(const dfs::proto::DatanodeId& dn, const dfs::proto::Block& b, uint64_t off,
                                   uint64_t len, size_t bufsize = 7000) {
  DFS_ASSIGN_OR_RETURN(auto r, dfs::BlockReader::Open(dn, b, off, len, ReaderOptions()));
  std::string out;
  std::string buf(bufsize, '\0');
  for (;;) {
    DFS_ASSIGN_OR_RETURN(size_t n, r->Read(buf.data(), buf.size()));
    if (n == 0) break;
    out.append(buf.data(), n);
  }
  return out;
}

}  // namespace

TEST_CASE("data transfer: a 3-node pipeline writes a block every node reads back", "[data_transfer]") {
  Cluster c(3);
  const uint64_t seed = std::random_device{}();
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  const size_t size = 300000 + rng() % 700000;  // many packets, not chunk-aligned
  const std::string data = RandomBytes(size, seed);
  const auto b = Blk(1001, 5);
  for (bool flush : {false, true}) {
    auto blk = flush ? Blk(1002, 5) : b;
    CHECK(WriteBlock(blk, c.Targets({0, 1, 2}), data, seed, flush) == size);
    for (auto& n : c.nodes) {
      REQUIRE(Eventually([&] { return n->num_received() == (flush ? 2u : 1u); }));
      auto rep = n->store->GetReplica(dfs::BlockId(blk.id()));
      REQUIRE(rep.has_value());
      CHECK(rep->num_bytes() == size);
      CHECK(rep->gen_stamp() == 5);
      auto all = ReadRange(n->id, blk, 0, 0);
      REQUIRE(all.ok());
      CHECK(*all == data);
      for (int i = 0; i < 15; ++i) {
        uint64_t off = rng() % size;
        uint64_t len = 1 + rng() % (size - off);
        if (i == 0) off = size - 1, len = 1;
        auto part = ReadRange(n->id, blk, off, len, 1 + rng() % 100000);
        REQUIRE(part.ok());
        CHECK(*part == data.substr(off, len));
      }
    }
  }
  for (auto& n : c.nodes) {
    CHECK(Eventually([&] { return n->server->active_transfers() == 0; }));
    CHECK(fs::is_empty(c.root.path() + "/dn" + std::to_string(&n - &c.nodes[0]) + "/tmp"));
  }
}

TEST_CASE("data transfer: empty block and single-node pipeline", "[data_transfer]") {
  Cluster c(1);
  CHECK(WriteBlock(Blk(7, 1), c.Targets({0}), "", 1) == 0);
  auto r = ReadRange(c.nodes[0]->id, Blk(7, 1), 0, 0);
  REQUIRE(r.ok());
  CHECK(r->empty());
  CHECK(c.nodes[0]->store->GetReplica(dfs::BlockId(7))->num_bytes() == 0);
}

TEST_CASE("data transfer: read errors name the problem", "[data_transfer]") {
  Cluster c(1);
  const std::string data = RandomBytes(5000, 3);
  WriteBlock(Blk(9, 2), c.Targets({0}), data, 3);
  CHECK(ReadRange(c.nodes[0]->id, Blk(10, 2), 0, 0).status().code() == StatusCode::kNotFound);
  CHECK(ReadRange(c.nodes[0]->id, Blk(9, 1), 0, 0).status().code() == StatusCode::kStale);
  auto past = ReadRange(c.nodes[0]->id, Blk(9, 2), 5001, 1);
  CHECK(past.status().code() == StatusCode::kInvalidArgument);
  CHECK(ReadRange(c.nodes[0]->id, Blk(9, 2), 4000, 2000).status().code() == StatusCode::kInvalidArgument);
  // A second writer of the same block is refused.
  int bad = -2;
  auto dup = dfs::BlockWriter::Open(Blk(9, 2), c.Targets({0}), WriterOptions(), &bad);
  CHECK(dup.status().code() == StatusCode::kAlreadyExists);
  CHECK(bad == 0);
}

TEST_CASE("data transfer: a flipped byte in a stored replica is reported as corruption", "[data_transfer]") {
  Cluster c(1);
  const std::string data = RandomBytes(100000, 4);
  WriteBlock(Blk(11, 1), c.Targets({0}), data, 4);
  std::string path;
  for (auto& e : fs::recursive_directory_iterator(c.root.path())) {
    if (e.path().filename() == "blk_11_1") path = e.path().string();
  }
  REQUIRE(!path.empty());
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(70000);
    char ch = static_cast<char>(data[70000] ^ 0x20);
    f.write(&ch, 1);
  }
  auto r = ReadRange(c.nodes[0]->id, Blk(11, 1), 0, 0);
  REQUIRE(r.status().code() == StatusCode::kCorruption);
  CHECK(r.status().message().find("blk_11") != std::string::npos);
  CHECK(r.status().message().find(dfs::XferAddress(c.nodes[0]->id)) != std::string::npos);
  // Ranges that do not touch the bad chunk still read.
  auto ok = ReadRange(c.nodes[0]->id, Blk(11, 1), 0, 60000);
  REQUIRE(ok.ok());
  CHECK(*ok == data.substr(0, 60000));
}

namespace {

// A raw connection for speaking the protocol by hand.
Socket Connect(const Node& n) {
  auto s = Socket::Connect("127.0.0.1", static_cast<uint16_t>(n.id.xfer_port()), 5s);
  REQUIRE(s.ok());
  return std::move(s).value();
}

dfs::proto::OpRequest WriteRequest(uint64_t id, uint32_t bpc = 512) {
  dfs::proto::OpRequest req;
  req.set_op(dfs::proto::WRITE_BLOCK);
  *req.mutable_block() = Blk(id, 1);
  req.set_bytes_per_checksum(bpc);
  return req;
}

// The server answered with an error response and closed the connection.
void ExpectErrorThenClose(Socket& s, dfs::proto::StatusCode code) {
  dfs::proto::OpResponse resp;
  REQUIRE(dfs::ReadOpResponse(s, &resp, 5s).ok());
  CHECK(resp.code() == code);
  CHECK(!resp.message().empty());
  char ch;
  CHECK_FALSE(s.ReadFull(&ch, 1, 5s).ok());
  s.Close();  // the server lingers until the peer closes
}

void ExpectServes(Cluster& c, uint64_t id) {
  const std::string data = RandomBytes(20000, id);
  CHECK(WriteBlock(Blk(id, 1), c.Targets({0}), data, id) == data.size());
  // The writer's connection may still be winding down on a server with one thread.
  REQUIRE(Eventually([&] { return c.nodes[0]->server->active_transfers() == 0; }));
  auto r = ReadRange(c.nodes[0]->id, Blk(id, 1), 0, 0);
  REQUIRE(r.ok());
  CHECK(*r == data);
}

}  // namespace

TEST_CASE("data transfer: a packet with a bad checksum is refused", "[data_transfer]") {
  Cluster c(2);
  Socket s = Connect(*c.nodes[0]);
  auto req = WriteRequest(21);
  *req.add_targets() = c.nodes[1]->id;  // the downstream node must drop its copy too
  REQUIRE(dfs::SendOpRequest(s, req, 5s).ok());
  dfs::proto::OpResponse resp;
  REQUIRE(dfs::ReadOpResponse(s, &resp, 5s).ok());
  REQUIRE(resp.code() == dfs::proto::OK);

  std::string data = RandomBytes(2000, 5), scratch;
  uint64_t sums[4];
  dfs::proto::PacketHeader h;
  h.set_seqno(0);
  h.set_data_len(2000);
  dfs::ComputePacketChecksums(0, data.data(), 1024, 512, sums);  // packet 0: good
  h.set_data_len(1024);
  REQUIRE(dfs::SendPacket(s, h, sums, 2, data.data(), &scratch, 5s).ok());
  dfs::ComputePacketChecksums(1024, data.data() + 1024, 976, 512, sums);
  sums[1] ^= 1;  // packet 1: second chunk damaged
  h.set_seqno(1);
  h.set_offset_in_block(1024);
  h.set_data_len(976);
  REQUIRE(dfs::SendPacket(s, h, sums, 2, data.data() + 1024, &scratch, 5s).ok());

  dfs::proto::PipelineAck ack;
  REQUIRE(dfs::ReadAck(s, &ack, &scratch, 5s).ok());
  CHECK(ack.seqno() == 0);
  CHECK(ack.statuses_size() == 2);
  REQUIRE(dfs::ReadAck(s, &ack, &scratch, 5s).ok());
  CHECK(ack.seqno() == 1);
  REQUIRE(ack.statuses_size() >= 1);
  CHECK(ack.statuses(0) == dfs::proto::CORRUPTION);
  CHECK(ack.message().find("checksum") != std::string::npos);
  char ch;
  CHECK_FALSE(s.ReadFull(&ch, 1, 5s).ok());
  s.Close();
  for (auto& n : c.nodes) {
    CHECK(Eventually([&] { return n->server->active_transfers() == 0; }));
    CHECK_FALSE(n->store->GetReplica(dfs::BlockId(21)).has_value());
    // The verified packet stays for a pipeline recovery, never as a replica,
    // until nobody came back for it.
    auto kept = n->store->Inspect(dfs::BlockId(21));
    CHECK(kept.state == dfs::proto::REPLICA_TEMPORARY);
    CHECK(kept.num_bytes == 1024);
    CHECK(n->store->ExpireRecoverable(std::chrono::milliseconds(-1)) == 1);
  }
  CHECK(fs::is_empty(c.root.path() + "/dn0/tmp"));
  CHECK(fs::is_empty(c.root.path() + "/dn1/tmp"));
  ExpectServes(c, 22);
}

TEST_CASE("data transfer: malformed frames get an error and the server keeps serving", "[data_transfer]") {
  Cluster c(1);
  SECTION("request length over the bound") {
    Socket s = Connect(*c.nodes[0]);
    char len[4];
    dfs::PutBE32(len, 0xFFFFFFF0u);
    REQUIRE(s.WriteFull(len, 4, 5s).ok());
    ExpectErrorThenClose(s, dfs::proto::PROTOCOL_ERROR);
  }
  SECTION("request that does not parse") {
    Socket s = Connect(*c.nodes[0]);
    std::string junk = "\0\0\0\x10" + std::string(16, '\xff');
    junk[3] = 16;
    REQUIRE(s.WriteFull(junk.data(), junk.size(), 5s).ok());
    ExpectErrorThenClose(s, dfs::proto::PROTOCOL_ERROR);
  }
  SECTION("unknown operation") {
    Socket s = Connect(*c.nodes[0]);
    dfs::proto::OpRequest req;
    req.set_op(static_cast<dfs::proto::Op>(77));
    REQUIRE(dfs::SendOpRequest(s, req, 5s).ok());
    ExpectErrorThenClose(s, dfs::proto::PROTOCOL_ERROR);
  }
  SECTION("bad bytes_per_checksum") {
    Socket s = Connect(*c.nodes[0]);
    REQUIRE(dfs::SendOpRequest(s, WriteRequest(31, 0), 5s).ok());
    ExpectErrorThenClose(s, dfs::proto::INVALID_ARGUMENT);
  }
  SECTION("packet errors") {
    Socket s = Connect(*c.nodes[0]);
    REQUIRE(dfs::SendOpRequest(s, WriteRequest(32), 5s).ok());
    dfs::proto::OpResponse resp;
    REQUIRE(dfs::ReadOpResponse(s, &resp, 5s).ok());
    REQUIRE(resp.code() == dfs::proto::OK);
    std::string scratch;
    dfs::proto::PacketHeader h;
    int64_t expect_seqno = 0;
    SECTION("out-of-order seqno") {
      h.set_seqno(1);
      expect_seqno = 0;
      REQUIRE(dfs::SendPacket(s, h, nullptr, 0, nullptr, &scratch, 5s).ok());
    }
    SECTION("non-contiguous offset") {
      h.set_seqno(0);
      h.set_offset_in_block(512);
      REQUIRE(dfs::SendPacket(s, h, nullptr, 0, nullptr, &scratch, 5s).ok());
    }
    SECTION("packet header length over the bound") {
      char len[4];
      dfs::PutBE32(len, 1u << 20);
      REQUIRE(s.WriteFull(len, 4, 5s).ok());
    }
    SECTION("data length over the bound") {
      h.set_data_len(dfs::kMaxPacketDataBytes + 1);
      REQUIRE(dfs::SendPacket(s, h, nullptr, 0, nullptr, &scratch, 5s).ok());
    }
    dfs::proto::PipelineAck ack;
    REQUIRE(dfs::ReadAck(s, &ack, &scratch, 5s).ok());
    CHECK(ack.seqno() == expect_seqno);
    REQUIRE(ack.statuses_size() == 1);
    CHECK(ack.statuses(0) == dfs::proto::PROTOCOL_ERROR);
    char ch;
    CHECK_FALSE(s.ReadFull(&ch, 1, 5s).ok());
    s.Close();
    CHECK(Eventually([&] { return c.nodes[0]->server->active_transfers() == 0; }));
    CHECK_FALSE(c.nodes[0]->store->GetReplica(dfs::BlockId(32)).has_value());
  }
  ExpectServes(c, 40);
}

TEST_CASE("data transfer: a dead DataNode in the pipeline is named by failed_target", "[data_transfer]") {
  Cluster c(2);
  // A port nobody listens on.
  uint16_t dead_port;
  {
    auto l = dfs::Listener::Listen("127.0.0.1", 0);
    REQUIRE(l.ok());
    dead_port = l->port();
  }
  dfs::proto::DatanodeId dead;
  dead.set_ip("127.0.0.1");
  dead.set_xfer_port(dead_port);

  int bad = -2;
  auto w = dfs::BlockWriter::Open(Blk(50, 1), {c.nodes[0]->id, c.nodes[1]->id, dead}, WriterOptions(), &bad);
  REQUIRE_FALSE(w.ok());
  CHECK(bad == 2);
  CHECK(w.status().message().find(dfs::XferAddress(dead)) != std::string::npos);

  w = dfs::BlockWriter::Open(Blk(51, 1), {c.nodes[0]->id, dead, c.nodes[1]->id}, WriterOptions(), &bad);
  REQUIRE_FALSE(w.ok());
  CHECK(bad == 1);

  w = dfs::BlockWriter::Open(Blk(52, 1), {dead, c.nodes[0]->id}, WriterOptions(), &bad);
  REQUIRE_FALSE(w.ok());
  CHECK(bad == 0);
  CHECK(w.status().message().find("DataNode " + dfs::XferAddress(dead)) != std::string::npos);

  for (auto& n : c.nodes) {
    CHECK(Eventually([&] { return n->server->active_transfers() == 0; }));
    CHECK(n->store->num_replicas() == 0);
  }
  CHECK(fs::is_empty(c.root.path() + "/dn0/tmp"));
}

TEST_CASE("data transfer: a DataNode dying mid-write fails the writer with its index", "[data_transfer]") {
  Cluster c(3);
  auto w = dfs::BlockWriter::Open(Blk(60, 1), c.Targets({0, 1, 2}), WriterOptions());
  REQUIRE(w.ok());
  const std::string data = RandomBytes(100000, 6);
  REQUIRE((*w)->Write(data.data(), data.size()).ok());
  REQUIRE((*w)->Flush().ok());
  c.nodes[2]->server->Shutdown();  // closes its sockets: node 1 loses its downstream
  dfs::Status s;
  for (int i = 0; i < 1000 && s.ok(); ++i) s = (*w)->Write(data.data(), data.size());
  if (s.ok()) s = (*w)->Flush();
  REQUIRE_FALSE(s.ok());
  CHECK((*w)->failed_target() == 2);
  CHECK(s.message().find(dfs::XferAddress(c.nodes[2]->id)) != std::string::npos);
  (*w)->Abort();
  for (int i = 0; i < 2; ++i) {
    CHECK(Eventually([&] { return c.nodes[static_cast<size_t>(i)]->server->active_transfers() == 0; }));
    CHECK_FALSE(c.nodes[static_cast<size_t>(i)]->store->GetReplica(dfs::BlockId(60)).has_value());
  }
}

TEST_CASE("data transfer: connections over max_threads are refused", "[data_transfer]") {
  Cluster c(1, /*max_threads=*/1);
  Socket idle = Connect(*c.nodes[0]);
  REQUIRE(Eventually([&] { return c.nodes[0]->server->active_transfers() == 1; }));
  Socket s = Connect(*c.nodes[0]);
  ExpectErrorThenClose(s, dfs::proto::UNAVAILABLE);
  idle.Close();
  REQUIRE(Eventually([&] { return c.nodes[0]->server->active_transfers() == 0; }));
  ExpectServes(c, 70);
}

TEST_CASE("data transfer: shutdown does not wait for stalled peers", "[data_transfer]") {
  Cluster c(2, 32, /*timeout=*/60s);
  Socket s = Connect(*c.nodes[0]);
  auto req = WriteRequest(80);
  *req.add_targets() = c.nodes[1]->id;
  REQUIRE(dfs::SendOpRequest(s, req, 5s).ok());
  dfs::proto::OpResponse resp;
  REQUIRE(dfs::ReadOpResponse(s, &resp, 5s).ok());
  REQUIRE(resp.code() == dfs::proto::OK);
  Socket idle = Connect(*c.nodes[1]);
  REQUIRE(Eventually([&] { return c.nodes[1]->server->active_transfers() == 2; }));
  // Now both servers have threads blocked on sockets with a 60 s timeout.
  const auto start = std::chrono::steady_clock::now();
  c.nodes[0]->server->Shutdown();
  c.nodes[1]->server->Shutdown();
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  CHECK(c.nodes[0]->server->active_transfers() == 0);
  CHECK_FALSE(c.nodes[0]->store->GetReplica(dfs::BlockId(80)).has_value());
}

TEST_CASE("data transfer: an idle writer sends heartbeats", "[data_transfer]") {
  // A fake DataNode that accepts the pipeline and watches for packets.
  auto l = dfs::Listener::Listen("127.0.0.1", 0);
  REQUIRE(l.ok());
  dfs::proto::DatanodeId fake;
  fake.set_ip("127.0.0.1");
  fake.set_xfer_port(l->port());
  std::atomic<int> heartbeats{0};
  std::string dn_error;  // Catch's assertions are for the test's own thread: checked after the join
  std::thread dn([&] {
    auto s = l->Accept(5s);
    if (!s.ok()) return void(dn_error = "accept: " + s.status().ToString());
    dfs::proto::OpRequest req;
    if (dfs::Status r = dfs::ReadOpRequest(*s, &req, 5s); !r.ok()) return void(dn_error = "op request: " + r.ToString());
    dfs::proto::OpResponse ok;
    if (dfs::Status r = dfs::SendOpResponse(*s, ok, 5s); !r.ok()) return void(dn_error = "op response: " + r.ToString());
    dfs::Packet p;
    std::string scratch;
    for (;;) {
      if (!dfs::ReadPacket(*s, 512, 5s, &p).ok()) return;
      dfs::proto::PipelineAck ack;
      ack.set_seqno(p.header.seqno());
      ack.add_statuses(dfs::proto::OK);
      if (!dfs::SendAck(*s, ack, &scratch, 5s).ok()) return;
      if (p.header.seqno() == dfs::kHeartbeatSeqno) ++heartbeats;
      if (p.header.last()) return;
    }
  });
  auto opts = WriterOptions();
  opts.socket_timeout = 100ms;
  auto w = dfs::BlockWriter::Open(Blk(90, 1), {fake}, opts);
  REQUIRE(w.ok());
  REQUIRE((*w)->Write("abc", 3).ok());
  CHECK(Eventually([&] { return heartbeats.load() >= 2; }));
  REQUIRE((*w)->Write("def", 3).ok());
  auto len = (*w)->Finish();
  CHECK(len.ok());
  CHECK(*len == 6);
  dn.join();
  CHECK(dn_error.empty());
}

TEST_CASE("data transfer: readers that hang up mid-block do not hurt the server", "[data_transfer]") {
  Cluster c(1);
  const std::string data = RandomBytes(3 << 20, 8);
  WriteBlock(Blk(100, 1), c.Targets({0}), data, 8);
  for (int i = 0; i < 5; ++i) {
    auto r = dfs::BlockReader::Open(c.nodes[0]->id, Blk(100, 1), 1000, 0, ReaderOptions());
    REQUIRE(r.ok());
    char buf[100];
    auto n = (*r)->Read(buf, sizeof buf);
    REQUIRE(n.ok());
    CHECK(std::string(buf, *n) == data.substr(1000, 100));
  }
  CHECK(Eventually([&] { return c.nodes[0]->server->active_transfers() == 0; }));
  ExpectServes(c, 101);
}

TEST_CASE("data transfer: 3-node pipeline throughput", "[.][data_transfer_bench]") {
  const bool sync = std::getenv("DFS_BENCH_SYNC") != nullptr;
  Cluster c(3, 32, 60s, sync);
  const size_t total = 256u << 20;
  const size_t block = 64u << 20;
  std::string buf = RandomBytes(1 << 20, 1);
  dfs::BlockWriter::Options o;
  o.bytes_per_checksum = 64 << 10;
  o.packet_size = 256 << 10;
  o.max_packets_in_flight = 64;
  o.socket_timeout = 60s;
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t id = 1; id <= total / block; ++id) {
    auto w = dfs::BlockWriter::Open(Blk(id, 1), c.Targets({0, 1, 2}), o);
    REQUIRE(w.ok());
    for (size_t off = 0; off < block; off += buf.size()) REQUIRE((*w)->Write(buf.data(), buf.size()).ok());
    REQUIRE((*w)->Finish().ok());
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto rstart = std::chrono::steady_clock::now();
  std::string rbuf(1 << 20, '\0');
  for (uint64_t id = 1; id <= total / block; ++id) {
    auto r = dfs::BlockReader::Open(c.nodes[id % 3]->id, Blk(id, 1), 0, 0, ReaderOptions());
    REQUIRE(r.ok());
    for (;;) {
      auto n = (*r)->Read(rbuf.data(), rbuf.size());
      REQUIRE(n.ok());
      if (*n == 0) break;
    }
  }
  const double rsecs = std::chrono::duration<double>(std::chrono::steady_clock::now() - rstart).count();
  WARN("3-node pipeline write of " << (total >> 20) << " MiB (sync_on_close=" << sync << "): " << secs << " s, "
                                   << (total / 1048576.0) / secs << " MiB/s; read: " << (total / 1048576.0) / rsecs
                                   << " MiB/s");
}
