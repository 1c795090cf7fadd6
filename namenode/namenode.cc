#include "namenode/namenode.h"

#include <fmt/format.h>

#include <unistd.h>

#include "client/filesystem.h"
#include "common/logging.h"
#include "common/rpc/server.h"
#include "common/users.h"
#include "namenode/block_manager.h"
#include "namenode/namenode_service.h"
#include "namenode/namespace_store.h"
#include "namenode/namesystem.h"
#include "streaming/job_service.h"

namespace dfs::namenode {

NameNode::NameNode(const Config& conf) : conf_(conf) {}

NameNode::~NameNode() { Shutdown(); }

Result<std::unique_ptr<NameNode>> NameNode::Create(const Config& conf) {
  std::unique_ptr<NameNode> nn(new NameNode(conf));
  BlockManager::Options bo;
  bo.dead_interval = conf.GetDuration("dfs.namenode.datanode.dead.interval");
  bo.replication_interval = conf.GetDuration("dfs.namenode.replication.interval");
  bo.min_replication = static_cast<uint32_t>(conf.GetInt("dfs.namenode.replication.min"));
  bo.max_streams = static_cast<uint32_t>(conf.GetInt("dfs.namenode.replication.max-streams"));
  bo.safemode_threshold = conf.GetFloat("dfs.namenode.safemode.threshold-pct");
  bo.safemode_min_datanodes = static_cast<uint32_t>(conf.GetInt("dfs.namenode.safemode.min.datanodes"));
  bo.safemode_extension = conf.GetDuration("dfs.namenode.safemode.extension");
  nn->blocks_ = std::make_unique<BlockManager>(bo);

  Namesystem::Options no;
  no.default_replication = static_cast<uint32_t>(conf.GetInt("dfs.replication"));
  no.default_block_size = conf.GetSize("dfs.blocksize");
  no.max_replication = static_cast<uint32_t>(conf.GetInt("dfs.replication.max"));
  no.min_replication = bo.min_replication;
  no.max_component_length = static_cast<size_t>(conf.GetInt("dfs.namenode.fs-limits.max-component-length"));
  no.max_directory_items = static_cast<uint64_t>(conf.GetInt("dfs.namenode.fs-limits.max-directory-items"));
  no.ls_limit = static_cast<uint32_t>(conf.GetInt("dfs.ls.limit"));
  no.supergroup = conf.GetString("dfs.permissions.superusergroup");
  no.lease_soft_limit = conf.GetDuration("dfs.namenode.lease.soft-limit");
  no.lease_hard_limit = conf.GetDuration("dfs.namenode.lease.hard-limit");
  no.socket_timeout = conf.GetDuration("dfs.client.socket-timeout");
  no.wal_spare_bytes = conf.GetSize("dfs.namenode.wal.spare-size");
  const std::string dir = conf.GetString("dfs.namenode.name.dir");
  DFS_ASSIGN_OR_RETURN(nn->ns_, Namesystem::Open(dir, no, nn->blocks_.get()));
  return nn;
}

Status NameNode::Start() {
  std::string addr = conf_.GetString("dfs.namenode.rpc-address");
  if (addr.empty()) addr = conf_.GetString("fs.defaultFS");
  std::string host;
  uint16_t port = 0;
  DFS_RETURN_IF_ERROR(ParseHostPort(addr, &host, &port).Prepend("dfs.namenode.rpc-address"));
  const std::string bind = conf_.GetString("dfs.namenode.rpc-bind-host");
  rpc::RpcServer::Options ro;
  ro.name = "NameNode";
  ro.bind_host = bind.empty() ? host : bind;
  ro.port = port;
  ro.io_threads = 2;  // cheap reads run inline on these
  ro.handler_threads = static_cast<int>(conf_.GetInt("dfs.namenode.handler.count"));
  rpc_ = std::make_unique<rpc::RpcServer>(ro);
  RegisterNameNodeService(rpc_.get(), ns_.get(), blocks_.get());

  streaming::JobService::Options jo;
  jo.conf = conf_;
  jo.tracker_expiry = conf_.GetDuration("dfs.namenode.datanode.dead.interval");
  jo.locality_wait = conf_.GetDuration("dfs.jobs.locality.wait");
  jo.retained_jobs = static_cast<size_t>(std::max<int64_t>(1, conf_.GetInt("dfs.jobs.retained")));
  if (auto name = LocalUserName(geteuid())) jo.superuser = *name;
  NamespaceStore* store = ns_->store();
  streaming::JobService::History history;
  history.put = [store](const std::string& id, const std::string& rec) {
    Status s = store->PutJobRecord(id, rec);
    if (!s.ok()) Log("jobs")->warn("could not save {} in the job history: {}", id, s.ToString());
  };
  history.remove = [store](const std::string& id) { (void)store->DeleteJobRecord(id); };
  history.scan = [store](const std::function<void(const std::string&)>& fn) {
    (void)store->ForEachJobRecord([&](std::string_view, const std::string& rec) { fn(rec); });
  };
  jobs_ = std::make_unique<streaming::JobService>(
      std::move(jo),
      [this](const std::string& user) { return client::FileSystem::ConnectAs(conf_, self_address_, user); },
      std::move(history));
  jobs_->RegisterMethods(rpc_.get());
  DFS_RETURN_IF_ERROR(rpc_->Start());
  self_address_ = fmt::format("{}:{}", ro.bind_host == "0.0.0.0" || ro.bind_host.empty() ? "127.0.0.1" : ro.bind_host,
                              rpc_->port());
  DFS_RETURN_IF_ERROR(jobs_->Start());
  monitor_ = std::thread([this] { MonitorLoop(); });
  lease_recovery_ = std::thread([this] { LeaseRecoveryLoop(); });
  Log("nn")->info("NameNode of cluster {} serving RPC on {}:{} (metadata in {})", ns_->cluster_id(), ro.bind_host,
                  rpc_->port(), conf_.GetString("dfs.namenode.name.dir"));
  return Status::OK();
}

void NameNode::Shutdown() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (jobs_) jobs_->Shutdown();
  if (rpc_) rpc_->Shutdown();
  if (monitor_.joinable()) monitor_.join();
  if (lease_recovery_.joinable()) lease_recovery_.join();
  Log("nn")->info("NameNode stopped");
}

void NameNode::MonitorLoop() {
  const auto heartbeat = conf_.GetDuration("dfs.heartbeat.interval");
  const auto tick = std::clamp(heartbeat / 2, std::chrono::milliseconds(50), std::chrono::milliseconds(1000));
  const auto replication_every = conf_.GetDuration("dfs.namenode.replication.interval");
  auto next_replication = std::chrono::steady_clock::now() + replication_every;
  std::unique_lock<std::mutex> l(mu_);
  while (!cv_.wait_for(l, tick, [this] { return stopping_; })) {
    l.unlock();
    blocks_->CheckDeadNodes();
    (void)blocks_->InSafeMode();  // leaves start-up safe mode after its extension
    if (std::chrono::steady_clock::now() >= next_replication) {
      blocks_->ComputeReplicationWork();
      next_replication = std::chrono::steady_clock::now() + replication_every;
    }
    l.lock();
  }
}

void NameNode::LeaseRecoveryLoop() {
  const auto hard_limit = conf_.GetDuration("dfs.namenode.lease.hard-limit");
  const auto tick = std::clamp(hard_limit / 4, std::chrono::milliseconds(100), std::chrono::milliseconds(5000));
  std::unique_lock<std::mutex> l(mu_);
  while (!cv_.wait_for(l, tick, [this] { return stopping_; })) {
    l.unlock();
    ns_->RecoverExpiredLeases();
    l.lock();
  }
}

uint16_t NameNode::rpc_port() const { return rpc_ ? rpc_->port() : 0; }
const std::string& NameNode::cluster_id() const { return ns_->cluster_id(); }

}  // namespace dfs::namenode
