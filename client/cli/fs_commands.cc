// Namespace commands: ls, mkdir, rm, rmdir, mv, du, df, count, stat, test,
// setrep, touchz, chmod, chown, chgrp. Each mirrors the Hadoop FsShell command
// of the same name; where the behaviour is subtle the comment names it.
#include <fmt/format.h>

#include <ostream>

#include "client/cli/commands.h"
#include "client/cli/format.h"
#include "client/cli/glob.h"
#include "common/path.h"

namespace dfs::cli {

namespace {

using client::FileInfo;

Result<FileInfo> Stat(Context& ctx, const PathArg& p) {
  auto info = ctx.fs().GetFileInfo(p.path);
  if (info.ok() && info->name.empty()) info->name = BaseName(p.path);
  return info;
}

// Lists a directory's entries; with -R, descends into each subdirectory right
// after printing it (Hadoop's Ls: no "Found N items" lines when recursive).
void ListDir(Context& ctx, LsFormatter& fmt, const PathArg& dir, bool recursive) {
  auto entries = ctx.fs().ListAll(dir.path);
  if (!entries.ok()) {
    ctx.Error(dir.display, entries.status());
    return;
  }
  if (!recursive && !entries->empty()) ctx.out << "Found " << entries->size() << " items\n";
  fmt.Widen(*entries);
  for (const auto& e : *entries) {
    PathArg child{ChildDisplay(dir.display, e.name), JoinPath(dir.path, e.name)};
    ctx.out << fmt.Line(e, child.display) << '\n';
    if (recursive && e.is_dir) ListDir(ctx, fmt, child, true);
  }
}

Result<uint32_t> ParseReplication(const std::string& text) {
  char* end = nullptr;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < 1 || v > 32767) {
    return Status::InvalidArgument("Illegal replication '" + text + "', a positive integer expected");
  }
  return static_cast<uint32_t>(v);
}

// True when every block of `path` has exactly `rep` replicas (Hadoop counts
// hosts per block the same way).
Result<bool> ReplicationReached(Context& ctx, const std::string& path, uint32_t rep, bool* decreasing) {
  DFS_ASSIGN_OR_RETURN(auto blocks, ctx.fs().GetBlockLocations(path));
  for (const auto& b : blocks) {
    if (b.replicas.size() != rep) {
      if (b.replicas.size() > rep) *decreasing = true;
      return false;
    }
  }
  return true;
}

void WaitForReplication(Context& ctx, const std::vector<PathArg>& files, uint32_t rep) {
  for (const auto& f : files) {
    ctx.out << "Waiting for " << f.display << " ..." << std::flush;
    bool warned = false;
    while (true) {
      bool decreasing = false;
      auto done = ReplicationReached(ctx, f.path, rep, &decreasing);
      if (!done.ok()) {
        ctx.out << '\n';
        ctx.Error(f.display, done.status());
        break;
      }
      if (*done) {
        ctx.out << " done\n";
        break;
      }
      if (decreasing && !warned) {
        ctx.out << "\nWARNING: the waiting time may be long for DECREASING the number of replications.\n";
        warned = true;
      }
      ctx.out << '.' << std::flush;
      if (!ctx.sleep(std::chrono::seconds(1))) {
        ctx.out << '\n';
        ctx.Error(f.display, Status::Aborted("interrupted while waiting for replication"));
        return;
      }
    }
  }
}

// Applies `op` to every matched path (and everything below it with -R),
// reporting each failure against the path it happened on.
int ForEachPath(Context& ctx, const Args& paths, bool recursive,
                const std::function<Status(const PathArg&, const FileInfo&)>& op) {
  for (const auto& p : ExpandArgs(ctx, paths)) {
    auto info = Stat(ctx, p);
    if (!info.ok()) {
      ctx.Error(p.display, info.status());
      continue;
    }
    Walk(ctx, p, *info, recursive, [&](const PathArg& q, const FileInfo& qi) {
      Status s = op(q, qi);
      if (!s.ok()) ctx.Error(q.display, s);
    });
  }
  return ctx.ExitCode();
}

}  // namespace

int RunLs(Context& ctx, const Flags& flags, const Args& args) {
  const bool dir_only = flags.Has("d"), recursive = flags.Has("R");
  LsFormatter fmt(flags.Has("h"));
  for (const auto& p : ExpandArgs(ctx, args.empty() ? Args{"."} : args)) {
    auto info = Stat(ctx, p);
    if (!info.ok()) {
      ctx.Error(p.display, info.status());
    } else if (info->is_dir && !dir_only) {
      ListDir(ctx, fmt, p, recursive);
    } else {
      fmt.Widen({*info});
      ctx.out << fmt.Line(*info, p.display) << '\n';
    }
  }
  return ctx.ExitCode();
}

int RunMkdir(Context& ctx, const Flags& flags, const Args& args) {
  const bool parents = flags.Has("p");
  for (const auto& arg : args) {
    PathArg p = ResolveArg(ctx.fs(), arg);
    auto info = Stat(ctx, p);
    if (info.ok()) {
      if (!info->is_dir) {
        ctx.Error(p.display, Status::NotADirectory("exists as a file"));
      } else if (!parents) {
        ctx.Error(p.display, Status::AlreadyExists("exists"));
      }
      continue;
    }
    if (!info.status().IsNotFound()) {
      ctx.Error(p.display, info.status());
      continue;
    }
    Status s = ctx.fs().Mkdirs(p.path, 0755, parents);
    if (!s.ok()) ctx.Error(p.display, s);
  }
  return ctx.ExitCode();
}

int RunRm(Context& ctx, const Flags& flags, const Args& args) {
  const bool force = flags.Has("f"), recursive = flags.Has("r") || flags.Has("R");
  for (const auto& arg : args) {
    auto matches = ExpandGlob(ctx.fs(), arg);
    if (!matches.ok()) {
      if (!(force && matches.status().IsNotFound())) ctx.Error(arg, matches.status());
      continue;
    }
    for (const auto& p : *matches) {
      auto info = Stat(ctx, p);
      if (!info.ok()) {
        if (!(force && info.status().IsNotFound())) ctx.Error(p.display, info.status());
        continue;
      }
      if (info->is_dir && !recursive) {
        ctx.Error(p.display, Status::IsADirectory("is a directory"));
        continue;
      }
      if (p.path == "/") {
        ctx.Error(p.display, Status::InvalidArgument("Cannot delete the root directory"));
        continue;
      }
      Status s = ctx.fs().Delete(p.path, recursive);
      if (s.ok()) {
        ctx.out << "Deleted " << p.display << '\n';
      } else if (!(force && s.IsNotFound())) {
        ctx.Error(p.display, s);
      }
    }
  }
  return ctx.ExitCode();
}

int RunRmdir(Context& ctx, const Flags& flags, const Args& args) {
  const bool ignore_non_empty = flags.Has("-ignore-fail-on-non-empty");
  for (const auto& p : ExpandArgs(ctx, args)) {
    auto info = Stat(ctx, p);
    if (!info.ok()) {
      ctx.Error(p.display, info.status());
      continue;
    }
    if (!info->is_dir) {
      ctx.Error(p.display, Status::NotADirectory("not a directory"));
      continue;
    }
    bool empty = true;
    Status s = ctx.fs().List(p.path, [&](const FileInfo&) { return empty = false; });
    if (s.ok() && !empty) {
      if (!ignore_non_empty) ctx.Error(p.display, Status::NotEmpty("not empty"));
      continue;
    }
    if (s.ok()) s = ctx.fs().Delete(p.path, false);
    if (!s.ok()) ctx.Error(p.display, s);
  }
  return ctx.ExitCode();
}

int RunMv(Context& ctx, const Flags&, const Args& args) {
  const PathArg dst = ResolveArg(ctx.fs(), args.back());
  auto dst_info = Stat(ctx, dst);
  if (!dst_info.ok() && !dst_info.status().IsNotFound()) {
    ctx.Error(dst.display, dst_info.status());
    return ctx.ExitCode();
  }
  const bool into_dir = dst_info.ok() && dst_info->is_dir;
  const std::vector<PathArg> srcs = ExpandArgs(ctx, Args(args.begin(), args.end() - 1));
  if (srcs.size() > 1 && !into_dir) {
    ctx.Error(dst.display, dst_info.ok() ? Status::NotADirectory("not a directory") : dst_info.status());
    return ctx.ExitCode();
  }
  for (const auto& src : srcs) {
    // Hadoop: an existing directory as the destination means "move inside it".
    PathArg target = dst;
    if (into_dir) target = {ChildDisplay(dst.display, BaseName(src.path)), JoinPath(dst.path, BaseName(src.path))};
    if (src.path == "/" || (IsSameOrUnder(target.path, src.path) && target.path != src.path)) {
      ctx.Error(fmt::format("'{}' to '{}': is a subdirectory of itself", src.display, target.display));
      continue;
    }
    Status s = ctx.fs().Rename(src.path, target.path, false);
    if (!s.ok()) ctx.Error(s.IsAlreadyExists() ? target.display : src.display, s);
  }
  return ctx.ExitCode();
}

int RunDu(Context& ctx, const Flags& flags, const Args& args) {
  const bool summary = flags.Has("s"), human = flags.Has("h");
  Table table(3);
  if (flags.Has("v")) table.AddRow({"SIZE", "DISK_SPACE_CONSUMED_WITH_ALL_REPLICAS", "FULL_PATH_NAME"});
  auto add = [&](const PathArg& p, const FileInfo& info) {
    uint64_t length = info.length, consumed = info.length * info.replication;
    if (info.is_dir) {
      auto cs = ctx.fs().GetContentSummary(p.path);
      if (!cs.ok()) {
        ctx.Error(p.display, cs.status());
        return;
      }
      length = cs->length;
      consumed = cs->space_consumed;
    }
    table.AddRow({SizeText(length, human), SizeText(consumed, human), p.display});
  };
  for (const auto& p : ExpandArgs(ctx, args.empty() ? Args{"."} : args)) {
    auto info = Stat(ctx, p);
    if (!info.ok()) {
      ctx.Error(p.display, info.status());
    } else if (info->is_dir && !summary) {
      // Without -s, Hadoop's du shows each entry of a directory.
      auto entries = ctx.fs().ListAll(p.path);
      if (!entries.ok()) ctx.Error(p.display, entries.status());
      for (const auto& e : entries.ok() ? *entries : std::vector<FileInfo>{}) {
        add(PathArg{ChildDisplay(p.display, e.name), JoinPath(p.path, e.name)}, e);
      }
    } else {
      add(p, *info);
    }
  }
  table.Print(ctx.out);
  return ctx.ExitCode();
}

int RunDf(Context& ctx, const Flags& flags, const Args& args) {
  const bool human = flags.Has("h");
  std::vector<PathArg> paths = args.empty() ? std::vector<PathArg>{PathArg{"/", "/"}} : ExpandArgs(ctx, args);
  auto stats = ctx.fs().GetStats();
  if (!stats.ok()) {
    ctx.Error(stats.status().message());
    return ctx.ExitCode();
  }
  Table table(5);
  for (size_t i = 1; i < 5; ++i) table.SetRightAlign(i);
  table.AddRow({"Filesystem", "Size", "Used", "Available", "Use%"});
  const double pct = stats->capacity() ? 100.0 * double(stats->dfs_used()) / double(stats->capacity()) : 0.0;
  for (size_t i = 0; i < paths.size(); ++i) {
    table.AddRow({"dfs://" + ctx.fs().namenode_address(), SizeText(stats->capacity(), human),
                  SizeText(stats->dfs_used(), human), SizeText(stats->remaining(), human),
                  fmt::format("{:.0f}%", pct)});
  }
  table.Print(ctx.out);
  return ctx.ExitCode();
}

int RunCount(Context& ctx, const Flags& flags, const Args& args) {
  const bool quota = flags.Has("q"), human = flags.Has("h");
  if (flags.Has("v")) ctx.out << CountHeader(quota) << '\n';
  for (const auto& p : ExpandArgs(ctx, args)) {
    auto cs = ctx.fs().GetContentSummary(p.path);
    if (!cs.ok()) {
      ctx.Error(p.display, cs.status());
      continue;
    }
    ctx.out << FormatCount(*cs, quota, human, p.display) << '\n';
  }
  return ctx.ExitCode();
}

int RunStat(Context& ctx, const Flags&, const Args& args) {
  Args paths = args;
  std::string format = "%y";
  if (paths.front().find('%') != std::string::npos) {
    format = paths.front();
    paths.erase(paths.begin());
    if (paths.empty()) return ctx.UsageError("Not enough arguments: expected a path after the format");
  }
  for (const auto& p : ExpandArgs(ctx, paths)) {
    auto info = Stat(ctx, p);
    if (!info.ok()) {
      ctx.Error(p.display, info.status());
      continue;
    }
    ctx.out << FormatStat(format, *info) << '\n';
  }
  return ctx.ExitCode();
}

int RunTest(Context& ctx, const Flags& flags, const Args& args) {
  if (flags.size() != 1) return ctx.UsageError("exactly one of -d, -e, -f, -s, -z is required");
  auto info = Stat(ctx, ResolveArg(ctx.fs(), args[0]));
  if (!info.ok()) {
    if (!info.status().IsNotFound()) ctx.Error(args[0], info.status());
    return kExitFailed;
  }
  bool yes = false;
  if (flags.Has("d")) yes = info->is_dir;
  if (flags.Has("e")) yes = true;
  if (flags.Has("f")) yes = !info->is_dir;
  if (flags.Has("s")) yes = info->length > 0;
  if (flags.Has("z")) yes = info->length == 0;
  return yes ? kExitOk : kExitFailed;
}

int RunSetrep(Context& ctx, const Flags& flags, const Args& args) {
  auto rep = ParseReplication(args[0]);
  if (!rep.ok()) return ctx.UsageError(rep.status().message());
  std::vector<PathArg> changed;
  // Directories: every file below them (Hadoop always recurses; -R is a no-op).
  ForEachPath(ctx, Args(args.begin() + 1, args.end()), true, [&](const PathArg& p, const FileInfo& info) {
    if (info.is_dir) return Status::OK();
    DFS_RETURN_IF_ERROR(ctx.fs().SetReplication(p.path, *rep));
    ctx.out << "Replication " << *rep << " set: " << p.display << '\n';
    changed.push_back(p);
    return Status::OK();
  });
  if (flags.Has("w")) WaitForReplication(ctx, changed, *rep);
  return ctx.ExitCode();
}

int RunTouchz(Context& ctx, const Flags&, const Args& args) {
  for (const auto& arg : args) {
    PathArg p = ResolveArg(ctx.fs(), arg);
    auto info = Stat(ctx, p);
    Status s;
    if (info.ok()) {
      if (info->is_dir) {
        s = Status::IsADirectory("is a directory");
      } else if (info->length != 0) {
        s = Status::IOError("Not a zero-length file");
      } else {
        const int64_t now = ctx.now_ms();
        s = ctx.fs().SetTimes(p.path, now, now);
      }
    } else if (info.status().IsNotFound()) {
      client::CreateOptions co;
      co.create_parent = false;
      auto out = ctx.fs().Create(p.path, co);
      s = out.ok() ? (*out)->Close() : out.status();
    } else {
      s = info.status();
    }
    if (!s.ok()) ctx.Error(p.display, s);
  }
  return ctx.ExitCode();
}

int RunChmod(Context& ctx, const Flags& flags, const Args& args) {
  const std::string& mode_text = args[0];
  char* end = nullptr;
  unsigned long mode = std::strtoul(mode_text.c_str(), &end, 8);
  if (mode_text.empty() || mode_text.size() > 4 || *end != '\0' || mode > 07777) {
    return ctx.UsageError("mode '" + mode_text +
                          "' is not an octal mode such as 755 (symbolic modes are not supported)");
  }
  return ForEachPath(ctx, Args(args.begin() + 1, args.end()), flags.Has("R"),
                     [&](const PathArg& p, const FileInfo&) { return ctx.fs().SetPermission(p.path, mode); });
}

int RunChown(Context& ctx, const Flags& flags, const Args& args) {
  const std::string& spec = args[0];
  const size_t colon = spec.find(':');
  const std::string owner = spec.substr(0, colon);
  const std::string group = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (owner.empty() && group.empty()) return ctx.UsageError("'" + spec + "' names neither an owner nor a group");
  return ForEachPath(ctx, Args(args.begin() + 1, args.end()), flags.Has("R"),
                     [&](const PathArg& p, const FileInfo&) { return ctx.fs().SetOwner(p.path, owner, group); });
}

int RunChgrp(Context& ctx, const Flags& flags, const Args& args) {
  const std::string& group = args[0];
  return ForEachPath(ctx, Args(args.begin() + 1, args.end()), flags.Has("R"),
                     [&](const PathArg& p, const FileInfo&) { return ctx.fs().SetOwner(p.path, "", group); });
}

}  // namespace dfs::cli
