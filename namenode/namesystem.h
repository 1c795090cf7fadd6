// Namesystem: the namespace (directories, files, their blocks) and every
// operation on it, on top of the NamespaceStore (durable) and the BlockManager
// (soft replica state).
//
// Concurrency: one reader/writer lock guards the namespace. Reads take it
// shared; a mutation takes it exclusively only to validate and Apply() its
// WriteBatch, then waits for the group commit *after* releasing it, so
// concurrent clients share fsyncs instead of queueing behind each other.
// Every mutation is one atomic WriteBatch: nothing is ever half-applied.
//
// Thread-safety: all public methods are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "namenode/block_manager.h"
#include "namenode/lease_manager.h"
#include "namenode/namespace_store.h"
#include "proto/namenode.pb.h"

namespace rocksdb {
class WriteBatch;
}

namespace dfs::namenode {

// Who is calling: from the RPC header and the connection.
struct Caller {
  std::string user;
  std::string client_name;
  std::string ip;
};

class Namesystem {
 public:
  struct Options {
    uint32_t default_replication = 3;
    uint64_t default_block_size = 128ull << 20;
    uint32_t max_replication = 512;
    uint32_t min_replication = 1;
    size_t max_component_length = 255;
    uint64_t max_directory_items = 1 << 20;
    uint32_t ls_limit = 1000;
    std::string supergroup = "supergroup";
    std::chrono::milliseconds lease_soft_limit{60'000};
    std::chrono::milliseconds lease_hard_limit{300'000};
    std::chrono::milliseconds socket_timeout{60'000};  // talking to DataNodes during lease recovery
    uint64_t wal_spare_bytes = kDefaultWalSpareBytes;  // dfs.namenode.wal.spare-size
  };

  // Opens the namespace under `dir`, formatting it (root, /tmp, /user and a new
  // cluster id) on first start, and loads every block into `blocks`.
  static Result<std::unique_ptr<Namesystem>> Open(const std::string& dir, const Options& options,
                                                  BlockManager* blocks);
  ~Namesystem();

  const std::string& cluster_id() const { return cluster_id_; }

  // Called once with the outcome, after the mutation is durable; possibly
  // from another thread (the one that ran the group commit).
  using Done = std::function<void(Status)>;

  Status Mkdirs(const Caller& c, const proto::MkdirsRequest& req, proto::MkdirsResponse* resp);
  // The calls that make a file are asynchronous: they return as soon as the
  // change is applied, and `done` runs when it is durable, so the RPC layer
  // need not park a thread per waiting call. *resp must live until then.
  void CreateAsync(const Caller& c, const proto::CreateRequest& req, proto::CreateResponse* resp, Done done);
  void CompleteAsync(const Caller& c, const proto::CompleteRequest& req, proto::CompleteResponse* resp, Done done);
  // Reopens a closed file for appending under the caller's lease; the bytes
  // appended go into new blocks (see AppendRequest).
  void AppendAsync(const Caller& c, const proto::AppendRequest& req, proto::AppendResponse* resp, Done done);
  Status AddBlock(const Caller& c, const proto::AddBlockRequest& req, proto::AddBlockResponse* resp);
  Status AbandonBlock(const Caller& c, const proto::AbandonBlockRequest& req);
  Status GetBlockLocations(const Caller& c, const proto::GetBlockLocationsRequest& req,
                           proto::GetBlockLocationsResponse* resp);
  Status GetFileInfo(const proto::GetFileInfoRequest& req, proto::GetFileInfoResponse* resp);
  Status GetListing(const proto::GetListingRequest& req, proto::GetListingResponse* resp);
  Status Delete(const Caller& c, const proto::DeleteRequest& req);
  Status Rename(const Caller& c, const proto::RenameRequest& req);
  Status SetReplication(const Caller& c, const proto::SetReplicationRequest& req);
  Status SetPermission(const Caller& c, const proto::SetPermissionRequest& req);
  Status SetOwner(const Caller& c, const proto::SetOwnerRequest& req);
  Status SetTimes(const Caller& c, const proto::SetTimesRequest& req);
  Status RenewLease(const Caller& c);
  // Pipeline recovery: a new generation stamp for the file's last block, recorded durably.
  Status UpdateBlockForPipeline(const Caller& c, const proto::UpdateBlockForPipelineRequest& req,
                                proto::UpdateBlockForPipelineResponse* resp);
  // Lease recovery: closes every file whose writer has not renewed its lease
  // within the hard limit, at the longest length its surviving replicas agree
  // on. Talks to DataNodes; call from a background thread. Returns the number
  // of files closed.
  size_t RecoverExpiredLeases();
  Status GetContentSummary(const proto::GetContentSummaryRequest& req, proto::GetContentSummaryResponse* resp);
  void FillStats(proto::GetStatsResponse* resp) const;

  // The job service's history (see NamespaceStore::PutJobRecord).
  NamespaceStore* store() { return store_.get(); }

 private:
  // One resolved path component: where its entry lives and its record.
  struct Entry {
    uint64_t parent = 0;
    std::string name;
    proto::InodeRecord rec;
  };
  using Chain = std::vector<Entry>;  // chain[0] is the root

  Namesystem(std::unique_ptr<NamespaceStore> store, const Options& options, BlockManager* blocks);
  Status Format();
  Status Load();

  // Resolves as many leading components as exist (chain->size() - 1 of them).
  // NotADirectory when an existing non-final component is a file.
  Status Walk(const std::string& path, const std::vector<std::string>& comps, Chain* chain) const;
  // Resolves the whole path or fails with NotFound naming it.
  Status Resolve(const std::string& path, Chain* chain) const;
  // Finds a file by inode id (path-independent, so a rename does not break a
  // writer), checking that `caller` holds its lease.
  Status ResolveFileForWrite(const Caller& c, uint64_t inode_id, const std::string& path, Entry* out) const;
  Status ApplyCreate(const Caller& c, const proto::CreateRequest& req, proto::CreateResponse* resp,
                     uint64_t* ticket, std::vector<proto::Block>* replaced);
  Status ApplyComplete(const Caller& c, const proto::CompleteRequest& req, proto::CompleteResponse* resp,
                       uint64_t* ticket);
  Status ApplyAppend(const Caller& c, const proto::AppendRequest& req, proto::AppendResponse* resp, uint64_t* ticket);
  // The last block the file's current writer added (0: none yet; blocks from
  // before an append are not the writer's).
  static uint64_t WritersLastBlock(const proto::InodeRecord& rec);
  // Commits the length of the file's last block, which the writer names in
  // `given` (id 0: the file has no block), into rec and batch.
  Status CommitLastBlock(const std::string& path, const proto::Block& given, proto::InodeRecord* rec,
                         rocksdb::WriteBatch* batch);
  Status CheckPath(const std::string& path) const;
  Status CheckWritable() const;
  // Creates the directories chain is missing up to comps[upto-1], appending
  // them to chain. Writes into batch.
  Status CreateMissingDirs(const Caller& c, const std::vector<std::string>& comps, size_t upto, uint32_t mode,
                           Chain* chain, rocksdb::WriteBatch* batch);
  // Adds a child to the directory at chain.back() (count and mtime).
  Status TouchParentForAdd(Chain* chain, rocksdb::WriteBatch* batch) const;
  // Deletes the subtree at `e` into batch; collects the blocks and lease holders to release.
  Status DeleteSubtree(const Entry& e, rocksdb::WriteBatch* batch, std::vector<proto::Block>* blocks,
                       std::vector<std::pair<std::string, uint64_t>>* leases, uint64_t* files, uint64_t* dirs) const;
  // Applies `change` to the record at `path` in one batch; *updated gets the result.
  Status UpdateRecord(const std::string& path, const std::function<Status(proto::InodeRecord*)>& change,
                      proto::InodeRecord* updated = nullptr);
  // The file with this inode id (path-independent).
  Status FindFile(uint64_t inode_id, Entry* out) const;
  // Lease recovery of one file; OK when it is closed (or gone), else why not yet.
  Status RecoverFile(const std::string& holder, uint64_t inode_id);
  void ToFileStatus(std::string_view name, const proto::InodeRecord& rec, proto::FileStatus* out) const;
  uint64_t NewInodeId(rocksdb::WriteBatch* batch);
  Status Commit(rocksdb::WriteBatch* batch, uint64_t* ticket);

  std::unique_ptr<NamespaceStore> store_;
  const Options opts_;
  BlockManager* blocks_;
  LeaseManager leases_;
  std::string cluster_id_;

  mutable std::shared_mutex mu_;  // the namespace lock
  uint64_t next_inode_id_ = 0;    // guarded by mu_ (exclusive)
  uint64_t next_block_id_ = 0;
  uint64_t next_gen_stamp_ = 0;
  std::atomic<uint64_t> num_files_{0};
  std::atomic<uint64_t> num_dirs_{0};
};

int64_t NowMs();

// Holds the lease of a file while the NameNode recovers it.
inline constexpr char kLeaseRecoveryHolder[] = "dfs-namenode-lease-recovery";

}  // namespace dfs::namenode
