// dfs-namenode: runs the NameNode until SIGINT/SIGTERM.
#include "common/daemon.h"
#include "namenode/namenode.h"

int main(int argc, char** argv) {
  return dfs::RunDaemon(argc, argv, "dfs-namenode", "the dfs NameNode (namespace, block map, replication)", "nn",
                        [](const dfs::Config& conf, auto) -> dfs::Result<std::unique_ptr<dfs::Daemon>> {
                          DFS_ASSIGN_OR_RETURN(auto nn, dfs::namenode::NameNode::Create(conf));
                          return std::unique_ptr<dfs::Daemon>(std::move(nn));
                        });
}
