#include "common/daemon.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common/logging.h"

namespace dfs {

void AddDaemonFlags(CLI::App* app, DaemonFlags* f) {
  app->add_option("--conf,-c", f->conf_file, "configuration file (default: $DFS_CONF, else $DFS_HOME/dfs.conf, else /etc/dfs/dfs.conf, if present)");
  app->add_option("-D", f->defines, "override one configuration key: -D dfs.replication=2 (repeatable)");
  app->add_option("--port-file", f->port_file, "write the bound port(s) here as key=value lines (for scripts and tests)");
  app->add_flag("--dump-default-config", f->dump_config, "print every configuration key with its default and exit");
}

Status ParseDefine(const std::string& text, std::pair<std::string, std::string>* out) {
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Status::InvalidArgument(fmt::format("-D expects key=value, got '{}'", text));
  }
  *out = {text.substr(0, eq), text.substr(eq + 1)};
  return Status::OK();
}

Result<Config> LoadDaemonConfig(const DaemonFlags& flags) {
  std::vector<std::pair<std::string, std::string>> overrides;
  for (const auto& d : flags.defines) {
    std::pair<std::string, std::string> kv;
    DFS_RETURN_IF_ERROR(ParseDefine(d, &kv));
    overrides.push_back(kv);
  }
  return Config::Load(flags.conf_file, overrides);
}

void BlockShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

int WaitForShutdownSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

Status WritePortFile(const std::string& path, const std::map<std::string, std::string>& values) {
  if (path.empty()) return Status::OK();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    for (const auto& [k, v] : values) out << k << "=" << v << "\n";
    if (!out) return Status::IOError("cannot write port file " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return Status::FromErrno("rename " + tmp, errno);
  return Status::OK();
}

int RunDaemon(int argc, char** argv, const std::string& name, const std::string& description,
              const std::string& log_module, const DaemonFactory& make) {
  BlockShutdownSignals();
  CLI::App app{name + ": " + description};
  DaemonFlags flags;
  AddDaemonFlags(&app, &flags);
  CLI11_PARSE(app, argc, argv);
  if (flags.dump_config) {
    std::fputs(Config::DumpDefaults().c_str(), stdout);
    return 0;
  }
  auto conf = LoadDaemonConfig(flags);
  if (!conf.ok()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), conf.status().message().c_str());
    return 2;
  }
  InitLogging(conf->GetString("dfs.log.level"), name.substr(name.find('-') + 1));
  auto log = Log(log_module);
  auto daemon = make(*conf, [] { kill(getpid(), SIGTERM); });
  if (!daemon.ok()) {
    log->error("cannot start: {}", daemon.status().message());
    return 1;
  }
  if (Status s = (*daemon)->Start(); !s.ok()) {
    log->error("cannot start: {}", s.message());
    return 1;
  }
  if (Status s = WritePortFile(flags.port_file, (*daemon)->Ports()); !s.ok()) log->error("{}", s.message());
  int sig = WaitForShutdownSignal();
  log->info("Received signal {}, shutting down", sig);
  (*daemon)->Shutdown();
  return (*daemon)->ExitStatus().ok() ? 0 : 1;
}

}  // namespace dfs
