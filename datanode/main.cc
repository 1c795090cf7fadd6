// dfs-datanode: parses flags and configuration, runs a DataNode until
// SIGINT/SIGTERM (or until the NameNode refuses it).
#include <csignal>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "common/daemon.h"
#include "common/logging.h"
#include "datanode/datanode.h"

int main(int argc, char** argv) {
  dfs::BlockShutdownSignals();
  CLI::App app{"dfs-datanode: stores block replicas and serves them to clients"};
  dfs::DaemonFlags flags;
  dfs::AddDaemonFlags(&app, &flags);
  CLI11_PARSE(app, argc, argv);
  if (flags.dump_config) {
    std::fputs(dfs::Config::DumpDefaults().c_str(), stdout);
    return 0;
  }
  auto conf = dfs::LoadDaemonConfig(flags);
  if (!conf.ok()) {
    std::fprintf(stderr, "dfs-datanode: %s\n", conf.status().message().c_str());
    return 2;
  }
  dfs::InitLogging(conf->GetString("dfs.log.level"), "datanode");
  auto dn = dfs::datanode::DataNode::Create(*conf, [] { kill(getpid(), SIGTERM); });
  if (!dn.ok()) {
    dfs::Log("dn")->error("cannot start: {}", dn.status().message());
    return 1;
  }
  if (auto s = (*dn)->Start(); !s.ok()) {
    dfs::Log("dn")->error("cannot start: {}", s.message());
    return 1;
  }
  if (auto s = dfs::WritePortFile(flags.port_file, {{"xfer", std::to_string((*dn)->xfer_port())}}); !s.ok()) {
    dfs::Log("dn")->error("{}", s.message());
  }
  int sig = dfs::WaitForShutdownSignal();
  dfs::Log("dn")->info("Received signal {}, shutting down", sig);
  (*dn)->Shutdown();
  return (*dn)->fatal_error().ok() ? 0 : 1;
}
