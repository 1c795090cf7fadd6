// RunMount: the whole of `dfs-fuse` (and so of `dfs mount`): checks that the
// NameNode answers and the mount point is usable, mounts, goes to the
// background (unless foreground), serves until unmounted or signalled
// (SIGTERM/SIGINT/SIGHUP unmount cleanly), and returns the exit code.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace dfs::fuse {

struct MountArgs {
  std::string mountpoint;
  std::string namenode;   // host:port; empty: $DFS_NAMENODE, else fs.defaultFS
  std::string conf_file;  // empty: $DFS_CONF, else $DFS_HOME/dfs.conf, else /etc/dfs/dfs.conf, if present
  std::vector<std::pair<std::string, std::string>> overrides;  // -D key=value
  std::vector<std::string> fuse_options;                       // -o a,b
  bool foreground = false;
  bool debug = false;    // libfuse's request trace (implies foreground)
  std::string log_file;  // background: where the log goes (default under $DFS_HOME/logs)
};

int RunMount(const MountArgs& args);

}  // namespace dfs::fuse
