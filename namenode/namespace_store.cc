#include "namenode/namespace_store.h"

#include <filesystem>
#include <pthread.h>
#include <unistd.h>
#include <thread>

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/write_batch.h>

#include "namenode/key_prefix.h"

namespace dfs::namenode {

namespace {

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::OK();
  if (s.IsNotFound()) return Status::NotFound(what + ": not found");
  return Status::IOError(fmt::format("namespace database: {}: {}", what, s.ToString()));
}

}  // namespace

Result<std::unique_ptr<NamespaceStore>> NamespaceStore::Open(const std::string& dir, size_t wal_spare_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Status::IOError(fmt::format("cannot create the NameNode metadata directory {}: {}", dir, ec.message()));
  }
  rocksdb::Options opts;
  opts.create_if_missing = true;
  opts.IncreaseParallelism(2);
  opts.max_background_jobs = 2;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(128 << 20);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  opts.write_buffer_size = 64 << 20;
  // WALs written over synced zeros need no journal commit per sync
  // (wal_file_system.h).
  WalFileSystem wal_fs;
  if (wal_spare_bytes > 0) {
    wal_fs = NewPrezeroedWalFileSystem(dir, wal_spare_bytes);
    opts.env = wal_fs.env.get();
  } else {
    ::unlink((dir + "/" + kSpareWalName).c_str());  // turned off: give the space back
  }
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(opts, dir, &db);
  if (!s.ok()) {
    std::string hint = s.IsIOError() && s.ToString().find("lock") != std::string::npos
                           ? " (is another dfs-namenode already using this directory?)"
                           : "";
    return Status::IOError(fmt::format("cannot open the namespace database in {}: {}{}", dir, s.ToString(), hint));
  }
  auto store = std::unique_ptr<NamespaceStore>(new NamespaceStore());
  store->wal_fs_ = std::move(wal_fs);
  store->db_.reset(db);
  store->replier_ = std::thread([p = store.get()] {
    pthread_setname_np(pthread_self(), "nn-wal-reply");
    p->ReplyLoop();
  });
  store->syncer_ = std::thread([p = store.get()] {
    pthread_setname_np(pthread_self(), "nn-wal-sync");
    p->SyncLoop();
  });
  return store;
}

NamespaceStore::~NamespaceStore() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;  // the syncer finishes what is wanted, then exits
    syncer_cv_.notify_one();
  }
  if (syncer_.joinable()) syncer_.join();
  {
    std::lock_guard<std::mutex> l(mu_);
    replier_stopping_ = true;  // the replier runs what the syncer handed it, then exits
    replier_cv_.notify_one();
  }
  if (replier_.joinable()) replier_.join();
  if (db_) {
    (void)db_->SyncWAL();
    (void)db_->Close();
  }
}

Result<proto::InodeRecord> NamespaceStore::GetDentry(uint64_t parent, std::string_view name) {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), DentryKey(parent, name), &v);
  if (s.IsNotFound()) return Status::NotFound(std::string(name));
  DFS_RETURN_IF_ERROR(FromRocks(s, "read entry"));
  proto::InodeRecord rec;
  if (!rec.ParseFromString(v)) {
    return Status::Corruption(fmt::format("namespace database: the record of '{}' in directory #{} does not parse",
                                          name, parent));
  }
  return rec;
}

Status NamespaceStore::GetParent(uint64_t inode, uint64_t* parent, std::string* name) {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), ParentKey(inode), &v);
  if (s.IsNotFound()) return Status::NotFound(fmt::format("inode {} does not exist", inode));
  DFS_RETURN_IF_ERROR(FromRocks(s, "read parent index"));
  if (v.size() < 8) return Status::Corruption(fmt::format("namespace database: bad parent index of inode {}", inode));
  *parent = DecodeBE64(v);
  name->assign(v, 8);
  return Status::OK();
}

Result<proto::BlockRecord> NamespaceStore::GetBlock(uint64_t block_id) {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), BlockKey(block_id), &v);
  if (s.IsNotFound()) return Status::NotFound(fmt::format("block {} does not exist", block_id));
  DFS_RETURN_IF_ERROR(FromRocks(s, "read block"));
  proto::BlockRecord rec;
  if (!rec.ParseFromString(v)) return Status::Corruption(fmt::format("namespace database: block {} does not parse", block_id));
  return rec;
}

Result<std::string> NamespaceStore::GetMeta(std::string_view name) {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), MetaKey(name), &v);
  if (s.IsNotFound()) return Status::NotFound(std::string(name));
  DFS_RETURN_IF_ERROR(FromRocks(s, "read meta"));
  return v;
}

Status NamespaceStore::ListDentries(uint64_t parent, std::string_view start_after,
                                    const std::function<bool(std::string_view, const proto::InodeRecord&)>& fn) {
  const std::string prefix = DentryPrefix(parent);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  std::string start = DentryKey(parent, start_after);
  for (it->Seek(start); it->Valid(); it->Next()) {
    rocksdb::Slice k = it->key();
    if (!k.starts_with(prefix)) break;
    std::string_view name(k.data() + prefix.size(), k.size() - prefix.size());
    if (!start_after.empty() && name == start_after) continue;
    if (parent == 0 && name.empty()) continue;  // the root's own record
    proto::InodeRecord rec;
    if (!rec.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status::Corruption(fmt::format("namespace database: entry '{}' of directory #{} does not parse", name, parent));
    }
    if (!fn(name, rec)) break;
  }
  return FromRocks(it->status(), "list directory");
}

Status NamespaceStore::ForEachDentry(
    const std::function<void(uint64_t, std::string_view, const proto::InodeRecord&)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  const std::string prefix(1, kDentryPrefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (it->key().size() < 9) continue;
    proto::InodeRecord rec;
    if (!rec.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status::Corruption("namespace database: a directory entry does not parse");
    }
    fn(DecodeBE64(std::string_view(it->key().data() + 1, 8)),
       std::string_view(it->key().data() + 9, it->key().size() - 9), rec);
  }
  return FromRocks(it->status(), "scan entries");
}

Status NamespaceStore::ForEachBlock(const std::function<void(uint64_t, const proto::BlockRecord&)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  const std::string prefix(1, kBlockPrefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (it->key().size() != 9) continue;
    proto::BlockRecord rec;
    if (!rec.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status::Corruption("namespace database: a block record does not parse");
    }
    fn(DecodeBE64(std::string_view(it->key().data() + 1, 8)), rec);
  }
  return FromRocks(it->status(), "scan blocks");
}

Status NamespaceStore::PutJobRecord(const std::string& job_id, const std::string& record) {
  return FromRocks(db_->Put(rocksdb::WriteOptions(), std::string(1, kJobPrefix) + job_id, record), "store job record");
}

Status NamespaceStore::DeleteJobRecord(const std::string& job_id) {
  return FromRocks(db_->Delete(rocksdb::WriteOptions(), std::string(1, kJobPrefix) + job_id), "delete job record");
}

Status NamespaceStore::ForEachJobRecord(
    const std::function<void(std::string_view job_id, const std::string& record)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  const std::string prefix(1, kJobPrefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    fn(std::string_view(it->key().data() + 1, it->key().size() - 1), it->value().ToString());
  }
  return FromRocks(it->status(), "scan job records");
}

Result<uint64_t> NamespaceStore::Apply(rocksdb::WriteBatch* batch) {
  rocksdb::WriteOptions wo;
  wo.sync = false;  // WaitDurable() syncs for a whole group of batches
  DFS_RETURN_IF_ERROR(FromRocks(db_->Write(wo, batch), "write"));
  // Callers apply one at a time (under the namespace lock), so tickets follow
  // the order of the writes.
  return applied_.fetch_add(1) + 1;
}

Status NamespaceStore::WaitDurable(uint64_t ticket) {
  std::unique_lock<std::mutex> l(mu_);
  WantLocked(ticket);
  cv_.wait(l, [&] { return durable_ >= ticket || !sync_error_.ok(); });
  return durable_ >= ticket ? Status::OK() : sync_error_;
}

void NamespaceStore::OnDurable(uint64_t ticket, std::function<void(Status)> fn) {
  std::unique_lock<std::mutex> l(mu_);
  if (durable_ >= ticket || !sync_error_.ok()) {
    const Status st = durable_ >= ticket ? Status::OK() : sync_error_;
    l.unlock();
    fn(st);
    return;
  }
  callbacks_.push_back(Callback{ticket, std::move(fn)});
  WantLocked(ticket);
}

void NamespaceStore::WantLocked(uint64_t ticket) {
  if (ticket <= wanted_) return;  // the syncer already has this one (or a later one) to do
  wanted_ = ticket;
  syncer_cv_.notify_one();
}

// The syncer thread. Each round syncs every batch applied so far, wakes the
// synchronous waiters and the replier (which runs the callbacks now durable), then
// starts the next round at once if anything was applied meanwhile. Handlers
// never sync themselves: they apply their batch, leave the reply and go back
// to reading requests, so the next group gathers while this one syncs.
//
// There is no pause to gather a bigger group: the disk stays busy, and a
// batch waits at most for the sync under way and then its own. (A pause for
// the clients just answered costs the disk's idle time plus the pause, and
// measured slower: the clients come back only after their replies are sent.)
void NamespaceStore::SyncLoop() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    syncer_cv_.wait(l, [&] { return stopping_ || (wanted_ > durable_ && sync_error_.ok()); });
    if (wanted_ <= durable_ || !sync_error_.ok()) return;  // stopping, nothing left to sync
    const uint64_t target = applied_;
    l.unlock();
    const auto t0 = std::chrono::steady_clock::now();
    rocksdb::Status s = db_->SyncWAL();
    const auto took = std::chrono::steady_clock::now() - t0;
    l.lock();
    ++stats_.syncs;
    stats_.sync_micros += std::chrono::duration_cast<std::chrono::microseconds>(took).count();
    if (!s.ok()) {
      sync_error_ = Status::IOError("namespace database: syncing the write-ahead log failed: " + s.ToString() +
                                    "; restart the NameNode after checking its disk");
    } else {
      durable_ = std::max(durable_, target);
    }
    cv_.notify_all();
    if (!callbacks_.empty()) replier_cv_.notify_one();
  }
}

// The replier thread: runs the callbacks of durable batches (they send the
// replies, each a loopback send that also wakes its client: tens of
// microseconds) while the syncer already syncs the next group.
void NamespaceStore::ReplyLoop() {
  std::unique_lock<std::mutex> l(mu_);
  std::vector<Callback> batch;
  for (;;) {
    // Moves the callbacks whose batch is durable (all of them once a sync
    // failed) into `batch`, keeping the others in order.
    auto take_ready = [&] {
      size_t kept = 0;
      for (size_t i = 0; i < callbacks_.size(); ++i) {
        if (callbacks_[i].ticket <= durable_ || !sync_error_.ok()) {
          batch.push_back(std::move(callbacks_[i]));
        } else if (kept++ != i) {
          callbacks_[kept - 1] = std::move(callbacks_[i]);
        }
      }
      callbacks_.resize(kept);
      return !batch.empty();
    };
    replier_cv_.wait(l, [&] { return take_ready() || replier_stopping_; });
    if (batch.empty()) return;  // stopping, and every callback has run
    const uint64_t durable = durable_;
    const Status failed = sync_error_;
    l.unlock();
    for (auto& cb : batch) cb.fn(cb.ticket <= durable ? Status::OK() : failed);
    batch.clear();
    l.lock();
  }
}

NamespaceStore::SyncStats NamespaceStore::sync_stats() const {
  std::lock_guard<std::mutex> l(mu_);
  SyncStats out = stats_;
  out.transactions = durable_;  // tickets count from 1 at open, one per batch
  return out;
}

void PutDentry(rocksdb::WriteBatch* b, uint64_t parent, std::string_view name, const proto::InodeRecord& rec) {
  (void)b->Put(DentryKey(parent, name), rec.SerializeAsString());
}
void DeleteDentry(rocksdb::WriteBatch* b, uint64_t parent, std::string_view name) {
  (void)b->Delete(DentryKey(parent, name));
}
void PutParent(rocksdb::WriteBatch* b, uint64_t inode, uint64_t parent, std::string_view name) {
  (void)b->Put(ParentKey(inode), ParentValue(parent, name));
}
void DeleteParent(rocksdb::WriteBatch* b, uint64_t inode) { (void)b->Delete(ParentKey(inode)); }
void PutBlock(rocksdb::WriteBatch* b, uint64_t block_id, const proto::BlockRecord& rec) {
  (void)b->Put(BlockKey(block_id), rec.SerializeAsString());
}
void DeleteBlock(rocksdb::WriteBatch* b, uint64_t block_id) { (void)b->Delete(BlockKey(block_id)); }
void PutMeta(rocksdb::WriteBatch* b, std::string_view name, std::string_view value) {
  (void)b->Put(MetaKey(name), rocksdb::Slice(value.data(), value.size()));
}

}  // namespace dfs::namenode
