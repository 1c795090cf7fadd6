// Faults during writes: a DataNode of the pipeline dies halfway through a
// multi-block write (pipeline recovery), and the writing client itself dies
// (lease recovery).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <xxhash.h>

#include "tests/process_cluster.h"
#include "tests/test_util.h"

using namespace dfs;
using namespace dfs::test;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

// Remote ports of this process's established TCP connections (IPv4), from
// /proc: the writer's connection to the first DataNode of its pipeline is the
// only one the test process has to a DataNode.
std::set<uint16_t> ConnectedPorts() {
  std::set<unsigned long> inodes;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code lec;
    const std::string target = std::filesystem::read_symlink(it->path(), lec).string();
    unsigned long inode = 0;
    if (!lec && std::sscanf(target.c_str(), "socket:[%lu]", &inode) == 1) inodes.insert(inode);
  }
  std::set<uint16_t> out;
  std::ifstream in("/proc/self/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string sl, local, remote, state, queues, timer, retransmits;
    unsigned long uid = 0, timeout = 0, inode = 0;
    if (!(ss >> sl >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode)) continue;
    if (state != "01" || !inodes.count(inode)) continue;  // 01: ESTABLISHED
    out.insert(static_cast<uint16_t>(std::stoul(remote.substr(remote.find(':') + 1), nullptr, 16)));
  }
  return out;
}

}  // namespace

TEST_CASE("pipeline recovery: the first DataNode of the pipeline killed halfway through a write of 7 blocks, the "
          "write succeeds and full replication returns",
          "[fault][write][pipeline]") {
  ProcessCluster::Options o;
  o.num_datanodes = 4;
  auto pc = ProcessCluster::Start(o);
  REQUIRE_OK(pc.status());
  ProcessCluster& c = **pc;
  auto fs = c.NewClient();
  const std::string data = RandomBytes((6 << 20) + 12345, 31);  // 7 blocks
  const uint64_t want = XXH3_64bits(data.data(), data.size());
  const size_t half = (3 << 20) + (512 << 10);  // the middle of the fourth block

  std::atomic<bool> at_half{false}, release{false};
  Status write_status;
  std::thread writer;
  ScopedJoin join_writer(&writer, &release);
  writer = std::thread([&] {
    auto out = fs->Create("/p");
    if (!out.ok()) {
      write_status = out.status();
      at_half = true;
      return;
    }
    constexpr size_t kPiece = 128 << 10;
    for (size_t off = 0; off < data.size(); off += kPiece) {
      write_status = (*out)->Write(data.data() + off, std::min(kPiece, data.size() - off));
      if (!write_status.ok()) break;
      if (off + kPiece == half) {
        write_status = (*out)->Flush();  // the first half is acknowledged by the whole pipeline
        at_half = true;
        if (!write_status.ok()) break;
        WaitFor([&] { return release.load(); }, std::chrono::seconds(60));
      }
    }
    if (write_status.ok()) write_status = (*out)->Close();
    at_half = true;
  });
  REQUIRE(WaitFor([&] { return at_half.load(); }, std::chrono::seconds(30)));
  REQUIRE_OK(write_status);
  std::set<int> connected;
  for (uint16_t port : ConnectedPorts()) {
    if (int dn = c.DataNodeByPort(port); dn >= 0) connected.insert(dn);
  }
  INFO("DataNodes this process is connected to: " << fmt::format("{}", fmt::join(connected, ",")));
  REQUIRE(connected.size() == 1);
  const int victim = *connected.begin();
  const auto killed = Clock::now();
  REQUIRE_OK(c.KillDataNode(victim, SIGKILL));
  join_writer.Join();
  const int64_t write_took = MsSince(killed);
  INFO("the write ended " << write_took << " ms after datanode" << victim << " was killed: " << write_status.ToString());
  REQUIRE_OK(write_status);
  auto info = fs->GetFileInfo("/p");
  REQUIRE_OK(info.status());
  CHECK(info->length == data.size());
  CHECK_FALSE(info->under_construction);
  auto d = DigestFile(*fs, "/p");
  REQUIRE_OK(d.status());
  CHECK(*d == want);

  // The fourth DataNode makes full replication possible again.
  std::string last;
  const bool replicated = WaitFor([&] {
    auto blocks = fs->GetBlockLocations("/p");
    if (!blocks.ok()) return false;
    last.clear();
    bool ok = true;
    for (const auto& b : *blocks) {
      auto h = c.Holders(b);
      last += fmt::format("[{}] ", fmt::join(h, ","));
      ok = ok && h.size() == 3 && !std::count(h.begin(), h.end(), victim) && !std::count(h.begin(), h.end(), -1);
    }
    return ok;
  }, std::chrono::seconds(30));
  INFO("replicas per block: " << last);
  CHECK(replicated);
  WARN("write finished " << write_took << " ms after the kill; 3 replicas of every block after " << MsSince(killed)
                         << " ms");
  REQUIRE_OK(c.CheckDaemonsAlive());
}

TEST_CASE("a writer killed mid-write: after the lease hard limit the file is closed at a prefix of what was written "
          "and can be overwritten",
          "[fault][write][lease]") {
  if (!IsKnownConfigKey("dfs.namenode.lease.hard-limit")) {
    FAIL("dfs.namenode.lease.hard-limit is not a configuration key in this build: lease recovery is not built yet");
  }
  ProcessCluster::Options o;
  o.conf = {{"dfs.namenode.lease.soft-limit", "1s"}, {"dfs.namenode.lease.hard-limit", "3s"}};
  auto pc = ProcessCluster::Start(o);
  REQUIRE_OK(pc.status());
  ProcessCluster& c = **pc;
  auto fs = c.NewClient();
  REQUIRE_OK(fs->Mkdirs("/w"));

  // `dfs put -d - /w/file` reads stdin in 1 MiB pieces: feed 3.5 MiB, so that
  // two blocks are complete at the NameNode, then kill it.
  const std::string put_log = c.dir() + "/logs/put.log";
  auto put = c.SpawnDfs({"put", "-d", "-", "/w/file"}, true, put_log);
  REQUIRE_OK(put.status());
  const std::string fed = RandomBytes((3 << 20) + (512 << 10), 41);
  for (size_t off = 0; off < fed.size(); off += 64 << 10) {
    REQUIRE_OK((*put)->WriteStdin(fed.data() + off, std::min<size_t>(64 << 10, fed.size() - off)));
  }
  const bool two_blocks = WaitFor([&] {
    auto st = fs->GetFileInfo("/w/file");
    return (st.ok() && st->length >= (2u << 20)) || !(*put)->Running();
  }, std::chrono::seconds(30));
  INFO("dfs put: " << TailFile(put_log));
  REQUIRE(two_blocks);
  REQUIRE((*put)->Running());
  const auto killed = Clock::now();
  (*put)->Kill(SIGKILL);

  // Lease recovery closes the file by itself once the hard limit has passed.
  client::FileInfo closed;
  const bool recovered = WaitFor([&] {
    auto st = fs->GetFileInfo("/w/file");
    if (!st.ok() || st->under_construction) return false;
    closed = *st;
    return true;
  }, std::chrono::seconds(30));
  REQUIRE(recovered);
  const int64_t took = MsSince(killed);
  WARN("the dead writer's file was closed at " << closed.length << " of " << fed.size() << " bytes fed, " << took
                                               << " ms after the kill (hard limit 3000 ms)");
  // Not before the hard limit, counted from the last renewal: the client
  // renews every second, so at most 1 s before the kill.
  CHECK(took >= 3000 - 1000 - 100);
  CHECK(closed.length >= (2u << 20));
  CHECK(closed.length <= fed.size());
  auto bytes = ReadFile(*fs, "/w/file");
  REQUIRE_OK(bytes.status());
  CHECK(bytes->size() == closed.length);
  CHECK(*bytes == fed.substr(0, bytes->size()));
  auto fsck = c.RunDfs({"fsck", "/"});
  REQUIRE_OK(fsck.status());
  INFO(fsck->ToString());
  CHECK(fsck->out.find("is HEALTHY") != std::string::npos);

  // Another client may now replace it.
  auto other = c.NewClient();
  const std::string replacement = RandomBytes((1 << 20) + 5, 42);
  client::CreateOptions co;
  co.overwrite = true;
  REQUIRE_OK(WriteFile(*other, "/w/file", replacement, co));
  auto again = ReadFile(*other, "/w/file");
  REQUIRE_OK(again.status());
  CHECK(*again == replacement);
  REQUIRE_OK(c.CheckDaemonsAlive());
}
