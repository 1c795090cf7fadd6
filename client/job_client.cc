#include "client/job_client.h"

#include <random>
#include <unistd.h>

#include <fmt/format.h>

#include "client/filesystem.h"
#include "common/config.h"
#include "common/rpc/channel.h"

namespace dfs::client {

JobClient::JobClient(FileSystem& fs) : timeout_(fs.config().GetDuration("dfs.client.rpc-timeout")) {
  std::string host;
  uint16_t port = 0;
  (void)ParseHostPort(fs.namenode_address(), &host, &port);
  channel_ = std::make_unique<rpc::RpcChannel>(
      host, port, rpc::Identity{fmt::format("JobClient_{}_{}_{:08x}", fs.user(), getpid(), std::random_device{}()),
                                fs.user()},
      "NameNode " + fs.namenode_address());
}

JobClient::~JobClient() = default;

Result<std::string> JobClient::Submit(const proto::JobSpec& spec) {
  proto::SubmitJobRequest req;
  *req.mutable_spec() = spec;
  proto::SubmitJobResponse resp;
  DFS_RETURN_IF_ERROR(channel_->Call(proto::SUBMIT_JOB, req, &resp, timeout_));
  return resp.job_id();
}

Result<proto::JobStatus> JobClient::Status(const std::string& job_id) {
  proto::GetJobStatusRequest req;
  req.set_job_id(job_id);
  proto::GetJobStatusResponse resp;
  DFS_RETURN_IF_ERROR(channel_->Call(proto::GET_JOB_STATUS, req, &resp, timeout_));
  return resp.status();
}

Result<std::vector<proto::JobStatus>> JobClient::List(bool all) {
  proto::ListJobsRequest req;
  req.set_all(all);
  proto::ListJobsResponse resp;
  DFS_RETURN_IF_ERROR(channel_->Call(proto::LIST_JOBS, req, &resp, timeout_));
  return std::vector<proto::JobStatus>(resp.jobs().begin(), resp.jobs().end());
}

Result<proto::JobState> JobClient::Kill(const std::string& job_id) {
  proto::KillJobRequest req;
  req.set_job_id(job_id);
  proto::KillJobResponse resp;
  DFS_RETURN_IF_ERROR(channel_->Call(proto::KILL_JOB, req, &resp, timeout_));
  return resp.previous();
}

Result<std::vector<proto::AttemptFailure>> JobClient::Logs(const std::string& job_id) {
  proto::GetJobLogsRequest req;
  req.set_job_id(job_id);
  proto::GetJobLogsResponse resp;
  DFS_RETURN_IF_ERROR(channel_->Call(proto::GET_JOB_LOGS, req, &resp, timeout_));
  return std::vector<proto::AttemptFailure>(resp.failures().begin(), resp.failures().end());
}

}  // namespace dfs::client
