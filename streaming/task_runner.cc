#include "streaming/task_runner.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "client/filesystem.h"
#include "common/data_transfer.h"
#include "common/logging.h"
#include "common/socket.h"
#include "proto/data_transfer.pb.h"
#include "streaming/map_output.h"
#include "streaming/merge.h"
#include "streaming/process.h"

namespace dfs::streaming {

namespace {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

constexpr size_t kIoBytes = 1 << 20;      // reads of the split and of programs' stdout
constexpr size_t kFeedBytes = 256 << 10;  // writes to a program's stdin

const char* const kFramework = "Map-Reduce Framework";
const char* const kFileSystem = "File System Counters";

int64_t NowMonoMs() { return std::chrono::duration_cast<Millis>(Clock::now().time_since_epoch()).count(); }

// Writes to a program's stdin. A program that exited makes the write fail
// with EPIPE; SIGPIPE, which would kill the whole DataNode, is blocked for the
// writing thread (it is thread-directed, so that suffices).
Status WriteAll(int fd, const char* p, size_t n) {
  thread_local bool sigpipe_blocked = false;
  if (!sigpipe_blocked) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    sigpipe_blocked = true;
  }
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Status::FromErrno("write to the program's stdin", errno);
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::OK();
}

// A job configuration value ("" when unset); the last -D of a key wins.
std::string JobConf(const proto::JobSpec& job, std::string_view key) {
  std::string v;
  for (const auto& kv : job.conf()) {
    if (kv.key() == key) v = kv.value();
  }
  return v;
}

std::string PartName(uint32_t index) { return fmt::format("part-{:05d}", index); }

// Runs one program with the job's limits, and watches it: kills it when the
// attempt is cancelled or it makes no progress for mapreduce.task.timeout.
class Program {
 public:
  Program(AttemptEnv& env, const std::vector<std::string>& argv, std::string role)
      : env_(env), argv_(argv), role_(std::move(role)) {}
  ~Program() { StopWatch(); }

  Status Start() {
    SpawnOptions so;
    so.argv = argv_;
    so.env = env_.env;
    so.cwd = env_.work_dir;
    so.marker = env_.marker;
    so.cpu_seconds = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(env_.conf.GetDuration("mapreduce.task.limit.cpu")).count());
    so.memory_bytes = env_.conf.GetSize("mapreduce.task.limit.memory");
    so.file_bytes = env_.conf.GetSize("mapreduce.task.limit.file-size");
    so.on_counter = [this](std::string_view g, std::string_view n, int64_t amount) {
      if (env_.add_counter) env_.add_counter(g, n, amount);
    };
    so.on_status = [this](std::string_view m) {
      if (env_.set_status) env_.set_status(m);
    };
    auto p = Subprocess::Spawn(so);
    if (!p.ok()) return p.status();
    proc_ = std::move(*p);
    timeout_ = env_.conf.GetDuration("mapreduce.task.timeout");
    watcher_ = std::thread([this] { Watch(); });
    return Status::OK();
  }

  Subprocess& proc() { return *proc_; }

  // Waits for the exit; the result explains a failure in plain words.
  ExitInfo Finish() {
    ExitInfo info;
    for (;;) {
      auto r = proc_->Wait(Millis(200));
      if (r.ok()) {
        info = *r;
        break;
      }
    }
    StopWatch();
    return info;
  }

  std::string Explain(const ExitInfo& info) const {
    std::string program = argv_.empty() ? role_ : argv_.back();
    for (const auto& a : argv_) {
      if (a.find('/') != std::string::npos && a.rfind(env_.work_dir, 0) != 0) continue;
      program = a;  // the script, when there is one
    }
    program = std::filesystem::path(program).filename().string();
    return fmt::format("the {} {}", role_, ExplainExit(info, program, timeout_));
  }

  bool cancelled() const { return cancelled_; }

 private:
  void Watch() {
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
      cv_.wait_for(l, Millis(200));
      if (stop_) break;
      if (env_.cancel && env_.cancel->load()) {
        cancelled_ = true;
        l.unlock();
        proc_->Kill();
        return;
      }
      // Once the program has exited, reap it now: that kills what it left
      // behind, so a background child holding its stdout (or stdin) open
      // cannot keep the caller waiting for end of file.
      l.unlock();
      const bool exited = proc_->Wait(Millis(0)).ok();
      l.lock();
      if (exited) return;
      if (timeout_.count() > 0 &&
          NowMonoMs() - static_cast<int64_t>(proc_->last_activity_ms()) > timeout_.count()) {
        l.unlock();
        proc_->KillForTimeout();
        return;
      }
    }
  }

  void StopWatch() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (watcher_.joinable()) watcher_.join();
  }

  AttemptEnv& env_;
  std::vector<std::string> argv_;
  std::string role_;
  std::unique_ptr<Subprocess> proc_;
  Millis timeout_{0};
  std::thread watcher_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> cancelled_{false};
};

// Reads a program's stdout and calls fn for each line (without '\n'); a last
// line without '\n' counts too.
Status ReadLines(Subprocess& proc, std::string* buf, const std::function<Status(std::string_view)>& fn) {
  buf->resize(kIoBytes);
  size_t have = 0;
  for (;;) {
    if (have == buf->size()) buf->resize(buf->size() * 2);  // a line longer than the buffer
    ssize_t n = ::read(proc.stdout_fd(), buf->data() + have, buf->size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("read the program's output", errno);
    if (n == 0) break;
    proc.Touch();
    have += static_cast<size_t>(n);
    size_t start = 0;
    const char* base = buf->data();
    for (;;) {
      const void* nl = std::memchr(base + start, '\n', have - start);
      if (!nl) break;
      const size_t end = static_cast<size_t>(static_cast<const char*>(nl) - base);
      DFS_RETURN_IF_ERROR(fn(std::string_view(base + start, end - start)));
      start = end + 1;
    }
    std::memmove(buf->data(), base + start, have - start);
    have -= start;
  }
  if (have > 0) DFS_RETURN_IF_ERROR(fn(std::string_view(buf->data(), have)));
  return Status::OK();
}

// The bytes a map reads: every line that starts in [offset, offset + length),
// the last one finished past the end. Feeds them to `out` in large writes.
class SplitReader {
 public:
  SplitReader(client::FileSystem* fs, const proto::InputSplit& split) : fs_(fs), split_(split) {}

  // Writes the split's lines to fd; counts records. A write error (the program
  // stopped reading) ends the feed quietly: its exit code tells the story.
  Status Feed(Subprocess& proc, const std::function<void(float)>& progress, const std::atomic<bool>* cancel) {
    DFS_ASSIGN_OR_RETURN(auto in, fs_->Open(split_.path()));
    const uint64_t file_len = in->Length();
    uint64_t pos = split_.offset();
    const uint64_t end = std::min(file_len, split_.offset() + split_.length());
    std::string buf(kIoBytes, '\0');
    if (pos > 0 && pos < file_len) {
      // A line that starts before the split belongs to the previous one.
      char prev;
      DFS_ASSIGN_OR_RETURN(size_t got, in->PRead(pos - 1, &prev, 1));
      if (got == 1 && prev != '\n') {
        bool found = false;
        while (!found && pos < file_len) {
          DFS_ASSIGN_OR_RETURN(size_t n, in->PRead(pos, buf.data(), std::min<uint64_t>(64 << 10, file_len - pos)));
          if (n == 0) break;
          const void* nl = std::memchr(buf.data(), '\n', n);
          if (nl) {
            pos += static_cast<uint64_t>(static_cast<const char*>(nl) - buf.data()) + 1;
            found = true;
          } else {
            pos += n;
          }
        }
        bytes_read_ += pos - split_.offset();
      }
    }
    if (pos >= end) return Status::OK();  // no line starts in this split
    DFS_RETURN_IF_ERROR(in->Seek(pos));
    // Send [pos, the end of the line holding byte end-1).
    const uint64_t start = pos, span = end - pos, last_byte = end - 1;
    char last = '\n';
    while (pos < file_len) {
      if (cancel && cancel->load()) return Status::Aborted("the attempt was killed");
      DFS_ASSIGN_OR_RETURN(size_t n, in->Read(buf.data(), buf.size()));
      if (n == 0) break;
      if (pos + n > last_byte) {
        const size_t from = pos >= last_byte ? 0 : static_cast<size_t>(last_byte - pos);
        if (const void* nl = std::memchr(buf.data() + from, '\n', n - from)) {
          const size_t take = static_cast<size_t>(static_cast<const char*>(nl) - buf.data()) + 1;
          DFS_RETURN_IF_ERROR(Send(proc, buf.data(), take, &last));
          pos += take;
          break;
        }
      }
      DFS_RETURN_IF_ERROR(Send(proc, buf.data(), n, &last));
      pos += n;
      if (progress) progress(static_cast<float>(std::min<double>(1.0, static_cast<double>(pos - start) / span)));
      if (stopped_) return Status::OK();
    }
    if (last != '\n' && !stopped_) {
      char nl = '\n';
      ++records_;
      DFS_RETURN_IF_ERROR(Send(proc, &nl, 1, &last));
      --bytes_read_;
    }
    return Status::OK();
  }

  uint64_t records() const { return records_; }
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  Status Send(Subprocess& proc, const char* p, size_t n, char* last) {
    if (n == 0) return Status::OK();
    bytes_read_ += n;
    records_ += static_cast<uint64_t>(std::count(p, p + n, '\n'));
    *last = p[n - 1];
    if (stopped_) return Status::OK();
    Status s = WriteAll(proc.stdin_fd(), p, n);
    if (!s.ok()) {
      stopped_ = true;  // EPIPE: the program exited or closed its stdin
      return Status::OK();
    }
    proc.Touch();
    return Status::OK();
  }

  client::FileSystem* fs_;
  proto::InputSplit split_;
  uint64_t records_ = 0;
  uint64_t bytes_read_ = 0;
  bool stopped_ = false;
};

// The output file of a task, written under _temporary and committed later.
class TaskOutput {
 public:
  TaskOutput(AttemptEnv& env, uint32_t index)
      : env_(env),
        tmp_(fmt::format("{}/_temporary/{}/{}", env.spec.job().output(), env.spec.attempt_id(), PartName(index))),
        final_(fmt::format("{}/{}", env.spec.job().output(), PartName(index))) {}
  // A failed attempt's file is closed and removed, not left open under a lease.
  ~TaskOutput() {
    if (!out_) return;
    (void)out_->Close();
    out_.reset();
    (void)env_.fs->Delete(tmp_, false);
  }

  Status Open() {
    client::CreateOptions o;
    o.overwrite = true;
    o.create_parent = true;
    DFS_ASSIGN_OR_RETURN(out_, env_.fs->Create(tmp_, o));
    buf_.reserve(kFeedBytes);
    return Status::OK();
  }
  Status Line(std::string_view line) {
    buf_.append(line);
    buf_.push_back('\n');
    ++records_;
    if (buf_.size() >= kFeedBytes) return Flush();
    return Status::OK();
  }
  Status Close() {
    DFS_RETURN_IF_ERROR(Flush());
    Status s = out_->Close();
    bytes_ = out_->Position();
    out_.reset();
    return s;
  }
  // Asks the job service, then renames into place. OK(false) when denied.
  Result<bool> Commit() {
    DFS_ASSIGN_OR_RETURN(bool granted, env_.request_commit());
    if (!granted) return false;
    DFS_RETURN_IF_ERROR(env_.fs->Rename(tmp_, final_, /*overwrite=*/true).Prepend("committing " + final_));
    return true;
  }
  uint64_t records() const { return records_; }
  uint64_t bytes() const { return bytes_; }

 private:
  Status Flush() {
    if (buf_.empty()) return Status::OK();
    Status s = out_->Write(buf_.data(), buf_.size());
    buf_.clear();
    return s;
  }

  AttemptEnv& env_;
  std::string tmp_, final_;
  std::unique_ptr<client::OutputStream> out_;
  std::string buf_;
  uint64_t records_ = 0;
  uint64_t bytes_ = 0;
};

AttemptResult Failed(std::string reason) {
  AttemptResult r;
  r.state = proto::TaskReport::FAILED;
  r.reason = std::move(reason);
  return r;
}

// After the program ended: success, or a failure explained with its stderr.
bool ProgramFailed(Program& prog, const ExitInfo& info, AttemptResult* r) {
  if (info.exited && info.exit_code == 0) return false;
  r->state = prog.cancelled() ? proto::TaskReport::KILLED : proto::TaskReport::FAILED;
  r->exit_code = info.exited ? info.exit_code : -1;
  r->signal = info.exited ? 0 : info.signal;
  r->reason = prog.cancelled() ? "killed by the job service" : prog.Explain(info);
  r->stderr_tail = prog.proc().StderrTail();
  return true;
}

// Runs `combiner` over the sorted lines of one partition.
Status RunCombiner(AttemptEnv& env, const std::vector<std::string_view>& lines,
                   const std::function<Status(std::string_view)>& emit) {
  Program prog(env, env.combiner, "combiner");
  DFS_RETURN_IF_ERROR(prog.Start());
  Status feed_status;
  std::thread feeder([&] {
    std::string buf;
    buf.reserve(kFeedBytes + 4096);
    for (auto line : lines) {
      buf.append(line);
      buf.push_back('\n');
      if (buf.size() >= kFeedBytes) {
        if (!WriteAll(prog.proc().stdin_fd(), buf.data(), buf.size()).ok()) break;
        prog.proc().Touch();
        buf.clear();
      }
    }
    if (!buf.empty()) (void)WriteAll(prog.proc().stdin_fd(), buf.data(), buf.size());
    prog.proc().CloseStdin();
  });
  std::string rbuf;
  Status rs = ReadLines(prog.proc(), &rbuf, emit);
  feeder.join();
  ExitInfo info = prog.Finish();
  AttemptResult r;
  if (ProgramFailed(prog, info, &r)) {
    std::string msg = r.reason;
    if (!r.stderr_tail.empty()) msg += "\n" + r.stderr_tail;
    return Status::Aborted(msg);
  }
  return rs;
}

AttemptResult RunMap(AttemptEnv& env, const KeySpec& keys) {
  const proto::JobSpec& job = env.spec.job();
  const uint32_t reduces = job.num_reduces();
  std::unique_ptr<MapOutputCollector> collector;
  std::unique_ptr<TaskOutput> out;
  if (reduces > 0) {
    MapOutputCollector::Combiner combiner;
    if (!env.combiner.empty()) {
      combiner = [&env](uint32_t, const std::vector<std::string_view>& lines,
                        const std::function<Status(std::string_view)>& emit) {
        return RunCombiner(env, lines, emit);
      };
    }
    const size_t sort_bytes = static_cast<size_t>(std::clamp<int64_t>(env.conf.GetInt("mapreduce.task.io.sort.mb"), 1, 4096))
                              << 20;
    collector = std::make_unique<MapOutputCollector>(keys, reduces, env.work_dir + "/spill", sort_bytes, combiner);
  } else {
    out = std::make_unique<TaskOutput>(env, env.spec.index());
    Status s = out->Open();
    if (!s.ok()) return Failed(s.message());
  }

  Program prog(env, env.mapper, "mapper");
  if (Status s = prog.Start(); !s.ok()) {
    AttemptResult r = Failed("the mapper could not start: " + s.message());
    r.exit_code = s.code() == StatusCode::kNotFound ? 127 : s.code() == StatusCode::kPermissionDenied ? 126 : -1;
    return r;
  }
  SplitReader reader(env.fs, env.spec.split());
  Status feed_status;
  std::thread feeder([&] {
    feed_status = reader.Feed(prog.proc(), env.set_progress, env.cancel);
    prog.proc().CloseStdin();
  });
  uint64_t out_records = 0;
  std::string rbuf;
  Status collect = ReadLines(prog.proc(), &rbuf, [&](std::string_view line) -> Status {
    ++out_records;
    return collector ? collector->Add(line) : out->Line(line);
  });
  if (!collect.ok()) prog.proc().Kill();
  feeder.join();
  ExitInfo info = prog.Finish();
  AttemptResult r;
  if (ProgramFailed(prog, info, &r)) return r;
  if (!feed_status.ok()) return Failed("reading the input split failed: " + feed_status.message());
  if (!collect.ok()) return Failed("collecting the mapper's output failed: " + collect.message());

  env.add_counter(kFramework, "Map input records", static_cast<int64_t>(reader.records()));
  env.add_counter(kFramework, "Map output records", static_cast<int64_t>(out_records));
  env.add_counter(kFileSystem, "DFS: Number of bytes read", static_cast<int64_t>(reader.bytes_read()));
  if (collector) {
    auto segs = collector->Finish(env.map_output);
    if (!segs.ok()) return Failed("sorting the map output failed: " + segs.status().message());
    const auto& c = collector->counters();
    env.add_counter(kFramework, "Map output bytes", static_cast<int64_t>(c.bytes_in));
    env.add_counter(kFramework, "Map output materialized bytes", static_cast<int64_t>(c.bytes_out));
    env.add_counter(kFramework, "Spilled Records", static_cast<int64_t>(c.spilled_records + c.records_out));
    if (!env.combiner.empty()) {
      env.add_counter(kFramework, "Combine input records", static_cast<int64_t>(c.combine_input_records));
      env.add_counter(kFramework, "Combine output records", static_cast<int64_t>(c.combine_output_records));
    }
    r.state = proto::TaskReport::SUCCEEDED;
    return r;
  }
  if (Status s = out->Close(); !s.ok()) return Failed("writing the output failed: " + s.message());
  env.add_counter(kFileSystem, "DFS: Number of bytes written", static_cast<int64_t>(out->bytes()));
  auto committed = out->Commit();
  if (!committed.ok()) return Failed(committed.status().message());
  r.state = *committed ? proto::TaskReport::SUCCEEDED : proto::TaskReport::KILLED;
  if (!*committed) r.reason = "another attempt of this task committed its output first";
  return r;
}

// Copies one map's partition to a local file, verifying checksums.
Status Fetch(const proto::MapOutputLocation& loc, const std::string& job, uint32_t partition, const std::string& path,
             Millis timeout, uint64_t* bytes) {
  std::string host;
  uint16_t port = 0;
  DFS_RETURN_IF_ERROR(ParseHostPort(loc.xfer_address(), &host, &port));
  DFS_ASSIGN_OR_RETURN(Socket sock, Socket::Connect(host, port, timeout, "DataNode " + loc.xfer_address()));
  proto::OpRequest req;
  req.set_op(proto::FETCH_MAP_OUTPUT);
  req.set_job_id(job);
  req.set_map_attempt(loc.attempt_id());
  req.set_partition(partition);
  DFS_RETURN_IF_ERROR(SendOpRequest(sock, req, timeout));
  proto::OpResponse resp;
  DFS_RETURN_IF_ERROR(ReadOpResponse(sock, &resp, timeout));
  if (resp.code() != proto::OK) return FromProto(resp.code(), resp.message());
  const uint32_t bpc = resp.bytes_per_checksum();
  if (bpc < kMinBytesPerChecksum || bpc > kMaxBytesPerChecksum) {
    return Status::ProtocolError(fmt::format("bad checksum chunk size {} from {}", bpc, loc.xfer_address()));
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno("create " + path, errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  Packet pkt;
  uint64_t expect = 0;
  for (;;) {
    DFS_RETURN_IF_ERROR(ReadPacket(sock, bpc, timeout, &pkt));
    const auto& h = pkt.header;
    if (h.offset_in_block() != expect) {
      return Status::ProtocolError(fmt::format("map output packet at {} where {} was expected", h.offset_in_block(), expect));
    }
    if (h.data_len() > 0) {
      if (auto bad = VerifyPacketChecksums(h.offset_in_block(), pkt.data(), h.data_len(), bpc, pkt.checksums())) {
        return Status::Corruption(fmt::format("map output from {} failed its checksum at byte {}", loc.xfer_address(),
                                              h.offset_in_block() + *bad * bpc));
      }
      DFS_RETURN_IF_ERROR(WriteAll(fd, pkt.data(), h.data_len()).Prepend("writing " + path));
      expect += h.data_len();
    }
    if (h.last()) break;
  }
  if (expect != resp.block_length()) {
    return Status::IOError(fmt::format("map output from {} ended after {} of {} bytes", loc.xfer_address(), expect,
                                       resp.block_length()));
  }
  *bytes = expect;
  return Status::OK();
}

AttemptResult RunReduce(AttemptEnv& env, const KeySpec& keys) {
  const uint32_t partition = env.spec.index();
  const std::string dir = env.work_dir + "/shuffle";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const auto& locs = env.spec.map_outputs();
  const Millis timeout = env.conf.GetDuration("dfs.client.socket-timeout");
  // Fetch with a few threads; the first failure names the map to re-run.
  std::mutex mu;
  int next = 0, failed = -1;
  Status fail_status;
  uint64_t shuffled = 0;
  std::vector<std::string> paths(static_cast<size_t>(locs.size()));
  auto worker = [&] {
    for (;;) {
      int i;
      {
        std::lock_guard<std::mutex> l(mu);
        if (next >= locs.size() || failed >= 0 || (env.cancel && env.cancel->load())) return;
        i = next++;
      }
      const std::string path = fmt::format("{}/map_{}", dir, i);
      uint64_t bytes = 0;
      Status s = Fetch(locs[i], env.spec.job_id(), partition, path, timeout, &bytes);
      std::lock_guard<std::mutex> l(mu);
      if (!s.ok()) {
        if (failed < 0) {
          failed = i;
          fail_status = s;
        }
        return;
      }
      paths[static_cast<size_t>(i)] = path;
      shuffled += bytes;
      if (env.set_progress) env.set_progress(0.33f * static_cast<float>(next) / static_cast<float>(locs.size()));
    }
  };
  {
    std::vector<std::thread> ts;
    const int n = std::min<int>(4, std::max(1, locs.size()));
    for (int t = 0; t < n; ++t) ts.emplace_back(worker);
    for (auto& t : ts) t.join();
  }
  if (env.cancel && env.cancel->load()) {
    AttemptResult r;
    r.state = proto::TaskReport::KILLED;
    r.reason = "killed by the job service";
    return r;
  }
  if (failed >= 0) {
    AttemptResult r;
    r.state = proto::TaskReport::FETCH_FAILED;
    r.failed_map = locs[failed].map_index();
    r.reason = fmt::format("could not fetch the output of map {} from DataNode {}: {}", locs[failed].map_index(),
                           locs[failed].xfer_address(), fail_status.message());
    return r;
  }
  env.add_counter(kFramework, "Reduce shuffle bytes", static_cast<int64_t>(shuffled));

  std::vector<std::unique_ptr<LineSource>> sources;
  const size_t buf_bytes = locs.size() > 16 ? (256 << 10) : FileLineSource::kDefaultBufferBytes;
  for (const auto& p : paths) {
    const uint64_t len = std::filesystem::file_size(p, ec);
    auto src = FileLineSource::Open(p, 0, ec ? 0 : len, buf_bytes);
    if (!src.ok()) return Failed(src.status().message());
    sources.push_back(std::move(*src));
  }
  LineMerger merger(keys, std::move(sources));

  TaskOutput out(env, partition);
  if (Status s = out.Open(); !s.ok()) return Failed(s.message());
  Program prog(env, env.reducer, "reducer");
  if (Status s = prog.Start(); !s.ok()) {
    AttemptResult r = Failed("the reducer could not start: " + s.message());
    r.exit_code = s.code() == StatusCode::kNotFound ? 127 : s.code() == StatusCode::kPermissionDenied ? 126 : -1;
    return r;
  }
  Status merge_status;
  uint64_t in_records = 0;
  std::thread feeder([&] {
    std::string buf;
    buf.reserve(kFeedBytes + 4096);
    uint64_t fed = 0;
    for (;;) {
      std::string_view line;
      auto more = merger.Next(&line);
      if (!more.ok()) {
        merge_status = more.status();
        break;
      }
      if (!*more) break;
      buf.append(line);
      buf.push_back('\n');
      ++in_records;
      if (buf.size() >= kFeedBytes) {
        if (!WriteAll(prog.proc().stdin_fd(), buf.data(), buf.size()).ok()) break;
        prog.proc().Touch();
        fed += buf.size();
        buf.clear();
        if (env.set_progress && shuffled > 0) {
          env.set_progress(0.33f + 0.67f * static_cast<float>(std::min<double>(1.0, double(fed) / double(shuffled))));
        }
      }
      if (env.cancel && env.cancel->load()) break;
    }
    if (!buf.empty()) (void)WriteAll(prog.proc().stdin_fd(), buf.data(), buf.size());
    prog.proc().CloseStdin();
  });
  std::string rbuf;
  Status collect = ReadLines(prog.proc(), &rbuf, [&](std::string_view line) { return out.Line(line); });
  if (!collect.ok()) prog.proc().Kill();
  feeder.join();
  ExitInfo info = prog.Finish();
  AttemptResult r;
  if (ProgramFailed(prog, info, &r)) return r;
  if (!merge_status.ok()) return Failed("merging the map outputs failed: " + merge_status.message());
  if (!collect.ok()) return Failed("writing the reducer's output failed: " + collect.message());
  if (Status s = out.Close(); !s.ok()) return Failed("writing the output failed: " + s.message());
  env.add_counter(kFramework, "Reduce input records", static_cast<int64_t>(in_records));
  env.add_counter(kFramework, "Reduce output records", static_cast<int64_t>(out.records()));
  env.add_counter(kFileSystem, "DFS: Number of bytes written", static_cast<int64_t>(out.bytes()));
  auto committed = out.Commit();
  if (!committed.ok()) return Failed(committed.status().message());
  r.state = *committed ? proto::TaskReport::SUCCEEDED : proto::TaskReport::KILLED;
  if (!*committed) r.reason = "another attempt of this task committed its output first";
  return r;
}

}  // namespace

AttemptResult RunAttempt(AttemptEnv& env) {
  const proto::JobSpec& job = env.spec.job();
  auto keys = KeySpec::FromConf([&](std::string_view k) { return JobConf(job, k); }, job.key_field_partitioner(),
                                std::max<uint32_t>(1, job.num_reduces()));
  if (!keys.ok()) return Failed(keys.status().message());
  if (env.spec.kind() == proto::TaskSpec::MAP) return RunMap(env, *keys);
  return RunReduce(env, *keys);
}

}  // namespace dfs::streaming
