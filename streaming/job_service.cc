#include "streaming/job_service.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "client/filesystem.h"
#include "common/logging.h"
#include "common/rpc/server.h"
#include "proto/jobs.pb.h"

namespace dfs::streaming {

namespace {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

int64_t NowMs() {
  return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The longest a DataNode's poll is held when there is nothing for it.
constexpr Millis kMaxPollWait{5000};
// Fetch failures a reduce may report before they count as one failed attempt.
constexpr uint32_t kFetchFailuresPerAttempt = 3;

const char* KindName(bool is_map) { return is_map ? "map" : "reduce"; }

void AddCounter(std::map<std::pair<std::string, std::string>, int64_t>* sum,
                const google::protobuf::RepeatedPtrField<proto::Counter>& cs) {
  for (const auto& c : cs) (*sum)[{c.group(), c.name()}] += c.value();
}

}  // namespace

struct JobService::Impl {
  struct Attempt {
    std::string id;
    std::string job_id;
    bool is_map = true;
    uint32_t index = 0;
    std::string node;  // uuid
    bool live = true;
    bool killing = false;  // we asked the node to stop it
    float progress = 0;
    std::string status;
    google::protobuf::RepeatedPtrField<proto::Counter> counters;
  };
  struct Task {
    bool is_map = true;
    uint32_t index = 0;
    proto::InputSplit split;  // maps
    enum State { kPending, kRunning, kDone } state = kPending;
    uint32_t launched = 0;    // attempts started
    uint32_t failures = 0;    // attempts that count toward maxattempts
    uint32_t fetch_failures = 0;
    std::string running;      // live attempt id
    std::string done_attempt, done_node;
    std::string commit_holder;
    std::set<std::string> failed_nodes;
    Clock::time_point pending_since = Clock::now();
    google::protobuf::RepeatedPtrField<proto::Counter> counters;  // of the attempt that succeeded
  };
  struct Job {
    uint64_t seq = 0;
    proto::JobSpec spec;       // splits moved into the tasks; files with content
    proto::JobSpec lean;       // sent with each task: no splits, files without content
    proto::JobStatus status;
    std::vector<Task> maps, reduces;
    uint32_t maps_done = 0, reduces_done = 0;
    uint32_t max_map_attempts = 4, max_reduce_attempts = 4;
    std::vector<proto::AttemptFailure> failures;
    std::set<std::string> nodes;  // DataNodes that ran its tasks (to clean up)
    std::map<std::pair<std::string, std::string>, int64_t> job_counters;
    bool finishing = false;       // commit or abort queued for the worker
    bool finished() const {
      return status.state() == proto::JOB_SUCCEEDED || status.state() == proto::JOB_FAILED ||
             status.state() == proto::JOB_KILLED;
    }
  };
  struct HeldPoll {
    std::shared_ptr<proto::PollTasksResponse> resp;
    std::function<void(Status)> done;
    Clock::time_point until;
  };
  struct Node {
    std::string uuid, xfer;
    uint32_t slots = 0, free = 0;
    Clock::time_point last_seen = Clock::now();
    std::set<std::string> attempts;        // live attempts placed here
    std::vector<std::string> to_kill;
    std::vector<std::string> finished_jobs;
    std::optional<HeldPoll> held;
  };
  using Reply = std::function<void()>;

  Options opts;
  FsFactory fs_factory;
  History history;
  const std::string id_prefix = std::to_string(NowMs());

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::thread worker;
  uint64_t next_seq = 1;
  std::map<std::string, std::unique_ptr<Job>> jobs;   // running and retained finished
  std::deque<std::string> finished_order;             // oldest first, for retention
  std::map<std::string, Attempt> attempts;            // live and recently ended
  std::map<std::string, Node> nodes;
  std::deque<std::string> finish_queue;               // jobs to commit or abort (worker)
  std::vector<std::string> retired;                   // to remove from the history store

  Impl(Options o, FsFactory f, History h) : opts(std::move(o)), fs_factory(std::move(f)), history(std::move(h)) {}

  // ---------------------------------------------------------------- helpers

  Job* FindJob(const std::string& id) {
    auto it = jobs.find(id);
    return it == jobs.end() ? nullptr : it->second.get();
  }
  Task& TaskOf(Job& job, const Attempt& a) { return a.is_map ? job.maps[a.index] : job.reduces[a.index]; }

  std::string NodeName(const std::string& uuid) const {
    auto it = nodes.find(uuid);
    return it == nodes.end() || it->second.xfer.empty() ? uuid : it->second.xfer;
  }

  static std::string SplitText(const proto::InputSplit& s) {
    if (s.length() == 0) return s.path();
    return fmt::format("{} bytes {}-{}", s.path(), s.offset(), s.offset() + s.length() - 1);
  }

  uint32_t UserRunning(const std::string& user) const {
    uint32_t n = 0;
    for (const auto& [id, a] : attempts) {
      if (!a.live) continue;
      auto it = jobs.find(a.job_id);
      if (it != jobs.end() && it->second->spec.user() == user) ++n;
    }
    return n;
  }

  bool NodeLive(const std::string& uuid) const {
    auto it = nodes.find(uuid);
    return it != nodes.end() && Clock::now() - it->second.last_seen < opts.tracker_expiry;
  }

  // Whether `node` may run `task`: not where it failed, unless no other live node is left.
  bool Allowed(const Task& t, const std::string& node) const {
    if (!t.failed_nodes.count(node)) return true;
    for (const auto& [uuid, n] : nodes) {
      if (!t.failed_nodes.count(uuid) && NodeLive(uuid)) return false;
    }
    return true;
  }

  // ------------------------------------------------------------- scheduling

  // The next task for a free slot on `node`, or null.
  std::pair<Job*, Task*> PickTask(const Node& node) {
    std::vector<Job*> order;
    for (auto& [id, j] : jobs) {
      if (j->status.state() == proto::JOB_RUNNING && !j->finishing) order.push_back(j.get());
    }
    std::map<std::string, uint32_t> running_by_user;
    for (Job* j : order) running_by_user.emplace(j->spec.user(), UserRunning(j->spec.user()));
    std::stable_sort(order.begin(), order.end(), [&](Job* a, Job* b) {
      uint32_t ra = running_by_user[a->spec.user()], rb = running_by_user[b->spec.user()];
      if (ra != rb) return ra < rb;
      return a->seq < b->seq;
    });
    const auto now = Clock::now();
    for (Job* j : order) {
      if (j->maps_done < j->maps.size()) {
        Task* fallback = nullptr;
        for (Task& t : j->maps) {
          if (t.state != Task::kPending || !Allowed(t, node.uuid)) continue;
          const auto& hosts = t.split.hosts();
          if (std::find(hosts.begin(), hosts.end(), node.uuid) != hosts.end()) return {j, &t};
          if (fallback) continue;
          bool host_alive = false;
          for (const auto& h : hosts) host_alive |= (h != node.uuid && NodeLive(h) && !t.failed_nodes.count(h));
          if (!host_alive || now - t.pending_since >= opts.locality_wait) fallback = &t;
        }
        if (fallback) return {j, fallback};
        continue;  // reduces wait for every map
      }
      for (Task& t : j->reduces) {
        if (t.state == Task::kPending && Allowed(t, node.uuid)) return {j, &t};
      }
    }
    return {nullptr, nullptr};
  }

  std::string AttemptId(const Job& job, const Task& t) const {
    return fmt::format("attempt_{}_{}_{:06d}_{}", job.status.job_id().substr(4), t.is_map ? 'm' : 'r', t.index,
                       t.launched);
  }

  void Launch(Node& node, Job& job, Task& t, proto::PollTasksResponse* resp) {
    Attempt a;
    a.id = AttemptId(job, t);
    a.job_id = job.status.job_id();
    a.is_map = t.is_map;
    a.index = t.index;
    a.node = node.uuid;
    proto::TaskSpec* spec = resp->add_launch();
    spec->set_job_id(a.job_id);
    spec->set_attempt_id(a.id);
    spec->set_kind(t.is_map ? proto::TaskSpec::MAP : proto::TaskSpec::REDUCE);
    spec->set_index(t.index);
    spec->set_attempt(t.launched);
    *spec->mutable_job() = job.lean;
    if (t.is_map) {
      *spec->mutable_split() = t.split;
      const auto& hosts = t.split.hosts();
      const bool local = std::find(hosts.begin(), hosts.end(), node.uuid) != hosts.end();
      job.job_counters[{"Job Counters", "Launched map tasks"}]++;
      if (local) job.job_counters[{"Job Counters", "Data-local map tasks"}]++;
    } else {
      for (const Task& m : job.maps) {
        auto* loc = spec->add_map_outputs();
        loc->set_map_index(m.index);
        loc->set_attempt_id(m.done_attempt);
        loc->set_datanode_uuid(m.done_node);
        loc->set_xfer_address(NodeName(m.done_node));
      }
      job.job_counters[{"Job Counters", "Launched reduce tasks"}]++;
    }
    t.state = Task::kRunning;
    t.running = a.id;
    t.launched++;
    node.attempts.insert(a.id);
    node.free = node.free > 0 ? node.free - 1 : 0;
    job.nodes.insert(node.uuid);
    if (job.status.start_ms() == 0) job.status.set_start_ms(NowMs());
    Log("jobs")->debug("{}: {} {} on {}", a.job_id, a.id, t.is_map ? SplitText(t.split) : "", NodeName(node.uuid));
    attempts[a.id] = std::move(a);
  }

  // Fills `resp` for `node` with what it should do now; true when there is anything.
  bool Fill(Node& node, proto::PollTasksResponse* resp) {
    for (auto& k : node.to_kill) resp->add_kill_attempts(k);
    node.to_kill.clear();
    for (auto& j : node.finished_jobs) resp->add_finished_jobs(j);
    node.finished_jobs.clear();
    while (node.free > 0) {
      auto [job, task] = PickTask(node);
      if (!job) break;
      Launch(node, *job, *task, resp);
    }
    return resp->launch_size() > 0 || resp->kill_attempts_size() > 0 || resp->finished_jobs_size() > 0;
  }

  // Answers every held poll that now has work. Replies are run after unlocking.
  void Dispatch(std::vector<Reply>* replies) {
    for (auto& [uuid, node] : nodes) {
      if (!node.held) continue;
      if (Fill(node, node.held->resp.get())) {
        replies->push_back([done = std::move(node.held->done)] { done(Status::OK()); });
        node.held.reset();
      }
    }
  }

  // ---------------------------------------------------------- state changes

  void KillAttempt(Attempt& a) {
    if (!a.live || a.killing) return;
    a.killing = true;
    auto it = nodes.find(a.node);
    if (it != nodes.end()) it->second.to_kill.push_back(a.id);
  }

  // The attempt is over; the task goes back to pending unless it succeeded.
  void EndAttempt(Attempt& a) {
    a.live = false;
    auto it = nodes.find(a.node);
    if (it != nodes.end()) it->second.attempts.erase(a.id);
    Job* job = FindJob(a.job_id);
    if (!job) return;
    Task& t = TaskOf(*job, a);
    if (t.running == a.id) t.running.clear();
    if (t.commit_holder == a.id && t.state != Task::kDone) t.commit_holder.clear();
  }

  void Requeue(Task& t) {
    t.state = Task::kPending;
    t.pending_since = Clock::now();
  }

  void RecordFailure(Job& job, const Attempt& a, const proto::TaskReport* r, const std::string& reason) {
    Task& t = TaskOf(job, a);
    proto::AttemptFailure f;
    f.set_attempt_id(a.id);
    f.set_task(fmt::format("{} {}", KindName(a.is_map), a.index));
    if (a.is_map) f.set_input(SplitText(t.split));
    f.set_datanode(NodeName(a.node));
    f.set_exit_code(r ? r->exit_code() : -1);
    f.set_signal(r ? r->signal() : 0);
    f.set_reason(reason);
    if (r) f.set_stderr_tail(r->stderr_tail());
    job.failures.push_back(std::move(f));
    job.status.set_failed_attempts(job.status.failed_attempts() + 1);
  }

  // A failed attempt: retried elsewhere, or the job fails when it was the last try.
  void AttemptFailed(Job& job, Attempt& a, const proto::TaskReport* r, const std::string& reason, bool counts) {
    Task& t = TaskOf(job, a);
    EndAttempt(a);
    RecordFailure(job, a, r, reason);
    if (job.finished() || job.finishing) return;
    if (counts) {
      t.failures++;
      t.failed_nodes.insert(a.node);
      job.job_counters[{"Job Counters", a.is_map ? "Failed map tasks" : "Failed reduce tasks"}]++;
    } else {
      job.job_counters[{"Job Counters", a.is_map ? "Killed map tasks" : "Killed reduce tasks"}]++;
    }
    const uint32_t max = a.is_map ? job.max_map_attempts : job.max_reduce_attempts;
    if (t.failures >= max) {
      FailJob(job, Explain(job, t, job.failures.back(), max));
      return;
    }
    Log("jobs")->info("{}: {} failed on {} ({}); retrying ({} of {} attempts failed)", job.status.job_id(), a.id,
                      NodeName(a.node), reason, t.failures, max);
    if (t.state != Task::kDone) Requeue(t);
  }

  std::string Explain(const Job& job, const Task& t, const proto::AttemptFailure& last, uint32_t max) {
    std::string where = t.is_map ? fmt::format(" (input {})", SplitText(t.split)) : "";
    std::string s = fmt::format("{} task {}{} failed {} times, the limit (mapreduce.{}.maxattempts={}). The last attempt, "
                                "{} on DataNode {}: {}",
                                KindName(t.is_map), t.index, where, t.failures, KindName(t.is_map), max,
                                last.attempt_id(), last.datanode(), last.reason());
    if (!last.stderr_tail().empty()) {
      s += "\nThe end of its stderr:\n";
      s += last.stderr_tail();
      if (s.back() != '\n') s += '\n';
    }
    return s;
  }

  void FailJob(Job& job, const std::string& why) {
    if (job.finished() || job.finishing) return;
    job.status.set_failure(why);
    Log("jobs")->warn("{} failed: {}", job.status.job_id(), why.substr(0, why.find('\n')));
    StopJob(job, proto::JOB_FAILED);
  }

  // Kills what runs and queues the abort (removing _temporary) for the worker.
  void StopJob(Job& job, proto::JobState state) {
    job.status.set_state(state);
    job.finishing = true;
    for (auto& [id, a] : attempts) {
      if (a.job_id == job.status.job_id() && a.live) KillAttempt(a);
    }
    finish_queue.push_back(job.status.job_id());
    cv.notify_all();
  }

  void TaskSucceeded(Job& job, Attempt& a, const proto::TaskReport& r) {
    Task& t = TaskOf(job, a);
    EndAttempt(a);
    if (t.state == Task::kDone || job.finished() || job.finishing) return;
    t.state = Task::kDone;
    t.done_attempt = a.id;
    t.done_node = a.node;
    t.counters = r.counters();
    if (a.is_map) {
      job.maps_done++;
    } else {
      job.reduces_done++;
    }
    if (job.maps_done == job.maps.size() && job.reduces_done == job.reduces.size()) {
      job.finishing = true;
      finish_queue.push_back(job.status.job_id());
      cv.notify_all();
    }
  }

  // Map `index`'s output is gone (its node died or a reducer could not fetch it).
  void MapOutputLost(Job& job, uint32_t index) {
    Task& m = job.maps[index];
    if (m.state != Task::kDone || job.finished() || job.finishing) return;
    if (job.reduces_done == job.reduces.size()) return;
    Log("jobs")->info("{}: the output of map {} on {} is lost; running the map again", job.status.job_id(), index,
                      NodeName(m.done_node));
    m.state = Task::kPending;
    m.pending_since = Clock::now();
    m.done_attempt.clear();
    m.done_node.clear();
    m.commit_holder.clear();
    job.maps_done--;
    // Reduces that are running cannot finish without it: stop them, without blame.
    for (auto& [id, a] : attempts) {
      if (a.job_id == job.status.job_id() && !a.is_map && a.live) KillAttempt(a);
    }
  }

  void ExpireNodes(std::vector<Reply>* replies) {
    const auto now = Clock::now();
    for (auto it = nodes.begin(); it != nodes.end();) {
      Node& n = it->second;
      if (n.held && now >= n.held->until) {
        replies->push_back([done = std::move(n.held->done)] { done(Status::OK()); });
        n.held.reset();
      }
      if (n.held || now - n.last_seen < opts.tracker_expiry) {
        ++it;
        continue;
      }
      const std::string uuid = n.uuid, name = NodeName(uuid);
      Log("jobs")->warn("DataNode {} has not polled for tasks in {} s; re-running its tasks elsewhere", name,
                        std::chrono::duration_cast<std::chrono::seconds>(opts.tracker_expiry).count());
      std::set<std::string> lost = n.attempts;
      for (const auto& id : lost) {
        auto at = attempts.find(id);
        if (at == attempts.end() || !at->second.live) continue;
        Job* job = FindJob(at->second.job_id);
        if (!job) {
          EndAttempt(at->second);
          continue;
        }
        AttemptFailed(*job, at->second, nullptr, fmt::format("DataNode {} stopped responding", name), false);
      }
      for (auto& [id, job] : jobs) {
        if (job->finished() || job->finishing) continue;
        for (Task& m : job->maps) {
          if (m.state == Task::kDone && m.done_node == uuid) MapOutputLost(*job, m.index);
        }
      }
      it = nodes.erase(it);
    }
  }

  // -------------------------------------------------------------- RPC calls

  Status Submit(const rpc::CallContext& ctx, const proto::SubmitJobRequest& req, proto::SubmitJobResponse* resp) {
    proto::JobSpec spec = req.spec();
    if (spec.mapper_size() == 0) return Status::InvalidArgument("the job has no mapper command");
    if (spec.output().empty() || spec.output()[0] != '/') {
      return Status::InvalidArgument("the job's output directory must be an absolute path");
    }
    spec.set_user(ctx.user.empty() ? "dfs" : ctx.user);
    auto job = std::make_unique<Job>();
    // Job keys given with -D override the cluster's defaults.
    Config jc = opts.conf;
    for (const auto& kv : spec.conf()) {
      if (kv.key() == "mapreduce.map.maxattempts" || kv.key() == "mapreduce.reduce.maxattempts") {
        Status s = jc.Set(kv.key(), kv.value());
        if (!s.ok()) return Status::InvalidArgument("-D " + kv.key() + ": " + s.message());
      }
    }
    job->max_map_attempts = static_cast<uint32_t>(std::max<int64_t>(1, jc.GetInt("mapreduce.map.maxattempts")));
    job->max_reduce_attempts = static_cast<uint32_t>(std::max<int64_t>(1, jc.GetInt("mapreduce.reduce.maxattempts")));
    std::vector<Reply> replies;
    {
      std::lock_guard<std::mutex> l(mu);
      job->seq = next_seq++;
      const std::string id = fmt::format("job_{}_{:04d}", id_prefix, job->seq);
      for (int i = 0; i < spec.splits_size(); ++i) {
        Task t;
        t.is_map = true;
        t.index = static_cast<uint32_t>(i);
        t.split = spec.splits(i);
        job->maps.push_back(std::move(t));
      }
      for (uint32_t r = 0; r < spec.num_reduces() && !spec.reducer().empty(); ++r) {
        Task t;
        t.is_map = false;
        t.index = r;
        job->reduces.push_back(std::move(t));
      }
      if (spec.reducer().empty()) spec.set_num_reduces(0);
      spec.clear_splits();
      job->lean = spec;
      for (auto& f : *job->lean.mutable_files()) f.clear_content();
      job->spec = std::move(spec);
      auto& st = job->status;
      st.set_job_id(id);
      st.set_name(job->spec.name());
      st.set_user(job->spec.user());
      st.set_state(proto::JOB_RUNNING);
      st.set_submit_ms(NowMs());
      st.set_output(job->spec.output());
      resp->set_job_id(id);
      Log("jobs")->info("{} submitted by {}: '{}', {} maps, {} reduces, output {}", id, st.user(), st.name(),
                        job->maps.size(), job->reduces.size(), st.output());
      Job* j = job.get();
      jobs[id] = std::move(job);
      if (j->maps.empty() && j->reduces.empty()) {
        j->finishing = true;
        finish_queue.push_back(id);
        cv.notify_all();
      }
      Dispatch(&replies);
    }
    for (auto& r : replies) r();
    return Status::OK();
  }

  void FillStatus(const Job& job, proto::JobStatus* out) {
    *out = job.status;
    auto progress = [&](const std::vector<Task>& ts) -> float {
      if (ts.empty()) return job.status.state() == proto::JOB_SUCCEEDED ? 1.0f : 0.0f;
      double sum = 0;
      for (const Task& t : ts) {
        if (t.state == Task::kDone) {
          sum += 1;
        } else if (!t.running.empty()) {
          auto it = attempts.find(t.running);
          if (it != attempts.end()) sum += std::clamp<double>(it->second.progress, 0, 1);
        }
      }
      return static_cast<float>(sum / ts.size());
    };
    out->set_map_progress(job.maps.empty() && job.status.state() != proto::JOB_PREP ? 1.0f : progress(job.maps));
    out->set_reduce_progress(job.reduces.empty() ? (job.status.state() == proto::JOB_SUCCEEDED ? 1.0f : 0.0f)
                                                 : progress(job.reduces));
    out->set_maps_total(static_cast<uint32_t>(job.maps.size()));
    out->set_maps_done(job.maps_done);
    out->set_reduces_total(static_cast<uint32_t>(job.reduces.size()));
    out->set_reduces_done(job.reduces_done);
    uint32_t running = 0;
    std::map<std::pair<std::string, std::string>, int64_t> sum = job.job_counters;
    for (const auto* ts : {&job.maps, &job.reduces}) {
      for (const Task& t : *ts) {
        if (t.state == Task::kDone) {
          AddCounter(&sum, t.counters);
        } else if (!t.running.empty()) {
          auto it = attempts.find(t.running);
          if (it != attempts.end()) {
            AddCounter(&sum, it->second.counters);
            ++running;
          }
        }
      }
    }
    if (!job.finished()) out->set_running_attempts(running);
    out->clear_counters();
    for (const auto& [k, v] : sum) {
      auto* c = out->add_counters();
      c->set_group(k.first);
      c->set_name(k.second);
      c->set_value(v);
    }
    if (job.status.state() == proto::JOB_RUNNING && running == 0 && job.maps_done < job.maps.size()) {
      uint32_t ahead = 0;
      for (const auto& [id, j] : jobs) {
        if (j->seq < job.seq && j->status.state() == proto::JOB_RUNNING) ++ahead;
      }
      out->set_queue_position(ahead == 0 ? "waiting for a free task slot"
                                         : fmt::format("waiting for a free task slot, {} job(s) ahead", ahead));
    }
  }

  Status GetStatus(const proto::GetJobStatusRequest& req, proto::GetJobStatusResponse* resp) {
    std::lock_guard<std::mutex> l(mu);
    Job* job = FindJob(req.job_id());
    if (!job) return UnknownJob(req.job_id());
    FillStatus(*job, resp->mutable_status());
    return Status::OK();
  }

  Status UnknownJob(const std::string& id) const {
    return Status::NotFound(fmt::format("no job {} here; `dfs job -list all` shows the jobs this NameNode knows "
                                        "(running jobs are lost when the NameNode restarts)",
                                        id));
  }

  Status List(const proto::ListJobsRequest& req, proto::ListJobsResponse* resp) {
    std::lock_guard<std::mutex> l(mu);
    std::vector<Job*> list;
    for (auto& [id, j] : jobs) {
      if (req.all() || !j->finished()) list.push_back(j.get());
    }
    std::sort(list.begin(), list.end(), [](Job* a, Job* b) {
      return a->status.submit_ms() != b->status.submit_ms() ? a->status.submit_ms() < b->status.submit_ms()
                                                            : a->seq < b->seq;
    });
    for (Job* j : list) FillStatus(*j, resp->add_jobs());
    return Status::OK();
  }

  Status Kill(const rpc::CallContext& ctx, const proto::KillJobRequest& req, proto::KillJobResponse* resp) {
    std::vector<Reply> replies;
    {
      std::lock_guard<std::mutex> l(mu);
      Job* job = FindJob(req.job_id());
      if (!job) return UnknownJob(req.job_id());
      resp->set_previous(job->status.state());
      if (job->finished() || job->finishing) return Status::OK();
      if (!ctx.user.empty() && ctx.user != job->spec.user() && ctx.user != opts.superuser && ctx.user != "root") {
        return Status::PermissionDenied(fmt::format("{} belongs to {}; only they (or {}) may kill it",
                                                    req.job_id(), job->spec.user(), opts.superuser));
      }
      Log("jobs")->info("{} killed by {}", req.job_id(), ctx.user);
      job->status.set_failure("killed by " + (ctx.user.empty() ? std::string("a user") : ctx.user));
      StopJob(*job, proto::JOB_KILLED);
      Dispatch(&replies);
    }
    for (auto& r : replies) r();
    return Status::OK();
  }

  Status Logs(const proto::GetJobLogsRequest& req, proto::GetJobLogsResponse* resp) {
    std::lock_guard<std::mutex> l(mu);
    Job* job = FindJob(req.job_id());
    if (!job) return UnknownJob(req.job_id());
    for (const auto& f : job->failures) *resp->add_failures() = f;
    return Status::OK();
  }

  Status Files(const proto::GetJobFilesRequest& req, proto::GetJobFilesResponse* resp) {
    std::lock_guard<std::mutex> l(mu);
    Job* job = FindJob(req.job_id());
    if (!job) return UnknownJob(req.job_id());
    for (const auto& f : job->spec.files()) *resp->add_files() = f;
    return Status::OK();
  }

  void Poll(const proto::PollTasksRequest& req, std::shared_ptr<proto::PollTasksResponse> resp,
            std::function<void(Status)> done) {
    if (req.uuid().empty()) {
      done(Status::InvalidArgument("a task poll needs the DataNode's uuid"));
      return;
    }
    std::vector<Reply> replies;
    {
      std::lock_guard<std::mutex> l(mu);
      if (stopping) {
        replies.push_back([done = std::move(done)] { done(Status::Unavailable("the NameNode is shutting down")); });
        goto reply;
      }
      Node& node = nodes[req.uuid()];
      node.uuid = req.uuid();
      node.xfer = req.xfer_address();
      node.slots = req.slots();
      node.free = req.free_slots();
      node.last_seen = Clock::now();
      if (node.held) {  // a poll that was overtaken (the DataNode reconnected)
        replies.push_back([done = std::move(node.held->done)] { done(Status::OK()); });
        node.held.reset();
      }
      // Reconcile: attempts the node no longer runs, and attempts it runs that we gave up on.
      std::set<std::string> reported(req.running_attempts().begin(), req.running_attempts().end());
      std::set<std::string> placed = node.attempts;
      for (const auto& id : placed) {
        if (reported.count(id)) continue;
        auto at = attempts.find(id);
        if (at == attempts.end() || !at->second.live) continue;
        Job* job = FindJob(at->second.job_id);
        if (job) {
          AttemptFailed(*job, at->second, nullptr,
                        fmt::format("DataNode {} lost the attempt (it restarted?)", NodeName(node.uuid)), false);
        } else {
          EndAttempt(at->second);
        }
      }
      for (const auto& id : reported) {
        auto at = attempts.find(id);
        if (at == attempts.end() || !at->second.live || at->second.killing) resp->add_kill_attempts(id);
      }
      const bool any = Fill(node, resp.get());
      if (any || req.wait_ms() == 0) {
        replies.push_back([done = std::move(done)] { done(Status::OK()); });
      } else {
        node.held = HeldPoll{resp, std::move(done),
                             Clock::now() + std::min<Millis>(Millis(req.wait_ms()), kMaxPollWait)};
        cv.notify_all();
      }
      Dispatch(&replies);
    }
  reply:
    for (auto& r : replies) r();
  }

  Status Report(const proto::ReportTasksRequest& req, proto::ReportTasksResponse* resp) {
    std::vector<Reply> replies;
    {
      std::lock_guard<std::mutex> l(mu);
      auto nit = nodes.find(req.uuid());
      if (nit != nodes.end()) nit->second.last_seen = Clock::now();
      for (const auto& r : req.reports()) HandleReport(r, resp);
      Dispatch(&replies);
    }
    for (auto& r : replies) r();
    return Status::OK();
  }

  void HandleReport(const proto::TaskReport& r, proto::ReportTasksResponse* resp) {
    auto at = attempts.find(r.attempt_id());
    const bool ongoing = r.state() == proto::TaskReport::RUNNING || r.state() == proto::TaskReport::COMMIT_PENDING;
    if (at == attempts.end() || !at->second.live) {
      if (r.state() == proto::TaskReport::COMMIT_PENDING) resp->add_commit_denied(r.attempt_id());
      if (ongoing) resp->add_kill_attempts(r.attempt_id());
      return;
    }
    Attempt& a = at->second;
    Job* job = FindJob(a.job_id);
    if (!job) {
      EndAttempt(a);
      return;
    }
    a.progress = r.progress();
    if (!r.status().empty()) a.status = r.status();
    a.counters = r.counters();
    Task& t = TaskOf(*job, a);
    switch (r.state()) {
      case proto::TaskReport::RUNNING:
        break;
      case proto::TaskReport::COMMIT_PENDING: {
        const bool holder_gone = !t.commit_holder.empty() && t.commit_holder != a.id &&
                                 (attempts.count(t.commit_holder) == 0 || !attempts[t.commit_holder].live);
        if (!job->finished() && !job->finishing && !a.killing && t.state != Task::kDone &&
            (t.commit_holder.empty() || t.commit_holder == a.id || holder_gone)) {
          t.commit_holder = a.id;
          resp->add_commit_granted(a.id);
        } else {
          resp->add_commit_denied(a.id);
        }
        break;
      }
      case proto::TaskReport::SUCCEEDED:
        TaskSucceeded(*job, a, r);
        break;
      case proto::TaskReport::FETCH_FAILED: {
        t.fetch_failures++;
        const bool counts = t.fetch_failures % kFetchFailuresPerAttempt == 0;
        std::string why = r.reason().empty() ? fmt::format("could not fetch the output of map {}", r.failed_map())
                                             : r.reason();
        if (r.failed_map() < job->maps.size()) MapOutputLost(*job, r.failed_map());
        AttemptFailed(*job, a, &r, why, counts);
        break;
      }
      case proto::TaskReport::FAILED:
      case proto::TaskReport::KILLED: {
        const bool by_us = a.killing;
        std::string why = r.reason().empty() ? std::string("failed") : r.reason();
        if (by_us) {
          EndAttempt(a);
          if (t.state == Task::kRunning && t.running.empty() && !job->finished() && !job->finishing) Requeue(t);
        } else {
          AttemptFailed(*job, a, &r, why, r.state() == proto::TaskReport::FAILED);
        }
        break;
      }
      default:
        break;
    }
  }

  // ------------------------------------------------------------------ worker

  // Commits or aborts a finished job: writes _SUCCESS (or not) and removes _temporary.
  void FinishJob(const std::string& id) {
    std::string user, output;
    bool success;
    {
      std::lock_guard<std::mutex> l(mu);
      Job* job = FindJob(id);
      if (!job) return;
      user = job->spec.user();
      output = job->spec.output();
      success = job->status.state() == proto::JOB_RUNNING;
    }
    Status s = Status::OK();
    auto fs = fs_factory(user);
    if (!fs.ok()) {
      s = fs.status();
    } else {
      if (success) {
        Status m = (*fs)->Mkdirs(output, 0755, true);
        auto out = (*fs)->Create(output + "/_SUCCESS", client::CreateOptions{.overwrite = true});
        s = !m.ok() ? m : !out.ok() ? out.status() : (*out)->Close();
      }
      Status d = (*fs)->Delete(output + "/_temporary", true);
      if (!d.ok() && !d.IsNotFound()) {
        Log("jobs")->warn("{}: could not remove {}/_temporary: {}", id, output, d.ToString());
      }
    }
    std::vector<Reply> replies;
    std::string record;
    {
      std::lock_guard<std::mutex> l(mu);
      Job* job = FindJob(id);
      if (!job) return;
      if (success) {
        if (s.ok()) {
          job->status.set_state(proto::JOB_SUCCEEDED);
          Log("jobs")->info("{} succeeded: output in {}", id, output);
        } else {
          job->status.set_state(proto::JOB_FAILED);
          job->status.set_failure("every task succeeded but the job's output could not be committed: " + s.message());
        }
      }
      job->status.set_finish_ms(NowMs());
      job->finishing = false;
      for (const auto& uuid : job->nodes) {
        auto it = nodes.find(uuid);
        if (it != nodes.end()) it->second.finished_jobs.push_back(id);
      }
      proto::JobRecord rec;
      FillStatus(*job, rec.mutable_status());
      for (const auto& f : job->failures) *rec.add_failures() = f;
      record = rec.SerializeAsString();
      finished_order.push_back(id);
      Retire();
      Dispatch(&replies);
    }
    for (auto& r : replies) r();
    if (history.put) history.put(id, record);
    ForgetRetired();
  }

  void ForgetRetired() {
    std::vector<std::string> ids;
    {
      std::lock_guard<std::mutex> l(mu);
      ids.swap(retired);
    }
    for (const auto& id : ids) {
      if (history.remove) history.remove(id);
    }
  }

  // Finished jobs beyond the retention limit leave memory (the history keeps them too).
  void Retire() {
    while (finished_order.size() > opts.retained_jobs) {
      const std::string id = finished_order.front();
      finished_order.pop_front();
      retired.push_back(id);
      for (auto it = attempts.begin(); it != attempts.end();) {
        it = it->second.job_id == id && !it->second.live ? attempts.erase(it) : std::next(it);
      }
      jobs.erase(id);
    }
  }

  void WorkerLoop() {
    std::unique_lock<std::mutex> l(mu);
    while (!stopping) {
      if (!finish_queue.empty()) {
        std::string id = finish_queue.front();
        finish_queue.pop_front();
        l.unlock();
        FinishJob(id);
        l.lock();
        continue;
      }
      std::vector<Reply> replies;
      ExpireNodes(&replies);
      Dispatch(&replies);  // tasks whose locality wait ran out
      if (!replies.empty()) {
        l.unlock();
        for (auto& r : replies) r();
        l.lock();
        continue;
      }
      cv.wait_for(l, Millis(100));
    }
  }

  void LoadHistory() {
    if (!history.scan) return;
    std::vector<proto::JobRecord> recs;
    history.scan([&](const std::string& bytes) {
      proto::JobRecord rec;
      if (rec.ParseFromString(bytes)) recs.push_back(std::move(rec));
    });
    std::sort(recs.begin(), recs.end(), [](const auto& a, const auto& b) {
      return a.status().submit_ms() < b.status().submit_ms();
    });
    std::lock_guard<std::mutex> l(mu);
    for (auto& rec : recs) {
      auto job = std::make_unique<Job>();
      job->status = rec.status();
      if (!job->finished()) {  // cannot happen: only finished jobs are stored
        job->status.set_state(proto::JOB_FAILED);
      }
      job->spec.set_user(job->status.user());
      job->spec.set_output(job->status.output());
      job->failures.assign(rec.failures().begin(), rec.failures().end());
      const std::string id = job->status.job_id();
      finished_order.push_back(id);
      jobs[id] = std::move(job);
    }
    Retire();
  }
};

JobService::JobService(Options options, FsFactory fs, History history)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(fs), std::move(history))) {}

JobService::~JobService() { Shutdown(); }

void JobService::RegisterMethods(rpc::RpcServer* s) {
  Impl* d = impl_.get();
  s->Register<proto::SubmitJobRequest, proto::SubmitJobResponse>(
      proto::SUBMIT_JOB, "submitJob",
      [d](const rpc::CallContext& ctx, const auto& req, auto* resp) { return d->Submit(ctx, req, resp); });
  s->Register<proto::GetJobStatusRequest, proto::GetJobStatusResponse>(
      proto::GET_JOB_STATUS, "getJobStatus",
      [d](const rpc::CallContext&, const auto& req, auto* resp) { return d->GetStatus(req, resp); },
      rpc::RpcServer::Dispatch::kInline);
  s->Register<proto::ListJobsRequest, proto::ListJobsResponse>(
      proto::LIST_JOBS, "listJobs",
      [d](const rpc::CallContext&, const auto& req, auto* resp) { return d->List(req, resp); });
  s->Register<proto::KillJobRequest, proto::KillJobResponse>(
      proto::KILL_JOB, "killJob",
      [d](const rpc::CallContext& ctx, const auto& req, auto* resp) { return d->Kill(ctx, req, resp); });
  s->Register<proto::GetJobLogsRequest, proto::GetJobLogsResponse>(
      proto::GET_JOB_LOGS, "getJobLogs",
      [d](const rpc::CallContext&, const auto& req, auto* resp) { return d->Logs(req, resp); });
  s->Register<proto::GetJobFilesRequest, proto::GetJobFilesResponse>(
      proto::GET_JOB_FILES, "getJobFiles",
      [d](const rpc::CallContext&, const auto& req, auto* resp) { return d->Files(req, resp); });
  s->RegisterAsync<proto::PollTasksRequest, proto::PollTasksResponse>(
      proto::POLL_TASKS, "pollTasks",
      [d](const rpc::CallContext& ctx, const proto::PollTasksRequest& req,
          std::shared_ptr<proto::PollTasksResponse> resp, std::function<void(Status)> done) {
        // A DataNode bound to every interface says 0.0.0.0: use the address it called from.
        proto::PollTasksRequest fixed = req;
        const std::string& x = req.xfer_address();
        if (x.rfind("0.0.0.0:", 0) == 0 || x.rfind(":", 0) == 0) {
          fixed.set_xfer_address(ctx.peer_ip + x.substr(x.find(':')));
        }
        d->Poll(fixed, std::move(resp), std::move(done));
      });
  s->Register<proto::ReportTasksRequest, proto::ReportTasksResponse>(
      proto::REPORT_TASKS, "reportTasks",
      [d](const rpc::CallContext&, const auto& req, auto* resp) { return d->Report(req, resp); });
}

Status JobService::Start() {
  impl_->LoadHistory();
  impl_->ForgetRetired();
  impl_->worker = std::thread([d = impl_.get()] { d->WorkerLoop(); });
  return Status::OK();
}

void JobService::Shutdown() {
  if (!impl_) return;
  std::vector<std::function<void(Status)>> held;
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    if (impl_->stopping && !impl_->worker.joinable()) return;
    impl_->stopping = true;
    for (auto& [uuid, n] : impl_->nodes) {
      if (n.held) {
        held.push_back(std::move(n.held->done));
        n.held.reset();
      }
    }
    impl_->cv.notify_all();
  }
  for (auto& h : held) h(Status::Unavailable("the NameNode is shutting down"));
  if (impl_->worker.joinable()) impl_->worker.join();
}

}  // namespace dfs::streaming
