// JobService: the streaming MapReduce coordinator. It lives in the NameNode
// process (one daemon for a teacher to run) and serves the job methods of
// proto/jobs.proto on the NameNode's RPC server.
//
// Jobs from many users queue here. DataNodes long-poll (POLL_TASKS) with their
// free task slots; the service hands each slot a task: the job whose user has
// the fewest running attempts goes first (so one student's giant job cannot
// starve the others), and a map goes to a DataNode holding its block whenever
// one asks within dfs.jobs.locality.wait. Reduces start when every map has
// succeeded. Attempts report progress and results (REPORT_TASKS); a failed
// attempt is retried on another node up to mapreduce.{map,reduce}.maxattempts;
// a DataNode silent for the dead interval has its attempts re-run and the map
// outputs it held recomputed. Output goes to <output>/_temporary/<attempt>/ and
// is committed by one attempt per task (COMMIT_PENDING → granted → rename);
// the job commit writes _SUCCESS and removes _temporary. Finished jobs are kept
// (in memory and in the NameNode's database) for `dfs job -list/-status/-logs`.
//
// Running jobs do not survive a NameNode restart: their attempts are killed
// when the DataNodes next poll, and `dfs job -status` says the job is unknown.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/config.h"
#include "common/status.h"

namespace dfs::rpc {
class RpcServer;
}
namespace dfs::client {
class FileSystem;
}

namespace dfs::streaming {

class JobService {
 public:
  struct Options {
    Config conf;                                     // cluster defaults of the job keys
    std::chrono::milliseconds tracker_expiry{30000}; // dfs.namenode.datanode.dead.interval
    std::chrono::milliseconds locality_wait{500};    // dfs.jobs.locality.wait
    size_t retained_jobs = 500;                      // dfs.jobs.retained
    std::string superuser;                           // may kill anyone's job
  };
  // A client of this NameNode acting as `user` (job commit and clean-up).
  using FsFactory = std::function<Result<std::unique_ptr<client::FileSystem>>(const std::string& user)>;
  // Where finished jobs are kept: put(job id, serialized JobRecord), remove
  // (beyond the retention limit) and scan(callback per stored record).
  struct History {
    std::function<void(const std::string& id, const std::string& record)> put;
    std::function<void(const std::string& id)> remove;
    std::function<void(const std::function<void(const std::string& record)>&)> scan;
  };

  JobService(Options options, FsFactory fs, History history);
  ~JobService();

  void RegisterMethods(rpc::RpcServer* server);
  Status Start();
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dfs::streaming
