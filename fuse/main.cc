// dfs-fuse: mounts the cluster's namespace with FUSE (what `dfs mount` runs).
#include <CLI/CLI.hpp>

#include "fuse/mount.h"

int main(int argc, char** argv) {
  dfs::fuse::MountArgs a;
  std::vector<std::string> defines, options;
  CLI::App app{"dfs-fuse: mount the dfs namespace at a directory (FUSE3); `dfs umount <dir>` unmounts it"};
  app.add_option("mountpoint", a.mountpoint, "an existing empty directory")->required();
  app.add_option("--namenode,--fs", a.namenode, "the NameNode host:port (default: $DFS_NAMENODE, else fs.defaultFS)");
  app.add_option("--conf,-c", a.conf_file, "configuration file (default: $DFS_CONF, else $DFS_HOME/dfs.conf, else /etc/dfs/dfs.conf, if present)");
  app.add_option("-D", defines, "set a configuration key (key=value), e.g. -D dfs.fuse.readahead=16m");
  app.add_option("-o", options, "FUSE mount options, comma-separated (allow_other, ro, ...)");
  app.add_flag("-f,--foreground", a.foreground, "stay in the foreground (logs to stderr)");
  app.add_flag("-d,--debug", a.debug, "trace every FUSE request (implies -f)");
  app.add_option("--log", a.log_file, "log file in the background (default: $DFS_HOME/logs/mount<path>.log)");
  CLI11_PARSE(app, argc, argv);
  for (const auto& d : defines) {
    const size_t eq = d.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "dfs mount: -D expects key=value, got '" << d << "'\n";
      return 2;
    }
    a.overrides.emplace_back(d.substr(0, eq), d.substr(eq + 1));
  }
  a.fuse_options = options;
  return dfs::fuse::RunMount(a);
}
