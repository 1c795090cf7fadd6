// Running one task's program (a student's mapper, combiner or reducer) safely.
//
// Subprocess starts a program directly (no shell) in its own process group with
// exactly the environment, working directory and resource limits it is given;
// its stdin and stdout are pipes the caller drives, and its stderr is read by an
// internal thread that picks out Hadoop-streaming "reporter:" lines (counters and
// status) and keeps the last bytes of everything else for the error report.
// When the task ends, nothing it started may outlive it: the process group is
// killed, and so is every process that escaped it (setsid, double fork) but still
// carries the task's DFS_TASK_ATTEMPT=<attempt>@<datanode uuid> environment marker.
// The program itself also dies with the DataNode (PR_SET_PDEATHSIG=SIGKILL, sent
// when the thread that spawned it exits): spawn from a thread that outlives it.
//
// ResolveCommand turns the command line a student typed (`mapper.py`,
// `python3 reducer.py`, `./wc`) into an absolute program path plus arguments once
// per job, following the script's #! line itself, so every task is spawned
// without a shell and a broken shebang is explained before anything runs.
// ExplainExit turns how a task ended into one sentence a student can act on.
//
// Thread-safety: a Subprocess is owned by one thread (the task runner). Wait(),
// Kill(), Touch(), last_activity_ms() and StderrTail() may also be called from
// other threads, e.g. a watchdog. The on_counter/on_status callbacks run on the
// internal stderr thread and should be quick: stderr is not read meanwhile.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"

namespace dfs::streaming {

// The environment variable every task carries; its value names the task attempt.
inline constexpr std::string_view kTaskMarkerVar = "DFS_TASK_ATTEMPT";

struct SpawnOptions {
  // argv[0] is the program, normally an absolute path from ResolveCommand. It is
  // executed directly: no shell, no PATH search.
  std::vector<std::string> argv;
  // "K=V" entries: exactly these, nothing is inherited from the DataNode.
  std::vector<std::string> env;
  // The task's working directory; empty keeps the caller's (tests only).
  std::string cwd;
  // Value of DFS_TASK_ATTEMPT for this task. If non-empty and env lacks the entry,
  // it is added; processes carrying it are killed when the task ends. It must be
  // unique on the host (attempt id plus DataNode id: tests run several clusters).
  // Empty: no marker, only the process group is killed.
  std::string marker;
  // Resource limits, 0 = unlimited. RLIMIT_CPU in seconds of CPU time (SIGXCPU,
  // then SIGKILL one second later), RLIMIT_AS in bytes of address space (allocations
  // fail: MemoryError in Python), RLIMIT_FSIZE in bytes per written file (SIGXFSZ).
  uint64_t cpu_seconds = 0;
  uint64_t memory_bytes = 0;
  uint64_t file_bytes = 0;
  // If non-empty, every stderr byte except reporter lines is appended to this file.
  std::string stderr_log;
  // How much of the end of stderr StderrTail() keeps, in bytes.
  size_t stderr_tail_bytes = 16384;
  // Kill(): time between SIGTERM and SIGKILL to the process group.
  std::chrono::milliseconds kill_grace{1000};
  // "reporter:counter:<group>,<counter>,<amount>" lines on stderr.
  std::function<void(std::string_view group, std::string_view name, int64_t amount)> on_counter;
  // "reporter:status:<message>" lines on stderr.
  std::function<void(std::string_view message)> on_status;
};

// How a process ended. exited: normal exit with exit_code; otherwise killed by
// signal. timed_out: the caller killed it with KillForTimeout().
struct ExitInfo {
  bool exited = false;
  int exit_code = 0;
  int signal = 0;
  bool timed_out = false;
};

class Subprocess {
 public:
  // Starts the program. When the exec itself fails, returns NotFound (what a shell
  // reports as exit code 127: program or its #! interpreter missing) or
  // PermissionDenied (126: not executable, not a program) with a sentence that
  // says why, naming the program.
  static Result<std::unique_ptr<Subprocess>> Spawn(const SpawnOptions& options);

  // Kills (SIGKILL, no grace) and reaps a still-running process.
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  // Parent ends of the child's stdin and stdout (O_CLOEXEC, blocking). The caller
  // reads stdout while writing stdin, or the two pipes deadlock. Writing after the
  // child exited fails with EPIPE (the DataNode ignores SIGPIPE). stdout ends only
  // when every process holding it is gone (a leftover background child keeps it
  // open until Wait() kills it): poll it alongside Wait(), not to EOF before it.
  int stdin_fd() const { return stdin_fd_; }
  int stdout_fd() const { return stdout_fd_; }
  // Closes stdin: the program sees end of input.
  void CloseStdin();

  // Waits up to `timeout` for the program to exit. On exit, kills whatever is
  // left of its process group and of its marker, collects the rest of stderr and
  // returns how it ended (again on every later call). TimedOut if still running.
  Result<ExitInfo> Wait(std::chrono::milliseconds timeout);
  // SIGTERM to the process group, SIGKILL after kill_grace; blocks until reaped.
  void Kill();
  // Kill() for "no progress within mapreduce.task.timeout": ExitInfo::timed_out.
  void KillForTimeout();

  // The last stderr_tail_bytes of stderr (reporter lines excluded), starting at a
  // line boundary when it had to be cut.
  std::string StderrTail() const;
  // Monotonic milliseconds (steady_clock) of the last sign of life: a stderr byte,
  // or a Touch() by the caller when it moved bytes through stdin/stdout.
  uint64_t last_activity_ms() const { return last_activity_ms_.load(std::memory_order_relaxed); }
  void Touch();

 private:
  struct StderrState;
  Subprocess() = default;
  bool WaitExitNoReap(std::chrono::milliseconds timeout);  // true when the process exited
  void Reap();  // SIGKILLs what is left, collects the exit status; idempotent
  void StderrLoop();

  pid_t pid_ = -1;
  int pidfd_ = -1;  // -1 when pidfd_open is unavailable: Wait polls instead
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  std::string marker_;
  std::string program_;
  std::chrono::milliseconds kill_grace_{1000};
  std::atomic<uint64_t> last_activity_ms_{0};
  std::atomic<bool> timed_out_{false};

  std::mutex mu_;  // guards the fields below; held while reaping
  bool reaped_ = false;
  ExitInfo exit_;

  std::unique_ptr<StderrState> stderr_;
  std::thread stderr_thread_;
};

// Kills (SIGKILL) every process of this uid whose environment holds exactly
// DFS_TASK_ATTEMPT=<marker>, repeating until none is left or ~2 s passed (a task
// may fork while we scan). Returns how many were signalled. Processes that
// cleared their environment before exec cannot be found this way.
int KillByMarker(const std::string& marker);

// One line for students on how `program` ended: what an exit code or signal
// usually means and where to look next. `task_timeout` is used for timed_out.
std::string ExplainExit(const ExitInfo& info, const std::string& program,
                        std::chrono::milliseconds task_timeout = std::chrono::milliseconds(0));

// Resolves a streaming command once per job into {absolute program, args...} that
// Subprocess can exec directly. `workdir` holds the job's shipped files (the task's
// cwd); `path_env` is the PATH the tasks get. A script in workdir is run through
// the interpreter its #! line names (found on path_env for `#!/usr/bin/env x`), or
// python3 for a .py file without one. Errors (NotFound, PermissionDenied,
// InvalidArgument) are sentences a student can act on, naming the program.
Result<std::vector<std::string>> ResolveCommand(const std::vector<std::string>& argv, const std::string& workdir,
                                                const std::string& path_env);

}  // namespace dfs::streaming
