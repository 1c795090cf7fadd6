// core_bench: the measurements behind bench/core_bench.sh, using the client
// library directly. Every result is one `name value unit` line on stdout;
// progress and errors go to stderr, and a failed measurement exits non-zero
// with a message saying what failed.
//
//   core_bench [--namenode HOST:PORT] [-D key=value]... SUBCOMMAND ...
//     put SIZE|LOCALFILE DFSPATH   write generated data of SIZE (or a local
//                                  file) to DFSPATH; reports MB/s
//     get DFSPATH [LOCALFILE]      read DFSPATH (discarding it, or into a
//                                  local file); reports MB/s
//     meta --files N --clients C   create/stat/list/delete N empty files from
//                                  C concurrent clients; reports ops/s
//     loopback --size SIZE         raw TCP copy over 127.0.0.1 between two
//                                  threads: the ceiling for get
//     wait --datanodes N           until N DataNodes are live and the
//                                  NameNode is out of safe mode
//     rm [-r] DFSPATH              delete a path (absent is fine)
//
// MB is 10^6 bytes throughout (as dd prints it). The data path reuses one
// large, pre-touched buffer: this VM charges ~12 µs for the first touch of a
// fresh page, so a benchmark that allocated per write would measure the
// allocator, not dfs.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <memory>
#include <mutex>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "client/filesystem.h"
#include "common/config.h"
#include "common/daemon.h"
#include "common/logging.h"
#include "common/socket.h"

namespace {

using dfs::Result;
using dfs::Status;
using dfs::client::FileSystem;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

void Emit(const std::string& name, double value, const std::string& unit) {
  std::printf("%s %.*f %s\n", name.c_str(), value >= 100 ? 1 : 3, value, unit.c_str());
  std::fflush(stdout);
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "core_bench: %s\n", what.c_str());
  std::exit(1);
}

void Check(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.message());
}

// A page-aligned buffer, touched once up front so the timed loop never faults.
struct Buffer {
  explicit Buffer(size_t n) : size(n) {
    void* p = nullptr;
    if (posix_memalign(&p, 4096, n) != 0) Die(fmt::format("cannot allocate a {} byte buffer", n));
    data = static_cast<char*>(p);
    std::memset(data, 0, n);
  }
  ~Buffer() { std::free(data); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  char* data;
  size_t size;
};

// Incompressible, non-repeating-within-the-buffer bytes (xorshift64*).
void FillPattern(char* p, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    uint64_t v = x * 0x2545F4914F6CDD1Dull;
    std::memcpy(p + i, &v, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<char>(i);
}

struct Common {
  std::string namenode;
  std::vector<std::string> defines;
};

Result<dfs::Config> LoadConfig(const Common& c) {
  std::vector<std::pair<std::string, std::string>> overrides;
  for (const auto& d : c.defines) {
    std::pair<std::string, std::string> kv;
    DFS_RETURN_IF_ERROR(dfs::ParseDefine(d, &kv));
    overrides.push_back(std::move(kv));
  }
  return dfs::Config::Load("", overrides);
}

std::unique_ptr<FileSystem> ConnectOrDie(const Common& c, const dfs::Config& conf) {
  auto fs = FileSystem::Connect(conf, c.namenode);
  if (!fs.ok()) Die("connecting to the NameNode: " + fs.status().message());
  return std::move(fs).value();
}

// ---------------------------------------------------------------- put / get

int RunPut(const Common& c, const std::string& source, const std::string& dst, const std::string& buf_size,
           uint32_t replication, const std::string& block_size) {
  auto conf = LoadConfig(c);
  Check(conf.status(), "configuration");
  auto fs = ConnectOrDie(c, *conf);
  auto bs = dfs::ParseSize(buf_size);
  Check(bs.status(), "--buffer");
  Buffer buf(*bs);

  int fd = -1;
  uint64_t total = 0;
  struct stat st {};
  if (::stat(source.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    fd = ::open(source.c_str(), O_RDONLY);
    if (fd < 0) Die(fmt::format("opening {}: {}", source, std::strerror(errno)));
    total = static_cast<uint64_t>(st.st_size);
  } else {
    auto n = dfs::ParseSize(source);
    if (!n.ok()) Die(fmt::format("put: '{}' is neither a local file nor a size like 1g", source));
    total = *n;
    FillPattern(buf.data, buf.size, 1);
  }
  dfs::client::CreateOptions opts;
  opts.overwrite = true;
  opts.replication = replication;
  if (!block_size.empty()) {
    auto b = dfs::ParseSize(block_size);
    Check(b.status(), "--block-size");
    opts.block_size = *b;
  }

  const auto t0 = Clock::now();
  auto out = fs->Create(dst, opts);
  Check(out.status(), "creating " + dst);
  uint64_t done = 0;
  while (done < total) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size, total - done));
    if (fd >= 0) {
      ssize_t r = ::read(fd, buf.data, n);
      if (r <= 0) Die(fmt::format("reading {}: {}", source, r == 0 ? "unexpected end" : std::strerror(errno)));
      n = static_cast<size_t>(r);
    } else {
      // Make every buffer distinct without touching more memory than 8 bytes.
      std::memcpy(buf.data, &done, sizeof done);
    }
    Check((*out)->Write(buf.data, n), "writing " + dst);
    done += n;
  }
  const auto t1 = Clock::now();
  Check((*out)->Close(), "closing " + dst);
  const auto t2 = Clock::now();
  if (fd >= 0) ::close(fd);

  std::fprintf(stderr, "put: %llu bytes in %.3f s (writes %.3f s, close %.3f s)\n",
               static_cast<unsigned long long>(total), Seconds(t2 - t0), Seconds(t1 - t0), Seconds(t2 - t1));
  Emit("put_throughput", total / 1e6 / Seconds(t2 - t0), "MB/s");
  Emit("put_seconds", Seconds(t2 - t0), "s");
  return 0;
}

int RunGet(const Common& c, const std::string& src, const std::string& local, const std::string& buf_size,
           const std::string& expect) {
  auto conf = LoadConfig(c);
  Check(conf.status(), "configuration");
  auto fs = ConnectOrDie(c, *conf);
  auto bs = dfs::ParseSize(buf_size);
  Check(bs.status(), "--buffer");
  Buffer buf(*bs);
  int fd = -1;
  if (!local.empty()) {
    fd = ::open(local.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) Die(fmt::format("creating {}: {}", local, std::strerror(errno)));
  }

  const auto t0 = Clock::now();
  auto in = fs->Open(src);
  Check(in.status(), "opening " + src);
  uint64_t done = 0;
  for (;;) {
    auto r = (*in)->Read(buf.data, buf.size);
    Check(r.status(), "reading " + src);
    if (*r == 0) break;
    if (fd >= 0) {
      for (size_t off = 0; off < *r;) {
        ssize_t w = ::write(fd, buf.data + off, *r - off);
        if (w < 0) Die(fmt::format("writing {}: {}", local, std::strerror(errno)));
        off += static_cast<size_t>(w);
      }
    }
    done += *r;
  }
  const auto t1 = Clock::now();
  if (fd >= 0) ::close(fd);
  if (done != (*in)->Length()) Die(fmt::format("read {} bytes of {}, but it has {}", done, src, (*in)->Length()));
  if (!expect.empty()) {
    auto e = dfs::ParseSize(expect);
    Check(e.status(), "--expect");
    if (done != *e) Die(fmt::format("read {} bytes of {}, expected {}", done, src, *e));
  }
  std::fprintf(stderr, "get: %llu bytes in %.3f s\n", static_cast<unsigned long long>(done), Seconds(t1 - t0));
  Emit("get_throughput", done / 1e6 / Seconds(t1 - t0), "MB/s");
  Emit("get_seconds", Seconds(t1 - t0), "s");
  return 0;
}

// ---------------------------------------------------------------- loopback

int RunLoopback(const std::string& size, const std::string& buf_size) {
  auto n = dfs::ParseSize(size);
  Check(n.status(), "--size");
  auto bs = dfs::ParseSize(buf_size);
  Check(bs.status(), "--buffer");
  auto lr = dfs::Listener::Listen("127.0.0.1", 0);
  Check(lr.status(), "listening on 127.0.0.1");
  dfs::Listener listener = std::move(lr).value();
  const auto timeout = std::chrono::seconds(60);
  Buffer rbuf(*bs);
  Buffer wbuf(*bs);
  FillPattern(wbuf.data, wbuf.size, 2);

  Status send_status;
  std::thread sender([&] {
    auto s = dfs::Socket::Connect("127.0.0.1", listener.port(), timeout, "loopback receiver");
    if (!s.ok()) {
      send_status = s.status();
      return;
    }
    uint64_t left = *n;
    while (left > 0) {
      size_t k = static_cast<size_t>(std::min<uint64_t>(left, wbuf.size));
      send_status = s->WriteFull(wbuf.data, k, timeout);
      if (!send_status.ok()) return;
      left -= k;
    }
  });
  auto ar = listener.Accept(timeout);
  if (!ar.ok()) {
    sender.join();
    Check(send_status, "loopback sender");
    Check(ar.status(), "accepting the loopback connection");
  }
  dfs::Socket sock = std::move(ar).value();
  const auto t0 = Clock::now();
  uint64_t left = *n;
  Status rs;
  while (left > 0 && rs.ok()) {
    // Read what is there, like a client would, rather than insisting on full buffers.
    size_t k = static_cast<size_t>(std::min<uint64_t>(left, rbuf.size));
    ssize_t r = ::recv(sock.fd(), rbuf.data, k, 0);
    if (r > 0) {
      left -= static_cast<uint64_t>(r);
    } else if (r == 0) {
      rs = Status::IOError("the sender closed early");
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      // dfs::Socket makes its descriptors non-blocking: wait for data.
      pollfd p{sock.fd(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(timeout).count())) == 0) {
        rs = Status::TimedOut("loopback: no data for 60 s");
      }
    } else {
      rs = Status::FromErrno("recv", errno);
    }
  }
  const auto t1 = Clock::now();
  sender.join();
  Check(send_status, "loopback sender");
  Check(rs, "loopback receiver");
  Emit("loopback_tcp_ceiling", *n / 1e6 / Seconds(t1 - t0), "MB/s");
  return 0;
}

// ---------------------------------------------------------------- wait

int RunWait(const Common& c, int datanodes, double timeout_s) {
  auto conf = LoadConfig(c);
  Check(conf.status(), "configuration");
  auto fs = ConnectOrDie(c, *conf);
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  std::string last = "no answer yet";
  while (Clock::now() < deadline) {
    auto st = fs->GetStats();
    if (st.ok()) {
      if (static_cast<int>(st->live_datanodes()) >= datanodes && !st->safe_mode()) {
        std::fprintf(stderr, "wait: %u DataNodes live, safe mode off\n", st->live_datanodes());
        return 0;
      }
      last = fmt::format("{} of {} DataNodes live, safe mode {}", st->live_datanodes(), datanodes,
                         st->safe_mode() ? "ON (" + st->safe_mode_status() + ")" : "off");
    } else {
      last = st.status().message();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  Die(fmt::format("the cluster was not ready within {:.0f} s: {}", timeout_s, last));
}

// ---------------------------------------------------------------- rm

int RunRm(const Common& c, const std::string& path, bool recursive) {
  auto conf = LoadConfig(c);
  Check(conf.status(), "configuration");
  auto fs = ConnectOrDie(c, *conf);
  Status s = fs->Delete(path, recursive);
  if (!s.ok() && !s.IsNotFound()) Die("deleting " + path + ": " + s.message());
  return 0;
}

// ---------------------------------------------------------------- meta

struct PhaseStats {
  std::vector<double> lat_us;  // per op, all clients
  double seconds = 0;
  uint64_t ops = 0;
};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

void EmitPhase(const std::string& name, const char* unit, PhaseStats& p) {
  Emit(name, p.ops / p.seconds, unit);
  std::vector<double> lat = p.lat_us;
  Emit(name.substr(0, name.find('_')) + "_latency_p50", Percentile(lat, 0.50) / 1000, "ms");
  Emit(name.substr(0, name.find('_')) + "_latency_p99", Percentile(lat, 0.99) / 1000, "ms");
}

int RunMeta(const Common& c, int files, int clients, const std::string& dir, int list_rounds) {
  if (files <= 0 || clients <= 0) Die("meta: --files and --clients must be positive");
  auto conf = LoadConfig(c);
  Check(conf.status(), "configuration");
  {
    auto admin = ConnectOrDie(c, *conf);
    auto info = admin->GetFileInfo(dir);
    if (info.ok()) Check(admin->Delete(dir, true), "removing the old " + dir);
    Check(admin->Mkdirs(dir), "creating " + dir);
  }
  std::vector<std::unique_ptr<FileSystem>> fss;
  for (int t = 0; t < clients; ++t) {
    fss.push_back(ConnectOrDie(c, *conf));
    // Connect is lazy: open the connection now so the first timed op does not pay for it.
    Check(fss.back()->GetFileInfo(dir).status(), "first call to the NameNode");
  }
  auto name = [&](int i) { return fmt::format("{}/f{:07d}", dir, i); };

  std::mutex mu;
  Status first_error;
  std::atomic<bool> failed{false};
  auto fail = [&](const Status& s, const std::string& what) {
    std::lock_guard<std::mutex> l(mu);
    if (first_error.ok()) first_error = s.Prepend(what);
    failed = true;
  };

  // Runs op(client, i) for every file i, file i on client i % clients; all
  // clients start together and the phase ends when the last one finishes.
  auto phase = [&](const char* label, const std::function<Status(FileSystem&, int)>& op) {
    PhaseStats ps;
    std::vector<std::vector<double>> lat(clients);
    std::barrier start(clients + 1);
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t) {
      threads.emplace_back([&, t] {
        lat[t].reserve(static_cast<size_t>(files / clients + 1));
        start.arrive_and_wait();
        for (int i = t; i < files && !failed; i += clients) {
          auto a = Clock::now();
          Status s = op(*fss[t], i);
          auto b = Clock::now();
          if (!s.ok()) {
            fail(s, fmt::format("{} {}", label, name(i)));
            return;
          }
          lat[t].push_back(std::chrono::duration<double, std::micro>(b - a).count());
        }
      });
    }
    start.arrive_and_wait();
    const auto t0 = Clock::now();
    for (auto& th : threads) th.join();
    ps.seconds = Seconds(Clock::now() - t0);
    if (failed) Die(first_error.message());
    for (auto& v : lat) ps.lat_us.insert(ps.lat_us.end(), v.begin(), v.end());
    ps.ops = ps.lat_us.size();
    std::fprintf(stderr, "meta: %s %llu ops in %.3f s\n", label, static_cast<unsigned long long>(ps.ops),
                 ps.seconds);
    return ps;
  };

  // The NameNode's own journal statistics around the creates: how long its
  // WAL syncs took meanwhile, and how many mutations each one carried.
  auto journal = [&] {
    auto st = fss[0]->GetStats();
    Check(st.status(), "reading the NameNode's statistics");
    return *st;
  };
  const auto journal_before = journal();
  auto creates = phase("create", [&](FileSystem& fs, int i) -> Status {
    dfs::client::CreateOptions o;
    o.create_parent = false;
    auto out = fs.Create(name(i), o);
    if (!out.ok()) return out.status();
    return (*out)->Close();
  });
  const auto journal_after = journal();
  auto stats = phase("stat", [&](FileSystem& fs, int i) -> Status {
    auto r = fs.GetFileInfo(name(i));
    if (!r.ok()) return r.status();
    if (r->is_dir || r->length != 0 || r->under_construction) {
      return Status::Internal(fmt::format("{} should be a closed empty file", name(i)));
    }
    return Status::OK();
  });
  // Listing: every client pages through the whole directory `list_rounds` times.
  PhaseStats lists;
  uint64_t entries = 0;
  {
    std::vector<std::vector<double>> lat(clients);
    std::vector<uint64_t> seen(clients, 0);
    std::barrier start(clients + 1);
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int r = 0; r < list_rounds && !failed; ++r) {
          uint64_t n = 0;
          auto a = Clock::now();
          Status s = fss[t]->List(dir, [&](const dfs::client::FileInfo&) {
            ++n;
            return true;
          });
          auto b = Clock::now();
          if (s.ok() && n != static_cast<uint64_t>(files)) {
            s = Status::Internal(fmt::format("listed {} entries, expected {}", n, files));
          }
          if (!s.ok()) {
            fail(s, "listing " + dir);
            return;
          }
          seen[t] += n;
          lat[t].push_back(std::chrono::duration<double, std::micro>(b - a).count());
        }
      });
    }
    start.arrive_and_wait();
    const auto t0 = Clock::now();
    for (auto& th : threads) th.join();
    lists.seconds = Seconds(Clock::now() - t0);
    if (failed) Die(first_error.message());
    for (auto& v : lat) lists.lat_us.insert(lists.lat_us.end(), v.begin(), v.end());
    lists.ops = lists.lat_us.size();
    for (auto n : seen) entries += n;
    std::fprintf(stderr, "meta: list %llu listings (%llu entries) in %.3f s\n",
                 static_cast<unsigned long long>(lists.ops), static_cast<unsigned long long>(entries),
                 lists.seconds);
  }
  auto deletes = phase("delete", [&](FileSystem& fs, int i) -> Status { return fs.Delete(name(i), false); });
  {
    auto admin = ConnectOrDie(c, *conf);
    auto left = admin->ListAll(dir);
    Check(left.status(), "listing " + dir + " after the deletes");
    if (!left->empty()) Die(fmt::format("{} entries are left in {} after deleting them all", left->size(), dir));
    Check(admin->Delete(dir, true), "removing " + dir);
  }

  EmitPhase("create_ops", "ops/s", creates);
  const uint64_t syncs = journal_after.journal_syncs() - journal_before.journal_syncs();
  if (syncs > 0) {
    const double n = static_cast<double>(syncs);
    Emit("create_journal_sync_latency",
         (journal_after.journal_sync_micros() - journal_before.journal_sync_micros()) / n / 1000, "ms");
    Emit("create_transactions_per_sync",
         (journal_after.journal_transactions() - journal_before.journal_transactions()) / n, "ratio");
  }
  EmitPhase("stat_ops", "ops/s", stats);
  Emit("list_entries", entries / lists.seconds, "entries/s");
  EmitPhase("list_ops", "lists/s", lists);
  EmitPhase("delete_ops", "ops/s", deletes);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"core_bench: dfs core file-system benchmark (prints `name value unit` lines)"};
  app.require_subcommand(1);
  Common c;
  app.add_option("--namenode", c.namenode, "NameNode host:port (default: $DFS_NAMENODE, else fs.defaultFS)");
  app.add_option("-D", c.defines, "Configuration override key=value (repeatable)");
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "Client library log level");

  std::string buffer = "8m";
  auto* put = app.add_subcommand("put", "Write SIZE generated bytes (or a local file) to a dfs path");
  std::string put_src, put_dst, block_size;
  uint32_t replication = 0;
  put->add_option("source", put_src, "A size like 1g (generated data) or a local file")->required();
  put->add_option("path", put_dst, "dfs path to write")->required();
  put->add_option("--buffer", buffer, "Size of each Write() (one reused buffer)");
  put->add_option("--replication", replication, "Replication (default: dfs.replication)");
  put->add_option("--block-size", block_size, "Block size (default: dfs.blocksize)");

  auto* get = app.add_subcommand("get", "Read a dfs path, discarding it or into a local file");
  std::string get_src, get_dst, expect;
  get->add_option("path", get_src, "dfs path to read")->required();
  get->add_option("local", get_dst, "Local file to write (default: discard)");
  get->add_option("--buffer", buffer, "Size of each Read() (one reused buffer)");
  get->add_option("--expect", expect, "Fail unless exactly this many bytes are read");

  auto* meta = app.add_subcommand("meta", "Create, stat, list and delete empty files from concurrent clients");
  int files = 10000, clients = 8, list_rounds = 3;
  std::string dir = "/bench/meta";
  meta->add_option("--files", files, "Number of empty files");
  meta->add_option("--clients", clients, "Concurrent clients, each with its own FileSystem");
  meta->add_option("--dir", dir, "Directory to use (removed first and afterwards)");
  meta->add_option("--list-rounds", list_rounds, "Full listings per client");

  auto* loop = app.add_subcommand("loopback", "Raw TCP copy over 127.0.0.1 (the ceiling for get)");
  std::string loop_size = "1g";
  loop->add_option("--size", loop_size, "Bytes to copy");
  loop->add_option("--buffer", buffer, "Send and receive buffer size");

  auto* wait = app.add_subcommand("wait", "Wait until N DataNodes are live and safe mode is off");
  int datanodes = 3;
  double wait_timeout = 60;
  wait->add_option("--datanodes", datanodes, "DataNodes to wait for");
  wait->add_option("--timeout", wait_timeout, "Deadline in seconds");

  auto* rm = app.add_subcommand("rm", "Delete a dfs path (no error if it does not exist)");
  std::string rm_path;
  bool rm_recursive = false;
  rm->add_option("path", rm_path, "dfs path")->required();
  rm->add_flag("-r,--recursive", rm_recursive, "Delete a directory and everything under it");

  CLI11_PARSE(app, argc, argv);
  dfs::InitLogging(log_level, "core_bench");

  if (*put) return RunPut(c, put_src, put_dst, buffer, replication, block_size);
  if (*get) return RunGet(c, get_src, get_dst, buffer, expect);
  if (*meta) return RunMeta(c, files, clients, dir, list_rounds);
  if (*loop) return RunLoopback(loop_size, buffer);
  if (*wait) return RunWait(c, datanodes, wait_timeout);
  if (*rm) return RunRm(c, rm_path, rm_recursive);
  return 2;
}
