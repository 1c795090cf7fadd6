// recovery_bench: the cluster-side measurements behind bench/recovery_bench.sh,
// using the client library directly. The script starts the cluster, writes the
// file and kills the DataNode; this program says which DataNodes hold the
// file's replicas and then watches the NameNode until the file has its full
// replication again. Every result is one `name value unit` line on stdout;
// progress and errors go to stderr, and a failure exits non-zero with a message
// saying what was still missing.
//
//   recovery_bench [--namenode HOST:PORT] [-D key=value]... SUBCOMMAND ...
//     holders DFSPATH            one line per DataNode holding replicas of
//                                DFSPATH, most blocks first:
//                                `IP:XFERPORT BLOCKS BYTES`
//     watch DFSPATH --node IP:XFERPORT --since EPOCH_NS
//                                after that DataNode was killed at EPOCH_NS
//                                (wall clock, `date +%s%N`): when the NameNode
//                                declares it dead, when re-replication is first
//                                seen at work, and when every block it held has
//                                the file's replication again on live nodes
//
// The watch polls (every --poll-ms, default 100 ms) GetDatanodeReport and
// GetBlockLocations, so its times are good to about one poll. "Seen at work"
// is the first poll after the death on which a live DataNode reports an active
// transfer (xceivers > 0; DataNodes report it in every heartbeat) or one of the
// blocks already has its replicas back: the cluster is otherwise idle, so a
// transfer then is a copy. With --started-file, that file is created at that
// moment, for the script to start its concurrent put. MB is 10^6 bytes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "client/filesystem.h"
#include "common/config.h"
#include "common/daemon.h"
#include "common/logging.h"

namespace {

using dfs::Status;
using dfs::client::FileSystem;
using WallClock = std::chrono::system_clock;

void Emit(const std::string& name, double value, const std::string& unit) {
  std::printf("%s %.3f %s\n", name.c_str(), value, unit.c_str());
  std::fflush(stdout);
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "recovery_bench: %s\n", what.c_str());
  std::exit(1);
}

std::unique_ptr<FileSystem> ConnectOrDie(const std::string& namenode, const std::vector<std::string>& defines) {
  std::vector<std::pair<std::string, std::string>> overrides;
  for (const auto& d : defines) {
    std::pair<std::string, std::string> kv;
    Status s = dfs::ParseDefine(d, &kv);
    if (!s.ok()) Die("-D " + d + ": " + s.message());
    overrides.push_back(std::move(kv));
  }
  auto conf = dfs::Config::Load("", overrides);
  if (!conf.ok()) Die("configuration: " + conf.status().message());
  auto fs = FileSystem::Connect(*conf, namenode);
  if (!fs.ok()) Die("connecting to the NameNode: " + fs.status().message());
  return std::move(fs).value();
}

std::string Address(const dfs::proto::DatanodeId& id) { return fmt::format("{}:{}", id.ip(), id.xfer_port()); }

// ---------------------------------------------------------------- holders

int RunHolders(FileSystem& fs, const std::string& path) {
  auto blocks = fs.GetBlockLocations(path);
  if (!blocks.ok()) Die("locating the blocks of " + path + ": " + blocks.status().message());
  std::map<std::string, std::pair<uint64_t, uint64_t>> held;  // address → blocks, bytes
  for (const auto& b : *blocks) {
    for (const auto& r : b.replicas) {
      auto& h = held[Address(r)];
      h.first++;
      h.second += b.length;
    }
  }
  std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> rows(held.begin(), held.end());
  std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  for (const auto& [addr, h] : rows) std::printf("%s %llu %llu\n", addr.c_str(), (unsigned long long)h.first,
                                                 (unsigned long long)h.second);
  return 0;
}

// ---------------------------------------------------------------- watch

double SecondsSince(int64_t since_ns) {
  const int64_t now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(WallClock::now().time_since_epoch()).count();
  return double(now_ns - since_ns) / 1e9;
}

int RunWatch(FileSystem& fs, const std::string& path, const std::string& node, int64_t since_ns, double timeout_s,
             int poll_ms, const std::string& started_file) {
  auto info = fs.GetFileInfo(path);
  if (!info.ok()) Die("stat " + path + ": " + info.status().message());
  const uint32_t want = info->replication;

  // The blocks the killed node held. The NameNode keeps listing a node's
  // replicas until it declares the node dead, which is seconds after the kill.
  auto before = fs.GetBlockLocations(path);
  if (!before.ok()) Die("locating the blocks of " + path + ": " + before.status().message());
  std::string uuid;
  std::map<uint64_t, uint64_t> lost;  // block id → length
  uint64_t lost_bytes = 0;
  for (const auto& b : *before) {
    for (const auto& r : b.replicas) {
      if (Address(r) != node) continue;
      uuid = r.uuid();
      lost[b.block.value()] = b.length;
      lost_bytes += b.length;
    }
  }
  if (lost.empty()) {
    Die(fmt::format("{} holds no replica of {} (or the NameNode has already declared it dead)", node, path));
  }
  std::fprintf(stderr, "watch: %s held %zu of the %zu block(s) of %s (%llu bytes); waiting for replication %u\n",
               node.c_str(), lost.size(), before->size(), path.c_str(), (unsigned long long)lost_bytes, want);

  double detected = -1, started = -1, done = -1;
  std::map<uint64_t, double> restored;  // block id → when it had `want` live replicas again
  std::string last_error;
  auto mark_started = [&](double t, const char* why) {
    started = t;
    std::fprintf(stderr, "watch: re-replication at work %.2f s after the kill (%s)\n", t, why);
    if (!started_file.empty()) std::ofstream(started_file) << fmt::format("{:.3f}\n", t);
  };
  while (done < 0) {
    const double t = SecondsSince(since_ns);
    if (t > timeout_s) {
      Die(fmt::format("no full replication {:.0f} s after the kill: {}; {} of {} block(s) restored{}", t,
                      detected < 0 ? "the NameNode still lists the node as live" : "the node was declared dead",
                      restored.size(), lost.size(), last_error.empty() ? "" : "; last error: " + last_error));
    }
    auto report = fs.GetDatanodeReport();
    if (!report.ok()) {
      last_error = report.status().message();
      std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
      continue;
    }
    std::map<std::string, bool> live;  // uuid → live
    uint32_t busy = 0;                 // active transfers on live nodes
    for (const auto& n : *report) {
      live[n.id().uuid()] = n.live();
      if (n.live() && n.id().uuid() != uuid) busy += n.xceivers();
    }
    if (detected < 0 && !live[uuid]) {
      detected = t;
      std::fprintf(stderr, "watch: the NameNode declared %s dead %.2f s after the kill\n", node.c_str(), t);
    }
    if (detected >= 0) {
      auto blocks = fs.GetBlockLocations(path);
      if (!blocks.ok()) {
        last_error = blocks.status().message();
      } else {
        for (const auto& b : *blocks) {
          const uint64_t id = b.block.value();
          if (!lost.count(id) || restored.count(id)) continue;
          uint32_t count = 0;
          for (const auto& r : b.replicas) count += (r.uuid() != uuid && live[r.uuid()]) ? 1 : 0;
          if (count < want) continue;
          restored[id] = t;
          std::fprintf(stderr, "watch: blk_%llu has %u live replicas again at %.2f s (%zu of %zu)\n",
                       (unsigned long long)id, count, t, restored.size(), lost.size());
        }
      }
      if (started < 0 && (busy > 0 || !restored.empty())) {
        mark_started(t, busy > 0 ? "a DataNode reports an active transfer" : "a block has its replicas back");
      }
      if (restored.size() == lost.size()) done = t;
    }
    if (done < 0) std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }

  const double copy = done - detected;
  Emit("rereplication_detect_s", detected, "s");
  Emit("rereplication_start_s", started, "s");
  Emit("rereplication_total_s", done, "s");
  Emit("rereplication_copy_s", copy, "s");
  std::printf("rereplicated_blocks %zu blocks\n", lost.size());
  std::printf("rereplicated_bytes %llu bytes\n", (unsigned long long)lost_bytes);
  Emit("rereplication_mb_per_s", copy > 0 ? double(lost_bytes) / 1e6 / copy : 0.0, "MB/s");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"recovery_bench: time a DataNode's death to full replication (prints `name value unit` lines)"};
  app.require_subcommand(1);
  std::string namenode;
  std::vector<std::string> defines;
  app.add_option("--namenode", namenode, "NameNode host:port (default: $DFS_NAMENODE, else fs.defaultFS)");
  app.add_option("-D", defines, "Configuration override key=value (repeatable)");
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "Client library log level");

  std::string path;
  auto* holders = app.add_subcommand("holders", "DataNodes holding replicas of a file, most blocks first");
  holders->add_option("path", path, "dfs file")->required();

  auto* watch = app.add_subcommand("watch", "Wait for a killed DataNode's replicas to be re-replicated");
  std::string node, started_file;
  int64_t since_ns = 0;
  double timeout_s = 600;
  int poll_ms = 100;
  watch->add_option("path", path, "dfs file")->required();
  watch->add_option("--node", node, "The killed DataNode, IP:XFERPORT as `holders` prints it")->required();
  watch->add_option("--since", since_ns, "When it was killed: nanoseconds since the epoch (date +%s%N)")->required();
  watch->add_option("--timeout", timeout_s, "Deadline in seconds after the kill");
  watch->add_option("--poll-ms", poll_ms, "Polling interval")->check(CLI::Range(10, 10000));
  watch->add_option("--started-file", started_file, "Created when re-replication is first seen at work");

  CLI11_PARSE(app, argc, argv);
  dfs::InitLogging(log_level, "recovery_bench");
  auto fs = ConnectOrDie(namenode, defines);
  if (*holders) return RunHolders(*fs, path);
  if (*watch) return RunWatch(*fs, path, node, since_ns, timeout_s, poll_ms, started_file);
  return 2;
}
