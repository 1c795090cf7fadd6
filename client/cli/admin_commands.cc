// `dfs admin` (alias `dfsadmin`): report and safemode, spelled either
// `dfs admin report` or Hadoop's `dfs dfsadmin -report`.
#include <ostream>

#include "client/cli/commands.h"
#include "client/cli/format.h"

namespace dfs::cli {

namespace {

using Action = proto::SafeModeRequest::Action;

int Report(Context& ctx, Args args) {
  auto flags = Flags::Parse("live dead", &args);
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
  ctx.out << FormatReport(*stats, std::move(nodes).value(), ctx.now_ms(), flags->Has("live"), flags->Has("dead"));
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
  return ctx.UsageError("unknown admin command '" + args[0] + "'");
}

}  // namespace dfs::cli
