#include "namenode/block_manager.h"

#include <algorithm>

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

void BlockManager::AddBlock(BlockId id, InodeId inode, uint64_t gen_stamp, uint32_t expected_replication) {
  std::lock_guard<std::mutex> l(mu_);
  BlockInfo& b = blocks_[id.value()];
  b.inode = inode;
  b.gen_stamp = gen_stamp;
  b.expected = expected_replication;
}

void BlockManager::CommitBlock(BlockId id, uint64_t num_bytes) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = blocks_.find(id.value());
  if (it == blocks_.end() || it->second.committed) return;
  BlockInfo& b = it->second;
  b.num_bytes = num_bytes;
  b.committed = true;
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
    if (b.committed) {
      --committed_blocks_;
      if (!b.nodes.empty()) --safe_blocks_;
    }
    pending_replication_.erase(pb.id());
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
  std::vector<uint32_t> order = it->second.nodes;
  if (order.empty() && !it->second.corrupt.empty()) {
    *corrupt = true;
    order = it->second.corrupt;
  }
  std::shuffle(order.begin(), order.end(), rng_);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return (nodes_[a].id.ip() == reader_ip) > (nodes_[b].id.ip() == reader_ip);
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
  size_t live = 0, full = 0;
  for (uint32_t i = 0; i < nodes_.size(); ++i) {
    const Node& node = nodes_[i];
    if (!node.live) continue;
    ++live;
    if (excluded_uuids.count(node.id.uuid())) continue;
    if (node.remaining < block_size) {
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
    return Status::NoSpace(fmt::format("no DataNode can take a block of {} bytes: {} live, {} without room, {} "
                                       "excluded by the writer after errors",
                                       block_size, live, full, excluded_uuids.size()));
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
  if (Contains(b.deleting, node)) {
    InvalidateLocked(node, reported);  // a replica we already condemned (it was corrupt)
    return;
  }
  size_t before = b.nodes.size();
  b.nodes.push_back(node);
  nodes_[node].blocks.insert(reported.id());
  OnLiveCountChangeLocked(b, before);
  if (b.nodes.size() >= b.expected) pending_replication_.erase(reported.id());
}

void BlockManager::RemoveReplicaLocked(uint32_t node, uint64_t block_id) {
  nodes_[node].blocks.erase(block_id);
  auto it = blocks_.find(block_id);
  if (it == blocks_.end()) return;
  size_t before = it->second.nodes.size();
  if (EraseValue(it->second.nodes, node)) OnLiveCountChangeLocked(it->second, before);
  EraseValue(it->second.corrupt, node);
  EraseValue(it->second.deleting, node);
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
  for (const auto& b : received) AddReplicaLocked(idx, b);
  for (const auto& b : deleted) RemoveReplicaLocked(idx, b.id());
  if (safe_mode_ == SafeMode::kStartup) CheckSafeModeLocked();
  return Status::OK();
}

// ---- Background work --------------------------------------------------------

void BlockManager::MarkDeadLocked(uint32_t idx) {
  Node& n = nodes_[idx];
  std::vector<uint64_t> ids(n.blocks.begin(), n.blocks.end());
  for (uint64_t id : ids) RemoveReplicaLocked(idx, id);
  n.blocks.clear();
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
  if (safe_mode_ != SafeMode::kOff) return;
  const auto now = Clock::now();
  for (auto it = pending_replication_.begin(); it != pending_replication_.end();) {
    it = now > it->second ? pending_replication_.erase(it) : std::next(it);
  }
  // Under-replicated blocks, most endangered (fewest live replicas) first.
  std::vector<std::pair<size_t, uint64_t>> needed;
  for (auto& [id, b] : blocks_) {
    if (!b.committed || b.nodes.empty()) continue;
    if (b.nodes.size() < b.expected) {
      if (!pending_replication_.count(id)) needed.emplace_back(b.nodes.size(), id);
    } else if (b.nodes.size() > b.expected) {
      // Over-replicated: drop replicas from the fullest nodes.
      std::vector<uint32_t> holders = b.nodes;
      std::sort(holders.begin(), holders.end(),
                [&](uint32_t x, uint32_t y) { return nodes_[x].remaining < nodes_[y].remaining; });
      size_t excess = b.nodes.size() - b.expected;
      for (size_t k = 0; k < excess; ++k) {
        proto::Block pb;
        pb.set_id(id);
        pb.set_gen_stamp(b.gen_stamp);
        InvalidateLocked(holders[k], pb);
        size_t before = b.nodes.size();
        EraseValue(b.nodes, holders[k]);
        nodes_[holders[k]].blocks.erase(id);
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
  for (uint32_t i = 0; i < nodes_.size(); ++i) streams[i] = static_cast<uint32_t>(nodes_[i].pending_transfers.size());
  const auto give_up = now + std::max(opts_.replication_interval * 10, std::chrono::milliseconds(30'000));
  for (auto& [live, id] : needed) {
    BlockInfo& b = blocks_[id];
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
      if (n.live && n.remaining >= b.num_bytes && !Contains(b.nodes, i) && !Contains(b.corrupt, i) &&
          !Contains(b.deleting, i)) {
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
    size_t want = b.expected - b.nodes.size();
    for (size_t k = 0; k < candidates.size() && k < want; ++k) {
      *t.add_targets() = nodes_[candidates[k]].id;
      nodes_[candidates[k]].scheduled++;
    }
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

// ---- Reports ----------------------------------------------------------------

void BlockManager::FillStats(proto::GetStatsResponse* out) const {
  std::lock_guard<std::mutex> l(mu_);
  uint32_t live = 0, dead = 0;
  for (const auto& n : nodes_) {
    if (n.live) {
      ++live;
      out->set_capacity(out->capacity() + n.capacity);
      out->set_dfs_used(out->dfs_used() + n.dfs_used);
      out->set_remaining(out->remaining() + n.remaining);
    } else {
      ++dead;
    }
  }
  uint64_t under = 0, missing = 0, corrupt = 0;
  for (const auto& [id, b] : blocks_) {
    if (!b.committed) continue;
    if (b.nodes.empty() && !b.corrupt.empty()) ++corrupt;
    if (b.nodes.empty()) ++missing;
    else if (b.nodes.size() < b.expected) ++under;
  }
  out->set_live_datanodes(live);
  out->set_dead_datanodes(dead);
  out->set_total_blocks(blocks_.size());
  out->set_under_replicated_blocks(under);
  out->set_missing_blocks(missing);
  out->set_corrupt_blocks(corrupt);
}

std::vector<proto::DatanodeInfo> BlockManager::DatanodeReport() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<proto::DatanodeInfo> out;
  for (const auto& n : nodes_) {
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
    out.push_back(std::move(info));
  }
  return out;
}

size_t BlockManager::NumLiveDatanodes() const {
  std::lock_guard<std::mutex> l(mu_);
  size_t live = 0;
  for (const auto& n : nodes_) live += n.live ? 1 : 0;
  return live;
}

}  // namespace dfs::namenode
