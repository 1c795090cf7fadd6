#include "streaming/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <filesystem>
#include <set>

#include "common/logging.h"

namespace dfs::streaming {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kReporterPrefix = "reporter:";
// A "reporter:" line longer than this is passed through as ordinary stderr, so a
// line without a newline cannot make the stderr thread buffer without bound.
constexpr size_t kMaxReporterLine = 64 * 1024;
// After the task is reaped, how long the stderr thread may wait for end-of-file
// (every writer gone) before it gives up on a writer we could not find and kill.
constexpr auto kStderrDrainTime = std::chrono::milliseconds(500);
// KillByMarker gives up after this long (a fork bomb that keeps outrunning it).
constexpr auto kMarkerKillTime = std::chrono::seconds(2);
// Pause before KillByMarker's confirming scan.
constexpr auto kMarkerRescanDelay = std::chrono::milliseconds(10);

uint64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Owns an fd on Spawn's error paths.
struct UniqueFd {
  int fd = -1;
  UniqueFd() = default;
  explicit UniqueFd(int f) : fd(f) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { CloseFd(fd); }
  int release() { return std::exchange(fd, -1); }
};

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool IsExecutableFile(const std::string& path) { return IsRegularFile(path) && ::access(path.c_str(), X_OK) == 0; }

std::string Basename(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The first executable `name` in the ':'-separated `path_env`, or "".
std::string FindOnPath(const std::string& name, const std::string& path_env) {
  size_t start = 0;
  while (start <= path_env.size()) {
    size_t end = path_env.find(':', start);
    if (end == std::string::npos) end = path_env.size();
    std::string dir = path_env.substr(start, end - start);
    // An empty entry means "the current directory" to a shell; tasks must not
    // pick up programs from wherever they happen to run, so it is skipped.
    if (!dir.empty()) {
      std::string candidate = dir + (dir.back() == '/' ? "" : "/") + name;
      if (IsExecutableFile(candidate)) return candidate;
    }
    start = end + 1;
  }
  return "";
}

// The first line of a file (without '\n'), read the way the kernel reads #!:
// only the start of the file matters.
Result<std::string> ReadFirstLine(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open " + path, errno);
  UniqueFd guard(fd);
  char buf[4096];
  ssize_t n;
  do {
    n = ::read(fd, buf, sizeof(buf));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Status::FromErrno("read " + path, errno);
  std::string_view data(buf, static_cast<size_t>(n));
  return std::string(data.substr(0, data.find('\n')));
}

std::vector<std::string> SplitWhitespace(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

std::string CrlfError(const std::string& name, const std::string& first_line) {
  std::string shown = first_line.substr(0, first_line.size() - 1);  // without the '\r'
  return name + " has Windows line endings (CRLF): its first line `" + shown +
         "` ends in an invisible carriage return, so the system looks for an interpreter whose name ends in \\r, "
         "which does not exist. Convert the file to Unix line endings (`dos2unix " +
         name + "` or `sed -i 's/\\r$//' " + name + "`) and submit again.";
}

// Why the kernel could not run `program` (errno from exec): NotFound for what a
// shell reports as 127, PermissionDenied for 126.
Status ExecFailure(const std::string& program, int err) {
  const std::string name = Basename(program);
  if (err == ENOENT || err == ENOTDIR) {
    if (!IsRegularFile(program)) {
      return Status::NotFound("cannot run " + program + " (exit code 127, command not found): the file does not exist");
    }
    // The file is there, so the missing piece is the interpreter in its #! line.
    auto line = ReadFirstLine(program);
    if (line.ok() && line->starts_with("#!")) {
      if (line->ends_with('\r')) return Status::NotFound(CrlfError(name, *line));
      auto words = SplitWhitespace(std::string_view(*line).substr(2));
      std::string interp = words.empty() ? "" : words[0];
      return Status::NotFound("cannot run " + name + " (exit code 127): it asks for interpreter " + interp +
                              " (its first line), which does not exist on this DataNode; start the script with "
                              "`#!/usr/bin/env python3` (or the interpreter you need) so it is found on the PATH");
    }
    return Status::NotFound("cannot run " + program +
                            " (exit code 127): the program or the interpreter or library it needs was not found");
  }
  if (err == EACCES || err == EPERM) {
    return Status::PermissionDenied("cannot run " + name + " (exit code 126, not executable): " + program +
                                    " lacks execute permission (`chmod +x " + name +
                                    "`), or it lives on a file system mounted noexec");
  }
  if (err == ENOEXEC) {
    return Status::PermissionDenied("cannot run " + name + " (exit code 126, not a program): " + program +
                                    " has no #! line saying which interpreter runs it and is not a binary for this "
                                    "machine; add a first line like `#!/usr/bin/env python3`");
  }
  if (err == E2BIG)
    return Status::InvalidArgument("cannot run " + name + ": its arguments and environment are too long");
  return Status::FromErrno("cannot run " + program, err);
}

std::string SignalName(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

std::string SignalMeaning(int sig) {
  switch (sig) {
    case SIGKILL:
      return "it was killed outright, most often for going over the memory limit (the kernel's out-of-memory "
             "killer) or by the framework (task killed, job aborted, attempt no longer needed)";
    case SIGXCPU:
      return "it used more CPU time than the task's CPU limit allows (an endless loop, or far too much work "
             "for one task)";
    case SIGXFSZ:
      return "it wrote a file larger than the task's file size limit";
    case SIGSEGV:
      return "it crashed on an invalid memory access (segmentation fault): a bug in native code or an extension "
             "module, or recursion too deep for the stack";
    case SIGABRT:
      return "it aborted itself: a failed assertion, an uncaught C++ exception, or memory corruption detected by "
             "the C library";
    case SIGBUS:
      return "it crashed on a bus error (an invalid memory access, e.g. to a memory-mapped file that shrank)";
    case SIGFPE:
      return "it crashed on an arithmetic error such as an integer division by zero";
    case SIGILL:
      return "it crashed on an illegal instruction: a binary built for another CPU, or a crash in native code";
    case SIGPIPE:
      return "it wrote to a pipe nobody reads any more: the framework stopped reading its output, usually "
             "because of an earlier error";
    case SIGTERM:
      return "it was asked to stop, by the framework (task killed or timed out) or by an administrator";
    case SIGINT:
    case SIGHUP:
    case SIGQUIT:
      return "it was interrupted";
    default: {
      const char* descr = ::sigdescr_np(sig);
      return descr ? std::string("the system reported: ") + descr : "an unusual signal";
    }
  }
}

bool IsInterpreterName(const std::string& name) {
  static const char* const kNames[] = {"bash", "sh", "dash", "zsh", "perl", "Rscript", "ruby", "node", "php", "awk"};
  if (name.starts_with("python") || name.starts_with("pypy")) return true;
  return std::any_of(std::begin(kNames), std::end(kNames), [&](const char* n) { return name == n; });
}

bool HasScriptExtension(const std::string& name) {
  static const char* const kExts[] = {".py", ".sh", ".pl", ".R", ".r", ".rb", ".js", ".php", ".awk"};
  return std::any_of(std::begin(kExts), std::end(kExts), [&](const char* e) { return EndsWith(name, e); });
}

}  // namespace

// ---------------------------------------------------------------------------
// The stderr reader

// Owned by Subprocess, used by its stderr thread. The tail is read by other
// threads under mu; everything else is touched by the stderr thread only (and
// by Spawn/the destructor while that thread is not running).
struct Subprocess::StderrState {
  int fd = -1;       // read end of the child's stderr
  int wake_fd = -1;  // eventfd: "the task is reaped, drain and stop"
  int log_fd = -1;   // stderr_log, or -1
  size_t tail_cap = 0;
  std::function<void(std::string_view, std::string_view, int64_t)> on_counter;
  std::function<void(std::string_view)> on_status;

  mutable std::mutex mu;
  std::string tail;  // last bytes (bounded to 2 * tail_cap between trims)
  bool tail_cut = false;

  // Line splitting. A line is buffered only while it may still be a reporter
  // line; once its first bytes differ from "reporter:" it streams straight out.
  std::string pending;
  bool in_plain_line = false;
  bool log_failed = false;

  ~StderrState() {
    CloseFd(fd);
    CloseFd(wake_fd);
    CloseFd(log_fd);
  }

  void EmitPlain(std::string_view data) {
    if (data.empty()) return;
    if (log_fd >= 0 && !log_failed) {
      size_t off = 0;
      while (off < data.size()) {
        ssize_t n = ::write(log_fd, data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          Log("mr")->warn("cannot append task stderr to its log: {}", std::strerror(errno));
          log_failed = true;
          break;
        }
        off += static_cast<size_t>(n);
      }
    }
    if (tail_cap == 0) return;
    std::lock_guard<std::mutex> l(mu);
    tail.append(data);
    if (tail.size() > 2 * tail_cap) {
      tail.erase(0, tail.size() - tail_cap);
      tail_cut = true;
    }
  }

  // A complete line that starts with "reporter:" (with its '\n', if any).
  void HandleReporterLine(const std::string& line) {
    std::string_view body(line);
    if (body.ends_with('\n')) body.remove_suffix(1);
    if (body.ends_with('\r')) body.remove_suffix(1);
    body.remove_prefix(kReporterPrefix.size());
    if (body.starts_with("status:")) {
      if (on_status) on_status(body.substr(7));
      return;
    }
    if (body.starts_with("counter:")) {
      // Like Hadoop: exactly "group,counter,amount"; anything else is shown to the
      // student as ordinary stderr rather than silently dropped.
      std::string_view rest = body.substr(8);
      size_t c1 = rest.find(',');
      size_t c2 = c1 == std::string_view::npos ? c1 : rest.find(',', c1 + 1);
      if (c2 != std::string_view::npos && rest.find(',', c2 + 1) == std::string_view::npos) {
        std::string_view amount = rest.substr(c2 + 1);
        int64_t value = 0;
        auto [ptr, ec] = std::from_chars(amount.data(), amount.data() + amount.size(), value);
        if (ec == std::errc() && ptr == amount.data() + amount.size() && !amount.empty()) {
          if (on_counter) on_counter(rest.substr(0, c1), rest.substr(c1 + 1, c2 - c1 - 1), value);
          return;
        }
      }
    }
    EmitPlain(line);
  }

  void Feed(std::string_view data) {
    while (!data.empty()) {
      size_t nl = data.find('\n');
      size_t take = nl == std::string_view::npos ? data.size() : nl + 1;
      std::string_view piece = data.substr(0, take);
      data.remove_prefix(take);
      bool line_ends = nl != std::string_view::npos;
      if (in_plain_line) {
        EmitPlain(piece);
        in_plain_line = !line_ends;
        continue;
      }
      pending.append(piece);
      size_t check = std::min(pending.size(), kReporterPrefix.size());
      if (std::string_view(pending).substr(0, check) != kReporterPrefix.substr(0, check)) {
        EmitPlain(pending);
        pending.clear();
        in_plain_line = !line_ends;
      } else if (line_ends) {  // the '\n' comes after the whole prefix, or it would not match
        HandleReporterLine(pending);
        pending.clear();
      } else if (pending.size() > kMaxReporterLine) {
        EmitPlain(pending);
        pending.clear();
        in_plain_line = true;
      }
    }
  }

  // End of stderr: a last line without '\n' counts as a line.
  void Flush() {
    if (pending.empty()) return;
    if (pending.size() >= kReporterPrefix.size() && pending.starts_with(kReporterPrefix)) {
      HandleReporterLine(pending);
    } else {
      EmitPlain(pending);
    }
    pending.clear();
  }
};

void Subprocess::StderrLoop() {
  StderrState& st = *stderr_;
  std::vector<char> buf(64 * 1024);
  bool stopping = false;
  Clock::time_point drain_deadline;
  for (;;) {
    struct pollfd fds[2] = {{st.fd, POLLIN, 0}, {st.wake_fd, POLLIN, 0}};
    int timeout = -1;
    if (stopping) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(drain_deadline - Clock::now()).count();
      if (left <= 0) break;
      timeout = static_cast<int>(left);
    }
    int r = ::poll(fds, stopping ? 1 : 2, timeout);
    if (r < 0) {
      if (errno == EINTR) continue;
      Log("mr")->warn("poll on task stderr failed: {}", std::strerror(errno));
      break;
    }
    if (r == 0) {
      Log("mr")->warn("{}: stderr still open {} ms after the task ended (an escaped process?); stopped reading it",
                      program_, kStderrDrainTime.count());
      break;
    }
    if (!stopping && (fds[1].revents & POLLIN)) {
      stopping = true;
      drain_deadline = Clock::now() + kStderrDrainTime;
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::read(st.fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // end of file: every writer is gone
      last_activity_ms_.store(NowMs(), std::memory_order_relaxed);
      st.Feed(std::string_view(buf.data(), static_cast<size_t>(n)));
    }
  }
  st.Flush();
}

// ---------------------------------------------------------------------------
// Spawning

// How a task is started, and why not fork() or posix_spawn().
//
// The DataNode is large and multi-threaded. fork() copies its page tables
// (milliseconds per task, more under ASan, and a doubled commit charge under
// strict overcommit). posix_spawn() avoids that with clone(CLONE_VM|CLONE_VFORK)
// and reports a failed exec as its return value, but it cannot set rlimits, and
// prlimit() after it returns is too late: the new program already runs, and on a
// busy machine the spawning thread can be descheduled long enough for `dd` to
// write 50 KB past a file size limit (seen in the tests), or for a task to fork
// a child that never gets the limits.
//
// So we do what glibc's posix_spawn does, plus the limits: clone() with CLONE_VM
// and CLONE_VFORK on a small stack of our own. The parent thread sleeps until the
// child has called execve (or died), so the cost does not grow with the
// DataNode's size; the child shares the parent's memory, so it runs only raw
// system calls on data prepared beforehand (no malloc, no locks, no libc state,
// no sanitizer runtime) and reports a failure by writing errno into that data.
// All signals are blocked in the parent thread around the clone so no handler
// can run on the shared memory; the child resets every disposition to default
// and unblocks everything just before execve.
namespace {

enum class ChildStage : int { kNone = 0, kSetpgid, kParentDeath, kRlimit, kDup2, kChdir, kExec };

// The kernel's struct sigaction on x86-64/aarch64 (glibc's differs in layout).
struct KernelSigaction {
  void (*handler)(int);
  unsigned long flags;
  void (*restorer)();
  uint64_t mask;
};

// Everything the child needs, built before the clone.
struct ChildPlan {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* cwd = nullptr;  // nullptr: keep the parent's
  int stdio[3] = {-1, -1, -1};
  int nlimits = 0;
  int limit_resource[3] = {};
  struct rlimit limit[3] = {};
  KernelSigaction default_action = {};  // SIG_DFL
  uint64_t empty_mask = 0;
  pid_t parent = 0;  // the DataNode's pid
  // Written by the child when it fails before or in execve.
  ChildStage stage = ChildStage::kNone;
  int error = 0;
};

[[noreturn]] __attribute__((no_sanitize("address", "undefined"))) void ChildFail(ChildPlan* plan, ChildStage stage) {
  plan->error = errno;
  plan->stage = stage;
  ::syscall(SYS_exit_group, 127);
  __builtin_unreachable();
}

// Runs in the child on its own stack but in the parent's memory: raw system
// calls only (syscall() is not intercepted by the sanitizers; sigaction and
// sigprocmask are, and their interceptors are not safe here).
__attribute__((no_sanitize("address", "undefined"))) int ChildMain(void* arg) {
  ChildPlan* plan = static_cast<ChildPlan*>(arg);
  // Own process group (pgid = pid), so Kill() reaches everything it forks.
  if (::syscall(SYS_setpgid, 0, 0) != 0) ChildFail(plan, ChildStage::kSetpgid);
  // Dies with the DataNode: one killed with SIGKILL cannot kill its tasks, and
  // they would run on as orphans (a stuck one forever). The signal comes when
  // the thread that cloned us exits, which is the attempt's thread: it reaps us
  // before it ends. If the DataNode died since the clone, we were reparented
  // before the signal was armed: stop here.
  if (::syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) ChildFail(plan, ChildStage::kParentDeath);
  if (::syscall(SYS_getppid) != plan->parent) ::syscall(SYS_exit_group, 127);
  for (int i = 0; i < plan->nlimits; ++i) {
    if (::syscall(SYS_prlimit64, 0, plan->limit_resource[i], &plan->limit[i], nullptr) != 0) {
      ChildFail(plan, ChildStage::kRlimit);
    }
  }
  for (int fd = 0; fd < 3; ++fd) {
    // The source fds are >= 3, so dup2 always makes a copy without FD_CLOEXEC.
    if (::syscall(SYS_dup2, plan->stdio[fd], fd) != fd) ChildFail(plan, ChildStage::kDup2);
  }
  if (plan->cwd != nullptr && ::syscall(SYS_chdir, plan->cwd) != 0) ChildFail(plan, ChildStage::kChdir);
  // Belt and braces for fds some library opened without O_CLOEXEC (ENOSYS before
  // Linux 5.9 is fine: ours all have O_CLOEXEC).
  ::syscall(SYS_close_range, 3, ~0U, 0);
  // Default dispositions for all (the DataNode ignores SIGPIPE; a mapper should
  // die of it as under a shell), then nothing blocked, whatever the DataNode had.
  for (int sig = 1; sig <= 64; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::syscall(SYS_rt_sigaction, sig, &plan->default_action, nullptr, 8);
  }
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &plan->empty_mask, nullptr, 8);
  ::syscall(SYS_execve, plan->path, plan->argv, plan->envp);
  ChildFail(plan, ChildStage::kExec);
}

const char* ChildStageName(ChildStage stage) {
  switch (stage) {
    case ChildStage::kSetpgid:
      return "setpgid";
    case ChildStage::kParentDeath:
      return "PR_SET_PDEATHSIG";
    case ChildStage::kRlimit:
      return "setting resource limits";
    case ChildStage::kDup2:
      return "dup2";
    case ChildStage::kChdir:
      return "chdir";
    default:
      return "exec";
  }
}

// A limit above the DataNode's own hard limit cannot be granted without
// privileges, and the child inherits the stricter one anyway: clamp to it.
void AddLimit(ChildPlan* plan, int resource, uint64_t soft, uint64_t hard) {
  struct rlimit cur;
  if (::getrlimit(static_cast<__rlimit_resource>(resource), &cur) != 0) cur.rlim_max = RLIM_INFINITY;
  int i = plan->nlimits++;
  plan->limit_resource[i] = resource;
  plan->limit[i].rlim_cur = std::min<rlim_t>(soft, cur.rlim_max);
  plan->limit[i].rlim_max = std::min<rlim_t>(hard, cur.rlim_max);
}

constexpr size_t kChildStackBytes = 64 * 1024;

}  // namespace

Result<std::unique_ptr<Subprocess>> Subprocess::Spawn(const SpawnOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) return Status::InvalidArgument("no program to run");
  const std::string& program = options.argv[0];
  if (!options.cwd.empty()) {
    // A failed chdir and a failed exec can both be ENOENT; checking first keeps
    // "program not found" unambiguous.
    struct stat st;
    if (::stat(options.cwd.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Status::NotFound("task working directory " + options.cwd + " does not exist");
    }
  }

  std::vector<std::string> env = options.env;
  if (!options.marker.empty()) {
    const std::string prefix = std::string(kTaskMarkerVar) + "=";
    auto it = std::find_if(env.begin(), env.end(), [&](const std::string& e) { return e.starts_with(prefix); });
    if (it == env.end()) {
      env.push_back(prefix + options.marker);
    } else if (*it != prefix + options.marker) {
      return Status::InvalidArgument("environment sets " + *it + " but the task marker is " + options.marker);
    }
  }

  std::unique_ptr<Subprocess> p(new Subprocess());
  p->stderr_ = std::make_unique<StderrState>();
  StderrState& st = *p->stderr_;
  st.tail_cap = options.stderr_tail_bytes;
  st.on_counter = options.on_counter;
  st.on_status = options.on_status;
  if (!options.stderr_log.empty()) {
    st.log_fd = ::open(options.stderr_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (st.log_fd < 0) return Status::FromErrno("open task stderr log " + options.stderr_log, errno);
  }
  st.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (st.wake_fd < 0) return Status::FromErrno("eventfd", errno);

  // Every fd is O_CLOEXEC from birth: another thread spawning at the same time
  // must not hand our pipe ends (or the DataNode's sockets) to its child.
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return Status::FromErrno("pipe", errno);
  UniqueFd in_r(in[0]), in_w(in[1]);
  if (::pipe2(out, O_CLOEXEC) != 0) return Status::FromErrno("pipe", errno);
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) return Status::FromErrno("pipe", errno);
  UniqueFd err_r(err[0]), err_w(err[1]);
  // A daemon with fd 0-2 closed could get a pipe end numbered 0-2, and the dup2
  // into place would then clobber another one: move such ends out of the way.
  for (UniqueFd* f : {&in_r, &out_w, &err_w}) {
    if (f->fd <= 2) {
      int moved = ::fcntl(f->fd, F_DUPFD_CLOEXEC, 3);
      if (moved < 0) return Status::FromErrno("fcntl F_DUPFD_CLOEXEC", errno);
      CloseFd(f->fd);
      f->fd = moved;
    }
  }

  std::vector<char*> argv_c, envp_c;
  for (const auto& a : options.argv) argv_c.push_back(const_cast<char*>(a.c_str()));
  argv_c.push_back(nullptr);
  for (const auto& e : env) envp_c.push_back(const_cast<char*>(e.c_str()));
  envp_c.push_back(nullptr);

  ChildPlan plan;
  plan.path = program.c_str();
  plan.argv = argv_c.data();
  plan.envp = envp_c.data();
  plan.cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
  plan.stdio[0] = in_r.fd;
  plan.stdio[1] = out_w.fd;
  plan.stdio[2] = err_w.fd;
  plan.parent = ::getpid();
  // RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL one second later at the hard one.
  if (options.cpu_seconds > 0) {
    uint64_t hard = options.cpu_seconds < RLIM_INFINITY - 1 ? options.cpu_seconds + 1 : options.cpu_seconds;
    AddLimit(&plan, RLIMIT_CPU, options.cpu_seconds, hard);
  }
  if (options.memory_bytes > 0) AddLimit(&plan, RLIMIT_AS, options.memory_bytes, options.memory_bytes);
  if (options.file_bytes > 0) AddLimit(&plan, RLIMIT_FSIZE, options.file_bytes, options.file_bytes);

  void* stack =
      ::mmap(nullptr, kChildStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return Status::FromErrno("mmap child stack", errno);
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = ::clone(ChildMain, static_cast<char*>(stack) + kChildStackBytes, CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
  int clone_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  // CLONE_VFORK: we get here only once the child has exec'd or exited, so it no
  // longer uses the stack or the plan.
  ::munmap(stack, kChildStackBytes);
  if (pid < 0) return Status::FromErrno("clone (starting " + Basename(program) + ")", clone_errno);
  if (plan.stage != ChildStage::kNone) {
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (plan.stage == ChildStage::kExec) return ExecFailure(program, plan.error);
    return Status::FromErrno(std::string(ChildStageName(plan.stage)) + " for " + Basename(program), plan.error);
  }

  p->pid_ = pid;
  p->program_ = Basename(program);
  p->marker_ = options.marker;
  p->kill_grace_ = options.kill_grace;
  p->last_activity_ms_.store(NowMs());
  // A pidfd lets Wait() sleep in poll() until the exit instead of polling
  // waitpid; it cannot refer to a reused pid because we have not reaped yet.
  p->pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  p->stdin_fd_ = in_w.release();
  p->stdout_fd_ = out_r.release();
  st.fd = err_r.release();
  p->stderr_thread_ = std::thread([raw = p.get()] { raw->StderrLoop(); });
  return p;
}

// ---------------------------------------------------------------------------
// Waiting and killing

bool Subprocess::WaitExitNoReap(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (pidfd_ >= 0) {
      struct pollfd pfd = {pidfd_, POLLIN, 0};
      int r = ::poll(&pfd, 1, static_cast<int>(std::clamp<int64_t>(left, 0, INT_MAX)));
      if (r > 0) return true;
      if (r == 0) return false;
      if (errno != EINTR) return true;  // cannot wait: let Reap block in waitpid
      continue;
    }
    // No pidfd (kernel before 5.3): peek without reaping, so the process stays a
    // zombie and its pid and process group cannot be reused before Reap.
    siginfo_t si;
    std::memset(&si, 0, sizeof(si));
    if (::waitid(P_PID, static_cast<id_t>(pid_), &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno == EINTR) continue;
      return true;
    }
    if (si.si_pid == pid_) return true;
    if (left <= 0) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(left, 10)));
  }
}

void Subprocess::Reap() {
  std::lock_guard<std::mutex> l(mu_);
  if (reaped_) return;
  // The leader has exited but is not reaped yet (or is about to be killed by
  // this very signal): its pid, and so the process group id, cannot have been reused.
  ::kill(-pid_, SIGKILL);
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    exit_.exited = WIFEXITED(status);
    exit_.exit_code = exit_.exited ? WEXITSTATUS(status) : 0;
    exit_.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  } else {
    Log("mr")->warn("{} (pid {}): exit status lost: {}", program_, pid_, std::strerror(errno));
  }
  exit_.timed_out = timed_out_.load();
  reaped_ = true;
  // Whatever escaped the process group (setsid, double fork) but still carries
  // the task's marker.
  if (!marker_.empty()) {
    int n = KillByMarker(marker_);
    if (n > 0) Log("mr")->info("{} (pid {}): killed {} leftover process(es) of task {}", program_, pid_, n, marker_);
  }
  // Everything it wrote is in the pipe by now: let the reader drain it and stop.
  uint64_t one = 1;
  if (::write(stderr_->wake_fd, &one, sizeof(one)) < 0) {
    Log("mr")->warn("cannot wake the stderr reader: {}", std::strerror(errno));
  }
  if (stderr_thread_.joinable()) stderr_thread_.join();
}

Result<ExitInfo> Subprocess::Wait(std::chrono::milliseconds timeout) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (reaped_) return exit_;
  }
  if (!WaitExitNoReap(timeout)) {
    return Status::TimedOut(program_ + " (pid " + std::to_string(pid_) + ") is still running");
  }
  Reap();
  std::lock_guard<std::mutex> l(mu_);
  return exit_;
}

void Subprocess::Kill() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (reaped_) return;
    ::kill(-pid_, SIGTERM);
  }
  WaitExitNoReap(kill_grace_);
  Reap();
}

void Subprocess::KillForTimeout() {
  timed_out_.store(true);
  Kill();
}

void Subprocess::CloseStdin() { CloseFd(stdin_fd_); }

void Subprocess::Touch() { last_activity_ms_.store(NowMs(), std::memory_order_relaxed); }

std::string Subprocess::StderrTail() const {
  std::lock_guard<std::mutex> l(stderr_->mu);
  const std::string& t = stderr_->tail;
  size_t cap = stderr_->tail_cap;
  bool cut = stderr_->tail_cut || t.size() > cap;
  std::string out = t.size() > cap ? t.substr(t.size() - cap) : t;
  if (cut) {
    // Drop the partial first line, unless that would leave nothing.
    size_t nl = out.find('\n');
    if (nl != std::string::npos && nl + 1 < out.size()) out.erase(0, nl + 1);
  }
  return out;
}

Subprocess::~Subprocess() {
  CloseFd(stdin_fd_);
  if (pid_ > 0) Reap();
  CloseFd(stdout_fd_);
  CloseFd(pidfd_);
}

// ---------------------------------------------------------------------------

int KillByMarker(const std::string& marker) {
  if (marker.empty()) return 0;
  const std::string needle = std::string(kTaskMarkerVar) + "=" + marker;
  const uid_t uid = ::geteuid();
  const pid_t self = ::getpid();
  const auto deadline = Clock::now() + kMarkerKillTime;
  std::set<pid_t> killed;
  std::string env_block;
  std::vector<char> buf(64 * 1024);
  int clean_rounds = 0;
  // Rounds until nobody new is found. A process we signalled cannot fork any
  // more, and whatever it forked before that exists when the next round starts,
  // so a round with nothing new means nothing is left (but see below).
  for (;;) {
    bool found_new = false;
    DIR* dir = ::opendir("/proc");
    if (dir == nullptr) {
      Log("mr")->warn("cannot scan /proc for task {}: {}", marker, std::strerror(errno));
      break;
    }
    while (struct dirent* e = ::readdir(dir)) {
      pid_t pid = 0;
      const char* end = e->d_name + std::strlen(e->d_name);
      auto [ptr, ec] = std::from_chars(e->d_name, end, pid);
      if (ec != std::errc() || ptr != end || pid <= 0 || pid == self) continue;
      const std::string base = std::string("/proc/") + e->d_name;
      struct stat st;
      if (::stat(base.c_str(), &st) != 0 || st.st_uid != uid) continue;
      int fd = ::open((base + "/environ").c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      env_block.clear();
      ssize_t n;
      while ((n = ::read(fd, buf.data(), buf.size())) > 0 || (n < 0 && errno == EINTR)) {
        if (n > 0) env_block.append(buf.data(), static_cast<size_t>(n));
        if (env_block.size() > (4u << 20)) break;  // ARG_MAX-sized at most in practice
      }
      ::close(fd);
      bool match = false;
      for (size_t pos = 0; pos < env_block.size() && !match;) {
        size_t z = env_block.find('\0', pos);
        if (z == std::string::npos) z = env_block.size();
        match = std::string_view(env_block).substr(pos, z - pos) == needle;
        pos = z + 1;
      }
      if (!match) continue;
      ::kill(pid, SIGKILL);
      if (killed.insert(pid).second) found_new = true;
    }
    ::closedir(dir);
    // A process in the middle of execve shows an empty environment for a moment
    // (between dropping the old memory and setting up the new stack), so one
    // clean round is not proof: look once more a little later.
    if (!found_new) {
      if (++clean_rounds >= 2) break;
      std::this_thread::sleep_for(kMarkerRescanDelay);
      continue;
    }
    clean_rounds = 0;
    if (Clock::now() > deadline) {
      Log("mr")->warn("task {}: processes keep appearing; gave up killing them after {} s", marker,
                      std::chrono::duration_cast<std::chrono::seconds>(kMarkerKillTime).count());
      break;
    }
  }
  return static_cast<int>(killed.size());
}

std::string ExplainExit(const ExitInfo& info, const std::string& program, std::chrono::milliseconds task_timeout) {
  const std::string& p = program;
  if (info.timed_out) {
    std::string span = task_timeout.count() > 0 ? "for " + std::to_string(task_timeout.count() / 1000) + " s"
                                                : "within the task timeout";
    return p + " made no progress " + span +
           " (mapreduce.task.timeout) and was killed: it read no input, wrote no output and reported no status "
           "in that time; a long computation should print `reporter:status:...` lines to stderr now and then";
  }
  if (info.exited) {
    int c = info.exit_code;
    switch (c) {
      case 0:
        return p + " exited normally (exit code 0)";
      case 1:
        return p +
               " exited with an error (exit code 1); for Python this is an uncaught exception: see the "
               "traceback below";
      case 2:
        return p +
               " exited with exit code 2: for Python, the script file could not be opened or its command "
               "line was wrong; see the messages below";
      case 126:
        return p +
               " could not be run (exit code 126): the file is not executable, because its execute bit is "
               "missing (`chmod +x`) or it is not a program or script";
      case 127:
        return p +
               " could not be run (exit code 127): the command or its interpreter was not found; a script "
               "saved with Windows line endings makes its first line ask for `python3\\r`, which does not "
               "exist (convert it with dos2unix)";
      default:
        break;
    }
    if (c > 128 && c < 128 + 65) {
      int sig = c - 128;
      return p + " exited with code " + std::to_string(c) + ", which a shell reports when the command it ran was " +
             "killed by " + SignalName(sig) + ": " + SignalMeaning(sig);
    }
    return p + " exited with code " + std::to_string(c) + ", an error it reported itself: see its stderr below";
  }
  if (info.signal != 0) {
    return p + " was killed by " + SignalName(info.signal) + ": " + SignalMeaning(info.signal);
  }
  return p + " ended, but its exit status was lost (the DataNode could not collect it)";
}

// ---------------------------------------------------------------------------
// ResolveCommand

namespace {

std::string PythonHint(const std::string& wanted, const std::string& path_env) {
  if ((wanted == "python" || wanted == "python2") && !FindOnPath("python3", path_env).empty()) {
    return " This DataNode has python3 only (Python 2 is gone): ask for python3 instead.";
  }
  return "";
}

// `#!...` of a script in the working directory, split into interpreter + args.
Result<std::vector<std::string>> ResolveShebang(const std::string& name, const std::string& line,
                                                const std::string& path_env) {
  if (line.ends_with('\r')) return Status::InvalidArgument(CrlfError(name, line));
  // Linux passes everything after the interpreter as one argument; we split on
  // whitespace instead, so `#!/usr/bin/env python3 -u` works as students expect.
  std::vector<std::string> words = SplitWhitespace(std::string_view(line).substr(2));
  if (words.empty()) {
    return Status::InvalidArgument(name +
                                   " starts with #! but names no interpreter after it; write e.g. "
                                   "`#!/usr/bin/env python3` as its first line");
  }
  const std::string interp = words[0];
  std::vector<std::string> out;
  if (Basename(interp) == "env") {
    size_t i = 1;
    while (i < words.size() && (words[i] == "-S" || words[i] == "--split-string")) ++i;
    if (i < words.size() && (words[i].starts_with("-") || words[i].find('=') != std::string::npos)) {
      return Status::InvalidArgument(name + "'s first line `" + line + "` passes options or variables to env (" +
                                     words[i] +
                                     "), which tasks do not support; use `#!/usr/bin/env python3` or "
                                     "set variables with -cmdenv");
    }
    if (i == words.size()) {
      return Status::InvalidArgument(name + "'s first line `" + line +
                                     "` runs env without naming a program; write "
                                     "e.g. `#!/usr/bin/env python3`");
    }
    const std::string& wanted = words[i];
    std::string found = FindOnPath(wanted, path_env);
    if (found.empty()) {
      return Status::NotFound(name + " asks for " + wanted + " in its first line (`" + line + "`), but " + wanted +
                              " is not on this DataNode's PATH (" + path_env + ")." + PythonHint(wanted, path_env));
    }
    out.push_back(found);
    out.insert(out.end(), words.begin() + static_cast<ptrdiff_t>(i) + 1, words.end());
    return out;
  }
  if (!interp.starts_with("/")) {
    return Status::InvalidArgument(name + "'s first line names interpreter " + interp +
                                   ", which is not an absolute path; write `#!/usr/bin/env " + interp + "`");
  }
  if (!Exists(interp)) {
    std::string base = Basename(interp);
    std::string wanted = (base == "python" || base == "python2") ? "python3" : base;
    std::string there = FindOnPath(wanted, path_env);
    std::string hint = there.empty() ? "" : " (" + wanted + " is at " + there + ")";
    return Status::NotFound(name + " asks for interpreter " + interp + " (its first line); it does not exist on this " +
                            "DataNode: start the script with `#!/usr/bin/env " + wanted +
                            "` so the interpreter is found on the PATH" + hint + ".");
  }
  if (!IsExecutableFile(interp)) {
    return Status::PermissionDenied(name + " asks for interpreter " + interp + " (its first line), which is not an " +
                                    "executable program on this DataNode; use `#!/usr/bin/env python3` or the " +
                                    "interpreter you need");
  }
  out = std::move(words);
  return out;
}

bool IsElf(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char magic[4] = {};
  ssize_t n = ::read(fd, magic, sizeof(magic));
  ::close(fd);
  return n == 4 && std::memcmp(magic,
                               "\x7f"
                               "ELF",
                               4) == 0;
}

// argv[0] is a file in the working directory: a script or a shipped binary.
Result<std::vector<std::string>> ResolveWorkdirProgram(const std::vector<std::string>& argv, const std::string& script,
                                                       const std::string& path_env) {
  const std::string& name = argv[0];
  std::vector<std::string> out;
  DFS_ASSIGN_OR_RETURN(std::string line, ReadFirstLine(script));
  if (line.starts_with(kUtf8Bom)) {
    if (line.substr(kUtf8Bom.size()).starts_with("#!")) {
      return Status::InvalidArgument(name +
                                     " starts with an invisible byte-order mark (it was saved as \"UTF-8 "
                                     "with BOM\"), so its #! line is not recognised; save it as UTF-8 without "
                                     "BOM");
    }
    line.erase(0, kUtf8Bom.size());
  }
  if (line.starts_with("#!")) {
    DFS_ASSIGN_OR_RETURN(out, ResolveShebang(name, line, path_env));
    out.push_back(script);
  } else if (EndsWith(name, ".py")) {
    std::string python = FindOnPath("python3", path_env);
    if (python.empty()) {
      return Status::NotFound(name +
                              " is a Python script without a #! line, and python3 is not on this DataNode's "
                              "PATH (" +
                              path_env + ")");
    }
    out = {python, script};
  } else if (!IsExecutableFile(script)) {
    return Status::PermissionDenied(name +
                                    " is not executable and has no #! line saying how to run it: run `chmod "
                                    "+x " +
                                    name +
                                    "` and give it a first line like `#!/usr/bin/env python3`, "
                                    "or name the interpreter in the command (e.g. `python3 " +
                                    name + "`)");
  } else if (IsElf(script)) {
    out = {script};
  } else {
    // An executable text file without #!: a shell runs it with /bin/sh, so do we.
    std::string sh = FindOnPath("sh", path_env);
    out = {sh.empty() ? "/bin/sh" : sh, script};
  }
  out.insert(out.end(), argv.begin() + 1, argv.end());
  return out;
}

}  // namespace

Result<std::vector<std::string>> ResolveCommand(const std::vector<std::string>& argv, const std::string& workdir,
                                                const std::string& path_env) {
  if (argv.empty() || argv[0].empty()) return Status::InvalidArgument("the command to run is empty");
  std::error_code ec;
  fs::path wd = fs::absolute(workdir.empty() ? fs::path(".") : fs::path(workdir), ec).lexically_normal();
  if (ec) return Status::InvalidArgument("bad working directory " + workdir + ": " + ec.message());
  auto in_workdir = [&](const std::string& rel) { return (wd / rel).lexically_normal().string(); };

  const std::string& cmd = argv[0];
  if (!cmd.starts_with("/") && IsRegularFile(in_workdir(cmd))) {
    return ResolveWorkdirProgram(argv, in_workdir(cmd), path_env);
  }
  if (cmd.starts_with("/")) {
    if (!Exists(cmd)) return Status::NotFound(cmd + " does not exist on this DataNode");
    if (!IsExecutableFile(cmd)) return Status::PermissionDenied(cmd + " is not an executable program on this DataNode");
    return argv;
  }
  if (cmd.find('/') != std::string::npos) {
    return Status::NotFound(cmd + " is not in the task's working directory: ship it with the job (-file " + cmd + ")");
  }
  std::string found = FindOnPath(cmd, path_env);
  if (found.empty()) {
    std::string hint = PythonHint(cmd, path_env);
    if (!hint.empty()) {
      return Status::NotFound(cmd + " is not on this DataNode's PATH, but python3 is: write `python3` instead of `" +
                              cmd + "` (and `#!/usr/bin/env python3` in scripts)");
    }
    return Status::NotFound(cmd + " was not found: it is neither a file shipped with the job (in the task's working " +
                            "directory) nor a program on this DataNode's PATH (" + path_env + ")");
  }
  std::vector<std::string> out = argv;
  out[0] = found;
  // `python3 [-u] mapper.py`: point the interpreter at the shipped script by
  // absolute path, and say so now if it was not shipped at all.
  if (IsInterpreterName(cmd)) {
    for (size_t i = 1; i < out.size(); ++i) {
      const std::string& arg = out[i];
      if (arg == "-c" || arg == "-m" || arg == "-e" || arg == "-E") break;  // code, not a script
      if (arg.starts_with("-")) continue;
      if (arg.starts_with("/")) break;
      if (IsRegularFile(in_workdir(arg))) {
        out[i] = in_workdir(arg);
      } else if (HasScriptExtension(arg)) {
        return Status::NotFound(cmd + " is asked to run " + arg + ", but there is no such file in the task's " +
                                "working directory: ship it with the job (-file " + arg + ")");
      }
      break;
    }
  }
  return out;
}

}  // namespace dfs::streaming
