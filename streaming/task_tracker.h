// TaskTracker: the DataNode's side of the streaming job service. It
// long-polls the job service (POLL_TASKS) with its free slots, runs each
// attempt it is given on its own thread (task_runner.h), reports progress
// every second and results at once (REPORT_TASKS), and serves the map outputs
// it holds to reducers (through the DataNode's transfer server,
// FETCH_MAP_OUTPUT).
//
// Local layout under Options::dir:
//   jobs/<job>/files/            the job's shipped files (fetched once per job)
//   jobs/<job>/<attempt>/        an attempt's working directory (removed after it)
//   jobs/<job>/out/<attempt>.out (+ .index)  a map attempt's sorted output
// A job's directory goes when the service says the job is over; everything
// goes when the DataNode starts (the service re-runs what was lost).
//
// Every task's program gets a clean environment built here, not the
// DataNode's: PATH=/usr/local/bin:/usr/bin:/bin, HOME and TMPDIR in its working
// directory, LANG=C.UTF-8, USER/LOGNAME = the job's user; then the job's -D
// keys with dots as underscores, Hadoop's task variables (mapreduce_task_id,
// mapreduce_task_partition, mapreduce_map_input_file and map_input_file, ...),
// and last the job's -cmdenv variables.
//
// Thread-safety: Start/Shutdown from one thread; LookupMapOutput from any.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/config.h"
#include "common/status.h"

namespace dfs::streaming {

class TaskTracker {
 public:
  struct Options {
    Config conf;               // the DataNode's configuration
    std::string namenode;      // host:port of the job service (the NameNode)
    std::string uuid;          // this DataNode
    std::string xfer_address;  // host:port reducers fetch map outputs from
    int slots = 0;             // 0: one per core
    std::string dir;           // local task directory
  };
  struct Segment {
    std::string path;
    uint64_t offset = 0;
    uint64_t length = 0;
  };

  explicit TaskTracker(Options options);
  ~TaskTracker();

  Status Start();
  // Kills running attempts and stops polling.
  void Shutdown();

  // Partition `partition` of map attempt `attempt`'s output, for the shuffle.
  Result<Segment> LookupMapOutput(const std::string& job, const std::string& attempt, uint32_t partition);

  int slots() const;
  int running() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dfs::streaming
