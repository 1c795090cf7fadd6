// `dfs admin` (alias `dfsadmin`): report, safemode, decommission and
// recommission, spelled either `dfs admin report` or Hadoop's
// `dfs dfsadmin -report`.
#include <fmt/format.h>

#include <algorithm>
#include <ostream>

#include "client/cli/commands.h"
#include "client/cli/format.h"

namespace dfs::cli {

namespace {

using Action = proto::SafeModeRequest::Action;

int Report(Context& ctx, Args args) {
  auto flags = Flags::Parse("live dead decommissioning", &args);
  if (!flags.ok()) return ctx.UsageError(flags.status().message());
  if (!args.empty()) return ctx.UsageError("report takes no operands, got '" + args[0] + "'");
  auto stats = ctx.fs().GetStats();
  if (!stats.ok()) {
    ctx.Error(stats.status().message());
    return ctx.ExitCode();
  }
  auto nodes = ctx.fs().GetDatanodeReport();
  if (!nodes.ok()) {
    ctx.Error(nodes.status().message());
    return ctx.ExitCode();
  }
  ctx.out << FormatReport(*stats, std::move(nodes).value(), ctx.now_ms(), flags->Has("live"), flags->Has("dead"),
                          flags->Has("decommissioning"));
  return ctx.ExitCode();
}

// What a decommission or recommission did, in a sentence.
std::string AdminStateChange(const proto::SetDatanodeAdminStateResponse& r, bool decommission) {
  const auto& n = r.node();
  const std::string name = DatanodeName(n.id());
  if (!decommission) {
    if (r.previous() == proto::ADMIN_NORMAL) return name + " is already in service";
    return name + " is back in service: it takes new blocks again, and blocks that now have more replicas than "
                  "their replication lose the extra ones";
  }
  if (n.admin_state() == proto::DECOMMISSIONED) {
    if (r.previous() == proto::DECOMMISSIONED) return name + " is already decommissioned";
    if (!n.live()) {
      return name + " is dead, so it is decommissioned at once: the blocks it held are re-replicated from their "
                    "other copies as for any dead DataNode (see Under replicated blocks in `dfs admin report`)";
    }
    return name + " is decommissioned: every block it holds is fully replicated on other DataNodes, so it is safe "
                  "to switch it off";
  }
  return fmt::format("{} {}: {} block(s) still to copy to other DataNodes; `dfs admin report` shows the progress",
                     name,
                     r.previous() == proto::DECOMMISSION_IN_PROGRESS ? "is already being decommissioned"
                                                                     : "is being decommissioned",
                     n.decommission_under_replicated());
}

// `decommission [-w] <datanode>...` and `recommission <datanode>...`.
int SetAdminState(Context& ctx, Args args, bool decommission) {
  const char* what = decommission ? "decommission" : "recommission";
  auto flags = Flags::Parse(decommission ? "w" : "", &args);
  if (!flags.ok()) return ctx.UsageError(flags.status().message());
  if (args.empty()) {
    return ctx.UsageError(std::string(what) + " takes one or more DataNodes, each as uuid, ip:port or hostname:port "
                                              "(the Name: line of `dfs admin report`)");
  }
  std::vector<std::string> waiting;
  for (const auto& dn : args) {
    auto r = ctx.fs().SetDatanodeAdminState(dn, decommission);
    if (!r.ok()) {
      ctx.Error(std::string(what) + " " + dn + ": " + r.status().message());
      continue;
    }
    ctx.out << AdminStateChange(*r, decommission) << '\n';
    if (r->node().admin_state() != proto::DECOMMISSION_IN_PROGRESS) continue;
    if (!r->node().decommission_note().empty()) ctx.out << "WARNING: " << r->node().decommission_note() << '\n';
    waiting.push_back(r->node().id().uuid());
  }
  if (!flags->Has("w") || waiting.empty()) return ctx.ExitCode();
  // -w: poll until every node named is decommissioned, as setrep -w waits for replicas.
  ctx.out << "Waiting for the decommission to finish ...";
  ctx.out.flush();
  while (true) {
    auto nodes = ctx.fs().GetDatanodeReport();
    if (!nodes.ok()) {
      ctx.out << '\n';
      ctx.Error(nodes.status().message());
      return ctx.ExitCode();
    }
    size_t left = 0;
    for (const auto& n : *nodes) {
      if (std::find(waiting.begin(), waiting.end(), n.id().uuid()) != waiting.end() &&
          n.admin_state() != proto::DECOMMISSIONED) {
        ++left;
      }
    }
    if (left == 0) break;
    if (!ctx.sleep(std::chrono::seconds(1))) {
      ctx.out << '\n';
      ctx.Error("interrupted; the decommission goes on without you: follow it with `dfs admin report`");
      return ctx.ExitCode();
    }
    ctx.out << '.';
    ctx.out.flush();
  }
  ctx.out << " done: safe to switch off\n";
  return ctx.ExitCode();
}

int SafeMode(Context& ctx, const Args& args) {
  if (args.size() != 1) return ctx.UsageError("safemode takes one of get, enter, leave, wait");
  const std::string& what = args[0];
  Action action;
  if (what == "get" || what == "wait") {
    action = proto::SafeModeRequest::GET;
  } else if (what == "enter") {
    action = proto::SafeModeRequest::ENTER;
  } else if (what == "leave") {
    action = proto::SafeModeRequest::LEAVE;
  } else {
    return ctx.UsageError("safemode takes one of get, enter, leave, wait, not '" + what + "'");
  }
  while (true) {
    auto r = ctx.fs().SafeMode(action);
    if (!r.ok()) {
      ctx.Error(r.status().message());
      return ctx.ExitCode();
    }
    if (what != "wait" || !r->on()) {
      ctx.out << (r->on() ? "Safe mode is ON" : "Safe mode is OFF") << '\n';
      return ctx.ExitCode();
    }
    if (!ctx.sleep(std::chrono::seconds(1))) {
      ctx.Error("interrupted while waiting for safe mode to end");
      return ctx.ExitCode();
    }
  }
}

}  // namespace

int RunAdmin(Context& ctx, const Flags&, const Args& args) {
  std::string sub = args[0];
  if (sub.size() > 1 && sub[0] == '-') sub.erase(0, 1);
  Args rest(args.begin() + 1, args.end());
  if (sub == "report") return Report(ctx, std::move(rest));
  if (sub == "safemode") return SafeMode(ctx, rest);
  if (sub == "decommission") return SetAdminState(ctx, std::move(rest), true);
  if (sub == "recommission") return SetAdminState(ctx, std::move(rest), false);
  return ctx.UsageError("unknown admin command '" + args[0] + "'");
}

}  // namespace dfs::cli
