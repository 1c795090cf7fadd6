// DataNode: a block store on local data directories, the data transfer server
// that reads and writes replicas, and the service thread that talks to the
// NameNode: registration (with the cluster id kept in each data directory's
// VERSION file), heartbeats carrying capacity and load, a full block report
// after registration and periodically, an incremental report the moment a
// replica is finalized or deleted, and the commands that come back in
// heartbeat replies (delete replicas, copy replicas to other DataNodes); and
// the block scanner, and the task tracker that runs streaming MapReduce tasks.
// When a data directory fails it sends a full block report
// at once (so the NameNode re-replicates what was there) and carries on with
// the others, unless more failed than dfs.datanode.failed.volumes.tolerated
// allows or none is left: then it stops with a fatal error.
//
// Thread-safety: Start and Shutdown from one thread; accessors from any.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/daemon.h"
#include "common/status.h"
#include "proto/datanode.pb.h"

namespace dfs::rpc {
class RpcChannel;
}
namespace dfs::streaming {
class TaskTracker;
}

namespace dfs::datanode {

class BlockScanner;
class BlockStore;
class XferServer;

class DataNode : public Daemon {
 public:
  // on_fatal is called (from the service thread) when the DataNode cannot go
  // on, e.g. the NameNode refused it as a member of another cluster.
  static Result<std::unique_ptr<DataNode>> Create(const Config& conf, std::function<void()> on_fatal = nullptr);
  ~DataNode() override;

  Status Start() override;
  void Shutdown() override;
  std::map<std::string, std::string> Ports() const override { return {{"xfer", std::to_string(xfer_port())}}; }
  Status ExitStatus() const override { return fatal_error(); }

  uint16_t xfer_port() const;
  const std::string& uuid() const { return uuid_; }
  bool registered() const { return registered_; }
  // Why the DataNode stopped serving the cluster, if it did.
  Status fatal_error() const;
  BlockStore* store() { return store_.get(); }
  BlockScanner* scanner() { return scanner_.get(); }

 private:
  explicit DataNode(const Config& conf);
  Status LoadIdentity();
  Status SaveIdentity();
  void ServiceLoop();
  Status Register();
  Status SendFullBlockReport();
  void FillStats(proto::HeartbeatRequest* req) const;
  Status SendHeartbeat();
  Status SendIncrementalReport();
  void OnBlockReceived(const proto::Block& block);
  void Execute(const proto::BlockCommand& cmd);
  void Replicate(const proto::BlockTransfer& t);
  void ReportOwnBadReplica(const proto::Block& block);
  void OnVolumeFailure();
  // After a volume failed: false (and fatal_ set) when the DataNode must stop.
  bool CheckVolumesLeft();

  const Config conf_;
  std::function<void()> on_fatal_;
  std::string uuid_;
  std::string cluster_id_;
  std::unique_ptr<BlockStore> store_;
  std::unique_ptr<XferServer> xfer_;
  std::unique_ptr<BlockScanner> scanner_;
  std::unique_ptr<streaming::TaskTracker> tasks_;  // runs streaming tasks (streaming/task_tracker.h)
  std::unique_ptr<rpc::RpcChannel> nn_;
  std::string nn_address_;
  std::string label_;

  std::atomic<bool> registered_{false};
  std::thread service_;
  struct Transfer {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Transfer> transfers_;  // replica copies (finished ones reaped; the rest joined at shutdown)
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool volume_failed_ = false;  // a data dir failed since the service loop last looked
  Status fatal_;
  std::vector<proto::Block> received_;  // incremental report, not yet sent
  std::vector<proto::Block> deleted_;
};

}  // namespace dfs::datanode
