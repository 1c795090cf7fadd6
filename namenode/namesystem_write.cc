// Namesystem mutations of the directory tree: mkdirs, create, delete, rename
// and attribute changes. Each validates under the exclusive namespace lock,
// applies one WriteBatch, releases the lock and then waits for the group commit.
#include <fmt/format.h>
#include <rocksdb/write_batch.h>

#include "common/logging.h"
#include "common/path.h"
#include "namenode/namesystem.h"

namespace dfs::namenode {

namespace {

std::string OwnerOf(const Caller& c) { return c.user.empty() ? "dfs" : c.user; }

}  // namespace

Status Namesystem::TouchParentForAdd(Chain* chain, rocksdb::WriteBatch* batch) const {
  Entry& p = chain->back();
  if (p.rec.children() >= opts_.max_directory_items) {
    return Status::NoSpace(fmt::format("directory '{}' already holds {} entries, the limit set by "
                                       "dfs.namenode.fs-limits.max-directory-items",
                                       p.name.empty() ? "/" : p.name, p.rec.children()));
  }
  p.rec.set_children(p.rec.children() + 1);
  p.rec.set_mtime_ms(NowMs());
  PutDentry(batch, p.parent, p.name, p.rec);
  return Status::OK();
}

Status Namesystem::CreateMissingDirs(const Caller& c, const std::vector<std::string>& comps, size_t upto,
                                     uint32_t mode, Chain* chain, rocksdb::WriteBatch* batch) {
  const int64_t now = NowMs();
  while (chain->size() - 1 < upto) {
    const std::string& name = comps[chain->size() - 1];
    DFS_RETURN_IF_ERROR(TouchParentForAdd(chain, batch));
    proto::InodeRecord r;
    r.set_id(NewInodeId(batch));
    r.set_is_dir(true);
    r.set_mode(mode & 07777);
    r.set_owner(OwnerOf(c));
    r.set_group(chain->back().rec.group());
    r.set_mtime_ms(now);
    r.set_atime_ms(now);
    uint64_t parent = chain->back().rec.id();
    PutDentry(batch, parent, name, r);
    PutParent(batch, r.id(), parent, name);
    chain->push_back(Entry{parent, name, std::move(r)});
  }
  return Status::OK();
}

Status Namesystem::DeleteSubtree(const Entry& top, rocksdb::WriteBatch* batch, std::vector<proto::Block>* blocks,
                                 std::vector<std::pair<std::string, uint64_t>>* leases, uint64_t* files,
                                 uint64_t* dirs) const {
  std::vector<Entry> stack{top};
  while (!stack.empty()) {
    Entry e = std::move(stack.back());
    stack.pop_back();
    DeleteDentry(batch, e.parent, e.name);
    DeleteParent(batch, e.rec.id());
    if (!e.rec.is_dir()) {
      ++*files;
      for (uint64_t id : e.rec.block_ids()) {
        DeleteBlock(batch, id);
        proto::Block b;
        b.set_id(id);
        blocks->push_back(b);
      }
      if (e.rec.under_construction()) leases->emplace_back(e.rec.lease_holder(), e.rec.id());
      continue;
    }
    ++*dirs;
    DFS_RETURN_IF_ERROR(store_->ListDentries(e.rec.id(), "", [&](std::string_view name, const proto::InodeRecord& r) {
      stack.push_back(Entry{e.rec.id(), std::string(name), r});
      return true;
    }));
  }
  return Status::OK();
}

Status Namesystem::Mkdirs(const Caller& c, const proto::MkdirsRequest& req, proto::MkdirsResponse*) {
  DFS_RETURN_IF_ERROR(CheckPath(req.path()));
  const auto comps = SplitPath(req.path());
  uint64_t ticket = 0;
  {
    std::unique_lock l(mu_);
    Chain chain;
    DFS_RETURN_IF_ERROR(Walk(req.path(), comps, &chain));
    if (chain.size() == comps.size() + 1) {
      if (!chain.back().rec.is_dir()) {
        return Status::AlreadyExists(fmt::format("{} already exists as a file", req.path()));
      }
      if (req.create_parent()) return Status::OK();
      return Status::AlreadyExists(fmt::format("{} already exists", req.path()));
    }
    if (chain.size() < comps.size() && !req.create_parent()) {
      return Status::NotFound(fmt::format("{}: No such file or directory (use -p to create parent directories)",
                                          ParentPath(req.path())));
    }
    DFS_RETURN_IF_ERROR(CheckWritable());
    rocksdb::WriteBatch batch;
    const size_t before = chain.size();
    DFS_RETURN_IF_ERROR(CreateMissingDirs(c, comps, comps.size(), req.mode() ? req.mode() : 0755, &chain, &batch));
    DFS_RETURN_IF_ERROR(Commit(&batch, &ticket));
    num_dirs_ += chain.size() - before;
  }
  return store_->WaitDurable(ticket);
}

Status Namesystem::ApplyCreate(const Caller& c, const proto::CreateRequest& req, proto::CreateResponse* resp,
                               uint64_t* ticket_out, std::vector<proto::Block>* replaced_out) {
  DFS_RETURN_IF_ERROR(CheckPath(req.path()));
  const uint32_t replication = req.replication() ? req.replication() : opts_.default_replication;
  const uint64_t block_size = req.block_size() ? req.block_size() : opts_.default_block_size;
  if (replication < 1 || replication > opts_.max_replication) {
    return Status::InvalidArgument(fmt::format("replication {} for {} is outside 1..{} (dfs.replication.max)",
                                               replication, req.path(), opts_.max_replication));
  }
  if (block_size < 4096 || block_size % 512 != 0) {
    return Status::InvalidArgument(
        fmt::format("block size {} for {} must be at least 4096 bytes and a multiple of 512", block_size, req.path()));
  }
  if (c.client_name.empty()) return Status::InvalidArgument("create needs a client name to hold the file's lease");
  const auto comps = SplitPath(req.path());
  if (comps.empty()) return Status::IsADirectory("'/' is a directory");
  std::vector<proto::Block> replaced_blocks;
  uint64_t ticket = 0;
  {
    std::unique_lock l(mu_);
    DFS_RETURN_IF_ERROR(CheckWritable());
    Chain chain;
    DFS_RETURN_IF_ERROR(Walk(req.path(), comps, &chain));
    rocksdb::WriteBatch batch;
    std::vector<std::pair<std::string, uint64_t>> old_leases;
    uint64_t files = 0, dirs = 0;
    if (chain.size() == comps.size() + 1) {
      const Entry& e = chain.back();
      if (e.rec.is_dir()) return Status::IsADirectory(fmt::format("'{}' is a directory", req.path()));
      if (!req.overwrite()) return Status::AlreadyExists(fmt::format("{} already exists", req.path()));
      if (e.rec.under_construction() && e.rec.lease_holder() != c.client_name &&
          !leases_.IsStale(e.rec.lease_holder(), opts_.lease_soft_limit)) {
        return Status::LeaseConflict(fmt::format(
            "{} is being written by another client ({}); wait for it to finish, or retry once its lease expires "
            "({} s after that client stops)",
            req.path(), e.rec.lease_holder(), opts_.lease_soft_limit.count() / 1000));
      }
      DFS_RETURN_IF_ERROR(DeleteSubtree(e, &batch, &replaced_blocks, &old_leases, &files, &dirs));
      chain.pop_back();
      chain.back().rec.set_children(chain.back().rec.children() - 1);
    } else if (chain.size() < comps.size()) {
      if (!req.create_parent()) {
        return Status::NotFound(fmt::format("{}: No such file or directory", ParentPath(req.path())));
      }
      const size_t before = chain.size();
      DFS_RETURN_IF_ERROR(CreateMissingDirs(c, comps, comps.size() - 1, 0755, &chain, &batch));
      num_dirs_ += chain.size() - before;
    }
    DFS_RETURN_IF_ERROR(TouchParentForAdd(&chain, &batch));
    const int64_t now = NowMs();
    proto::InodeRecord r;
    r.set_id(NewInodeId(&batch));
    r.set_mode((req.mode() ? req.mode() : 0644) & 07777);
    r.set_owner(OwnerOf(c));
    r.set_group(chain.back().rec.group());
    r.set_mtime_ms(now);
    r.set_atime_ms(now);
    r.set_replication(replication);
    r.set_block_size(block_size);
    r.set_under_construction(true);
    r.set_lease_holder(c.client_name);
    const uint64_t parent = chain.back().rec.id();
    PutDentry(&batch, parent, comps.back(), r);
    PutParent(&batch, r.id(), parent, comps.back());
    DFS_RETURN_IF_ERROR(Commit(&batch, &ticket));
    for (auto& [holder, inode] : old_leases) leases_.Remove(holder, inode);
    leases_.Add(c.client_name, r.id());
    num_files_ += 1 - files;
    ToFileStatus(comps.back(), r, resp->mutable_status());
  }
  *ticket_out = ticket;
  *replaced_out = std::move(replaced_blocks);
  return Status::OK();
}

void Namesystem::CreateAsync(const Caller& c, const proto::CreateRequest& req, proto::CreateResponse* resp,
                             Done done) {
  uint64_t ticket = 0;
  std::vector<proto::Block> replaced;
  Status s = ApplyCreate(c, req, resp, &ticket, &replaced);
  if (!s.ok()) {
    done(s);
    return;
  }
  store_->OnDurable(ticket, [this, replaced = std::move(replaced), done = std::move(done)](Status durable) {
    if (durable.ok()) blocks_->RemoveBlocks(replaced);  // only once the replacement is durable
    done(durable);
  });
}

Status Namesystem::ApplyAppend(const Caller& c, const proto::AppendRequest& req, proto::AppendResponse* resp,
                               uint64_t* ticket_out) {
  DFS_RETURN_IF_ERROR(CheckPath(req.path()));
  if (c.client_name.empty()) return Status::InvalidArgument("append needs a client name to hold the file's lease");
  if (SplitPath(req.path()).empty()) return Status::IsADirectory("'/' is a directory; append needs a file");
  uint64_t ticket = 0;
  {
    std::unique_lock l(mu_);
    DFS_RETURN_IF_ERROR(CheckWritable());
    Chain chain;
    DFS_RETURN_IF_ERROR(Resolve(req.path(), &chain));
    Entry& e = chain.back();
    proto::InodeRecord& rec = e.rec;
    if (rec.is_dir()) return Status::IsADirectory(fmt::format("'{}' is a directory; append needs a file", req.path()));
    std::string old_holder;
    if (rec.under_construction()) {
      const std::string& holder = rec.lease_holder();
      if (holder == c.client_name) {
        return Status::LeaseConflict(
            fmt::format("{} is already open for writing by this client; close that stream before appending",
                        req.path()));
      }
      if (holder == kLeaseRecoveryHolder) {
        return Status::LeaseConflict(fmt::format(
            "{} is being closed by the NameNode's lease recovery (its writer vanished); retry in a few seconds",
            req.path()));
      }
      if (!leases_.IsStale(holder, opts_.lease_soft_limit)) {
        return Status::LeaseConflict(fmt::format(
            "{} is being written by another client ({}); wait for it to finish, or retry once its lease expires "
            "({} s after that client stops)",
            req.path(), holder, opts_.lease_soft_limit.count() / 1000));
      }
      // The writer is gone. With nothing of its own half-written the file is
      // taken over at once; a block it was writing needs lease recovery first.
      if (const uint64_t last = WritersLastBlock(rec); last != 0) {
        DFS_ASSIGN_OR_RETURN(proto::BlockRecord br, store_->GetBlock(last));
        if (!br.committed()) {
          return Status::LeaseConflict(fmt::format(
              "{} is still open for writing by {}, which stopped renewing its lease; the NameNode closes it (lease "
              "recovery) {} s after that client stopped (dfs.namenode.lease.hard-limit): retry the append then",
              req.path(), holder, opts_.lease_hard_limit.count() / 1000));
        }
      }
      old_holder = holder;
    }
    rec.set_under_construction(true);
    rec.set_lease_holder(c.client_name);
    rec.set_append_first_block(static_cast<uint32_t>(rec.block_ids_size()));
    rocksdb::WriteBatch batch;
    PutDentry(&batch, e.parent, e.name, rec);
    DFS_RETURN_IF_ERROR(Commit(&batch, &ticket));
    if (!old_holder.empty()) leases_.Remove(old_holder, rec.id());
    leases_.Add(c.client_name, rec.id());
    ToFileStatus(e.name, rec, resp->mutable_status());
  }
  *ticket_out = ticket;
  return Status::OK();
}

void Namesystem::AppendAsync(const Caller& c, const proto::AppendRequest& req, proto::AppendResponse* resp,
                             Done done) {
  uint64_t ticket = 0;
  Status s = ApplyAppend(c, req, resp, &ticket);
  if (!s.ok()) {
    done(s);
    return;
  }
  store_->OnDurable(ticket, std::move(done));
}

Status Namesystem::Delete(const Caller&, const proto::DeleteRequest& req) {
  std::vector<proto::Block> blocks;
  uint64_t ticket = 0;
  {
    std::unique_lock l(mu_);
    Chain chain;
    DFS_RETURN_IF_ERROR(Resolve(req.path(), &chain));
    if (chain.size() == 1) return Status::InvalidArgument("the root directory / cannot be deleted");
    DFS_RETURN_IF_ERROR(CheckWritable());
    const Entry e = chain.back();
    if (e.rec.is_dir() && e.rec.children() > 0 && !req.recursive()) {
      return Status::NotEmpty(fmt::format("{} is a non-empty directory; use -r to delete it and everything in it",
                                          req.path()));
    }
    rocksdb::WriteBatch batch;
    std::vector<std::pair<std::string, uint64_t>> leases;
    uint64_t files = 0, dirs = 0;
    DFS_RETURN_IF_ERROR(DeleteSubtree(e, &batch, &blocks, &leases, &files, &dirs));
    chain.pop_back();
    Entry& p = chain.back();
    p.rec.set_children(p.rec.children() - 1);
    p.rec.set_mtime_ms(NowMs());
    PutDentry(&batch, p.parent, p.name, p.rec);
    DFS_RETURN_IF_ERROR(Commit(&batch, &ticket));
    for (auto& [holder, inode] : leases) leases_.Remove(holder, inode);
    num_files_ -= files;
    num_dirs_ -= dirs;
  }
  DFS_RETURN_IF_ERROR(store_->WaitDurable(ticket));
  blocks_->RemoveBlocks(blocks);  // replicas go only once the deletion is durable
  return Status::OK();
}

Status Namesystem::Rename(const Caller&, const proto::RenameRequest& req) {
  const std::string& src = req.src();
  const std::string& dst = req.dst();
  DFS_RETURN_IF_ERROR(CheckPath(src));
  DFS_RETURN_IF_ERROR(CheckPath(dst));
  if (src == "/") return Status::InvalidArgument("the root directory / cannot be renamed");
  if (dst == "/") return Status::AlreadyExists("/ already exists");
  if (src != dst && IsSameOrUnder(dst, src)) {
    return Status::InvalidArgument(fmt::format("cannot move {} into itself ({})", src, dst));
  }
  std::vector<proto::Block> replaced_blocks;
  uint64_t ticket = 0;
  {
    std::unique_lock l(mu_);
    Chain schain, dchain;
    DFS_RETURN_IF_ERROR(Resolve(src, &schain));
    if (src == dst) return Status::OK();
    DFS_RETURN_IF_ERROR(CheckWritable());
    const auto dcomps = SplitPath(dst);
    DFS_RETURN_IF_ERROR(Walk(dst, dcomps, &dchain));
    if (dchain.size() < dcomps.size()) {
      return Status::NotFound(fmt::format("{}: No such file or directory (the destination's parent does not exist)",
                                          ParentPath(dst)));
    }
    const Entry s = schain.back();
    rocksdb::WriteBatch batch;
    std::vector<std::pair<std::string, uint64_t>> old_leases;
    uint64_t files = 0, dirs = 0;
    if (dchain.size() == dcomps.size() + 1) {
      const Entry d = dchain.back();
      if (!req.overwrite()) return Status::AlreadyExists(fmt::format("{} already exists", dst));
      if (d.rec.is_dir() && !s.rec.is_dir()) return Status::IsADirectory(fmt::format("'{}' is a directory", dst));
      if (!d.rec.is_dir() && s.rec.is_dir()) {
        return Status::NotADirectory(fmt::format("cannot replace file {} with directory {}", dst, src));
      }
      if (d.rec.is_dir() && d.rec.children() > 0) {
        return Status::NotEmpty(fmt::format("cannot replace {}: it is a non-empty directory", dst));
      }
      DFS_RETURN_IF_ERROR(DeleteSubtree(d, &batch, &replaced_blocks, &old_leases, &files, &dirs));
      dchain.pop_back();
      dchain.back().rec.set_children(dchain.back().rec.children() - 1);
    }
    Entry& sp = schain[schain.size() - 2];
    Entry& dp = dchain.back();
    const int64_t now = NowMs();
    DeleteDentry(&batch, s.parent, s.name);
    if (sp.rec.id() == dp.rec.id()) {
      dp.rec.set_mtime_ms(now);
      PutDentry(&batch, dp.parent, dp.name, dp.rec);
    } else {
      sp.rec.set_children(sp.rec.children() - 1);
      sp.rec.set_mtime_ms(now);
      PutDentry(&batch, sp.parent, sp.name, sp.rec);
      DFS_RETURN_IF_ERROR(TouchParentForAdd(&dchain, &batch));
    }
    PutDentry(&batch, dp.rec.id(), dcomps.back(), s.rec);
    PutParent(&batch, s.rec.id(), dp.rec.id(), dcomps.back());
    DFS_RETURN_IF_ERROR(Commit(&batch, &ticket));
    for (auto& [holder, inode] : old_leases) leases_.Remove(holder, inode);
    num_files_ -= files;
    num_dirs_ -= dirs;
  }
  DFS_RETURN_IF_ERROR(store_->WaitDurable(ticket));
  blocks_->RemoveBlocks(replaced_blocks);
  return Status::OK();
}

Status Namesystem::UpdateRecord(const std::string& path, const std::function<Status(proto::InodeRecord*)>& change,
                                proto::InodeRecord* updated) {
  uint64_t ticket = 0;
  {
    std::unique_lock l(mu_);
    Chain chain;
    DFS_RETURN_IF_ERROR(Resolve(path, &chain));
    DFS_RETURN_IF_ERROR(CheckWritable());
    Entry& e = chain.back();
    DFS_RETURN_IF_ERROR(change(&e.rec));
    rocksdb::WriteBatch batch;
    PutDentry(&batch, e.parent, e.name, e.rec);
    DFS_RETURN_IF_ERROR(Commit(&batch, &ticket));
    if (updated) *updated = e.rec;
  }
  return store_->WaitDurable(ticket);
}

Status Namesystem::SetReplication(const Caller&, const proto::SetReplicationRequest& req) {
  if (req.replication() < 1 || req.replication() > opts_.max_replication) {
    return Status::InvalidArgument(
        fmt::format("replication {} is outside 1..{} (dfs.replication.max)", req.replication(), opts_.max_replication));
  }
  proto::InodeRecord rec;
  DFS_RETURN_IF_ERROR(UpdateRecord(
      req.path(),
      [&](proto::InodeRecord* r) {
        if (r->is_dir()) {
          return Status::IsADirectory(fmt::format("{} is a directory; replication is set on files", req.path()));
        }
        r->set_replication(req.replication());
        return Status::OK();
      },
      &rec));
  for (uint64_t id : rec.block_ids()) blocks_->SetExpectedReplication(BlockId(id), req.replication());
  return Status::OK();
}

Status Namesystem::SetPermission(const Caller&, const proto::SetPermissionRequest& req) {
  return UpdateRecord(req.path(), [&](proto::InodeRecord* r) {
    r->set_mode(req.mode() & 07777);
    return Status::OK();
  });
}

Status Namesystem::SetOwner(const Caller&, const proto::SetOwnerRequest& req) {
  return UpdateRecord(req.path(), [&](proto::InodeRecord* r) {
    if (!req.owner().empty()) r->set_owner(req.owner());
    if (!req.group().empty()) r->set_group(req.group());
    return Status::OK();
  });
}

Status Namesystem::SetTimes(const Caller&, const proto::SetTimesRequest& req) {
  return UpdateRecord(req.path(), [&](proto::InodeRecord* r) {
    if (req.mtime_ms() >= 0) r->set_mtime_ms(req.mtime_ms());
    if (req.atime_ms() >= 0) r->set_atime_ms(req.atime_ms());
    return Status::OK();
  });
}

}  // namespace dfs::namenode
