// The state one `dfs` command runs against: the file system, the standard
// streams, the clock and sleep (both replaced in tests), one reusable copy
// buffer, and the error bookkeeping that decides the exit code.
//
// Commands report a failing path with Error() and go on with the next one, as
// Hadoop's shell does; ExitCode() is then 1. Error texts follow `hdfs dfs`:
//   dfs: '/x': No such file or directory
//
// Ownership: the Context borrows the FileSystem and the streams; it lives for
// one command on one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "client/filesystem.h"

namespace dfs::cli {

struct Command;

// Exit codes, as Hadoop's FsShell uses them.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // some path failed (or `test` is false)
inline constexpr int kExitUsage = 2;

// Bytes moved per read/write when copying; allocated once per command.
inline constexpr size_t kCopyBufferBytes = 1 << 20;

// The text shown after "dfs: 'path': " for a failed Status.
std::string ErrorText(const Status& status);

struct Context {
  Context(client::FileSystem* fs, std::ostream& out, std::ostream& err, std::istream& in);

  client::FileSystem& fs() { return *fs_ptr; }

  // Prints "dfs: '<display>': <text>" and marks the command failed.
  void Error(const std::string& display, const Status& status);
  // Prints "dfs: <message>" and marks the command failed.
  void Error(const std::string& message);
  // Prints "dfs <command>: <message>" and the command's usage line; returns kExitUsage.
  int UsageError(const std::string& message);

  bool failed() const { return failed_; }
  int ExitCode() const { return failed_ ? kExitFailed : kExitOk; }

  // The copy buffer (kCopyBufferBytes), allocated on first use.
  std::vector<char>& Buffer();

  client::FileSystem* fs_ptr;  // null for commands that need no cluster (help)
  std::ostream& out;
  std::ostream& err;
  std::istream& in;
  const Command* command = nullptr;  // the running command, for usage lines
  bool progress = false;             // draw progress bars on `err` (stderr is a TTY)
  // Waits; returns false when the user interrupted (Ctrl-C) and waiting should stop.
  std::function<bool(std::chrono::milliseconds)> sleep;
  // True once the user pressed Ctrl-C: long copies stop and clean up.
  std::function<bool()> interrupted;
  // Wall clock, milliseconds since the epoch.
  std::function<int64_t()> now_ms;

 private:
  void MaybeHint(const Status& status);

  bool failed_ = false;
  bool hinted_ = false;
  std::vector<char> buffer_;
};

}  // namespace dfs::cli
