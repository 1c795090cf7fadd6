// Namesystem: opening, loading, path resolution and the read-only operations.
// Mutations are in namesystem_write.cc, block operations in namesystem_blocks.cc.
#include "namenode/namesystem.h"

#include <chrono>
#include <random>
#include <unordered_map>

#include <fmt/format.h>
#include <rocksdb/write_batch.h>

#include "common/logging.h"
#include "common/path.h"
#include "namenode/key_prefix.h"

namespace dfs::namenode {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

constexpr uint64_t kFirstBlockId = 1073741825;  // Hadoop's first block id, so names look familiar
constexpr uint64_t kFirstGenStamp = 1001;

std::string NewClusterId() {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(NowMs()));
  return fmt::format("CID-{:016x}{:016x}", rng(), rng());
}


}  // namespace

Namesystem::Namesystem(std::unique_ptr<NamespaceStore> store, const Options& options, BlockManager* blocks)
    : store_(std::move(store)), opts_(options), blocks_(blocks) {}

Namesystem::~Namesystem() = default;

Result<std::unique_ptr<Namesystem>> Namesystem::Open(const std::string& dir, const Options& options,
                                                     BlockManager* blocks) {
  DFS_ASSIGN_OR_RETURN(auto store, NamespaceStore::Open(dir, options.wal_spare_bytes));
  std::unique_ptr<Namesystem> ns(new Namesystem(std::move(store), options, blocks));
  auto cid = ns->store_->GetMeta(kMetaClusterId);
  if (cid.ok()) {
    ns->cluster_id_ = *cid;
  } else if (cid.status().IsNotFound()) {
    DFS_RETURN_IF_ERROR(ns->Format());
  } else {
    return cid.status();
  }
  DFS_RETURN_IF_ERROR(ns->Load());
  return ns;
}

Status Namesystem::Format() {
  cluster_id_ = NewClusterId();
  const int64_t now = NowMs();
  rocksdb::WriteBatch b;
  auto dir = [&](uint64_t id, uint32_t mode, uint64_t children) {
    proto::InodeRecord r;
    r.set_id(id);
    r.set_is_dir(true);
    r.set_mode(mode);
    r.set_owner(std::getenv("USER") ? std::getenv("USER") : "dfs");
    r.set_group(opts_.supergroup);
    r.set_mtime_ms(now);
    r.set_atime_ms(now);
    r.set_children(children);
    return r;
  };
  // The root, plus /tmp (sticky, world-writable) and /user, where home directories go.
  PutDentry(&b, 0, "", dir(kRootInodeId.value(), 0755, 2));
  PutParent(&b, kRootInodeId.value(), 0, "");
  PutDentry(&b, kRootInodeId.value(), "tmp", dir(2, 01777, 0));
  PutParent(&b, 2, kRootInodeId.value(), "tmp");
  PutDentry(&b, kRootInodeId.value(), "user", dir(3, 0755, 0));
  PutParent(&b, 3, kRootInodeId.value(), "user");
  PutMeta(&b, kMetaNextInodeId, EncodeBE64(4));
  PutMeta(&b, kMetaNextBlockId, EncodeBE64(kFirstBlockId));
  PutMeta(&b, kMetaNextGenStamp, EncodeBE64(kFirstGenStamp));
  PutMeta(&b, kMetaLayoutVersion, EncodeBE64(kLayoutVersion));
  PutMeta(&b, kMetaClusterId, cluster_id_);  // last: its presence means "formatted"
  DFS_ASSIGN_OR_RETURN(uint64_t ticket, store_->Apply(&b));
  DFS_RETURN_IF_ERROR(store_->WaitDurable(ticket));
  Log("nn")->info("Formatted a new namespace with cluster id {}", cluster_id_);
  return Status::OK();
}

Status Namesystem::Load() {
  auto counter = [&](std::string_view name, uint64_t* out) -> Status {
    DFS_ASSIGN_OR_RETURN(std::string v, store_->GetMeta(name));
    if (v.size() != 8) return Status::Corruption(fmt::format("namespace database: bad counter {}", name));
    *out = DecodeBE64(v);
    return Status::OK();
  };
  DFS_RETURN_IF_ERROR(counter(kMetaNextInodeId, &next_inode_id_));
  DFS_RETURN_IF_ERROR(counter(kMetaNextBlockId, &next_block_id_));
  DFS_RETURN_IF_ERROR(counter(kMetaNextGenStamp, &next_gen_stamp_));
  uint64_t layout = 0;
  DFS_RETURN_IF_ERROR(counter(kMetaLayoutVersion, &layout));
  if (layout != kLayoutVersion) {
    return Status::NotSupported(fmt::format("the namespace database has layout version {}, but this dfs-namenode "
                                            "reads version {}; run the matching dfs version",
                                            layout, kLayoutVersion));
  }
  std::unordered_map<uint64_t, uint32_t> replication;
  uint64_t files = 0, dirs = 0, under_construction = 0;
  DFS_RETURN_IF_ERROR(store_->ForEachDentry([&](uint64_t, std::string_view, const proto::InodeRecord& r) {
    if (r.is_dir()) {
      ++dirs;
      return;
    }
    ++files;
    replication[r.id()] = r.replication();
    if (r.under_construction()) {
      ++under_construction;
      leases_.Add(r.lease_holder(), r.id());
    }
  }));
  uint64_t nblocks = 0;
  DFS_RETURN_IF_ERROR(store_->ForEachBlock([&](uint64_t id, const proto::BlockRecord& r) {
    ++nblocks;
    blocks_->LoadBlock(BlockId(id), InodeId(r.inode_id()), r.gen_stamp(), r.num_bytes(), r.committed(),
                       replication.count(r.inode_id()) ? replication[r.inode_id()] : opts_.default_replication);
  }));
  blocks_->FinishLoading();
  num_files_ = files;
  num_dirs_ = dirs;
  Log("nn")->info("Loaded namespace {}: {} directories, {} files ({} open for writing), {} blocks", cluster_id_, dirs,
                  files, under_construction, nblocks);
  return Status::OK();
}

Status Namesystem::CheckPath(const std::string& path) const {
  return ValidatePath(path, opts_.max_component_length);
}

Status Namesystem::CheckWritable() const {
  if (blocks_->InSafeMode()) {
    return Status::SafeMode("the NameNode is in safe mode, so the file system is read-only. " +
                            blocks_->SafeModeStatus());
  }
  return Status::OK();
}

Status Namesystem::Walk(const std::string& path, const std::vector<std::string>& comps, Chain* chain) const {
  chain->clear();
  DFS_ASSIGN_OR_RETURN(auto root, store_->GetDentry(0, ""));
  chain->push_back(Entry{0, "", std::move(root)});
  for (const auto& c : comps) {
    const Entry& cur = chain->back();
    if (!cur.rec.is_dir()) {
      return Status::NotADirectory(fmt::format("'{}' is a file, not a directory (in path {})",
                                               chain->size() == 1 ? "/" : cur.name, path));
    }
    auto r = store_->GetDentry(cur.rec.id(), c);
    if (!r.ok()) {
      if (r.status().IsNotFound()) return Status::OK();
      return r.status();
    }
    chain->push_back(Entry{cur.rec.id(), c, std::move(r).value()});
  }
  return Status::OK();
}

Status Namesystem::Resolve(const std::string& path, Chain* chain) const {
  DFS_RETURN_IF_ERROR(CheckPath(path));
  auto comps = SplitPath(path);
  DFS_RETURN_IF_ERROR(Walk(path, comps, chain));
  if (chain->size() != comps.size() + 1) return Status::NotFound(fmt::format("{}: No such file or directory", path));
  return Status::OK();
}

void Namesystem::ToFileStatus(std::string_view name, const proto::InodeRecord& r, proto::FileStatus* out) const {
  out->set_name(std::string(name));
  out->set_inode_id(r.id());
  out->set_is_dir(r.is_dir());
  out->set_length(r.length());
  out->set_replication(r.replication());
  out->set_block_size(r.block_size());
  out->set_mode(r.mode());
  out->set_owner(r.owner());
  out->set_group(r.group());
  out->set_mtime_ms(r.mtime_ms());
  out->set_atime_ms(r.atime_ms());
  out->set_under_construction(r.under_construction());
  out->set_children(r.children());
}

Status Namesystem::GetFileInfo(const proto::GetFileInfoRequest& req, proto::GetFileInfoResponse* resp) {
  std::shared_lock l(mu_);
  Chain chain;
  DFS_RETURN_IF_ERROR(Resolve(req.path(), &chain));
  ToFileStatus(chain.back().name, chain.back().rec, resp->mutable_status());
  return Status::OK();
}

Status Namesystem::GetListing(const proto::GetListingRequest& req, proto::GetListingResponse* resp) {
  std::shared_lock l(mu_);
  Chain chain;
  DFS_RETURN_IF_ERROR(Resolve(req.path(), &chain));
  const Entry& e = chain.back();
  ToFileStatus(e.name, e.rec, resp->mutable_status());
  if (!e.rec.is_dir()) {
    ToFileStatus(e.name, e.rec, resp->add_entries());
    return Status::OK();
  }
  const uint32_t limit = req.limit() ? std::min(req.limit(), opts_.ls_limit * 10) : opts_.ls_limit;
  return store_->ListDentries(e.rec.id(), req.start_after(), [&](std::string_view name, const proto::InodeRecord& r) {
    if (static_cast<uint32_t>(resp->entries_size()) >= limit) {
      resp->set_has_more(true);
      return false;
    }
    ToFileStatus(name, r, resp->add_entries());
    return true;
  });
}

Status Namesystem::GetContentSummary(const proto::GetContentSummaryRequest& req,
                                     proto::GetContentSummaryResponse* resp) {
  std::shared_lock l(mu_);
  Chain chain;
  DFS_RETURN_IF_ERROR(Resolve(req.path(), &chain));
  uint64_t length = 0, files = 0, dirs = 0, space = 0;
  std::vector<proto::InodeRecord> stack{chain.back().rec};
  while (!stack.empty()) {
    proto::InodeRecord r = std::move(stack.back());
    stack.pop_back();
    if (!r.is_dir()) {
      ++files;
      length += r.length();
      space += r.length() * r.replication();
      continue;
    }
    ++dirs;
    DFS_RETURN_IF_ERROR(store_->ListDentries(r.id(), "", [&](std::string_view, const proto::InodeRecord& child) {
      stack.push_back(child);
      return true;
    }));
  }
  resp->set_length(length);
  resp->set_file_count(files);
  resp->set_directory_count(dirs);
  resp->set_space_consumed(space);
  return Status::OK();
}

Status Namesystem::RenewLease(const Caller& c) {
  leases_.Renew(c.client_name);
  return Status::OK();
}

void Namesystem::FillStats(proto::GetStatsResponse* resp) const {
  resp->set_cluster_id(cluster_id_);
  resp->set_files(num_files_);
  resp->set_directories(num_dirs_);
  blocks_->FillStats(resp);
  resp->set_safe_mode(blocks_->InSafeMode());
  resp->set_safe_mode_status(blocks_->SafeModeStatus());
  const NamespaceStore::SyncStats js = store_->sync_stats();
  resp->set_journal_syncs(js.syncs);
  resp->set_journal_sync_micros(js.sync_micros);
  resp->set_journal_transactions(js.transactions);
}

uint64_t Namesystem::NewInodeId(rocksdb::WriteBatch* batch) {
  uint64_t id = next_inode_id_++;
  PutMeta(batch, kMetaNextInodeId, EncodeBE64(next_inode_id_));
  return id;
}

Status Namesystem::Commit(rocksdb::WriteBatch* batch, uint64_t* ticket) {
  auto r = store_->Apply(batch);
  if (!r.ok()) return r.status();
  *ticket = *r;
  return Status::OK();
}

}  // namespace dfs::namenode
