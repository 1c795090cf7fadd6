// `dfs mount` and `dfs umount`: the FUSE mount lives in its own binary,
// dfs-fuse (fuse/), so the shell does not link libfuse; `dfs mount` runs the
// dfs-fuse installed next to it with the shell's generic options.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <ostream>

#include <fmt/format.h>

#include "client/cli/commands.h"

extern char** environ;

namespace dfs::cli {

namespace {

// Runs argv[0] (searched in PATH when it has no '/') and waits for it; -1 when
// it could not be started (errno in *err).
int RunAndWait(const std::vector<std::string>& argv, int* err) {
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, cargv[0], nullptr, nullptr, cargv.data(), environ);
  if (rc != 0) {
    *err = rc;
    return -1;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      *err = errno;
      return -1;
    }
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

// dfs-fuse next to this dfs binary, else from PATH.
std::string FuseBinary() {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    std::string dir(self, static_cast<size_t>(n));
    dir = dir.substr(0, dir.rfind('/'));
    std::string candidate = dir + "/dfs-fuse";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "dfs-fuse";
}

}  // namespace

int RunMount(Context& ctx, const Flags&, const Args& args) {
  std::vector<std::string> argv = {FuseBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  int err = 0;
  int rc = RunAndWait(argv, &err);
  if (rc < 0) {
    ctx.Error(fmt::format("cannot run {}: {}; it is built with dfs (cmake --build build) and installed next to it",
                          argv[0], std::strerror(err)));
    return kExitFailed;
  }
  return rc;
}

int RunUmount(Context& ctx, const Flags&, const Args& args) {
  int err = 0;
  int rc = RunAndWait({"fusermount3", "-u", args[0]}, &err);
  if (rc < 0) {
    ctx.Error(fmt::format("cannot run fusermount3: {}; install it with `apt-get install fuse3`", std::strerror(err)));
    return kExitFailed;
  }
  if (rc != 0) {
    ctx.Error(fmt::format("'{}' was not unmounted (fusermount3 said why above). If a program still has files open "
                          "there, close it first (`fuser -vm {}` lists them)",
                          args[0], args[0]));
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace dfs::cli
