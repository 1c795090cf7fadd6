// What every daemon main shares: the standard flags (--conf, -D key=value,
// --port-file, --dump-default-config), logging set-up, and waiting for
// SIGINT/SIGTERM. Call BlockShutdownSignals() first thing in main, before any
// thread starts, so the signals are only ever taken by WaitForShutdownSignal().
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/config.h"
#include "common/status.h"

namespace CLI {
class App;
}

namespace dfs {

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
