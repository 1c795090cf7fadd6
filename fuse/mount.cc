#include "fuse/mount.h"

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "client/filesystem.h"
#include "common/config.h"
#include "common/logging.h"
#include "fuse/fuse_fs.h"

namespace dfs::fuse {

namespace {

int Fail(const std::string& message) {
  std::cerr << "dfs mount: " << message << '\n';
  return 1;
}

std::string DefaultLogFile(const std::string& mountpoint) {
  const char* home = std::getenv("DFS_HOME");
  std::string dir = home && *home ? home : std::string(std::getenv("HOME") ? std::getenv("HOME") : "/tmp") + "/.dfs";
  std::string name = mountpoint;
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  return dir + "/logs/mount" + name + ".log";
}

// Undoes the octal escapes (\040 for a space, ...) of a /proc/self/mountinfo field.
std::string Unescape(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      const std::string oct = field.substr(i + 1, 3);
      if (oct.find_first_not_of("01234567") == std::string::npos) {
        out.push_back(static_cast<char>(std::stoi(oct, nullptr, 8)));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

// Sets the kernel's read-ahead for the mount at `mountpoint`: the
// read_ahead_kb of its device (FUSE mounts start at 128 KiB, at most one
// request ahead). Writing it needs root; otherwise it stays as it is, with
// a note in the log.
void SetKernelReadAhead(const std::string& mountpoint, size_t bytes) {
  if (bytes == 0) return;
  std::ifstream mounts("/proc/self/mountinfo");
  std::string line, device;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    if ((fields >> id >> parent >> dev >> root >> point) && Unescape(point) == mountpoint) device = dev;  // the last wins
  }
  if (device.empty()) {
    Log("fuse")->warn("kernel read-ahead left as it is: {} is not in /proc/self/mountinfo", mountpoint);
    return;
  }
  const std::string knob = "/sys/class/bdi/" + device + "/read_ahead_kb";
  std::ofstream out(knob);
  if (out) out << (bytes >> 10) << '\n';
  if (!out) {
    Log("fuse")->info("kernel read-ahead left at its default (128 KiB): cannot write {} ({}); mounting as root "
                      "raises it to dfs.fuse.readahead.kernel",
                      knob, std::strerror(errno));
    return;
  }
  Log("fuse")->info("kernel read-ahead {} KiB ({})", bytes >> 10, knob);
}

}  // namespace

int RunMount(const MountArgs& a) {
  auto conf = Config::Load(a.conf_file, a.overrides);
  if (!conf.ok()) return Fail(conf.status().message());
  InitLogging(conf->GetString("dfs.log.level"), "fuse");

  char real[PATH_MAX];
  if (!realpath(a.mountpoint.c_str(), real)) {
    return Fail(fmt::format("mount point {}: {}; create it first (mkdir -p {})", a.mountpoint, std::strerror(errno),
                            a.mountpoint));
  }
  const std::string mountpoint = real;
  struct stat st {};
  if (stat(mountpoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Fail(fmt::format("mount point {} is not a directory", mountpoint));
  }
  if (access("/dev/fuse", R_OK | W_OK) != 0) {
    return Fail(fmt::format(
        "FUSE is not available here: /dev/fuse {} ({}). Install it with `apt-get install fuse3`; in a container, "
        "start it with --device /dev/fuse --cap-add SYS_ADMIN",
        errno == ENOENT ? "is missing" : "cannot be opened", std::strerror(errno)));
  }

  auto fs = client::FileSystem::Connect(*conf, a.namenode);
  if (!fs.ok()) return Fail(fs.status().message());
  if (auto root = (*fs)->GetFileInfo("/"); !root.ok()) {
    return Fail(fmt::format("cannot reach the NameNode at {}: {}", (*fs)->namenode_address(), root.status().message()));
  }
  const std::string nn = (*fs)->namenode_address();

  const FuseFsOptions opts = FuseFsOptionsFrom(*conf);
  FuseFs dfs_fs(std::move(*fs), opts);

  // libfuse's own options: our defaults first, so -o given by the user wins.
  // max_read must match what OpInit asks for.
  std::vector<std::string> argv = {
      "dfs-fuse", "-o",
      fmt::format("fsname=dfs://{},subtype=dfs,default_permissions,max_read={}", nn, opts.max_read)};
  for (const auto& o : a.fuse_options) {
    argv.push_back("-o");
    argv.push_back(o);
  }
  if (a.debug) argv.push_back("-d");
  std::vector<char*> cargv;
  for (auto& s : argv) cargv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(cargv.size()), cargv.data());

  fuse_session* se = fuse_session_new(&args, &FuseFs::Operations(), sizeof(fuse_lowlevel_ops), dfs_fs.userdata());
  fuse_opt_free_args(&args);
  if (!se) return Fail("libfuse refused the options (see the message above)");
  if (fuse_session_mount(se, mountpoint.c_str()) != 0) {
    fuse_session_destroy(se);
    return Fail(fmt::format("cannot mount at {} (see the message above; is something mounted there already? "
                            "`dfs umount {}`)",
                            mountpoint, mountpoint));
  }

  const bool foreground = a.foreground || a.debug;
  if (!foreground) {
    const std::string log = a.log_file.empty() ? DefaultLogFile(mountpoint) : a.log_file;
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(log).parent_path(), ec);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
      fuse_session_unmount(se);
      fuse_session_destroy(se);
      return Fail(fmt::format("cannot open the log file {}: {}", log, std::strerror(errno)));
    }
    std::cout << fmt::format("dfs://{} mounted at {} (log: {}; unmount with `dfs umount {}`)\n", nn, mountpoint, log,
                             mountpoint)
              << std::flush;
    if (fuse_daemonize(0) != 0) {
      fuse_session_unmount(se);
      return 1;
    }
    dup2(fd, STDERR_FILENO);  // fuse_daemonize pointed it at /dev/null
    close(fd);
  } else {
    std::cerr << fmt::format("dfs://{} mounted at {}; Ctrl-C or `dfs umount {}` unmounts\n", nn, mountpoint,
                             mountpoint);
  }
  Log("fuse")->info("dfs://{} mounted at {}", nn, mountpoint);

  // Signals. libfuse 3.14's own handlers only set a flag, which nobody sees
  // while every worker sleeps in read(/dev/fuse) (or when the signal lands on
  // a client thread). So SIGTERM/SIGINT/SIGHUP are blocked in every thread
  // (the workers and the client's threads inherit the mask) and one thread
  // waits for them: it ends the session and interrupts the main thread, whose
  // wait then sees the session has ended and stops the workers.
  ::signal(SIGPIPE, SIG_IGN);
  struct sigaction wake {};
  wake.sa_handler = [](int) {};  // no SA_RESTART: interrupts the main thread's wait
  sigaction(SIGUSR1, &wake, nullptr);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&stop_signals, sig);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  const pthread_t main_thread = pthread_self();
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    const timespec tick{0, 200'000'000};
    while (!done.load()) {
      const int sig = sigtimedwait(&stop_signals, nullptr, &tick);
      if (sig <= 0) continue;
      Log("fuse")->info("{}: unmounting {}", strsignal(sig), mountpoint);
      fuse_session_exit(se);
      pthread_kill(main_thread, SIGUSR1);
      return;
    }
  });

  dfs_fs.AfterInit([&mountpoint, &opts] { SetKernelReadAhead(mountpoint, opts.kernel_readahead); });
  fuse_loop_config* loop = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(loop, 0);
  fuse_loop_cfg_set_max_threads(loop, 16);
  const int rc = fuse_session_loop_mt(se, loop);
  fuse_loop_cfg_destroy(loop);
  done = true;
  waiter.join();
  // 0 or ENODEV: unmounted. Otherwise a real error.
  const bool clean = rc == 0 || rc == -ENODEV;
  if (!clean) Log("fuse")->error("the FUSE session ended with an error: {}", std::strerror(rc < 0 ? -rc : rc));

  fuse_session_unmount(se);
  fuse_session_destroy(se);  // calls destroy: files still being written are completed
  Log("fuse")->info("unmounted {}", mountpoint);
  return clean ? 0 : 1;
}

}  // namespace dfs::fuse
