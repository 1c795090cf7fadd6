// The client's pre-flight for `dfs streaming`: turns parsed arguments into the
// JobSpec the job service receives, reading and fixing the shipped files on the
// way, so that the mistakes students make most are caught (or mended) on their
// own machine rather than as a failed task on a DataNode:
//
//   * a script with Windows line endings (the kernel looks for `python3\r`):
//     converted to LF;
//   * a UTF-8 byte order mark before `#!`: removed;
//   * `-mapper mapper.py` with no `#!` line: run as `python3 mapper.py`;
//   * a script without the execute bit: shipped executable;
//   * a script a command names but no -file ships: shipped anyway;
//   * a command naming nothing that exists, a -file that is missing or a
//     directory, too many bytes shipped: an error that says what to do.
//
// Each fix is reported once in PreflightResult::notes, in plain words. The
// dfs-side checks (the output directory, input globs, splits, the user) are the
// caller's. Commands name shipped scripts as "./name" in the spec, since tasks
// run them from the directory that holds the shipped files.
//
// The local machine is reached only through PreflightEnv, so tests can fake it.
// Preflight is a pure function of its arguments; any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "client/cli/streaming_args.h"
#include "common/status.h"
#include "proto/jobs.pb.h"

namespace dfs::cli {

// The most bytes a job may ship with -file/-files in all. Each task's files
// travel from the job service to every DataNode that runs it; data belongs in
// dfs, read as an -input.
inline constexpr uint64_t kMaxShippedBytes = 64ull << 20;

struct PreflightEnv {
  // The whole content of a local file. IsADirectory for a directory.
  std::function<Result<std::string>(const std::string& path)> read_file;
  // True when the path names anything (file or directory).
  std::function<bool(const std::string& path)> exists;
  // True when the path is a file with an execute bit for this user.
  std::function<bool(const std::string& path)> is_executable;
  // True when `program` (a bare name, or a path) can be run: found on $PATH.
  std::function<bool(const std::string& program)> on_path;
  // Optional: a file's size without reading it, so a huge -file is refused
  // before it is read into memory. Unset or nullopt: find out by reading.
  std::function<std::optional<uint64_t>(const std::string& path)> file_size;

  // The real file system (relative paths from the current directory) and $PATH.
  static PreflightEnv Local();
};

struct PreflightResult {
  // name, inputs, output (as given), mapper, reducer, combiner, num_reduces,
  // files (with content, executable, digest, size), conf, cmdenv and
  // key_field_partitioner. Not user, splits, nor a resolved output.
  proto::JobSpec spec;
  // What was fixed or looks wrong but was let through, one sentence each, each
  // said once, in the order found.
  std::vector<std::string> notes;
};

// InvalidArgument, NotFound or IsADirectory with a message a student can act
// on, naming the option at fault ("-mapper: 'mapper.py' is not a file here ...").
Result<PreflightResult> Preflight(const StreamingArgs& args, const PreflightEnv& env);

}  // namespace dfs::cli
