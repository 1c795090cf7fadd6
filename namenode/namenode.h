// NameNode: builds the namespace, block manager, RPC service and the streaming
// job service (streaming/job_service.h) from a Config and runs the background monitor (dead DataNodes, replication work, safe
// mode). main.cc only parses flags and calls Create/Start/Shutdown.
//
// Thread-safety: Start and Shutdown are called by one thread; accessors may be
// called from any thread while running.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/config.h"
#include "common/daemon.h"
#include "common/status.h"

namespace dfs::rpc {
class RpcServer;
}
namespace dfs::streaming {
class JobService;
}

namespace dfs::namenode {

class BlockManager;
class Namesystem;

class NameNode : public Daemon {
 public:
  static Result<std::unique_ptr<NameNode>> Create(const Config& conf);
  ~NameNode() override;

  // Serves RPC and starts the monitor. Logs the address it listens on.
  Status Start() override;
  // Stops serving, then stops the monitor; the namespace stays durable.
  void Shutdown() override;
  std::map<std::string, std::string> Ports() const override { return {{"rpc", std::to_string(rpc_port())}}; }

  uint16_t rpc_port() const;
  const std::string& cluster_id() const;
  Namesystem* namesystem() { return ns_.get(); }
  BlockManager* block_manager() { return blocks_.get(); }

 private:
  explicit NameNode(const Config& conf);
  void MonitorLoop();
  // Recovers the files of writers whose leases passed the hard limit. Its own
  // thread, because it talks to DataNodes and must not hold up the monitor.
  void LeaseRecoveryLoop();

  Config conf_;
  std::unique_ptr<BlockManager> blocks_;
  std::unique_ptr<Namesystem> ns_;
  std::unique_ptr<rpc::RpcServer> rpc_;
  std::unique_ptr<streaming::JobService> jobs_;  // streaming MapReduce coordinator
  std::string self_address_;                     // host:port clients of this process use
  std::thread monitor_;
  std::thread lease_recovery_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

}  // namespace dfs::namenode
