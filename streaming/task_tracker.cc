#include "streaming/task_tracker.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <xxhash.h>

#include "client/filesystem.h"
#include "common/logging.h"
#include "common/rpc/channel.h"
#include "proto/jobs.pb.h"
#include "streaming/map_output.h"
#include "streaming/process.h"
#include "streaming/task_runner.h"

namespace dfs::streaming {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

constexpr Millis kPollWait{2000};
constexpr Millis kReportEvery{1000};
constexpr const char* kTaskPath = "/usr/local/bin:/usr/bin:/bin";

// "mapreduce.job.name" → "mapreduce_job_name", as Hadoop streaming exports the job conf.
std::string EnvName(std::string key) {
  for (char& c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return key;
}

Status WriteWholeFile(const std::string& path, const std::string& content, bool executable) {
  const std::string tmp = path + ".part";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, executable ? 0755 : 0644);
  if (fd < 0) return Status::FromErrno("create " + tmp, errno);
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return Status::FromErrno("write " + tmp, e);
    }
    done += static_cast<size_t>(n);
  }
  if (::fchmod(fd, executable ? 0755 : 0644) != 0 || ::close(fd) != 0) return Status::FromErrno("close " + tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Status::FromErrno("rename " + tmp, errno);
  return Status::OK();
}

}  // namespace

struct TaskTracker::Impl {
  struct Attempt {
    proto::TaskSpec spec;
    std::atomic<bool> cancel{false};
    std::atomic<float> progress{0};
    std::mutex mu;  // guards the fields below
    std::string status;
    std::map<std::pair<std::string, std::string>, int64_t> counters;
    std::atomic<bool> finished{false};  // result below is final and waits to be reported (set under mu)
    proto::TaskReport final_report;
    enum class Commit { kNone, kAsked, kGranted, kDenied } commit = Commit::kNone;
    std::condition_variable commit_cv;
    std::thread thread;  // joined by whoever takes the attempt out of `attempts`
  };
  struct JobLocal {
    std::mutex mu;
    bool ready = false;
    Status error;  // files could not be fetched, or a command could not be resolved
    std::string files_dir;
    std::vector<std::string> mapper, reducer, combiner;
  };

  Options opts;
  std::unique_ptr<rpc::RpcChannel> nn;
  std::string nn_host;
  uint16_t nn_port = 0;

  mutable std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool report_now = false;
  std::map<std::string, std::shared_ptr<Attempt>> attempts;  // until their final report is acknowledged, or Shutdown
  std::map<std::string, std::shared_ptr<JobLocal>> jobs;
  std::set<std::string> finished_jobs;                       // to clean once no attempt of theirs runs
  std::thread poller, reporter;

  explicit Impl(Options o) : opts(std::move(o)) {}

  std::string JobDir(const std::string& job) const { return opts.dir + "/jobs/" + job; }

  // ------------------------------------------------------------------ polling

  void PollLoop() {
    auto log = Log("tasks");
    bool warned = false;
    while (true) {
      proto::PollTasksRequest req;
      {
        std::lock_guard<std::mutex> l(mu);
        if (stopping) return;
        req.set_uuid(opts.uuid);
        req.set_xfer_address(opts.xfer_address);
        req.set_slots(static_cast<uint32_t>(opts.slots));
        uint32_t busy = 0;
        for (const auto& [id, a] : attempts) {
          req.add_running_attempts(id);
          if (!a->finished) ++busy;
        }
        // Attempts that finished but are not yet reported still hold no slot.
        req.set_free_slots(busy >= static_cast<uint32_t>(opts.slots) ? 0 : opts.slots - busy);
        req.set_wait_ms(static_cast<uint32_t>(kPollWait.count()));
      }
      proto::PollTasksResponse resp;
      Status s = nn->Call(proto::POLL_TASKS, req, &resp, kPollWait + Millis(15000));
      if (!s.ok()) {
        {
          std::lock_guard<std::mutex> l(mu);
          if (stopping) return;
        }
        if (!warned) log->warn("cannot poll the job service for tasks: {}; retrying", s.ToString());
        warned = true;
        std::unique_lock<std::mutex> l(mu);
        cv.wait_for(l, Millis(1000), [&] { return stopping; });
        continue;
      }
      if (warned) log->info("polling the job service for tasks again");
      warned = false;
      for (const auto& id : resp.kill_attempts()) Kill(id);
      for (const auto& job : resp.finished_jobs()) {
        std::lock_guard<std::mutex> l(mu);
        finished_jobs.insert(job);
      }
      for (const auto& t : resp.launch()) Launch(t);
      CleanFinishedJobs();
    }
  }

  void Kill(const std::string& id) {
    std::lock_guard<std::mutex> l(mu);
    auto it = attempts.find(id);
    if (it == attempts.end()) return;
    it->second->cancel = true;
    std::lock_guard<std::mutex> al(it->second->mu);
    it->second->commit_cv.notify_all();
  }

  void Launch(const proto::TaskSpec& spec) {
    auto a = std::make_shared<Attempt>();
    a->spec = spec;
    std::lock_guard<std::mutex> l(mu);
    if (stopping || attempts.count(spec.attempt_id())) return;
    attempts[spec.attempt_id()] = a;
    a->thread = std::thread([this, a] { RunOne(a); });
  }

  void CleanFinishedJobs() {
    std::vector<std::string> remove;
    {
      std::lock_guard<std::mutex> l(mu);
      for (auto it = finished_jobs.begin(); it != finished_jobs.end();) {
        bool busy = false;
        for (const auto& [id, a] : attempts) busy |= a->spec.job_id() == *it;
        if (busy) {
          ++it;
          continue;
        }
        remove.push_back(*it);
        jobs.erase(*it);
        it = finished_jobs.erase(it);
      }
    }
    for (const auto& job : remove) {
      std::error_code ec;
      fs::remove_all(JobDir(job), ec);
      Log("tasks")->debug("removed the local files of finished job {}", job);
    }
  }

  // ---------------------------------------------------------------- reporting

  void ReportLoop() {
    auto log = Log("tasks");
    std::unique_lock<std::mutex> l(mu);
    while (!stopping) {
      cv.wait_for(l, kReportEvery, [&] { return stopping || report_now; });
      if (stopping) break;
      report_now = false;
      proto::ReportTasksRequest req;
      req.set_uuid(opts.uuid);
      std::vector<std::string> finals;
      for (auto& [id, a] : attempts) {
        std::lock_guard<std::mutex> al(a->mu);
        if (a->finished) {
          *req.add_reports() = a->final_report;
          finals.push_back(id);
          continue;
        }
        auto* r = req.add_reports();
        r->set_attempt_id(id);
        r->set_job_id(a->spec.job_id());
        r->set_state(a->commit == Attempt::Commit::kAsked ? proto::TaskReport::COMMIT_PENDING
                                                            : proto::TaskReport::RUNNING);
        r->set_progress(a->progress.load());
        r->set_status(a->status);
        FillCounters(*a, r);
      }
      if (req.reports_size() == 0) continue;
      l.unlock();
      proto::ReportTasksResponse resp;
      Status s = nn->Call(proto::REPORT_TASKS, req, &resp, Millis(15000));
      l.lock();
      if (!s.ok()) {
        log->warn("cannot report {} task(s) to the job service: {}; retrying", req.reports_size(), s.ToString());
        continue;
      }
      std::vector<std::shared_ptr<Attempt>> done;
      for (const auto& id : finals) {
        auto it = attempts.find(id);
        if (it == attempts.end()) continue;
        done.push_back(it->second);
        attempts.erase(it);
      }
      auto decide = [&](const std::string& id, Attempt::Commit c) {
        auto it = attempts.find(id);
        if (it == attempts.end()) return;
        std::lock_guard<std::mutex> al(it->second->mu);
        if (it->second->commit == Attempt::Commit::kAsked) it->second->commit = c;
        it->second->commit_cv.notify_all();
      };
      for (const auto& id : resp.commit_granted()) decide(id, Attempt::Commit::kGranted);
      for (const auto& id : resp.commit_denied()) decide(id, Attempt::Commit::kDenied);
      for (const auto& id : resp.kill_attempts()) {
        auto it = attempts.find(id);
        if (it != attempts.end()) {
          it->second->cancel = true;
          std::lock_guard<std::mutex> al(it->second->mu);
          it->second->commit_cv.notify_all();
        }
      }
      l.unlock();
      for (auto& a : done) {
        if (a->thread.joinable()) a->thread.join();
      }
      done.clear();
      l.lock();
    }
  }

  static void FillCounters(const Attempt& a, proto::TaskReport* r) {
    for (const auto& [k, v] : a.counters) {
      auto* c = r->add_counters();
      c->set_group(k.first);
      c->set_name(k.second);
      c->set_value(v);
    }
  }

  void ReportSoon() {
    std::lock_guard<std::mutex> l(mu);
    report_now = true;
    cv.notify_all();
  }

  // ---------------------------------------------------------------- attempts

  // Fetches the job's files and resolves its commands, once per job on this node.
  std::shared_ptr<JobLocal> PrepareJob(const proto::TaskSpec& spec) {
    std::shared_ptr<JobLocal> job;
    {
      std::lock_guard<std::mutex> l(mu);
      auto& slot = jobs[spec.job_id()];
      if (!slot) slot = std::make_shared<JobLocal>();
      job = slot;
    }
    std::lock_guard<std::mutex> jl(job->mu);
    if (job->ready) return job;
    job->ready = true;
    job->files_dir = JobDir(spec.job_id()) + "/files";
    std::error_code ec;
    fs::create_directories(job->files_dir, ec);
    fs::create_directories(JobDir(spec.job_id()) + "/out", ec);
    if (ec) {
      job->error = Status::IOError(fmt::format("cannot create {}: {}", job->files_dir, ec.message()));
      return job;
    }
    if (spec.job().files_size() > 0) {
      proto::GetJobFilesRequest req;
      req.set_job_id(spec.job_id());
      proto::GetJobFilesResponse resp;
      Status s = nn->Call(proto::GET_JOB_FILES, req, &resp, Millis(60000));
      if (!s.ok()) {
        job->error = s.Prepend("fetching the job's shipped files");
        job->ready = false;  // may work next time
        return job;
      }
      for (const auto& f : resp.files()) {
        if (f.name().empty() || f.name().find('/') != std::string::npos || f.name() == "." || f.name() == "..") {
          job->error = Status::InvalidArgument(fmt::format("the shipped file name '{}' is not a plain file name", f.name()));
          return job;
        }
        if (XXH3_64bits(f.content().data(), f.content().size()) != f.digest() && f.digest() != 0) {
          job->error = Status::Corruption(fmt::format("the shipped file {} arrived damaged (digest mismatch)", f.name()));
          job->ready = false;
          return job;
        }
        Status w = WriteWholeFile(job->files_dir + "/" + f.name(), f.content(), f.executable());
        if (!w.ok()) {
          job->error = w;
          return job;
        }
      }
    }
    auto resolve = [&](const google::protobuf::RepeatedPtrField<std::string>& argv, const char* role,
                       std::vector<std::string>* out) -> Status {
      if (argv.empty()) return Status::OK();
      auto r = ResolveCommand(std::vector<std::string>(argv.begin(), argv.end()), job->files_dir, kTaskPath);
      if (!r.ok()) return r.status().Prepend(std::string("-") + role);
      *out = std::move(*r);
      return Status::OK();
    };
    Status s = resolve(spec.job().mapper(), "mapper", &job->mapper);
    if (s.ok()) s = resolve(spec.job().reducer(), "reducer", &job->reducer);
    if (s.ok()) s = resolve(spec.job().combiner(), "combiner", &job->combiner);
    job->error = s;
    return job;
  }

  std::string Marker(const proto::TaskSpec& spec) const { return spec.attempt_id() + "@" + opts.uuid; }

  std::vector<std::string> TaskEnv(const proto::TaskSpec& spec, const std::string& work_dir) const {
    const proto::JobSpec& job = spec.job();
    std::map<std::string, std::string> env;
    env["PATH"] = kTaskPath;
    env["HOME"] = work_dir;
    env["TMPDIR"] = work_dir + "/tmp";
    env["LANG"] = "C.UTF-8";
    env["USER"] = job.user();
    env["LOGNAME"] = job.user();
    env["PWD"] = work_dir;
    for (const auto& kv : job.conf()) env[EnvName(kv.key())] = kv.value();
    const bool is_map = spec.kind() == proto::TaskSpec::MAP;
    const std::string task_id = spec.attempt_id().substr(0, spec.attempt_id().rfind('_'));
    env["mapreduce_job_id"] = spec.job_id();
    env["mapreduce_job_name"] = job.name();
    env["mapreduce_job_user_name"] = job.user();
    env["user_name"] = job.user();
    env["mapreduce_job_reduces"] = std::to_string(job.num_reduces());
    env["mapreduce_task_id"] = "task" + task_id.substr(task_id.find('_'));
    env["mapreduce_task_attempt_id"] = spec.attempt_id();
    env["mapred_task_id"] = spec.attempt_id();
    env["mapreduce_task_partition"] = std::to_string(spec.index());
    env["mapred_task_partition"] = std::to_string(spec.index());
    env["mapreduce_task_ismap"] = is_map ? "true" : "false";
    env["mapreduce_output_fileoutputformat_outputdir"] = job.output();
    if (is_map) {
      env["mapreduce_map_input_file"] = spec.split().path();
      env["map_input_file"] = spec.split().path();
      env["mapreduce_map_input_start"] = std::to_string(spec.split().offset());
      env["map_input_start"] = std::to_string(spec.split().offset());
      env["mapreduce_map_input_length"] = std::to_string(spec.split().length());
      env["map_input_length"] = std::to_string(spec.split().length());
    }
    for (const auto& kv : job.cmdenv()) env[kv.key()] = kv.value();
    env["DFS_TASK_ATTEMPT"] = Marker(spec);  // finds what the task leaves behind
    std::vector<std::string> out;
    out.reserve(env.size());
    for (const auto& [k, v] : env) out.push_back(k + "=" + v);
    return out;
  }

  void RunOne(std::shared_ptr<Attempt> a) {
    const proto::TaskSpec& spec = a->spec;
    auto log = Log("tasks");
    AttemptResult result;
    const std::string work_dir = JobDir(spec.job_id()) + "/" + spec.attempt_id();
    std::unique_ptr<client::FileSystem> dfs;
    do {
      auto job = PrepareJob(spec);
      if (!job->error.ok()) {
        result.reason = job->error.message();
        break;
      }
      std::error_code ec;
      fs::create_directories(work_dir + "/tmp", ec);
      if (ec) {
        result.reason = fmt::format("cannot create the task's working directory {}: {}", work_dir, ec.message());
        break;
      }
      for (const auto& f : spec.job().files()) {
        const std::string src = job->files_dir + "/" + f.name(), dst = work_dir + "/" + f.name();
        if (::link(src.c_str(), dst.c_str()) != 0) fs::copy_file(src, dst, fs::copy_options::overwrite_existing, ec);
      }
      AttemptEnv env;
      env.spec = spec;
      env.conf = opts.conf;
      for (const auto& kv : spec.job().conf()) {
        bool known = false;
        for (const auto& k : AllConfigKeys()) known |= kv.key() == k.name;
        if (!known) continue;
        Status s = env.conf.Set(kv.key(), kv.value());
        if (!s.ok()) {
          result.reason = "-D " + kv.key() + ": " + s.message();
          break;
        }
      }
      if (!result.reason.empty()) break;
      env.work_dir = work_dir;
      env.map_output = JobDir(spec.job_id()) + "/out/" + spec.attempt_id() + ".out";
      env.mapper = job->mapper;
      env.reducer = job->reducer;
      env.combiner = job->combiner;
      env.env = TaskEnv(spec, work_dir);
      env.marker = Marker(spec);
      auto conn = client::FileSystem::ConnectAs(opts.conf, opts.namenode, spec.job().user());
      if (!conn.ok()) {
        result.reason = conn.status().message();
        break;
      }
      dfs = std::move(*conn);
      dfs->SetPreferredDatanode(opts.uuid);
      env.fs = dfs.get();
      env.cancel = &a->cancel;
      env.set_progress = [a](float p) { a->progress = p; };
      env.add_counter = [a](std::string_view g, std::string_view n, int64_t d) {
        std::lock_guard<std::mutex> l(a->mu);
        a->counters[{std::string(g), std::string(n)}] += d;
      };
      env.set_status = [a](std::string_view s) {
        std::lock_guard<std::mutex> l(a->mu);
        a->status = std::string(s);
      };
      env.request_commit = [this, a]() -> Result<bool> {
        {
          std::lock_guard<std::mutex> l(a->mu);
          a->commit = Attempt::Commit::kAsked;
        }
        ReportSoon();
        std::unique_lock<std::mutex> l(a->mu);
        const auto deadline = Clock::now() + Millis(120000);
        while (a->commit == Attempt::Commit::kAsked && !a->cancel) {
          if (a->commit_cv.wait_until(l, deadline) == std::cv_status::timeout) {
            return Status::TimedOut("the job service did not answer the request to commit within 120 s");
          }
        }
        if (a->cancel) return Status::Aborted("the attempt was killed");
        return a->commit == Attempt::Commit::kGranted;
      };
      log->info("{}: starting {} {}", spec.job_id(), spec.attempt_id(),
                spec.kind() == proto::TaskSpec::MAP ? fmt::format("on {} at {}", spec.split().path(), spec.split().offset())
                                                    : std::string());
      result = RunAttempt(env);
    } while (false);
    if (a->cancel && result.state != proto::TaskReport::SUCCEEDED) {
      result.state = proto::TaskReport::KILLED;
      if (result.reason.empty()) result.reason = "killed by the job service";
    }
    // The working directory goes; a map's output stays for the reducers.
    std::error_code ec;
    fs::remove_all(work_dir, ec);
    if (result.state != proto::TaskReport::SUCCEEDED) {
      fs::remove(JobDir(spec.job_id()) + "/out/" + spec.attempt_id() + ".out", ec);
      fs::remove(JobDir(spec.job_id()) + "/out/" + spec.attempt_id() + ".out.index", ec);
    }
    log->info("{}: {} ended: {}{}", spec.job_id(), spec.attempt_id(), proto::TaskReport::State_Name(result.state),
              result.reason.empty() ? "" : " (" + result.reason + ")");
    {
      std::lock_guard<std::mutex> l(a->mu);
      auto& r = a->final_report;
      r.set_attempt_id(spec.attempt_id());
      r.set_job_id(spec.job_id());
      r.set_state(result.state);
      r.set_progress(result.state == proto::TaskReport::SUCCEEDED ? 1.0f : a->progress.load());
      r.set_status(a->status);
      FillCounters(*a, &r);
      r.set_exit_code(result.exit_code);
      r.set_signal(result.signal);
      r.set_reason(result.reason);
      r.set_stderr_tail(result.stderr_tail);
      r.set_failed_map(result.failed_map);
      a->finished = true;
    }
    dfs.reset();
    ReportSoon();
  }
};

TaskTracker::TaskTracker(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

TaskTracker::~TaskTracker() { Shutdown(); }

Status TaskTracker::Start() {
  Impl* d = impl_.get();
  if (d->opts.slots <= 0) d->opts.slots = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  DFS_RETURN_IF_ERROR(ParseHostPort(d->opts.namenode, &d->nn_host, &d->nn_port).Prepend("NameNode address"));
  std::error_code ec;
  fs::remove_all(d->opts.dir + "/jobs", ec);  // attempts of before a restart are lost anyway
  fs::create_directories(d->opts.dir + "/jobs", ec);
  if (ec) return Status::IOError(fmt::format("cannot create the task directory {}: {}", d->opts.dir, ec.message()));
  d->nn = std::make_unique<rpc::RpcChannel>(d->nn_host, d->nn_port,
                                            rpc::Identity{"TaskTracker_" + d->opts.uuid, "dfs"},
                                            "NameNode " + d->opts.namenode);
  d->poller = std::thread([d] { d->PollLoop(); });
  d->reporter = std::thread([d] { d->ReportLoop(); });
  Log("tasks")->info("running streaming tasks in {} ({} slots)", d->opts.dir, d->opts.slots);
  return Status::OK();
}

void TaskTracker::Shutdown() {
  Impl* d = impl_.get();
  if (!d) return;
  std::map<std::string, std::shared_ptr<Impl::Attempt>> all;
  {
    std::lock_guard<std::mutex> l(d->mu);
    d->stopping = true;
    // Taken out of the map, so that only this thread joins them: the
    // reporter, back from a call, finds none of them to reap.
    all.swap(d->attempts);
    for (auto& [id, a] : all) {
      a->cancel = true;
      std::lock_guard<std::mutex> al(a->mu);
      a->commit_cv.notify_all();
    }
    d->cv.notify_all();
  }
  for (auto& [id, a] : all) {
    if (a->thread.joinable()) a->thread.join();
  }
  if (d->nn) d->nn->Close();  // fails a poll in flight
  if (d->poller.joinable()) d->poller.join();
  if (d->reporter.joinable()) d->reporter.join();
}

Result<TaskTracker::Segment> TaskTracker::LookupMapOutput(const std::string& job, const std::string& attempt,
                                                          uint32_t partition) {
  auto bad = [](const std::string& s) {
    return s.empty() || s.find('/') != std::string::npos || s.find("..") != std::string::npos;
  };
  if (bad(job) || bad(attempt)) return Status::InvalidArgument("malformed job or attempt id in a map output fetch");
  const std::string path = impl_->JobDir(job) + "/out/" + attempt + ".out";
  auto index = MapOutputCollector::ReadIndex(path + ".index");
  if (!index.ok()) {
    return Status::NotFound(fmt::format("no output of map attempt {} of {} here ({})", attempt, job,
                                        index.status().message()));
  }
  if (partition >= index->size()) {
    return Status::InvalidArgument(fmt::format("map attempt {} has {} partitions, not {}", attempt, index->size(),
                                               partition + 1));
  }
  const auto& seg = (*index)[partition];
  return Segment{path, seg.offset, seg.length};
}

int TaskTracker::slots() const { return impl_->opts.slots; }

int TaskTracker::running() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  int n = 0;
  for (const auto& [id, a] : impl_->attempts) n += a->finished ? 0 : 1;
  return n;
}

}  // namespace dfs::streaming
