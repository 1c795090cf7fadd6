#include "client/cli/shell.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <thread>

#include "client/cli/commands.h"
#include "client/cli/context.h"

namespace dfs::cli {

namespace {

bool IsRelativeDfsPath(const std::string& p) { return p.empty() || (p[0] != '/' && p.find("://") == std::string::npos); }

// Does the command write into the home directory: a relative (or, for put,
// implicit ".") destination of a command that creates something?
bool WritesIntoHome(const Command& cmd, const Args& args) {
  if (cmd.name == "put" || cmd.name == "moveFromLocal") return args.size() < 2 || IsRelativeDfsPath(args.back());
  if (cmd.name == "cp" || cmd.name == "mv") return !args.empty() && IsRelativeDfsPath(args.back());
  if (cmd.name == "mkdir" || cmd.name == "touchz") {
    for (const auto& a : args) {
      if (IsRelativeDfsPath(a)) return true;
    }
  }
  return false;
}

std::atomic<bool> g_interrupted{false};

void OnSigint(int) {
  g_interrupted.store(true);
  // A second Ctrl-C ends the process at once.
  signal(SIGINT, SIG_DFL);
}

// "-D", "key=value" and "-Dkey=value" → key, value.
Status TakeOverride(const std::string& text, GenericOptions* opts) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Status::InvalidArgument("-D expects key=value, got '" + text + "'");
  }
  opts->overrides.emplace_back(text.substr(0, eq), text.substr(eq + 1));
  return Status::OK();
}

std::string PlainCommandName(const std::string& arg) { return arg.size() > 1 && arg[0] == '-' ? arg.substr(1) : arg; }

}  // namespace

Status ParseGenericOptions(std::vector<std::string>* args, GenericOptions* opts) {
  size_t i = 0;
  auto value = [&](const std::string& opt) -> Result<std::string> {
    if (i + 1 >= args->size()) return Status::InvalidArgument(opt + " needs a value");
    return (*args)[++i];
  };
  for (; i < args->size(); ++i) {
    const std::string& a = (*args)[i];
    if (a == "-D") {
      DFS_ASSIGN_OR_RETURN(std::string v, value(a));
      DFS_RETURN_IF_ERROR(TakeOverride(v, opts));
    } else if (a.size() > 2 && a.rfind("-D", 0) == 0) {
      DFS_RETURN_IF_ERROR(TakeOverride(a.substr(2), opts));
    } else if (a == "-fs" || a == "--fs" || a == "--namenode") {
      DFS_ASSIGN_OR_RETURN(opts->namenode, value(a));
    } else if (a.rfind("--namenode=", 0) == 0 || a.rfind("--fs=", 0) == 0) {
      opts->namenode = a.substr(a.find('=') + 1);
    } else if (a == "-conf" || a == "--conf") {
      DFS_ASSIGN_OR_RETURN(opts->conf_file, value(a));
    } else if (a.rfind("--conf=", 0) == 0) {
      opts->conf_file = a.substr(7);
    } else {
      break;
    }
  }
  args->erase(args->begin(), args->begin() + static_cast<std::ptrdiff_t>(i));
  return Status::OK();
}

int RunShell(std::vector<std::string> args, const ShellEnv& env) {
  std::ostream& err = *env.err;
  Context pre(nullptr, *env.out, err, *env.in);  // for errors before a command runs

  GenericOptions opts;
  if (Status s = ParseGenericOptions(&args, &opts); !s.ok()) return pre.UsageError(s.message());
  if (args.empty()) {
    err << "Usage: dfs [generic options] <command> [options] [args]\n"
           "Run 'dfs help' for the list of commands.\n";
    return kExitUsage;
  }
  std::string name = PlainCommandName(args[0]);
  if (name == "-help" || name == "h") name = "help";
  const Command* cmd = FindCommand(name);
  if (!cmd) return pre.UsageError("Unknown command '" + args[0] + "'");
  args.erase(args.begin());
  if (cmd->run == RunStreaming) {
    // `dfs -D stream.num.map.output.key.fields=2 streaming ...`: generic -D
    // options before the command are job configuration too, as in Hadoop.
    // Keys dfs knows also configure the client; the others only the job.
    std::vector<std::pair<std::string, std::string>> known;
    std::vector<std::string> job_defines;
    for (const auto& [k, v] : opts.overrides) {
      job_defines.push_back("-D");
      job_defines.push_back(k + "=" + v);
      bool is_known = false;
      for (const auto& key : AllConfigKeys()) is_known |= k == key.name;
      if (is_known) known.emplace_back(k, v);
    }
    opts.overrides = std::move(known);
    args.insert(args.begin(), job_defines.begin(), job_defines.end());
  }

  if (cmd->run == RunMount) {
    // dfs-fuse takes the generic options as its own flags.
    std::vector<std::string> generic;
    if (!opts.namenode.empty()) generic.insert(generic.end(), {"--namenode", opts.namenode});
    if (!opts.conf_file.empty()) generic.insert(generic.end(), {"--conf", opts.conf_file});
    for (const auto& [k, v] : opts.overrides) generic.insert(generic.end(), {"-D", k + "=" + v});
    args.insert(args.begin(), generic.begin(), generic.end());
  }

  Context ctx(nullptr, *env.out, err, *env.in);
  ctx.command = cmd;
  Flags flags;
  if (cmd->flags != "*") {
    auto parsed = Flags::Parse(cmd->flags, &args);
    if (!parsed.ok()) return ctx.UsageError(parsed.status().message());
    flags = std::move(parsed).value();
  }
  const int n = static_cast<int>(args.size());
  if (n < cmd->min_args) {
    return ctx.UsageError(fmt::format("Not enough arguments: expected {} but got {}", cmd->min_args, n));
  }
  if (cmd->max_args >= 0 && n > cmd->max_args) {
    return ctx.UsageError(fmt::format("Too many arguments: expected {} but got {}", cmd->max_args, n));
  }

  std::shared_ptr<client::FileSystem> fs;
  if (cmd->needs_fs) {
    auto conf = Config::Load(opts.conf_file, opts.overrides);
    if (!conf.ok()) {
      ctx.Error(conf.status().message());
      return kExitFailed;
    }
    auto connected = env.connect(*conf, opts.namenode);
    if (!connected.ok()) {
      ctx.Error("cannot reach the NameNode: " + connected.status().message());
      return kExitFailed;
    }
    fs = std::move(connected).value();
    ctx.fs_ptr = fs.get();
  }
  if (fs && WritesIntoHome(*cmd, args)) {
    // Hadoop fails a first `put f` because /user/<you> does not exist yet (or,
    // worse, creates a file by that name); dfs makes the home directory first.
    // Idempotent and harmless when it exists.
    (void)fs->Mkdirs(fs->home(), 0755, true);
  }
  ctx.progress = env.progress;
  if (env.interrupted) ctx.interrupted = env.interrupted;
  if (env.setup) env.setup(ctx);
  int rc = cmd->run(ctx, flags, args);
  ctx.out.flush();
  return rc;
}

int Main(int argc, char** argv, const ConnectFn& connect) {
  std::ios::sync_with_stdio(false);
  struct sigaction sa {};
  sa.sa_handler = OnSigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);

  ShellEnv env;
  env.connect = connect;
  env.out = &std::cout;
  env.err = &std::cerr;
  env.in = &std::cin;
  env.progress = isatty(STDERR_FILENO) == 1;
  env.interrupted = [] { return g_interrupted.load(); };
  env.setup = [](Context& ctx) {
    // Sleeps in short steps so that Ctrl-C ends a wait (tail -f, setrep -w) promptly.
    ctx.sleep = [](std::chrono::milliseconds d) {
      const auto end = std::chrono::steady_clock::now() + d;
      while (!g_interrupted.load()) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= end) return true;
        std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(end - now, std::chrono::milliseconds(50)));
      }
      return false;
    };
  };
  std::vector<std::string> args(argv + 1, argv + argc);
  int rc = RunShell(std::move(args), env);
  std::cout.flush();
  return rc;
}

}  // namespace dfs::cli
