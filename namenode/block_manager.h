// BlockManager: the NameNode's soft state about blocks and DataNodes, kept in
// memory only and rebuilt from block reports after a restart (as HDFS does).
//
// It knows every block of the namespace (loaded at start-up, then kept in step
// by the Namesystem), where each block's replicas are, which DataNodes are live,
// and what each DataNode should be told in its next heartbeat (delete these
// replicas, copy those to that node). It decides placement of new blocks, finds
// under- and over-replicated blocks, tracks safe mode, and drains DataNodes
// that are being decommissioned.
//
// Decommissioning: a DataNode's admin state is in service (normal),
// decommission in progress, or decommissioned. Only in-service nodes take new
// blocks or copies, and only their replicas count toward a block's replication
// when deciding what to copy or delete; the replicas on the others stay valid
// copy sources and readers get them last, and they are never deleted as excess.
// A node in progress becomes decommissioned once every block it holds has its
// full replication on in-service nodes (Hadoop's rule: it waits, however long,
// rather than leave a block short; DatanodeReport says why it waits). The admin
// state lives in memory, keyed by the node's uuid: it survives the node's
// restarts but not the NameNode's (re-run the command after one).
//
// Thread-safety: every public method is thread-safe (one internal mutex). The
// Namesystem calls it while holding its namespace lock (lock order: namespace,
// then block manager); DataNode calls come without the namespace lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "proto/datanode.pb.h"
#include "proto/namenode.pb.h"

namespace dfs::namenode {

class BlockManager {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    std::chrono::milliseconds dead_interval{30'000};
    std::chrono::milliseconds replication_interval{3'000};
    uint32_t min_replication = 1;
    uint32_t max_streams = 2;
    double safemode_threshold = 0.999;
    uint32_t safemode_min_datanodes = 0;
    std::chrono::milliseconds safemode_extension{0};
  };

  explicit BlockManager(Options options);

  // ---- Namespace side -------------------------------------------------------
  // Start-up: a block from the namespace database.
  void LoadBlock(BlockId id, InodeId inode, uint64_t gen_stamp, uint64_t num_bytes, bool committed,
                 uint32_t expected_replication);
  // After loading: enters safe mode when there are blocks to wait for.
  void FinishLoading();
  // `pipeline`: the DataNodes the block is written to. They count as its
  // locations until it is committed and a DataNode reported a finalized
  // replica, so that readers of the file being written find it, also in the
  // moment between the commit and the first report (not kept across a restart).
  void AddBlock(BlockId id, InodeId inode, uint64_t gen_stamp, uint32_t expected_replication,
                const std::vector<proto::DatanodeId>& pipeline = {});
  // The writer finished the block at `num_bytes`; replicas of another length are dropped.
  void CommitBlock(BlockId id, uint64_t num_bytes);
  // Forgets the blocks and tells their DataNodes to delete the replicas.
  void RemoveBlocks(const std::vector<proto::Block>& blocks);
  void SetExpectedReplication(BlockId id, uint32_t replication);
  uint32_t LiveReplicas(BlockId id) const;
  // Replica locations, nearest to `reader_ip` first. Sets *corrupt when only
  // corrupt replicas remain (they are returned so the reader can say so). For
  // a block being written or just committed, also the live nodes of its pipeline.
  std::vector<proto::DatanodeId> Locations(BlockId id, const std::string& reader_ip, bool* corrupt) const;
  // Picks up to n distinct live DataNodes for a new block: the writer's own host
  // first when it runs a DataNode, then the least loaded. Unavailable when none.
  Result<std::vector<proto::DatanodeId>> ChooseTargets(uint32_t n, const std::string& writer_ip,
                                                       const std::set<std::string>& excluded_uuids,
                                                       uint64_t block_size);
  void ReportBadReplica(BlockId id, uint64_t gen_stamp, const std::string& uuid);
  // A block being written moved to a new generation stamp (pipeline or lease
  // recovery): replicas known under the old one no longer count; the nodes
  // that carry on report the block again under the new one.
  void UpdateGenStamp(BlockId id, uint64_t gen_stamp);
  // Every live DataNode (lease recovery asks them all for a block's replicas).
  std::vector<proto::DatanodeId> LiveDatanodes() const;

  // ---- DataNode side ------------------------------------------------------
  Result<proto::DatanodeId> Register(const proto::DatanodeId& id, const proto::HeartbeatRequest& stats,
                                     const std::string& peer_ip);
  // False when the DataNode is unknown or was declared dead: it must re-register.
  bool Heartbeat(const proto::HeartbeatRequest& req, proto::HeartbeatResponse* resp);
  Status FullBlockReport(const std::string& uuid, const std::vector<proto::Block>& blocks);
  Status IncrementalBlockReport(const std::string& uuid, const std::vector<proto::Block>& received,
                                const std::vector<proto::Block>& deleted);

  // ---- Background work (called by the NameNode's monitor thread) ------------
  void CheckDeadNodes();
  // Schedules copies for under-replicated blocks (fewest replicas first) and
  // deletions for over-replicated ones. No-op in safe mode.
  void ComputeReplicationWork();

  // ---- Safe mode ----------------------------------------------------------
  bool InSafeMode() const;
  std::string SafeModeStatus() const;
  void EnterSafeMode();  // manual: stays until LeaveSafeMode()
  void LeaveSafeMode();

  // ---- Decommissioning ----------------------------------------------------
  // Starts decommissioning (or, with decommission false, returns to service)
  // the DataNode named by `datanode`: its uuid, ip:xferport or
  // hostname:xferport (or ip or hostname alone when one node has it). A dead
  // node is decommissioned at once: its replicas were already forgotten and
  // are being re-replicated. NotFound names the accepted forms and the nodes.
  Result<proto::SetDatanodeAdminStateResponse> SetAdminState(const std::string& datanode, bool decommission);

  // ---- Reports ------------------------------------------------------------
  void FillStats(proto::GetStatsResponse* out) const;
  std::vector<proto::DatanodeInfo> DatanodeReport() const;
  size_t NumLiveDatanodes() const;

 private:
  struct BlockInfo {
    InodeId inode;
    uint64_t gen_stamp = 0;
    uint64_t num_bytes = 0;
    bool committed = false;
    uint32_t expected = 0;
    std::vector<uint32_t> nodes;    // DataNodes with a good replica
    std::vector<uint32_t> corrupt;  // DataNodes with a replica reported corrupt
    std::vector<uint32_t> deleting; // DataNodes told to delete their replica, not yet confirmed
    std::vector<uint32_t> excess;   // DataNodes told to delete a replica over the target, not yet confirmed
    std::vector<uint32_t> pipeline; // the DataNodes it is written to, until committed and reported (AddBlock)
  };
  struct Node {
    proto::DatanodeId id;
    bool live = false;
    Clock::time_point last_contact;
    uint64_t capacity = 0, dfs_used = 0, remaining = 0, non_dfs_used = 0;
    uint32_t xceivers = 0, failed_volumes = 0;
    uint32_t scheduled = 0;  // blocks placed here since its last heartbeat
    // Blocks placed in the interval before: their writes may not have reached
    // the node (and reserved their space there) when its last heartbeat left.
    uint32_t scheduled_before = 0;
    std::unordered_set<uint64_t> blocks;
    std::vector<proto::Block> pending_deletes;
    std::vector<proto::BlockTransfer> pending_transfers;
    proto::AdminState admin = proto::ADMIN_NORMAL;
    std::unordered_set<uint64_t> excess;  // blocks whose replica here it was told to delete as excess
    // Blocks it held when it died while decommissioning: they must reach their
    // replication elsewhere before it counts as decommissioned.
    std::vector<uint64_t> decommission_wait;
  };
  // A block's good replicas by the admin state of their nodes.
  struct ReplicaCount {
    uint32_t in_service = 0;
    uint32_t decommissioning = 0;  // in progress or decommissioned
  };
  struct DecommissionProgress {
    uint64_t under = 0;         // blocks not yet fully replicated on in-service nodes
    uint64_t only = 0;          // of those, blocks with no in-service replica at all
    uint64_t blocked = 0;       // of those, blocks needing more replicas than there are in-service nodes
    uint32_t blocked_need = 0;  // the largest replication among the blocked ones
  };
  enum class SafeMode { kOff, kStartup, kManual };

  Node* FindNodeLocked(const std::string& uuid);
  void AddReplicaLocked(uint32_t node, const proto::Block& reported);
  void RemoveReplicaLocked(uint32_t node, uint64_t block_id);
  void InvalidateLocked(uint32_t node, const proto::Block& b);
  void MarkDeadLocked(uint32_t node);
  void OnLiveCountChangeLocked(const BlockInfo& b, size_t before);
  void CheckSafeModeLocked() const;
  static void ApplyStats(const proto::HeartbeatRequest& req, Node* n);
  uint32_t LoadLocked(const Node& n) const { return n.xceivers + n.scheduled; }
  // Room for one more block of `bytes` after the blocks already sent its way
  // (counted at the same size; the node reserves a block for each write it has).
  static bool HasRoomLocked(const Node& n, uint64_t bytes) {
    return n.remaining >= bytes * (1ull + n.scheduled + n.scheduled_before);
  }
  bool InServiceLocked(uint32_t node) const { return nodes_[node].live && nodes_[node].admin == proto::ADMIN_NORMAL; }
  size_t InServiceCountLocked() const;
  ReplicaCount CountLocked(const BlockInfo& b) const;
  // Whether a block on a decommissioning node is replicated well enough elsewhere.
  bool DecommissionSufficientLocked(uint64_t block_id) const;
  DecommissionProgress DecommissionProgressLocked(const Node& n) const;
  // Moves nodes whose blocks are all safe elsewhere from in progress to decommissioned.
  void CheckDecommissionLocked();
  Result<uint32_t> ResolveNodeLocked(const std::string& spec) const;
  proto::DatanodeInfo InfoLocked(const Node& n) const;

  const Options opts_;
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, BlockInfo> blocks_;
  std::vector<Node> nodes_;  // index = node number; never shrinks
  std::unordered_map<std::string, uint32_t> node_by_uuid_;
  std::map<uint64_t, Clock::time_point> pending_replication_;  // block → give up at
  struct PendingCopy {
    uint32_t source;
    std::vector<uint32_t> targets;
  };
  // Copies scheduled and not yet confirmed, by block: they count against their
  // source's dfs.namenode.replication.max-streams until they arrive or time out.
  std::map<uint64_t, PendingCopy> pending_targets_;
  mutable std::mt19937_64 rng_{std::random_device{}()};

  // Safe mode accounting: committed blocks, and those with at least one live replica.
  uint64_t committed_blocks_ = 0;
  uint64_t safe_blocks_ = 0;
  // Mutable: InSafeMode() const may notice that the threshold was reached.
  mutable SafeMode safe_mode_ = SafeMode::kOff;
  mutable bool threshold_reached_ = false;
  mutable Clock::time_point threshold_reached_at_;
};

}  // namespace dfs::namenode
