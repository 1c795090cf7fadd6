// `dfs`: the file-system shell (see client/cli/shell.h). FileSystem::Connect is
// bound here, not in dfs_cli, so that tests link the shell against a fake.
#include "client/cli/shell.h"

int main(int argc, char** argv) {
  return dfs::cli::Main(argc, argv,
                        [](const dfs::Config& conf,
                           const std::string& namenode) -> dfs::Result<std::shared_ptr<dfs::client::FileSystem>> {
                          auto fs = dfs::client::FileSystem::Connect(conf, namenode);
                          if (!fs.ok()) return fs.status();
                          return std::shared_ptr<dfs::client::FileSystem>(std::move(fs).value());
                        });
}
