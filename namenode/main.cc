// dfs-namenode: parses flags and configuration, runs the NameNode until
// SIGINT/SIGTERM.
#include <cstdio>

#include <CLI/CLI.hpp>

#include "common/daemon.h"
#include "common/logging.h"
#include "namenode/namenode.h"

int main(int argc, char** argv) {
  dfs::BlockShutdownSignals();
  CLI::App app{"dfs-namenode: the dfs NameNode (namespace, block map, replication)"};
  dfs::DaemonFlags flags;
  dfs::AddDaemonFlags(&app, &flags);
  CLI11_PARSE(app, argc, argv);
  if (flags.dump_config) {
    std::fputs(dfs::Config::DumpDefaults().c_str(), stdout);
    return 0;
  }
  auto conf = dfs::LoadDaemonConfig(flags);
  if (!conf.ok()) {
    std::fprintf(stderr, "dfs-namenode: %s\n", conf.status().message().c_str());
    return 2;
  }
  dfs::InitLogging(conf->GetString("dfs.log.level"), "namenode");
  auto nn = dfs::namenode::NameNode::Create(*conf);
  if (!nn.ok()) {
    dfs::Log("nn")->error("cannot start: {}", nn.status().message());
    return 1;
  }
  if (auto s = (*nn)->Start(); !s.ok()) {
    dfs::Log("nn")->error("cannot start: {}", s.message());
    return 1;
  }
  if (auto s = dfs::WritePortFile(flags.port_file, {{"rpc", std::to_string((*nn)->rpc_port())}}); !s.ok()) {
    dfs::Log("nn")->error("{}", s.message());
  }
  int sig = dfs::WaitForShutdownSignal();
  dfs::Log("nn")->info("Received signal {}, shutting down", sig);
  (*nn)->Shutdown();
  return 0;
}
