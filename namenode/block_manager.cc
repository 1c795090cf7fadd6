#include "namenode/block_manager.h"

#include <algorithm>
#include <tuple>

#include <fmt/format.h>

#include "common/logging.h"

namespace dfs::namenode {

namespace {

template <typename T>
bool EraseValue(std::vector<T>& v, const T& x) {
  auto it = std::find(v.begin(), v.end(), x);
  if (it == v.end()) return false;
  v.erase(it);
  return true;
}

template <typename T>
bool Contains(const std::vector<T>& v, const T& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

int64_t MillisSince(BlockManager::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(BlockManager::Clock::now() - t).count();
}

}  // namespace

BlockManager::BlockManager(Options options) : opts_(options) {}

// ---- Namespace side ---------------------------------------------------------

void BlockManager::LoadBlock(BlockId id, InodeId inode, uint64_t gen_stamp, uint64_t num_bytes, bool committed,
                             uint32_t expected_replication) {
  std::lock_guard<std::mutex> l(mu_);
  BlockInfo& b = blocks_[id.value()];
  b.inode = inode;
  b.gen_stamp = gen_stamp;
  b.num_bytes = num_bytes;
  b.committed = committed;
  b.expected = expected_replication;
  if (committed) ++committed_blocks_;
}

void BlockManager::FinishLoading() {
  std::lock_guard<std::mutex> l(mu_);
  if (committed_blocks_ > 0 || opts_.safemode_min_datanodes > 0) {
    safe_mode_ = SafeMode::kStartup;
    Log("nn")->info("Safe mode is ON: waiting for DataNodes to report {} blocks", committed_blocks_);
  }
}

void BlockManager::AddBlock(BlockId id, InodeId inode, uint64_t gen_stamp, uint32_t expected_replication,
                            const std::vector<proto::DatanodeId>& pipeline) {
  std::lock_guard<std::mutex> l(mu_);
  BlockInfo& b = blocks_[id.value()];
  b.inode = inode;
  b.gen_stamp = gen_stamp;
  b.expected = expected_replication;
  for (const auto& d : pipeline) {
    if (auto it = node_by_uuid_.find(d.uuid()); it != node_by_uuid_.end()) b.pipeline.push_back(it->second);
  }
}

void BlockManager::CommitBlock(BlockId id, uint64_t num_bytes) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = blocks_.find(id.value());
  if (it == blocks_.end() || it->second.committed) return;
  BlockInfo& b = it->second;
  b.num_bytes = num_bytes;
  b.committed = true;
  if (!b.nodes.empty()) b.pipeline = {};
  ++committed_blocks_;
  if (!b.nodes.empty()) ++safe_blocks_;
}

void BlockManager::RemoveBlocks(const std::vector<proto::Block>& blocks) {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& pb : blocks) {
    auto it = blocks_.find(pb.id());
    if (it == blocks_.end()) continue;
    BlockInfo& b = it->second;
    proto::Block del;
    del.set_id(pb.id());
    del.set_gen_stamp(b.gen_stamp);
    for (uint32_t n : b.nodes) {
      nodes_[n].blocks.erase(pb.id());
      nodes_[n].pending_deletes.push_back(del);
    }
    for (uint32_t n : b.corrupt) {
      nodes_[n].blocks.erase(pb.id());
      nodes_[n].pending_deletes.push_back(del);
    }
    for (uint32_t n : b.excess) nodes_[n].excess.erase(pb.id());  // its delete is already on the way
    if (b.committed) {
      --committed_blocks_;
      if (!b.nodes.empty()) --safe_blocks_;
    }
    pending_replication_.erase(pb.id());
    pending_targets_.erase(pb.id());
    blocks_.erase(it);
  }
}

void BlockManager::SetExpectedReplication(BlockId id, uint32_t replication) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = blocks_.find(id.value());
  if (it != blocks_.end()) it->second.expected = replication;
}

uint32_t BlockManager::LiveReplicas(BlockId id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = blocks_.find(id.value());
  return it == blocks_.end() ? 0 : static_cast<uint32_t>(it->second.nodes.size());
}

std::vector<proto::DatanodeId> BlockManager::Locations(BlockId id, const std::string& reader_ip, bool* corrupt) const {
  std::lock_guard<std::mutex> l(mu_);
  *corrupt = false;
  auto it = blocks_.find(id.value());
  if (it == blocks_.end()) return {};
  const BlockInfo& b = it->second;
  std::vector<uint32_t> order = b.nodes;
  const auto has = [](const std::vector<uint32_t>& v, uint32_t n) { return std::find(v.begin(), v.end(), n) != v.end(); };
  for (uint32_t n : b.pipeline) {
    if (nodes_[n].live && !has(order, n) && !has(b.corrupt, n)) order.push_back(n);
  }
  if (order.empty() && !b.corrupt.empty()) {
    *corrupt = true;
    order = b.corrupt;
  }
  std::shuffle(order.begin(), order.end(), rng_);
  // In-service nodes first (the reader's own host first among them), then
  // decommissioning ones, then decommissioned ones: they may go away soon.
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const auto rank = [&](uint32_t n) {
      return std::make_pair(static_cast<int>(nodes_[n].admin), nodes_[n].id.ip() == reader_ip ? 0 : 1);
    };
    return rank(a) < rank(b);
  });
  std::vector<proto::DatanodeId> out;
  for (uint32_t n : order) out.push_back(nodes_[n].id);
  return out;
}

Result<std::vector<proto::DatanodeId>> BlockManager::ChooseTargets(uint32_t n, const std::string& writer_ip,
                                                                   const std::set<std::string>& excluded_uuids,
                                                                   uint64_t block_size) {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<uint32_t> candidates;
  size_t live = 0, full = 0, retiring = 0;
  for (uint32_t i = 0; i < nodes_.size(); ++i) {
    const Node& node = nodes_[i];
    if (!node.live) continue;
    ++live;
    if (node.admin != proto::ADMIN_NORMAL) {  // decommissioning nodes take no new blocks
      ++retiring;
      continue;
    }
    if (excluded_uuids.count(node.id.uuid())) continue;
    if (!HasRoomLocked(node, block_size)) {
      ++full;
      continue;
    }
    candidates.push_back(i);
  }
  if (candidates.empty()) {
    if (live == 0) {
      return Status::Unavailable(
          "no DataNode is live, so the block has nowhere to go; start DataNodes (scripts/quickstart.sh) and check "
          "`dfs admin report`");
    }
    if (retiring == live) {
      return Status::Unavailable(fmt::format(
          "no DataNode is in service, so the block has nowhere to go: all {} live DataNode(s) are decommissioning or "
          "decommissioned; put one back with `dfs admin recommission <datanode>` or start another DataNode",
          live));
    }
    return Status::NoSpace(fmt::format("no DataNode can take a block of {} bytes: {} live, {} decommissioning or "
                                       "decommissioned, {} without room, {} excluded by the writer after errors",
                                       block_size, live, retiring, full, excluded_uuids.size()));
  }
  std::shuffle(candidates.begin(), candidates.end(), rng_);
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](uint32_t a, uint32_t b) { return LoadLocked(nodes_[a]) < LoadLocked(nodes_[b]); });
  // The writer's own DataNode first, when it has one.
  auto local = std::find_if(candidates.begin(), candidates.end(),
                            [&](uint32_t i) { return !writer_ip.empty() && nodes_[i].id.ip() == writer_ip; });
  if (local != candidates.end()) std::rotate(candidates.begin(), local, local + 1);
  std::vector<proto::DatanodeId> out;
  for (uint32_t i = 0; i < candidates.size() && out.size() < n; ++i) {
    nodes_[candidates[i]].scheduled++;
    out.push_back(nodes_[candidates[i]].id);
  }
  return out;
}

void BlockManager::ReportBadReplica(BlockId id, uint64_t gen_stamp, const std::string& uuid) {
  std::lock_guard<std::mutex> l(mu_);
  auto bit = blocks_.find(id.value());
  Node* node = FindNodeLocked(uuid);
  if (bit == blocks_.end() || !node) return;
  BlockInfo& b = bit->second;
  uint32_t idx = node_by_uuid_[uuid];
  size_t before = b.nodes.size();
  if (EraseValue(b.nodes, idx)) {
    if (!Contains(b.corrupt, idx)) b.corrupt.push_back(idx);
    OnLiveCountChangeLocked(b, before);
    Log("nn")->warn("Replica of {} on {}:{} reported corrupt; {} good replica(s) left", BlockName(id),
                    node->id.ip(), node->id.xfer_port(), b.nodes.size());
  }
}

void BlockManager::UpdateGenStamp(BlockId id, uint64_t gen_stamp) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = blocks_.find(id.value());
  if (it == blocks_.end()) return;
  BlockInfo& b = it->second;
  if (b.gen_stamp == gen_stamp) return;
  b.gen_stamp = gen_stamp;
  const size_t before = b.nodes.size();
  for (uint32_t n : b.nodes) nodes_[n].blocks.erase(id.value());
  for (uint32_t n : b.corrupt) nodes_[n].blocks.erase(id.value());
  b.nodes.clear();
  b.corrupt.clear();
  OnLiveCountChangeLocked(b, before);
}

std::vector<proto::DatanodeId> BlockManager::LiveDatanodes() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<proto::DatanodeId> out;
  for (const auto& n : nodes_) {
    if (n.live) out.push_back(n.id);
  }
  return out;
}

// ---- DataNode side ----------------------------------------------------------

BlockManager::Node* BlockManager::FindNodeLocked(const std::string& uuid) {
  auto it = node_by_uuid_.find(uuid);
  return it == node_by_uuid_.end() ? nullptr : &nodes_[it->second];
}

Result<proto::DatanodeId> BlockManager::Register(const proto::DatanodeId& id, const proto::HeartbeatRequest& stats,
                                                 const std::string& peer_ip) {
  if (id.uuid().empty() || id.xfer_port() == 0) {
    return Status::InvalidArgument("a DataNode must register with a uuid and a data transfer port");
  }
  std::lock_guard<std::mutex> l(mu_);
  proto::DatanodeId reg = id;
  reg.set_ip(peer_ip);
  if (reg.hostname().empty()) reg.set_hostname(peer_ip);
  uint32_t idx;
  auto it = node_by_uuid_.find(id.uuid());
  if (it != node_by_uuid_.end()) {
    idx = it->second;
    MarkDeadLocked(idx);  // forget what it had: its full block report follows
    nodes_[idx].decommission_wait.clear();  // judged by what it reports from now on
  } else {
    idx = static_cast<uint32_t>(nodes_.size());
    nodes_.emplace_back();
    node_by_uuid_[id.uuid()] = idx;
  }
  Node& n = nodes_[idx];
  n.id = reg;
  n.live = true;
  n.last_contact = Clock::now();
  ApplyStats(stats, &n);
  Log("nn")->info("Registered DataNode {} at {}:{}", reg.uuid(), reg.ip(), reg.xfer_port());
  CheckSafeModeLocked();
  return reg;
}

void BlockManager::ApplyStats(const proto::HeartbeatRequest& req, Node* n) {
  n->capacity = req.capacity();
  n->dfs_used = req.dfs_used();
  n->remaining = req.remaining();
  n->non_dfs_used = req.non_dfs_used();
  n->xceivers = req.xceivers();
  n->failed_volumes = req.failed_volumes();
  n->scheduled_before = n->scheduled;
  n->scheduled = 0;
}

bool BlockManager::Heartbeat(const proto::HeartbeatRequest& req, proto::HeartbeatResponse* resp) {
  std::lock_guard<std::mutex> l(mu_);
  Node* n = FindNodeLocked(req.uuid());
  if (!n || !n->live) {
    resp->set_reregister(true);
    return false;
  }
  n->last_contact = Clock::now();
  ApplyStats(req, n);
  constexpr size_t kMaxDeletesPerHeartbeat = 1000;
  if (!n->pending_deletes.empty()) {
    auto* cmd = resp->add_commands();
    cmd->set_action(proto::BlockCommand::DELETE);
    size_t take = std::min(kMaxDeletesPerHeartbeat, n->pending_deletes.size());
    for (size_t i = 0; i < take; ++i) *cmd->add_blocks() = n->pending_deletes[i];
    n->pending_deletes.erase(n->pending_deletes.begin(), n->pending_deletes.begin() + static_cast<long>(take));
  }
  if (!n->pending_transfers.empty()) {
    auto* cmd = resp->add_commands();
    cmd->set_action(proto::BlockCommand::REPLICATE);
    for (auto& t : n->pending_transfers) *cmd->add_transfers() = std::move(t);
    n->pending_transfers.clear();
  }
  return true;
}

void BlockManager::InvalidateLocked(uint32_t node, const proto::Block& b) {
  proto::Block del;
  del.set_id(b.id());
  del.set_gen_stamp(b.gen_stamp());
  nodes_[node].pending_deletes.push_back(del);
}

void BlockManager::AddReplicaLocked(uint32_t node, const proto::Block& reported) {
  auto it = blocks_.find(reported.id());
  if (it == blocks_.end()) {
    InvalidateLocked(node, reported);  // deleted while the node was away, or never committed
    return;
  }
  BlockInfo& b = it->second;
  if (reported.gen_stamp() != b.gen_stamp || (b.committed && reported.num_bytes() != b.num_bytes)) {
    Log("nn")->info("Deleting replica of {} on {}: generation stamp {} / length {} do not match {} / {}",
                    BlockName(BlockId(reported.id())), nodes_[node].id.ip(), reported.gen_stamp(),
                    reported.num_bytes(), b.gen_stamp, b.num_bytes);
    InvalidateLocked(node, reported);
    return;
  }
  if (Contains(b.nodes, node) || Contains(b.corrupt, node)) return;
  if (Contains(b.deleting, node) || Contains(b.excess, node)) {
    InvalidateLocked(node, reported);  // a replica we already condemned (corrupt, or excess)
    return;
  }
  size_t before = b.nodes.size();
  b.nodes.push_back(node);
  if (b.committed) b.pipeline = {};  // readers have a finalized replica now
  nodes_[node].blocks.insert(reported.id());
  OnLiveCountChangeLocked(b, before);
  if (CountLocked(b).in_service >= b.expected) {
    pending_replication_.erase(reported.id());
    pending_targets_.erase(reported.id());
  }
}

void BlockManager::RemoveReplicaLocked(uint32_t node, uint64_t block_id) {
  nodes_[node].blocks.erase(block_id);
  auto it = blocks_.find(block_id);
  if (it == blocks_.end()) return;
  size_t before = it->second.nodes.size();
  if (EraseValue(it->second.nodes, node)) OnLiveCountChangeLocked(it->second, before);
  EraseValue(it->second.corrupt, node);
  EraseValue(it->second.deleting, node);
  if (EraseValue(it->second.excess, node)) nodes_[node].excess.erase(block_id);
}

void BlockManager::OnLiveCountChangeLocked(const BlockInfo& b, size_t before) {
  if (!b.committed) return;
  if (before == 0 && !b.nodes.empty()) ++safe_blocks_;
  if (before > 0 && b.nodes.empty()) --safe_blocks_;
}

Status BlockManager::FullBlockReport(const std::string& uuid, const std::vector<proto::Block>& blocks) {
  std::lock_guard<std::mutex> l(mu_);
  Node* n = FindNodeLocked(uuid);
  if (!n || !n->live) return Status::NotFound("unknown DataNode " + uuid + "; it must register first");
  uint32_t idx = node_by_uuid_[uuid];
  std::unordered_set<uint64_t> reported;
  for (const auto& b : blocks) {
    reported.insert(b.id());
    AddReplicaLocked(idx, b);
  }
  std::vector<uint64_t> gone;
  for (uint64_t id : n->blocks) {
    if (!reported.count(id)) gone.push_back(id);
  }
  for (uint64_t id : gone) RemoveReplicaLocked(idx, id);
  Log("nn")->info("Block report from {}:{}: {} replicas", n->id.ip(), n->id.xfer_port(), blocks.size());
  CheckSafeModeLocked();
  return Status::OK();
}

Status BlockManager::IncrementalBlockReport(const std::string& uuid, const std::vector<proto::Block>& received,
                                            const std::vector<proto::Block>& deleted) {
  std::lock_guard<std::mutex> l(mu_);
  Node* n = FindNodeLocked(uuid);
  if (!n || !n->live) return Status::NotFound("unknown DataNode " + uuid + "; it must register first");
  uint32_t idx = node_by_uuid_[uuid];
  for (const auto& b : received) {
    AddReplicaLocked(idx, b);
    // The block has landed: it stops counting as a whole block on its way
    // (else a burst of small files would look like terabytes), and its real
    // size counts against the node's room until its next heartbeat says.
    if (n->scheduled > 0) {
      --n->scheduled;
    } else if (n->scheduled_before > 0) {
      --n->scheduled_before;
    }
    n->remaining -= std::min(n->remaining, b.num_bytes());
  }
  for (const auto& b : deleted) RemoveReplicaLocked(idx, b.id());
  if (safe_mode_ == SafeMode::kStartup) CheckSafeModeLocked();
  return Status::OK();
}

// ---- Background work --------------------------------------------------------

void BlockManager::MarkDeadLocked(uint32_t idx) {
  // Copies from it or on their way to it will not arrive: schedule those blocks afresh.
  for (auto it = pending_targets_.begin(); it != pending_targets_.end();) {
    if (it->second.source == idx || Contains(it->second.targets, idx)) {
      pending_replication_.erase(it->first);
      it = pending_targets_.erase(it);
    } else {
      ++it;
    }
  }
  Node& n = nodes_[idx];
  std::vector<uint64_t> ids(n.blocks.begin(), n.blocks.end());
  if (n.admin == proto::DECOMMISSION_IN_PROGRESS) n.decommission_wait = ids;
  for (uint64_t id : ids) RemoveReplicaLocked(idx, id);
  n.blocks.clear();
  // Excess replicas it was told to delete: if it comes back with them, they
  // are counted afresh and trimmed down to the target again.
  for (uint64_t id : n.excess) {
    auto bit = blocks_.find(id);
    if (bit != blocks_.end()) EraseValue(bit->second.excess, idx);
  }
  n.excess.clear();
  n.pending_deletes.clear();
  n.pending_transfers.clear();
  n.live = false;
}

void BlockManager::CheckDeadNodes() {
  std::lock_guard<std::mutex> l(mu_);
  for (uint32_t i = 0; i < nodes_.size(); ++i) {
    Node& n = nodes_[i];
    if (n.live && Clock::now() - n.last_contact > opts_.dead_interval) {
      Log("nn")->warn("DataNode {}:{} ({}) is dead: no heartbeat for {} ms; its {} replicas will be re-replicated",
                      n.id.ip(), n.id.xfer_port(), n.id.uuid(), MillisSince(n.last_contact), n.blocks.size());
      MarkDeadLocked(i);
    }
  }
  if (safe_mode_ == SafeMode::kStartup) CheckSafeModeLocked();
}

void BlockManager::ComputeReplicationWork() {
  std::lock_guard<std::mutex> l(mu_);
  CheckDecommissionLocked();
  if (safe_mode_ != SafeMode::kOff) return;
  const auto now = Clock::now();
  for (auto it = pending_replication_.begin(); it != pending_replication_.end();) {
    if (now > it->second) {
      pending_targets_.erase(it->first);
      it = pending_replication_.erase(it);
    } else {
      ++it;
    }
  }
  // Under-replicated blocks, most endangered first: fewest in-service
  // replicas, then fewest readable ones (a block left only on decommissioning
  // nodes goes before one that still has an in-service copy). Only in-service
  // replicas count; the others are sources, never deleted as excess.
  std::vector<std::tuple<uint32_t, size_t, uint64_t>> needed;
  for (auto& [id, b] : blocks_) {
    if (!b.committed || b.nodes.empty()) continue;
    const ReplicaCount count = CountLocked(b);
    if (count.in_service < b.expected) {
      if (!pending_replication_.count(id)) needed.emplace_back(count.in_service, b.nodes.size(), id);
    } else if (count.in_service > b.expected) {
      // Over-replicated: drop in-service replicas from the fullest nodes, down
      // to the target and never below it.
      std::vector<uint32_t> holders;
      for (uint32_t n : b.nodes) {
        if (InServiceLocked(n)) holders.push_back(n);
      }
      std::sort(holders.begin(), holders.end(),
                [&](uint32_t x, uint32_t y) { return nodes_[x].remaining < nodes_[y].remaining; });
      size_t excess = count.in_service - b.expected;
      for (size_t k = 0; k < excess; ++k) {
        proto::Block pb;
        pb.set_id(id);
        pb.set_gen_stamp(b.gen_stamp);
        InvalidateLocked(holders[k], pb);
        size_t before = b.nodes.size();
        EraseValue(b.nodes, holders[k]);
        nodes_[holders[k]].blocks.erase(id);
        b.excess.push_back(holders[k]);
        nodes_[holders[k]].excess.insert(id);
        OnLiveCountChangeLocked(b, before);
      }
    }
    if (!b.corrupt.empty()) {
      // A good copy exists, so the corrupt ones go now; their nodes may receive a
      // fresh copy once they confirm the deletion.
      proto::Block pb;
      pb.set_id(id);
      pb.set_gen_stamp(b.gen_stamp);
      for (uint32_t c : b.corrupt) {
        InvalidateLocked(c, pb);
        nodes_[c].blocks.erase(id);
        b.deleting.push_back(c);
      }
      b.corrupt.clear();
    }
  }
  std::sort(needed.begin(), needed.end());
  std::vector<uint32_t> streams(nodes_.size(), 0);
  // Copies a node was asked for and that have not arrived yet, sent to it or not.
  for (const auto& [id, copy] : pending_targets_) streams[copy.source]++;
  const auto give_up = now + std::max(opts_.replication_interval * 10, std::chrono::milliseconds(30'000));
  for (auto& [in_service, readable, id] : needed) {
    BlockInfo& b = blocks_[id];
    // Any holder may be the source, decommissioning ones included.
    uint32_t source = UINT32_MAX;
    for (uint32_t n : b.nodes) {
      if (nodes_[n].live && streams[n] < opts_.max_streams && (source == UINT32_MAX || streams[n] < streams[source])) {
        source = n;
      }
    }
    if (source == UINT32_MAX) continue;
    std::vector<uint32_t> candidates;
    for (uint32_t i = 0; i < nodes_.size(); ++i) {
      const Node& n = nodes_[i];
      if (InServiceLocked(i) && HasRoomLocked(n, b.num_bytes) && !Contains(b.nodes, i) && !Contains(b.corrupt, i) &&
          !Contains(b.deleting, i) && !Contains(b.excess, i)) {
        candidates.push_back(i);
      }
    }
    if (candidates.empty()) continue;
    std::shuffle(candidates.begin(), candidates.end(), rng_);
    std::stable_sort(candidates.begin(), candidates.end(),
                     [&](uint32_t x, uint32_t y) { return LoadLocked(nodes_[x]) < LoadLocked(nodes_[y]); });
    proto::BlockTransfer t;
    t.mutable_block()->set_id(id);
    t.mutable_block()->set_gen_stamp(b.gen_stamp);
    t.mutable_block()->set_num_bytes(b.num_bytes);
    size_t want = b.expected - in_service;
    for (size_t k = 0; k < candidates.size() && k < want; ++k) {
      *t.add_targets() = nodes_[candidates[k]].id;
      nodes_[candidates[k]].scheduled++;
    }
    PendingCopy& copy = pending_targets_[id];
    copy.source = source;
    copy.targets.assign(candidates.begin(),
                        candidates.begin() + static_cast<long>(std::min(want, candidates.size())));
    nodes_[source].pending_transfers.push_back(std::move(t));
    streams[source]++;
    pending_replication_[id] = give_up;
  }
}

// ---- Safe mode --------------------------------------------------------------

void BlockManager::CheckSafeModeLocked() const {
  if (safe_mode_ != SafeMode::kStartup) return;
  size_t live = 0;
  for (const auto& n : nodes_) live += n.live ? 1 : 0;
  bool reached = live >= opts_.safemode_min_datanodes &&
                 (committed_blocks_ == 0 ||
                  static_cast<double>(safe_blocks_) >= opts_.safemode_threshold * static_cast<double>(committed_blocks_));
  if (!reached) {
    threshold_reached_ = false;
    return;
  }
  if (!threshold_reached_) {
    threshold_reached_ = true;
    threshold_reached_at_ = Clock::now();
  }
  if (Clock::now() - threshold_reached_at_ >= opts_.safemode_extension) {
    safe_mode_ = SafeMode::kOff;
    Log("nn")->info("Safe mode is OFF: {} of {} blocks reported by {} DataNode(s)", safe_blocks_, committed_blocks_,
                    live);
  }
}

bool BlockManager::InSafeMode() const {
  std::lock_guard<std::mutex> l(mu_);
  if (safe_mode_ == SafeMode::kStartup) CheckSafeModeLocked();
  return safe_mode_ != SafeMode::kOff;
}

std::string BlockManager::SafeModeStatus() const {
  std::lock_guard<std::mutex> l(mu_);
  switch (safe_mode_) {
    case SafeMode::kOff:
      return "Safe mode is OFF";
    case SafeMode::kManual:
      return "Safe mode is ON: it was entered by an administrator; leave it with `dfs admin safemode leave`";
    case SafeMode::kStartup: {
      size_t live = 0;
      for (const auto& n : nodes_) live += n.live ? 1 : 0;
      uint64_t needed = static_cast<uint64_t>(opts_.safemode_threshold * static_cast<double>(committed_blocks_) + 0.999999);
      return fmt::format(
          "Safe mode is ON: the NameNode has just started and waits for DataNodes to report their blocks: {} of {} "
          "blocks reported (needs {}), {} live DataNode(s) (needs {}). It leaves safe mode by itself once they "
          "report; start any stopped DataNodes",
          safe_blocks_, committed_blocks_, needed, live, opts_.safemode_min_datanodes);
    }
  }
  return "";
}

void BlockManager::EnterSafeMode() {
  std::lock_guard<std::mutex> l(mu_);
  safe_mode_ = SafeMode::kManual;
  Log("nn")->info("Safe mode is ON (entered by an administrator)");
}

void BlockManager::LeaveSafeMode() {
  std::lock_guard<std::mutex> l(mu_);
  safe_mode_ = SafeMode::kOff;
  Log("nn")->info("Safe mode is OFF (left by an administrator)");
}

// ---- Decommissioning --------------------------------------------------------

size_t BlockManager::InServiceCountLocked() const {
  size_t n = 0;
  for (uint32_t i = 0; i < nodes_.size(); ++i) n += InServiceLocked(i) ? 1 : 0;
  return n;
}

BlockManager::ReplicaCount BlockManager::CountLocked(const BlockInfo& b) const {
  ReplicaCount c;
  for (uint32_t n : b.nodes) {
    if (nodes_[n].admin == proto::ADMIN_NORMAL) {
      ++c.in_service;
    } else {
      ++c.decommissioning;
    }
  }
  return c;
}

// Hadoop's rule: a finished block needs its full replication on in-service
// nodes; a block still being written needs the minimum a writer needs to close.
bool BlockManager::DecommissionSufficientLocked(uint64_t block_id) const {
  auto it = blocks_.find(block_id);
  if (it == blocks_.end()) return true;  // deleted meanwhile
  const BlockInfo& b = it->second;
  const uint32_t need = b.committed ? b.expected : std::min(b.expected, opts_.min_replication);
  return CountLocked(b).in_service >= need;
}

BlockManager::DecommissionProgress BlockManager::DecommissionProgressLocked(const Node& n) const {
  DecommissionProgress p;
  const size_t in_service = InServiceCountLocked();
  auto judge = [&](uint64_t id) {
    if (DecommissionSufficientLocked(id)) return;
    const BlockInfo& b = blocks_.at(id);
    ++p.under;
    if (CountLocked(b).in_service == 0) ++p.only;
    if (b.expected > in_service) {
      ++p.blocked;
      p.blocked_need = std::max(p.blocked_need, b.expected);
    }
  };
  if (n.live) {
    for (uint64_t id : n.blocks) judge(id);
  } else {
    for (uint64_t id : n.decommission_wait) judge(id);
  }
  return p;
}

void BlockManager::CheckDecommissionLocked() {
  for (Node& n : nodes_) {
    if (n.admin != proto::DECOMMISSION_IN_PROGRESS) continue;
    if (!n.live) std::erase_if(n.decommission_wait, [&](uint64_t id) { return DecommissionSufficientLocked(id); });
    if (DecommissionProgressLocked(n).under > 0) continue;
    n.admin = proto::DECOMMISSIONED;
    n.decommission_wait.clear();
    Log("nn")->info("DataNode {}:{} ({}) is decommissioned: every block it holds is fully replicated on in-service "
                    "DataNodes; it is safe to switch it off",
                    n.id.ip(), n.id.xfer_port(), n.id.uuid());
  }
}

Result<uint32_t> BlockManager::ResolveNodeLocked(const std::string& spec) const {
  auto it = node_by_uuid_.find(spec);
  if (it != node_by_uuid_.end()) return it->second;
  // host:port, or a bare host (ip or hostname) when it names one node.
  std::string host = spec;
  uint32_t port = 0;
  const size_t colon = spec.rfind(':');
  if (colon != std::string::npos) {
    host = spec.substr(0, colon);
    const std::string p = spec.substr(colon + 1);
    const bool digits = !p.empty() && p.size() <= 5 &&
                        std::all_of(p.begin(), p.end(), [](unsigned char c) { return c >= '0' && c <= '9'; });
    port = digits ? static_cast<uint32_t>(std::stoul(p)) : UINT32_MAX;
  }
  std::vector<uint32_t> match;
  for (uint32_t i = 0; i < nodes_.size(); ++i) {
    const auto& id = nodes_[i].id;
    if ((id.ip() == host || id.hostname() == host) && (port == 0 || id.xfer_port() == port)) match.push_back(i);
  }
  // An old registration at the same address (a re-created node) yields to the live one.
  if (match.size() > 1) {
    std::vector<uint32_t> live;
    for (uint32_t i : match) {
      if (nodes_[i].live) live.push_back(i);
    }
    if (live.size() == 1) match = live;
  }
  auto list = [&](const std::vector<uint32_t>& which) {
    std::string out;
    for (uint32_t i : which) {
      const auto& id = nodes_[i].id;
      out += fmt::format("{}{}:{} ({}, {})", out.empty() ? "" : ", ", id.ip(), id.xfer_port(), id.uuid(),
                         nodes_[i].live ? "live" : "dead");
    }
    return out;
  };
  if (match.size() == 1) return match.front();
  if (match.size() > 1) {
    return Status::InvalidArgument(fmt::format("'{}' names {} DataNodes: {}; give the uuid or ip:port of one",
                                               spec, match.size(), list(match)));
  }
  std::vector<uint32_t> all(nodes_.size());
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
  return Status::NotFound(fmt::format(
      "unknown DataNode '{}': name it by its uuid, ip:xferport or hostname:xferport, as the Name: lines of "
      "`dfs admin report` show it; {}",
      spec, all.empty() ? std::string("no DataNode has registered with this NameNode yet")
                        : "the NameNode knows " + list(all)));
}

Result<proto::SetDatanodeAdminStateResponse> BlockManager::SetAdminState(const std::string& datanode,
                                                                         bool decommission) {
  std::lock_guard<std::mutex> l(mu_);
  DFS_ASSIGN_OR_RETURN(uint32_t idx, ResolveNodeLocked(datanode));
  Node& n = nodes_[idx];
  proto::SetDatanodeAdminStateResponse resp;
  resp.set_previous(n.admin);
  if (decommission && n.admin == proto::ADMIN_NORMAL) {
    n.admin = proto::DECOMMISSION_IN_PROGRESS;
    if (!n.live) {
      // Its replicas were forgotten when it died and are already being
      // re-replicated from the other copies: there is nothing left to drain.
      n.admin = proto::DECOMMISSIONED;
      Log("nn")->info("DataNode {}:{} ({}) is dead: decommissioned at once", n.id.ip(), n.id.xfer_port(),
                      n.id.uuid());
    } else {
      Log("nn")->info("Decommissioning DataNode {}:{} ({}): {} replica(s) to copy elsewhere", n.id.ip(),
                      n.id.xfer_port(), n.id.uuid(), n.blocks.size());
      CheckDecommissionLocked();  // a node without blocks is done at once
    }
  } else if (!decommission && n.admin != proto::ADMIN_NORMAL) {
    n.admin = proto::ADMIN_NORMAL;
    n.decommission_wait.clear();
    Log("nn")->info("DataNode {}:{} ({}) is back in service", n.id.ip(), n.id.xfer_port(), n.id.uuid());
  }
  *resp.mutable_node() = InfoLocked(n);
  return resp;
}

// ---- Reports ----------------------------------------------------------------

void BlockManager::FillStats(proto::GetStatsResponse* out) const {
  std::lock_guard<std::mutex> l(mu_);
  uint32_t live = 0, dead = 0, decommissioning = 0, decommissioned = 0;
  uint64_t excess = 0, pending_deletion = 0;
  for (const auto& n : nodes_) {
    if (n.admin == proto::DECOMMISSIONED) ++decommissioned;
    if (n.live) {
      ++live;
      if (n.admin == proto::DECOMMISSION_IN_PROGRESS) ++decommissioning;
      // As Hadoop counts them: a node leaving service adds what it stores, not its free space.
      const bool in_service = n.admin == proto::ADMIN_NORMAL;
      out->set_capacity(out->capacity() + (in_service ? n.capacity : n.dfs_used));
      out->set_dfs_used(out->dfs_used() + n.dfs_used);
      out->set_remaining(out->remaining() + (in_service ? n.remaining : 0));
      excess += n.excess.size();
      pending_deletion += n.pending_deletes.size();
    } else {
      ++dead;
    }
  }
  // Hadoop's meanings: under-replicated blocks have a readable replica but
  // fewer in-service ones than their replication; missing blocks have no
  // readable replica (every replica lost or corrupt); blocks with corrupt
  // replicas have at least one replica reported corrupt and not yet deleted.
  // A block still being written is none of these.
  uint64_t under = 0, missing = 0, missing_one = 0, corrupt = 0, highest = 0;
  for (const auto& [id, b] : blocks_) {
    if (!b.committed) continue;
    const ReplicaCount count = CountLocked(b);
    const bool corrupt_left = !b.corrupt.empty() || std::any_of(b.deleting.begin(), b.deleting.end(),
                                                               [&](uint32_t n) { return nodes_[n].live; });
    if (corrupt_left) ++corrupt;
    if (b.nodes.empty()) {
      ++missing;
      if (b.expected == 1) ++missing_one;
    } else if (count.in_service < b.expected) {
      ++under;
      if (count.in_service <= 1) ++highest;
    } else if (count.in_service > b.expected) {
      excess += count.in_service - b.expected;  // found, not yet chosen for deletion
    }
  }
  out->set_live_datanodes(live);
  out->set_dead_datanodes(dead);
  out->set_decommissioning_datanodes(decommissioning);
  out->set_decommissioned_datanodes(decommissioned);
  out->set_total_blocks(blocks_.size());
  out->set_under_replicated_blocks(under);
  out->set_missing_blocks(missing);
  out->set_missing_repl_one_blocks(missing_one);
  out->set_highest_priority_blocks(highest);
  out->set_corrupt_blocks(corrupt);
  out->set_excess_replicas(excess);
  out->set_pending_deletion_blocks(pending_deletion);
}

proto::DatanodeInfo BlockManager::InfoLocked(const Node& n) const {
  proto::DatanodeInfo info;
  *info.mutable_id() = n.id;
  info.set_capacity(n.capacity);
  info.set_dfs_used(n.dfs_used);
  info.set_remaining(n.remaining);
  info.set_non_dfs_used(n.non_dfs_used);
  info.set_num_blocks(n.blocks.size());
  info.set_last_contact_ms(MillisSince(n.last_contact));
  info.set_live(n.live);
  info.set_xceivers(n.xceivers);
  info.set_failed_volumes(n.failed_volumes);
  info.set_admin_state(n.admin);
  if (n.admin == proto::DECOMMISSION_IN_PROGRESS) {
    const DecommissionProgress p = DecommissionProgressLocked(n);
    info.set_decommission_under_replicated(p.under);
    info.set_decommission_only_replicas(p.only);
    if (p.blocked > 0) {
      const size_t in_service = InServiceCountLocked();
      info.set_decommission_note(fmt::format(
          "{} block(s) need {} replicas but only {} DataNode(s) are in service, so the decommission cannot finish: "
          "add a DataNode, lower their replication (dfs setrep), or cancel with `dfs admin recommission`",
          p.blocked, p.blocked_need, in_service));
    } else if (!n.live && p.under > 0) {
      info.set_decommission_note(fmt::format(
          "it died before all its blocks were copied: {} block(s) wait for re-replication from their other copies{}",
          p.under,
          p.only ? fmt::format(", and {} have no other copy: start it again so they can be copied", p.only) : ""));
    } else if (safe_mode_ != SafeMode::kOff && p.under > 0) {
      info.set_decommission_note("the NameNode is in safe mode and copies no blocks until it leaves it");
    }
  }
  return info;
}

std::vector<proto::DatanodeInfo> BlockManager::DatanodeReport() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<proto::DatanodeInfo> out;
  for (const auto& n : nodes_) out.push_back(InfoLocked(n));
  return out;
}

size_t BlockManager::NumLiveDatanodes() const {
  std::lock_guard<std::mutex> l(mu_);
  size_t live = 0;
  for (const auto& n : nodes_) live += n.live ? 1 : 0;
  return live;
}

}  // namespace dfs::namenode
