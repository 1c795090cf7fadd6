// What every daemon main shares. RunDaemon() parses the standard flags
// (--conf, -D key=value, --port-file, --dump-default-config), loads the
// configuration, sets up logging, builds the daemon, starts it, writes its
// ports, waits for SIGINT/SIGTERM and shuts it down: a daemon's main.cc is
// one call. The signals are blocked before any thread starts so only the
// waiting thread ever takes them.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/config.h"
#include "common/status.h"

namespace CLI {
class App;
}

namespace dfs {

// What RunDaemon drives.
class Daemon {
 public:
  virtual ~Daemon() = default;
  virtual Status Start() = 0;
  virtual void Shutdown() = 0;
  // Bound ports, written to --port-file as key=value lines ({"rpc", "8020"}).
  virtual std::map<std::string, std::string> Ports() const = 0;
  // Not OK when the daemon stopped because it could not go on (exit code 1).
  virtual Status ExitStatus() const { return Status::OK(); }
};

// Builds the daemon. It calls on_fatal (from any thread) to stop itself.
using DaemonFactory =
    std::function<Result<std::unique_ptr<Daemon>>(const Config& conf, std::function<void()> on_fatal)>;

// The whole main of a daemon. `name` is the binary ("dfs-namenode"),
// `log_module` its logger ("nn"). Returns the process exit code.
int RunDaemon(int argc, char** argv, const std::string& name, const std::string& description,
              const std::string& log_module, const DaemonFactory& make);

struct DaemonFlags {
  std::string conf_file;
  std::vector<std::string> defines;  // "key=value"
  std::string port_file;
  bool dump_config = false;
};

// Adds the standard flags to `app`.
void AddDaemonFlags(CLI::App* app, DaemonFlags* flags);

// Loads the configuration the flags name; the error says which flag is wrong.
Result<Config> LoadDaemonConfig(const DaemonFlags& flags);

// Splits "key=value"; InvalidArgument otherwise.
Status ParseDefine(const std::string& text, std::pair<std::string, std::string>* out);

void BlockShutdownSignals();
// Returns the signal number that arrived.
int WaitForShutdownSignal();

// Writes `key=value` lines to `path` atomically (tmp + rename); no-op if path is empty.
Status WritePortFile(const std::string& path, const std::map<std::string, std::string>& values);

}  // namespace dfs
