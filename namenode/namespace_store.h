// NamespaceStore: the NameNode's durable state in RocksDB (layout in
// key_prefix.h) with group commit.
//
// A mutation is applied with Apply(), which writes its WriteBatch to the WAL
// and memtable without syncing and returns a ticket; the caller then releases
// its namespace lock and, before acknowledging the client, either waits
// (WaitDurable) or leaves a callback that sends the reply (OnDurable). One
// thread of the store's own, the syncer, fsyncs the WAL for every batch
// applied so far, over and over while anything waits: N concurrent clients
// cost about one fsync, not N fsyncs serialised behind the namespace lock, and
// the handler threads never block on the disk, so the next group is applied
// while this one syncs. A second thread, the replier, runs the callbacks of
// each durable group (sending the replies) while the syncer already syncs
// the next one, so the disk is not idle while replies go out.
//
// Thread-safety: all methods are thread-safe. Apply() callers serialise
// themselves (under the namespace lock) so that batches are validated against
// the state they are applied to.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"
#include "namenode/wal_file_system.h"
#include "proto/fsimage.pb.h"

namespace rocksdb {
class DB;
class WriteBatch;
}  // namespace rocksdb

namespace dfs::namenode {

class NamespaceStore {
 public:
  // Opens (creating if needed) the database under `dir`. WALs are written
  // over a spare of `wal_spare_bytes` zeros (wal_file_system.h); 0: appended.
  static Result<std::unique_ptr<NamespaceStore>> Open(const std::string& dir, size_t wal_spare_bytes);
  ~NamespaceStore();

  // Point reads. NotFound when absent.
  Result<proto::InodeRecord> GetDentry(uint64_t parent, std::string_view name);
  // The (parent, name) of an inode, from the reverse index.
  Status GetParent(uint64_t inode, uint64_t* parent, std::string* name);
  Result<proto::BlockRecord> GetBlock(uint64_t block_id);
  Result<std::string> GetMeta(std::string_view name);

  // Iterates the entries of directory `parent` with names > start_after, in
  // name order; fn returns false to stop.
  Status ListDentries(uint64_t parent, std::string_view start_after,
                      const std::function<bool(std::string_view name, const proto::InodeRecord&)>& fn);
  // Iterates every directory entry (start-up load).
  Status ForEachDentry(const std::function<void(uint64_t parent, std::string_view name, const proto::InodeRecord&)>& fn);
  // Iterates every block record.
  Status ForEachBlock(const std::function<void(uint64_t id, const proto::BlockRecord&)>& fn);

  // Writes without syncing; the result is visible to readers at once.
  Result<uint64_t> Apply(rocksdb::WriteBatch* batch);
  // Returns once every batch up to `ticket` is fsynced in the WAL.
  Status WaitDurable(uint64_t ticket);
  // Calls fn once the batch is durable (or the sync failed): from the replier
  // thread, or from this one when the batch is durable already. fn must not
  // call back into the store while holding locks the store's callers take,
  // and should be quick (sending a reply): later replies wait for it.
  void OnDurable(uint64_t ticket, std::function<void(Status)> fn);

  // The job service's history of finished jobs ('J' keys): written without a
  // sync of their own (the next namespace sync carries them), scanned at start.
  Status PutJobRecord(const std::string& job_id, const std::string& record);
  Status DeleteJobRecord(const std::string& job_id);
  Status ForEachJobRecord(const std::function<void(std::string_view job_id, const std::string& record)>& fn);

  // For statistics (dfs admin report, benchmarks), since the store opened:
  // how many WAL syncs ran, the time they took, and the mutations they made
  // durable (group commit shares one sync among all it finds waiting).
  struct SyncStats {
    uint64_t syncs = 0;
    uint64_t sync_micros = 0;
    uint64_t transactions = 0;
  };
  SyncStats sync_stats() const;

 private:
  NamespaceStore() = default;
  void WantLocked(uint64_t ticket);  // asks the syncer to make `ticket` durable
  void SyncLoop();                    // the syncer thread
  void ReplyLoop();                   // the replier thread

  struct Callback {
    uint64_t ticket;
    std::function<void(Status)> fn;
  };

  WalFileSystem wal_fs_;  // outlives db_, which writes through it
  std::unique_ptr<rocksdb::DB> db_;
  mutable std::mutex mu_;
  std::condition_variable cv_;         // durable_ moved, or a sync failed
  std::condition_variable syncer_cv_;  // wanted_ moved, or stopping_
  std::atomic<uint64_t> applied_{0};  // tickets handed out
  uint64_t wanted_ = 0;    // the highest ticket someone waits for
  uint64_t durable_ = 0;   // every ticket <= durable_ is synced
  bool stopping_ = false;
  Status sync_error_;      // sticky: a failed fsync leaves the WAL in doubt
  SyncStats stats_;        // syncs and their time; transactions is durable_
  std::vector<Callback> callbacks_;  // OnDurable calls not yet run, in the order they came
  std::condition_variable replier_cv_;  // durable_ moved with callbacks waiting, or replier_stopping_
  bool replier_stopping_ = false;
  std::thread replier_;
  std::thread syncer_;  // last: starts once everything above exists
};

// Helpers for building batches.
void PutDentry(rocksdb::WriteBatch* b, uint64_t parent, std::string_view name, const proto::InodeRecord& rec);
void DeleteDentry(rocksdb::WriteBatch* b, uint64_t parent, std::string_view name);
void PutParent(rocksdb::WriteBatch* b, uint64_t inode, uint64_t parent, std::string_view name);
void DeleteParent(rocksdb::WriteBatch* b, uint64_t inode);
void PutBlock(rocksdb::WriteBatch* b, uint64_t block_id, const proto::BlockRecord& rec);
void DeleteBlock(rocksdb::WriteBatch* b, uint64_t block_id);
void PutMeta(rocksdb::WriteBatch* b, std::string_view name, std::string_view value);

}  // namespace dfs::namenode
