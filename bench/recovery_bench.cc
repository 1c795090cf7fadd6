// recovery_bench: the cluster-side measurements behind bench/recovery_bench.sh,
// using the client library directly. The script starts the cluster and kills
// the DataNode; this program writes the files, says which DataNodes hold a
// file's replicas, and watches the NameNode until the file has its full
// replication again. Every result is one `name value unit` line on stdout;
// progress and errors go to stderr, and a failure exits non-zero with a message
// saying what was still missing.
//
// watch --done-file and put --until-file together measure a put while a
// re-replication runs, and only then: a put of a fixed size either outlasts
// the copies (which take seconds) or has to start late. The put closes the
// file once the watch says the copies are done, so everything it counts was
// also acknowledged.
//
//   recovery_bench [--namenode HOST:PORT] [-D key=value]... SUBCOMMAND ...
//     holders DFSPATH            one line per DataNode holding replicas of
//                                DFSPATH, most blocks first:
//                                `IP:XFERPORT BLOCKS BYTES`
//     put LOCALFILE DFSPATH [--until-file FILE]
//                                write a local file to DFSPATH (8 MiB writes),
//                                or only as much of it as is written before
//                                FILE appears; reports MB/s, bytes, seconds
//     watch DFSPATH --node IP:XFERPORT --since EPOCH_NS
//                                after that DataNode was killed at EPOCH_NS
//                                (wall clock, `date +%s%N`): when the NameNode
//                                declares it dead, when re-replication is first
//                                seen at work, and when every block it held has
//                                the file's replication again on live nodes
//
// The watch polls (every --poll-ms, default 100 ms) GetDatanodeReport and
// GetBlockLocations, so its times are good to about one poll. "Seen at work"
// is the first poll after the death on which a copy of one of the lost blocks
// is being written on a live DataNode: a replica file of it under tmp/ in one
// of the --data-dir directories (a local cluster's block dirs; see
// datanode/block_store.h), or, failing that, a live DataNode reporting an
// active transfer (xceivers, refreshed only once per heartbeat) or a block
// already restored. With --started-file, that file is created at that moment,
// for the script to start its concurrent put; with --done-file, another once
// every block is back. MB is 10^6 bytes.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

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
  for (const auto& [addr, h] : rows)
    std::printf("%s %llu %llu\n", addr.c_str(), (unsigned long long)h.first, (unsigned long long)h.second);
  return 0;
}

// ---------------------------------------------------------------- put

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(WallClock::now().time_since_epoch()).count();
}

int RunPut(FileSystem& fs, const std::string& local, const std::string& dst, uint32_t replication,
           const std::string& block_size, const std::string& until_file) {
  int fd = ::open(local.c_str(), O_RDONLY);
  if (fd < 0) Die(fmt::format("opening {}: {}", local, std::strerror(errno)));
  dfs::client::CreateOptions opts;
  opts.overwrite = true;
  opts.replication = replication;
  if (!block_size.empty()) {
    auto b = dfs::ParseSize(block_size);
    if (!b.ok()) Die("--block-size: " + b.status().message());
    opts.block_size = *b;
  }
  // One reused, pre-touched buffer (see core_bench.cc: a first page touch is slow here).
  std::vector<char> buf(8 << 20, 1);
  auto stop = [&] { return !until_file.empty() && ::access(until_file.c_str(), F_OK) == 0; };

  const auto t0 = std::chrono::steady_clock::now();
  auto out = fs.Create(dst, opts);
  if (!out.ok()) Die("creating " + dst + ": " + out.status().message());
  uint64_t done = 0;
  bool stopped = false;
  while (!(stopped = stop())) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) Die(fmt::format("reading {}: {}", local, std::strerror(errno)));
    if (n == 0) break;
    Status s = (*out)->Write(buf.data(), static_cast<size_t>(n));
    if (!s.ok()) Die("writing " + dst + ": " + s.message());
    done += static_cast<uint64_t>(n);
  }
  Status s = (*out)->Close();
  if (!s.ok()) Die("closing " + dst + ": " + s.message());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::close(fd);

  std::fprintf(stderr, "put: %llu bytes in %.3f s%s\n", (unsigned long long)done, secs,
               stopped ? fmt::format(" (stopped early: {} appeared)", until_file).c_str() : "");
  Emit("put_throughput", double(done) / 1e6 / secs, "MB/s");
  std::printf("put_bytes %llu bytes\n", (unsigned long long)done);
  Emit("put_seconds", secs, "s");
  return 0;
}

// ---------------------------------------------------------------- watch

// How many of `blocks` have a replica being written under DIR/tmp/ in one of `dirs`.
size_t CopiesInFlight(const std::vector<std::string>& dirs, const std::map<uint64_t, uint64_t>& blocks) {
  namespace fs = std::filesystem;
  std::set<uint64_t> writing;
  for (const auto& d : dirs) {
    std::error_code ec;
    for (fs::directory_iterator it(fs::path(d) / "tmp", ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      for (const auto& [id, len] : blocks) {
        if (name.starts_with(fmt::format("blk_{}_", id))) writing.insert(id);
      }
    }
  }
  return writing.size();
}

// Creates FILE (when one is named), holding the time since the kill.
void Touch(const std::string& file, double t) {
  if (!file.empty()) std::ofstream(file) << fmt::format("{:.3f}\n", t);
}

double SecondsSince(int64_t since_ns) { return double(NowNs() - since_ns) / 1e9; }

int RunWatch(FileSystem& fs, const std::string& path, const std::string& node, int64_t since_ns, double timeout_s,
             int poll_ms, const std::string& started_file, const std::string& done_file,
             const std::vector<std::string>& data_dirs) {
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
  size_t last_in_flight = 0;
  auto mark_started = [&](double t, const char* why) {
    started = t;
    std::fprintf(stderr, "watch: re-replication at work %.2f s after the kill (%s)\n", t, why);
    Touch(started_file, t);
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
      // Progress for the person watching: when copies start and end shows
      // whether a slow re-replication waits for scheduling or for the disk.
      const size_t in_flight = CopiesInFlight(data_dirs, lost);
      if (in_flight != last_in_flight) {
        std::fprintf(stderr, "watch: %zu cop%s in flight at %.2f s\n", in_flight, in_flight == 1 ? "y" : "ies", t);
        last_in_flight = in_flight;
      }
      if (started < 0) {
        if (in_flight > 0) {
          mark_started(t, "a copy of a lost block is being written");
        } else if (busy > 0) {
          mark_started(t, "a DataNode reports an active transfer");
        } else if (!restored.empty()) {
          mark_started(t, "a block has its replicas back");
        }
      }
      if (restored.size() == lost.size()) {
        done = t;
        if (started < 0) mark_started(t, "every block has its replicas back");
        Touch(done_file, t);
      }
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
  // The copies alone, without the wait for the NameNode's next replication
  // pass and the heartbeat that carries the command.
  const double transfer = done - started;
  Emit("rereplication_transfer_s", transfer, "s");
  Emit("rereplication_transfer_mb_per_s", transfer > 0 ? double(lost_bytes) / 1e6 / transfer : 0.0, "MB/s");
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

  auto* put = app.add_subcommand("put", "Upload a local file to a dfs path (or, with --until-file, part of it)");
  std::string local, block_size, until_file;
  uint32_t replication = 0;
  put->add_option("local", local, "Local file to upload")->required();
  put->add_option("path", path, "dfs path to write")->required();
  put->add_option("--replication", replication, "Replication (default: dfs.replication)");
  put->add_option("--block-size", block_size, "Block size (default: dfs.blocksize)");
  put->add_option("--until-file", until_file, "Stop writing (and close) once this file exists");

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
  std::string done_file;
  watch->add_option("--done-file", done_file, "Created when every block has its replication again");
  std::vector<std::string> data_dirs;
  watch->add_option("--data-dir", data_dirs, "A live DataNode's block directory, to see copies start (repeatable)");

  CLI11_PARSE(app, argc, argv);
  dfs::InitLogging(log_level, "recovery_bench");
  auto fs = ConnectOrDie(namenode, defines);
  if (*holders) return RunHolders(*fs, path);
  if (*put) return RunPut(*fs, local, path, replication, block_size, until_file);
  if (*watch) return RunWatch(*fs, path, node, since_ns, timeout_s, poll_ms, started_file, done_file, data_dirs);
  return 2;
}
