// Logging: one named spdlog logger per module ("nn", "dn", "client", "rpc",
// "fuse", "mr"), every line prefixed with the node id set at start-up.
// InitLogging is called once by a main (or a test); Log() may then be called
// from any thread.
#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

namespace dfs {

// level: trace, debug, info, warn, error or off. node_id labels every line
// ("namenode", "dn-127.0.0.1:9866", ...). Logs go to stderr.
void InitLogging(const std::string& level, const std::string& node_id);

// The logger of one module, created on first use.
std::shared_ptr<spdlog::logger> Log(const std::string& module);

}  // namespace dfs
