// RunAttempt: runs one map or reduce attempt on a DataNode, start to end.
//
// A map reads the lines of its split (from this node's replica when it has
// one), pipes them through the mapper and either collects the output
// (partition, sort, spill, combine; see map_output.h) into a local map output
// file for the reducers to fetch, or, for a map-only job, writes it to
// <output>/_temporary/<attempt>/part-NNNNN. A reduce fetches its partition of
// every map's output (FETCH_MAP_OUTPUT), merges the sorted segments into the
// reducer's stdin and writes its stdout to the same kind of temporary file.
// Output files are committed (renamed to <output>/part-NNNNN) only when the
// job service grants it, so one attempt per task wins.
//
// Thread-safety: one call per attempt, on its own thread; the callbacks in
// AttemptEnv must be thread-safe (they are called from helper threads too).
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "proto/jobs.pb.h"

namespace dfs::client {
class FileSystem;
}

namespace dfs::streaming {

struct AttemptEnv {
  proto::TaskSpec spec;
  Config conf;                       // the DataNode's, with the job's -D overrides of known keys
  std::string work_dir;              // the program's cwd; holds the shipped files
  std::string map_output;            // MAP with reduces: local output file (index beside it)
  std::vector<std::string> mapper, reducer, combiner;  // resolved argv (absolute program paths)
  std::vector<std::string> env;      // the program's whole environment, "K=V"
  // Value of DFS_TASK_ATTEMPT in env: the attempt id and the DataNode's uuid,
  // unique on this machine even when several clusters run on it.
  std::string marker;
  client::FileSystem* fs = nullptr;  // acting as the job's user
  const std::atomic<bool>* cancel = nullptr;  // set when the attempt must stop
  std::function<void(float)> set_progress;
  std::function<void(std::string_view group, std::string_view name, int64_t delta)> add_counter;
  std::function<void(std::string_view status)> set_status;
  // Asks the job service whether this attempt may commit its output; blocks.
  std::function<Result<bool>()> request_commit;
};

struct AttemptResult {
  proto::TaskReport::State state = proto::TaskReport::FAILED;
  int exit_code = -1;
  int signal = 0;
  std::string reason;       // plain words, for failures
  std::string stderr_tail;
  uint32_t failed_map = 0;  // FETCH_FAILED
};

AttemptResult RunAttempt(AttemptEnv& env);

}  // namespace dfs::streaming
