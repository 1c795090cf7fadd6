// JobClient: submits and watches streaming MapReduce jobs (proto/jobs.proto)
// on the job service that runs inside the NameNode. Used by `dfs streaming`
// and `dfs job`; the submitting user is the FileSystem's.
//
// Thread-safety: any thread; calls share one RPC connection.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/jobs.pb.h"

namespace dfs::rpc {
class RpcChannel;
}

namespace dfs::client {

class FileSystem;

class JobClient {
 public:
  explicit JobClient(FileSystem& fs);
  ~JobClient();

  Result<std::string> Submit(const proto::JobSpec& spec);
  Result<proto::JobStatus> Status(const std::string& job_id);
  Result<std::vector<proto::JobStatus>> List(bool all);
  Result<proto::JobState> Kill(const std::string& job_id);
  Result<std::vector<proto::AttemptFailure>> Logs(const std::string& job_id);

 private:
  std::unique_ptr<rpc::RpcChannel> channel_;
  std::chrono::milliseconds timeout_;
};

}  // namespace dfs::client
