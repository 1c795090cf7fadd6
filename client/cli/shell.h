// The `dfs` shell's entry point: Hadoop's generic options, then one command.
//
//   dfs [-D key=value]... [-fs host:port | --namenode host:port] [-conf FILE]
//       <command> [options] [args]
//
// Commands are accepted as `ls` and as `-ls`. The configuration is built with
// Config::Load(conf, -D overrides) and the FileSystem with the injected
// ConnectFn (FileSystem::Connect in the binary, a fake in tests), only for
// commands that need the cluster. Exit codes: 0 success, 1 a path or the
// connection failed, 2 bad usage.
#pragma once

#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "client/filesystem.h"

namespace dfs::cli {

struct Context;

struct GenericOptions {
  std::string conf_file;
  std::string namenode;
  std::vector<std::pair<std::string, std::string>> overrides;
};

// Takes the generic options off the front of *args. A malformed one (a -D
// without '=', a missing value) is an InvalidArgument naming it.
Status ParseGenericOptions(std::vector<std::string>* args, GenericOptions* opts);

// Shared, not unique, so that a test can keep its fake after the command.
using ConnectFn =
    std::function<Result<std::shared_ptr<client::FileSystem>>(const Config& conf, const std::string& namenode)>;

struct ShellEnv {
  ConnectFn connect;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  std::istream* in = nullptr;
  bool progress = false;                // progress bars for big copies (stderr is a TTY)
  std::function<void(Context&)> setup;  // adjusts each command's Context (tests: sleep, clock)
  std::function<bool()> interrupted;    // Ctrl-C seen; null: never
};

// Runs one command line (argv without the program name); returns the exit code.
int RunShell(std::vector<std::string> args, const ShellEnv& env);

// main(): the standard streams, SIGINT handling and isatty, then RunShell.
int Main(int argc, char** argv, const ConnectFn& connect);

}  // namespace dfs::cli
