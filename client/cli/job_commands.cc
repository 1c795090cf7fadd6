// `dfs streaming` (submit a Hadoop-streaming job and follow it) and `dfs job`
// (-list, -status, -kill, -logs). The job runs on the cluster: the submitting
// terminal only watches, so Ctrl-C leaves the job running.
#include <algorithm>
#include <chrono>
#include <map>
#include <ostream>

#include <fmt/format.h>

#include "client/cli/commands.h"
#include "client/cli/glob.h"
#include "client/cli/streaming_args.h"
#include "client/cli/streaming_preflight.h"
#include "client/job_client.h"
#include "common/path.h"

namespace dfs::cli {

namespace {

using std::chrono::milliseconds;

const char* StateName(proto::JobState s) {
  switch (s) {
    case proto::JOB_PREP:
      return "PREP";
    case proto::JOB_RUNNING:
      return "RUNNING";
    case proto::JOB_SUCCEEDED:
      return "SUCCEEDED";
    case proto::JOB_FAILED:
      return "FAILED";
    case proto::JOB_KILLED:
      return "KILLED";
    default:
      return "UNKNOWN";
  }
}

bool Finished(proto::JobState s) {
  return s == proto::JOB_SUCCEEDED || s == proto::JOB_FAILED || s == proto::JOB_KILLED;
}

int Percent(float f) { return static_cast<int>(std::clamp(f, 0.0f, 1.0f) * 100.0f + 0.0001f); }

std::string Progress(const proto::JobStatus& st) {
  return fmt::format("map {:>3}% reduce {:>3}%", Percent(st.map_progress()), Percent(st.reduce_progress()));
}

// Hadoop prints counters grouped, the framework's first.
void PrintCounters(std::ostream& os, const proto::JobStatus& st) {
  std::map<std::string, std::vector<const proto::Counter*>> groups;
  for (const auto& c : st.counters()) groups[c.group()].push_back(&c);
  os << "Counters: " << st.counters_size() << '\n';
  auto print = [&](const std::string& g) {
    auto it = groups.find(g);
    if (it == groups.end()) return;
    os << '\t' << g << '\n';
    for (const auto* c : it->second) os << "\t\t" << c->name() << '=' << c->value() << '\n';
    groups.erase(it);
  };
  print("File System Counters");
  print("Job Counters");
  print("Map-Reduce Framework");
  for (const auto& [g, cs] : std::map(groups)) print(g);
}

void PrintFailure(std::ostream& os, const proto::JobStatus& st) {
  os << "Job " << st.job_id() << " " << (st.state() == proto::JOB_KILLED ? "was killed" : "failed") << ".\n";
  if (!st.failure().empty()) {
    os << st.failure();
    if (st.failure().back() != '\n') os << '\n';
  }
  if (st.state() == proto::JOB_FAILED) os << "Every failed attempt's stderr: dfs job -logs " << st.job_id() << '\n';
}

// Every file an -input names: a file, the files of a directory (not those
// starting with '_' or '.', as Hadoop skips), or the matches of a glob.
Status ExpandInputs(Context& ctx, const std::vector<std::string>& inputs, std::vector<client::FileInfo>* files) {
  for (const auto& in : inputs) {
    auto matches = ExpandGlob(ctx.fs(), in);
    if (!matches.ok() && !matches.status().IsNotFound()) return matches.status().Prepend("-input " + in);
    size_t found = 0;
    if (matches.ok()) {
      for (const auto& m : *matches) {
        auto info = ctx.fs().GetFileInfo(m.path);
        if (!info.ok()) {
          if (info.status().IsNotFound()) continue;
          return info.status().Prepend("-input " + in);
        }
        if (!info->is_dir) {
          files->push_back(*info);
          ++found;
          continue;
        }
        auto entries = ctx.fs().ListAll(m.path);
        if (!entries.ok()) return entries.status().Prepend("-input " + in);
        for (const auto& e : *entries) {
          if (e.is_dir || e.name.empty() || e.name[0] == '_' || e.name[0] == '.') continue;
          files->push_back(e);
          ++found;
        }
        if (entries->empty()) ++found;  // an empty directory is a valid (empty) input
      }
    }
    if (found == 0) {
      return Status::NotFound(fmt::format(
          "-input {}: matches nothing in dfs (looked for {}); `dfs ls {}` shows what is there", in,
          ResolveArg(ctx.fs(), in).path, ParentPath(ResolveArg(ctx.fs(), in).path)));
    }
  }
  return Status::OK();
}

Status AddSplits(Context& ctx, const std::vector<client::FileInfo>& files, proto::JobSpec* spec) {
  for (const auto& f : files) {
    if (f.length == 0) continue;
    auto blocks = ctx.fs().GetBlockLocations(f.path);
    if (!blocks.ok()) return blocks.status().Prepend("locating the blocks of " + f.path);
    for (const auto& b : *blocks) {
      if (b.length == 0) continue;
      auto* s = spec->add_splits();
      s->set_path(f.path);
      s->set_offset(b.offset);
      s->set_length(b.length);
      for (const auto& r : b.replicas) s->add_hosts(r.uuid());
    }
  }
  return Status::OK();
}

// Follows a job until it ends; returns the exit code.
int Follow(Context& ctx, client::JobClient& jobs, const std::string& id, bool verbose) {
  std::string last_line;
  std::string last_status_msg;
  auto wait = milliseconds(50);
  for (;;) {
    auto st = jobs.Status(id);
    if (!st.ok()) {
      ctx.Error(fmt::format("lost track of {}: {}", id, st.status().message()));
      return kExitFailed;
    }
    std::string line = Progress(*st);
    if (!st->queue_position().empty() && st->maps_done() == 0) line += " (" + st->queue_position() + ")";
    if (line != last_line) {
      if (ctx.progress) {
        ctx.err << '\r' << line << "   " << std::flush;
      } else {
        ctx.err << line << '\n';
      }
      last_line = line;
    }
    if (Finished(st->state())) {
      if (ctx.progress) ctx.err << '\n';
      if (st->state() == proto::JOB_SUCCEEDED) {
        ctx.err << "Job " << id << " completed successfully\n";
        PrintCounters(ctx.err, *st);
        ctx.err << "Output directory: " << st->output() << '\n';
        return kExitOk;
      }
      PrintFailure(ctx.err, *st);
      return kExitFailed;
    }
    if (!ctx.sleep(wait)) {
      if (ctx.progress) ctx.err << '\n';
      ctx.err << "The job keeps running on the cluster. Follow it with `dfs job -status " << id
              << "`; stop it with `dfs job -kill " << id << "`.\n";
      return 130;
    }
    wait = std::min(wait * 2, milliseconds(500));
    (void)verbose;
  }
}

}  // namespace

int RunStreaming(Context& ctx, const Flags&, const Args& args) {
  auto parsed = ParseStreamingArgs(args);
  if (!parsed.ok()) return ctx.UsageError(parsed.status().message());
  if (parsed->help) {
    ctx.out << StreamingUsage();
    return kExitOk;
  }
  auto pre = Preflight(*parsed, PreflightEnv::Local());
  if (!pre.ok()) {
    ctx.Error(pre.status().message());
    return kExitFailed;
  }
  for (const auto& note : pre->notes) ctx.err << "dfs streaming: " << note << '\n';
  proto::JobSpec spec = std::move(pre->spec);

  const std::string output = ResolveArg(ctx.fs(), parsed->output).path;
  auto existing = ctx.fs().GetFileInfo(output);
  if (existing.ok()) {
    if (!parsed->overwrite) {
      ctx.Error(fmt::format("the output directory {} already exists; choose another -output, add -overwrite to "
                            "replace it, or remove it with `dfs rm -r {}`",
                            parsed->output, parsed->output));
      return kExitFailed;
    }
    if (Status s = ctx.fs().Delete(output, true); !s.ok()) {
      ctx.Error(parsed->output, s);
      return kExitFailed;
    }
  } else if (!existing.status().IsNotFound()) {
    ctx.Error(parsed->output, existing.status());
    return kExitFailed;
  }
  spec.set_output(output);

  std::vector<client::FileInfo> files;
  if (Status s = ExpandInputs(ctx, parsed->inputs, &files); !s.ok()) {
    ctx.Error(s.message());
    return kExitFailed;
  }
  if (Status s = AddSplits(ctx, files, &spec); !s.ok()) {
    ctx.Error(s.message());
    return kExitFailed;
  }
  // The output directory now, so a second job with the same -output fails early.
  if (Status s = ctx.fs().Mkdirs(output + "/_temporary", 0755, true); !s.ok()) {
    ctx.Error(parsed->output, s);
    return kExitFailed;
  }

  client::JobClient jobs(ctx.fs());
  auto id = jobs.Submit(spec);
  if (!id.ok()) {
    ctx.Error("the job service refused the job: " + id.status().message());
    return kExitFailed;
  }
  ctx.err << fmt::format("Submitted {} ('{}': {} input file(s), {} map task(s), {} reduce task(s))\n", *id,
                         spec.name(), files.size(), spec.splits_size(), spec.reducer().empty() ? 0 : spec.num_reduces());
  if (parsed->background) {
    ctx.out << *id << '\n';
    return kExitOk;
  }
  return Follow(ctx, jobs, *id, parsed->verbose);
}

int RunJob(Context& ctx, const Flags&, const Args& args) {
  if (args.empty()) return ctx.UsageError("which job command? -list, -status, -kill or -logs");
  std::string sub = args[0];
  if (sub.size() > 1 && sub[0] == '-') sub = sub.substr(1);
  client::JobClient jobs(ctx.fs());
  auto need_id = [&]() -> const std::string* {
    if (args.size() != 2) {
      ctx.UsageError("-" + sub + " needs one job id (see `dfs job -list`)");
      return nullptr;
    }
    return &args[1];
  };
  if (sub == "list") {
    const bool all = args.size() > 1 && args[1] == "all";
    auto list = jobs.List(all);
    if (!list.ok()) {
      ctx.Error(list.status().message());
      return kExitFailed;
    }
    ctx.out << "Total jobs:" << list->size() << '\n';
    ctx.out << fmt::format("{:<28} {:<10} {:<12} {:<10} {:<20} {}\n", "JobId", "State", "User", "Progress", "Name",
                           "Output");
    for (const auto& j : *list) {
      ctx.out << fmt::format("{:<28} {:<10} {:<12} {:<10} {:<20} {}\n", j.job_id(), StateName(j.state()), j.user(),
                             fmt::format("{}%/{}%", Percent(j.map_progress()), Percent(j.reduce_progress())),
                             j.name(), j.output());
    }
    return kExitOk;
  }
  if (sub == "status") {
    const std::string* id = need_id();
    if (!id) return kExitUsage;
    auto st = jobs.Status(*id);
    if (!st.ok()) {
      ctx.Error(st.status().message());
      return kExitFailed;
    }
    ctx.out << "Job: " << st->job_id() << "\nName: " << st->name() << "\nUser: " << st->user()
            << "\nState: " << StateName(st->state()) << "\nOutput: " << st->output() << '\n'
            << Progress(*st) << fmt::format(" ({} of {} maps, {} of {} reduces done; {} running; {} failed attempts)\n",
                                            st->maps_done(), st->maps_total(), st->reduces_done(), st->reduces_total(),
                                            st->running_attempts(), st->failed_attempts());
    if (!st->queue_position().empty()) ctx.out << "Waiting: " << st->queue_position() << '\n';
    if (!st->failure().empty()) ctx.out << "Failure: " << st->failure() << (st->failure().back() == '\n' ? "" : "\n");
    PrintCounters(ctx.out, *st);
    return kExitOk;
  }
  if (sub == "kill") {
    const std::string* id = need_id();
    if (!id) return kExitUsage;
    auto prev = jobs.Kill(*id);
    if (!prev.ok()) {
      ctx.Error(prev.status().message());
      return kExitFailed;
    }
    if (Finished(*prev)) {
      ctx.out << "Job " << *id << " had already finished (" << StateName(*prev) << ")\n";
    } else {
      ctx.out << "Killed job " << *id << '\n';
    }
    return kExitOk;
  }
  if (sub == "logs") {
    const std::string* id = need_id();
    if (!id) return kExitUsage;
    auto logs = jobs.Logs(*id);
    if (!logs.ok()) {
      ctx.Error(logs.status().message());
      return kExitFailed;
    }
    if (logs->empty()) ctx.out << "No attempt of " << *id << " failed.\n";
    for (const auto& f : *logs) {
      ctx.out << "==> " << f.attempt_id() << " (" << f.task();
      if (!f.input().empty()) ctx.out << ", input " << f.input();
      ctx.out << ") on DataNode " << f.datanode() << "\n" << f.reason() << '\n';
      if (!f.stderr_tail().empty()) {
        ctx.out << "--- stderr (the end) ---\n" << f.stderr_tail();
        if (f.stderr_tail().back() != '\n') ctx.out << '\n';
      }
      ctx.out << '\n';
    }
    return kExitOk;
  }
  return ctx.UsageError("unknown job command '" + args[0] + "'; use -list [all], -status <id>, -kill <id> or -logs <id>");
}

}  // namespace dfs::cli
