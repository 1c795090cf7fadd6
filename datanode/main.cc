// dfs-datanode: runs a DataNode until SIGINT/SIGTERM, or until the NameNode
// refuses it (exit code 1).
#include "common/daemon.h"
#include "datanode/datanode.h"

int main(int argc, char** argv) {
  return dfs::RunDaemon(argc, argv, "dfs-datanode", "stores block replicas and serves them to clients", "dn",
                        [](const dfs::Config& conf, std::function<void()> on_fatal)
                            -> dfs::Result<std::unique_ptr<dfs::Daemon>> {
                          DFS_ASSIGN_OR_RETURN(auto dn, dfs::datanode::DataNode::Create(conf, std::move(on_fatal)));
                          return std::unique_ptr<dfs::Daemon>(std::move(dn));
                        });
}
