#include "datanode/datanode.h"

#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include "common/block_writer.h"
#include "common/checksum.h"
#include "common/logging.h"
#include "common/rpc/channel.h"
#include "datanode/block_scanner.h"
#include "datanode/block_store.h"
#include "datanode/xfer_server.h"
#include "streaming/task_tracker.h"
#include "proto/namenode.pb.h"

namespace dfs::datanode {

namespace {

constexpr const char* kVersionFile = "VERSION";

std::string NewUuid() {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd());
  uint64_t a = rng(), b = rng();
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xffff, b >> 48,
                     b & 0xffffffffffffull);
}

std::vector<std::string> SplitDirs(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    std::string d = s.substr(pos, comma - pos);
    while (!d.empty() && d.front() == ' ') d.erase(d.begin());
    while (!d.empty() && d.back() == ' ') d.pop_back();
    if (!d.empty()) out.push_back(d);
    pos = comma + 1;
  }
  return out;
}

}  // namespace

DataNode::DataNode(const Config& conf) : conf_(conf) {}

DataNode::~DataNode() { Shutdown(); }

Result<std::unique_ptr<DataNode>> DataNode::Create(const Config& conf, std::function<void()> on_fatal) {
  std::unique_ptr<DataNode> dn(new DataNode(conf));
  dn->on_fatal_ = std::move(on_fatal);
  BlockStore::Options so;
  so.dirs = SplitDirs(conf.GetString("dfs.datanode.data.dir"));
  if (so.dirs.empty()) return Status::InvalidArgument("dfs.datanode.data.dir names no directory");
  so.reserved_bytes = conf.GetSize("dfs.datanode.du.reserved");
  so.sync_on_close = conf.GetBool("dfs.datanode.sync-on-close");
  so.capacity = conf.GetSize("dfs.datanode.capacity");
  so.block_size = conf.GetSize("dfs.blocksize");
  so.on_volume_failure = [d = dn.get()](const std::string&, const Status&) { d->OnVolumeFailure(); };
  const int64_t tolerated = conf.GetInt("dfs.datanode.failed.volumes.tolerated");
  if (tolerated < -1) {
    return Status::InvalidArgument(fmt::format(
        "dfs.datanode.failed.volumes.tolerated = {}: use -1 (run while one data dir works) or a count", tolerated));
  }
  DFS_ASSIGN_OR_RETURN(dn->store_, BlockStore::Open(so));
  if (tolerated >= 0 && dn->store_->failed_volumes() > static_cast<uint64_t>(tolerated)) {
    return Status::IOError(fmt::format(
        "{} of the {} data dirs cannot be used (see the warnings above), more than "
        "dfs.datanode.failed.volumes.tolerated = {} allows; fix or remove them from dfs.datanode.data.dir",
        dn->store_->failed_volumes(), so.dirs.size(), tolerated));
  }
  DFS_RETURN_IF_ERROR(dn->LoadIdentity());
  return dn;
}

// Each data directory keeps a VERSION file naming the cluster it belongs to and
// this DataNode's uuid. A DataNode that never joined a cluster has neither.
Status DataNode::LoadIdentity() {
  for (const auto& dir : store_->volumes()) {
    std::ifstream in(dir + "/" + kVersionFile);
    if (!in) continue;
    std::string line, uuid, cid;
    while (std::getline(in, line)) {
      if (line.rfind("datanode_uuid=", 0) == 0) uuid = line.substr(14);
      if (line.rfind("cluster_id=", 0) == 0) cid = line.substr(11);
    }
    if ((!uuid_.empty() && uuid != uuid_) || (!cluster_id_.empty() && cid != cluster_id_)) {
      return Status::InvalidArgument(fmt::format(
          "data directories disagree: {} belongs to DataNode {} of cluster {}, another to DataNode {} of cluster {}. "
          "Each DataNode needs its own data directories",
          dir, uuid, cid, uuid_, cluster_id_));
    }
    uuid_ = uuid;
    cluster_id_ = cid;
  }
  if (uuid_.empty()) uuid_ = NewUuid();
  return Status::OK();
}

Status DataNode::SaveIdentity() {
  for (const auto& dir : store_->volumes()) {
    const std::string path = dir + "/" + kVersionFile;
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp);
      out << "# dfs DataNode storage identity; do not edit\n"
          << "datanode_uuid=" << uuid_ << "\ncluster_id=" << cluster_id_ << "\n";
      if (!out) return Status::IOError("cannot write " + tmp);
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) return Status::IOError(fmt::format("cannot write {}: {}", path, ec.message()));
  }
  return Status::OK();
}

Status DataNode::Start() {
  std::string host;
  uint16_t port = 0;
  DFS_RETURN_IF_ERROR(ParseHostPort(conf_.GetString("dfs.datanode.address"), &host, &port).Prepend("dfs.datanode.address"));
  XferServer::Options xo;
  xo.bind_host = host;
  xo.port = port;
  xo.max_threads = static_cast<int>(conf_.GetInt("dfs.datanode.max.transfer.threads"));
  xo.socket_timeout = conf_.GetDuration("dfs.client.socket-timeout");
  // Big read packets: fewer wake-ups per byte for the reader, which lands whole
  // packets straight in its caller's buffer.
  xo.read_packet_bytes = 1 << 20;
  xfer_ = std::make_unique<XferServer>(store_.get(), xo, [this](const proto::Block& b) { OnBlockReceived(b); });
  DFS_RETURN_IF_ERROR(xfer_->Start());
  label_ = fmt::format("{}:{}", host, xfer_->port());
  InitLogging(conf_.GetString("dfs.log.level"), "dn-" + label_);

  std::string nn = conf_.GetString("fs.defaultFS");
  std::string nn_host;
  uint16_t nn_port = 0;
  DFS_RETURN_IF_ERROR(ParseHostPort(nn, &nn_host, &nn_port).Prepend("fs.defaultFS"));
  nn_address_ = fmt::format("{}:{}", nn_host, nn_port);
  nn_ = std::make_unique<rpc::RpcChannel>(nn_host, nn_port, rpc::Identity{"DataNode_" + uuid_, "dfs"},
                                          "NameNode " + nn_address_);
  service_ = std::thread([this] { ServiceLoop(); });
  BlockScanner::Options sc;
  sc.period = conf_.GetDuration("dfs.datanode.scan.period");
  sc.max_bytes_per_second = conf_.GetSize("dfs.block.scanner.volume.bytes.per.second");
  scanner_ = std::make_unique<BlockScanner>(store_.get(), sc,
                                            [this](const proto::Block& b, const Status&) { ReportOwnBadReplica(b); });
  scanner_->Start();

  streaming::TaskTracker::Options to;
  to.conf = conf_;
  to.namenode = nn_address_;
  to.uuid = uuid_;
  std::string advertised = conf_.GetString("dfs.datanode.hostname");
  if (advertised.empty()) advertised = host;  // 0.0.0.0: the job service uses the address it sees
  to.xfer_address = fmt::format("{}:{}", advertised, xfer_->port());
  to.slots = static_cast<int>(conf_.GetInt("dfs.datanode.task.slots"));
  to.dir = conf_.GetString("dfs.datanode.task.dir");
  if (to.dir.empty()) to.dir = store_->volumes().front() + "/tasks";
  tasks_ = std::make_unique<streaming::TaskTracker>(to);
  xfer_->SetShuffleLookup([t = tasks_.get()](const std::string& job, const std::string& attempt,
                                             uint32_t partition) -> Result<XferServer::MapOutputSegment> {
    auto seg = t->LookupMapOutput(job, attempt, partition);
    if (!seg.ok()) return seg.status();
    return XferServer::MapOutputSegment{seg->path, seg->offset, seg->length};
  });
  DFS_RETURN_IF_ERROR(tasks_->Start());
  Log("dn")->info("DataNode {} serving blocks on {} from {} ({} replicas); NameNode {}", uuid_, label_,
                  fmt::join(store_->volumes(), ","), store_->AllReplicas().size(), nn_address_);
  return Status::OK();
}

void DataNode::Shutdown() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (tasks_) tasks_->Shutdown();
  if (scanner_) scanner_->Stop();
  if (service_.joinable()) service_.join();
  if (xfer_) xfer_->Shutdown();
  for (auto& t : transfers_) {
    if (t.thread.joinable()) t.thread.join();
  }
  Log("dn")->info("DataNode stopped");
}

uint16_t DataNode::xfer_port() const { return xfer_ ? xfer_->port() : 0; }

Status DataNode::fatal_error() const {
  std::lock_guard<std::mutex> l(mu_);
  return fatal_;
}

Status DataNode::Register() {
  proto::RegisterDatanodeRequest req;
  req.mutable_id()->set_uuid(uuid_);
  req.mutable_id()->set_xfer_port(xfer_->port());
  req.mutable_id()->set_hostname(conf_.GetString("dfs.datanode.hostname"));
  req.set_cluster_id(cluster_id_);
  FillStats(req.mutable_stats());
  proto::RegisterDatanodeResponse resp;
  DFS_RETURN_IF_ERROR(nn_->Call(proto::REGISTER_DATANODE, req, &resp, std::chrono::seconds(30)));
  if (cluster_id_ != resp.cluster_id()) {
    cluster_id_ = resp.cluster_id();
    DFS_RETURN_IF_ERROR(SaveIdentity());
    Log("dn")->info("Joined cluster {}", cluster_id_);
  }
  return Status::OK();
}

Status DataNode::SendFullBlockReport() {
  proto::BlockReportRequest req;
  req.set_uuid(uuid_);
  for (auto& b : store_->AllReplicas()) *req.add_blocks() = std::move(b);
  proto::BlockReportResponse resp;
  return nn_->Call(proto::BLOCK_REPORT, req, &resp, std::chrono::seconds(60));
}

void DataNode::FillStats(proto::HeartbeatRequest* req) const {
  req->set_uuid(uuid_);
  req->set_capacity(store_->capacity());
  req->set_dfs_used(store_->dfs_used());
  req->set_remaining(store_->remaining());
  req->set_xceivers(static_cast<uint32_t>(xfer_->active_transfers()));
  req->set_failed_volumes(store_->failed_volumes());
}

Status DataNode::SendHeartbeat() {
  proto::HeartbeatRequest req;
  FillStats(&req);
  proto::HeartbeatResponse resp;
  DFS_RETURN_IF_ERROR(nn_->Call(proto::HEARTBEAT, req, &resp, std::chrono::seconds(30)));
  if (resp.reregister()) {
    registered_ = false;
    return Status::OK();
  }
  for (const auto& cmd : resp.commands()) Execute(cmd);
  return Status::OK();
}

Status DataNode::SendIncrementalReport() {
  proto::IncrementalBlockReportRequest req;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (received_.empty() && deleted_.empty()) return Status::OK();
    for (auto& b : received_) *req.add_received() = std::move(b);
    for (auto& b : deleted_) *req.add_deleted() = std::move(b);
    received_.clear();
    deleted_.clear();
  }
  req.set_uuid(uuid_);
  proto::IncrementalBlockReportResponse resp;
  Status s = nn_->Call(proto::INCREMENTAL_BLOCK_REPORT, req, &resp, std::chrono::seconds(30));
  if (!s.ok()) {
    // Not lost: the next full block report after re-registration carries them.
    registered_ = false;
  }
  return s;
}

void DataNode::OnBlockReceived(const proto::Block& block) {
  {
    std::lock_guard<std::mutex> l(mu_);
    received_.push_back(block);
  }
  cv_.notify_all();
}

void DataNode::Execute(const proto::BlockCommand& cmd) {
  if (cmd.action() == proto::BlockCommand::DELETE) {
    for (const auto& b : cmd.blocks()) {
      Status s = store_->Delete(b);
      if (!s.ok() && !s.IsNotFound()) {
        Log("dn")->warn("could not delete {}: {}", BlockName(BlockId(b.id())), s.message());
        continue;
      }
      std::lock_guard<std::mutex> l(mu_);
      deleted_.push_back(b);
    }
    if (cmd.blocks_size()) Log("dn")->info("Deleted {} replica(s) as the NameNode asked", cmd.blocks_size());
    return;
  }
  if (cmd.action() == proto::BlockCommand::REPLICATE) {
    // Reap finished copies, then start the new ones (this thread alone touches transfers_).
    std::erase_if(transfers_, [](Transfer& t) {
      if (!t.done->load()) return false;
      t.thread.join();
      return true;
    });
    for (const auto& t : cmd.transfers()) {
      auto done = std::make_shared<std::atomic<bool>>(false);
      transfers_.push_back(Transfer{std::thread([this, t, done] {
                                      Replicate(t);
                                      *done = true;
                                    }),
                                    done});
    }
  }
}

// Copies a local replica to other DataNodes through a write pipeline, checking
// every chunk against its stored checksum so a rotten replica is never spread.
void DataNode::Replicate(const proto::BlockTransfer& t) {
  auto log = Log("dn");
  auto rr = store_->OpenForRead(t.block());
  if (!rr.ok()) {
    log->warn("cannot copy {}: {}", BlockName(BlockId(t.block().id())), rr.status().message());
    return;
  }
  const uint32_t bpc = (*rr)->bytes_per_checksum();
  BlockWriter::Options wo;
  wo.bytes_per_checksum = bpc;
  wo.packet_size = std::max<size_t>(bpc, conf_.GetSize("dfs.client-write-packet-size") / bpc * bpc);
  wo.max_packets_in_flight = static_cast<size_t>(conf_.GetInt("dfs.client.write.max-packets-in-flight"));
  wo.socket_timeout = conf_.GetDuration("dfs.client.socket-timeout");
  wo.client_name = "DataNode_" + uuid_;
  std::vector<proto::DatanodeId> targets(t.targets().begin(), t.targets().end());
  auto w = BlockWriter::Open((*rr)->block(), targets, wo);
  if (!w.ok()) {
    log->warn("cannot copy {}: {}", BlockName(BlockId(t.block().id())), w.status().message());
    return;
  }
  const uint64_t len = (*rr)->length();
  const size_t chunks_per_read = std::max<size_t>(1, (1 << 20) / bpc);
  std::vector<char> buf(chunks_per_read * bpc);
  std::vector<uint64_t> sums(chunks_per_read);
  for (uint64_t off = 0; off < len;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), len - off));
    const size_t chunks = NumChunks(n, bpc);
    Status s = (*rr)->ReadData(off, n, buf.data());
    if (s.ok()) s = (*rr)->ReadChecksums(off / bpc, chunks, sums.data());
    if (s.ok() && VerifyChecksums(buf.data(), n, bpc, sums.data())) {
      s = Status::Corruption("checksum mismatch in the local replica");
      ReportOwnBadReplica((*rr)->block());
    }
    if (s.ok()) s = (*w)->Write(buf.data(), n);
    if (!s.ok()) {
      log->warn("copy of {} failed: {}", BlockName(BlockId(t.block().id())), s.message());
      (*w)->Abort();
      return;
    }
    off += n;
  }
  auto fin = (*w)->Finish();
  if (!fin.ok()) {
    log->warn("copy of {} failed: {}", BlockName(BlockId(t.block().id())), fin.status().message());
    return;
  }
  log->info("Copied {} ({} bytes) to {} DataNode(s)", BlockName(BlockId(t.block().id())), len, targets.size());
}

void DataNode::ReportOwnBadReplica(const proto::Block& block) {
  proto::ReportBadBlocksRequest req;
  auto* r = req.add_replicas();
  *r->mutable_block() = block;
  r->set_datanode_uuid(uuid_);
  proto::ReportBadBlocksResponse resp;
  (void)nn_->Call(proto::REPORT_BAD_BLOCKS, req, &resp, std::chrono::seconds(30));
}

void DataNode::OnVolumeFailure() {
  {
    std::lock_guard<std::mutex> l(mu_);
    volume_failed_ = true;
  }
  cv_.notify_all();
}

bool DataNode::CheckVolumesLeft() {
  const int64_t tolerated = conf_.GetInt("dfs.datanode.failed.volumes.tolerated");
  const uint32_t failed = store_->failed_volumes();
  const size_t left = store_->volumes().size();
  Status fatal;
  if (left == 0) {
    fatal = Status::IOError(fmt::format(
        "every data dir has failed ({} failed volumes), so this DataNode can store nothing; replace the disks (the "
        "log says what went wrong with each) and restart it",
        failed));
  } else if (tolerated >= 0 && failed > static_cast<uint64_t>(tolerated)) {
    fatal = Status::IOError(fmt::format(
        "{} data dir(s) failed, more than dfs.datanode.failed.volumes.tolerated = {} allows; replace the disks (the "
        "log says what went wrong with each) and restart the DataNode",
        failed, tolerated));
  } else {
    Log("dn")->warn("carrying on with {} data dir(s) ({} failed): {}", left, failed, fmt::join(store_->volumes(), ","));
    return true;
  }
  Log("dn")->error("DataNode stopping: {}", fatal.message());
  // Whatever is left is reported, so the NameNode re-replicates the rest now rather than after the dead interval.
  if (registered_) (void)SendFullBlockReport();
  {
    std::lock_guard<std::mutex> l(mu_);
    fatal_ = fatal;
  }
  if (on_fatal_) on_fatal_();
  return false;
}

void DataNode::ServiceLoop() {
  using Clock = std::chrono::steady_clock;
  auto log = Log("dn");
  const auto heartbeat = conf_.GetDuration("dfs.heartbeat.interval");
  const auto report_every = conf_.GetDuration("dfs.blockreport.intervalMsec");
  auto next_heartbeat = Clock::now();
  auto next_report = Clock::now() + report_every;
  std::string last_error;
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    const bool volume_failed = std::exchange(volume_failed_, false);
    l.unlock();
    if (volume_failed) {
      if (!CheckVolumesLeft()) return;
      next_report = Clock::now();  // the NameNode learns at once which replicas are gone
    }
    Status s;
    if (!registered_) {
      s = Register();
      if (s.ok()) s = SendFullBlockReport();
      if (s.ok()) {
        registered_ = true;
        next_report = Clock::now() + report_every;
        log->info("Registered with NameNode {} (cluster {})", nn_address_, cluster_id_);
        last_error.clear();
      } else if (s.code() == StatusCode::kPermissionDenied) {
        log->error("The NameNode refused this DataNode: {} (data directories: {})", s.message(),
                   fmt::join(store_->volumes(), ","));
        l.lock();
        fatal_ = s;
        l.unlock();
        if (on_fatal_) on_fatal_();
        return;
      }
      next_heartbeat = Clock::now() + heartbeat;
    } else {
      s = SendIncrementalReport();
      if (s.ok() && Clock::now() >= next_heartbeat) {
        s = SendHeartbeat();
        next_heartbeat = Clock::now() + heartbeat;
      }
      if (s.ok() && registered_ && Clock::now() >= next_report) {
        s = SendFullBlockReport();
        next_report = Clock::now() + report_every;
      }
      if (s.ok()) s = SendIncrementalReport();  // deletions done by commands
      if (!s.ok()) registered_ = false;
    }
    // Temporaries of broken writes wait this long for a pipeline or lease recovery.
    store_->ExpireRecoverable(2 * conf_.GetDuration("dfs.namenode.lease.hard-limit") + std::chrono::minutes(1));
    if (!s.ok() && s.message() != last_error) {
      log->warn("NameNode {}: {}; retrying every {} ms", nn_address_, s.message(), heartbeat.count());
      last_error = s.message();
    }
    l.lock();
    cv_.wait_until(l, next_heartbeat,
                   [this] { return stopping_ || volume_failed_ || (registered_ && !received_.empty()); });
  }
}

}  // namespace dfs::datanode
