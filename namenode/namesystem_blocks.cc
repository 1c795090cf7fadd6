// Namesystem block operations: allocating blocks for writers, completing
// files, and telling readers where blocks are.
#include <set>

#include <fmt/format.h>
#include <rocksdb/write_batch.h>

#include "common/logging.h"
#include "namenode/key_prefix.h"
#include "namenode/namesystem.h"

namespace dfs::namenode {

Status Namesystem::ResolveFileForWrite(const Caller& c, uint64_t inode_id, const std::string& path,
                                       Entry* out) const {
  if (inode_id != 0) {
    Status s = FindFile(inode_id, out);
    if (s.IsNotFound()) return Status::NotFound(fmt::format("{} was deleted while it was being written", path));
    DFS_RETURN_IF_ERROR(s);
  } else {
    Chain chain;
    DFS_RETURN_IF_ERROR(Resolve(path, &chain));
    *out = chain.back();
  }
  if (out->rec.is_dir()) return Status::IsADirectory(fmt::format("'{}' is a directory", path));
  if (!out->rec.under_construction()) {
    return Status::LeaseConflict(fmt::format("{} is not open for writing (it was already closed)", path));
  }
  if (out->rec.lease_holder() != c.client_name) {
    return Status::LeaseConflict(
        fmt::format("{} is being written by another client ({})", path, out->rec.lease_holder()));
  }
  return Status::OK();
}

Status Namesystem::FindFile(uint64_t inode_id, Entry* out) const {
  uint64_t parent = 0;
  std::string name;
  DFS_RETURN_IF_ERROR(store_->GetParent(inode_id, &parent, &name));
  DFS_ASSIGN_OR_RETURN(proto::InodeRecord rec, store_->GetDentry(parent, name));
  *out = Entry{parent, name, std::move(rec)};
  return Status::OK();
}

uint64_t Namesystem::WritersLastBlock(const proto::InodeRecord& rec) {
  const int n = rec.block_ids_size();
  return n > static_cast<int>(rec.append_first_block()) ? rec.block_ids(n - 1) : 0;
}

Status Namesystem::CommitLastBlock(const std::string& path, const proto::Block& given, proto::InodeRecord* rec,
                                   rocksdb::WriteBatch* batch) {
  // An appender's first addBlock (and a complete after appending nothing)
  // names no block: the file's old last block is not the writer's to commit.
  const uint64_t last = WritersLastBlock(*rec);
  if (given.id() != last) {
    return Status::InvalidArgument(fmt::format(
        "{}: the client says its last block is {} but the NameNode has {}; the write cannot continue", path,
        given.id() ? BlockName(BlockId(given.id())) : "none", last ? BlockName(BlockId(last)) : "none"));
  }
  if (!last) return Status::OK();
  DFS_ASSIGN_OR_RETURN(proto::BlockRecord br, store_->GetBlock(last));
  if (!br.committed()) {  // a retried call finds it committed already
    br.set_num_bytes(given.num_bytes());
    br.set_committed(true);
    PutBlock(batch, last, br);
    rec->set_length(rec->length() + br.num_bytes());
  }
  blocks_->CommitBlock(BlockId(last), br.num_bytes());
  return Status::OK();
}

Status Namesystem::AddBlock(const Caller& c, const proto::AddBlockRequest& req, proto::AddBlockResponse* resp) {
  uint64_t ticket = 0;
  {
    std::unique_lock l(mu_);
    DFS_RETURN_IF_ERROR(CheckWritable());
    Entry e;
    DFS_RETURN_IF_ERROR(ResolveFileForWrite(c, req.inode_id(), req.path(), &e));
    proto::InodeRecord& rec = e.rec;
    rocksdb::WriteBatch batch;
    DFS_RETURN_IF_ERROR(CommitLastBlock(req.path(), req.previous(), &rec, &batch));
    std::set<std::string> excluded(req.excluded_uuids().begin(), req.excluded_uuids().end());
    DFS_ASSIGN_OR_RETURN(auto targets, blocks_->ChooseTargets(rec.replication(), c.ip, excluded, rec.block_size()));
    const uint64_t id = next_block_id_++;
    const uint64_t gs = next_gen_stamp_++;
    PutMeta(&batch, kMetaNextBlockId, EncodeBE64(next_block_id_));
    PutMeta(&batch, kMetaNextGenStamp, EncodeBE64(next_gen_stamp_));
    proto::BlockRecord br;
    br.set_inode_id(rec.id());
    br.set_gen_stamp(gs);
    PutBlock(&batch, id, br);
    rec.add_block_ids(id);
    PutDentry(&batch, e.parent, e.name, rec);
    DFS_RETURN_IF_ERROR(Commit(&batch, &ticket));
    blocks_->AddBlock(BlockId(id), InodeId(rec.id()), gs, rec.replication(), targets);
    auto* lb = resp->mutable_block();
    lb->mutable_block()->set_id(id);
    lb->mutable_block()->set_gen_stamp(gs);
    lb->set_offset(rec.length());
    for (auto& t : targets) *lb->add_locations() = std::move(t);
  }
  leases_.Renew(c.client_name);
  return store_->WaitDurable(ticket);
}

Status Namesystem::AbandonBlock(const Caller& c, const proto::AbandonBlockRequest& req) {
  uint64_t ticket = 0;
  {
    std::unique_lock l(mu_);
    DFS_RETURN_IF_ERROR(CheckWritable());
    Entry e;
    DFS_RETURN_IF_ERROR(ResolveFileForWrite(c, req.inode_id(), req.path(), &e));
    proto::InodeRecord& rec = e.rec;
    if (WritersLastBlock(rec) == 0 || WritersLastBlock(rec) != req.block().id()) {
      return Status::InvalidArgument(fmt::format(
          "{}: {} is not the last block this writer added, so it cannot be abandoned", req.path(),
          BlockName(BlockId(req.block().id()))));
    }
    rec.mutable_block_ids()->RemoveLast();
    rocksdb::WriteBatch batch;
    DeleteBlock(&batch, req.block().id());
    PutDentry(&batch, e.parent, e.name, rec);
    DFS_RETURN_IF_ERROR(Commit(&batch, &ticket));
  }
  DFS_RETURN_IF_ERROR(store_->WaitDurable(ticket));
  blocks_->RemoveBlocks({req.block()});
  return Status::OK();
}

Status Namesystem::ApplyComplete(const Caller& c, const proto::CompleteRequest& req, proto::CompleteResponse* resp,
                                 uint64_t* ticket_out) {
  *ticket_out = 0;
  uint64_t ticket = 0;
  {
    std::unique_lock l(mu_);
    DFS_RETURN_IF_ERROR(CheckWritable());
    Entry e;
    DFS_RETURN_IF_ERROR(ResolveFileForWrite(c, req.inode_id(), req.path(), &e));
    proto::InodeRecord& rec = e.rec;
    rocksdb::WriteBatch batch;
    DFS_RETURN_IF_ERROR(CommitLastBlock(req.path(), req.last(), &rec, &batch));
    // Every block the writer added needs its minimum of reported replicas
    // before the file closes (the blocks from before an append had theirs when
    // the file was first closed; a lost one must not keep it open now).
    const uint32_t need = std::min(opts_.min_replication, rec.replication());
    for (int i = static_cast<int>(rec.append_first_block()); i < rec.block_ids_size(); ++i) {
      const uint64_t id = rec.block_ids(i);
      uint32_t have = blocks_->LiveReplicas(BlockId(id));
      if (have < need) {
        resp->set_completed(false);
        resp->set_waiting_for(fmt::format(
            "{} has {} of the {} replicas a close needs (dfs.namenode.replication.min; {} DataNode(s) live)",
            BlockName(BlockId(id)), have, need, blocks_->NumLiveDatanodes()));
        return Status::OK();
      }
    }
    rec.set_under_construction(false);
    rec.clear_lease_holder();
    rec.clear_append_first_block();
    rec.set_mtime_ms(NowMs());
    PutDentry(&batch, e.parent, e.name, rec);
    DFS_RETURN_IF_ERROR(Commit(&batch, &ticket));
    leases_.Remove(c.client_name, rec.id());
    resp->set_completed(true);
  }
  *ticket_out = ticket;
  return Status::OK();
}

void Namesystem::CompleteAsync(const Caller& c, const proto::CompleteRequest& req, proto::CompleteResponse* resp,
                               Done done) {
  uint64_t ticket = 0;
  Status s = ApplyComplete(c, req, resp, &ticket);
  if (!s.ok() || ticket == 0) {  // failed, or not complete yet (nothing written)
    done(s);
    return;
  }
  store_->OnDurable(ticket, std::move(done));
}

Status Namesystem::GetBlockLocations(const Caller& c, const proto::GetBlockLocationsRequest& req,
                                     proto::GetBlockLocationsResponse* resp) {
  std::shared_lock l(mu_);
  Chain chain;
  DFS_RETURN_IF_ERROR(Resolve(req.path(), &chain));
  const Entry& e = chain.back();
  if (e.rec.is_dir()) return Status::IsADirectory(fmt::format("'{}' is a directory, not a file", req.path()));
  ToFileStatus(e.name, e.rec, resp->mutable_status());
  const uint64_t begin = req.offset();
  const uint64_t end = req.length() ? begin + req.length() : UINT64_MAX;
  uint64_t pos = 0;
  for (uint64_t id : e.rec.block_ids()) {
    DFS_ASSIGN_OR_RETURN(proto::BlockRecord br, store_->GetBlock(id));
    const uint64_t len = br.num_bytes();
    // The block being written (always the last): its length is known to the
    // DataNodes of its pipeline only. A reader that asks for it gets it
    // wherever the range starts, and learns its length from one of them.
    const bool uc = !br.committed();
    if (uc && !req.include_under_construction() && pos < begin) break;
    const bool wanted = (uc && req.include_under_construction()) ? pos < end : (pos + len > begin && pos < end);
    if (wanted) {
      auto* lb = resp->add_blocks();
      lb->mutable_block()->set_id(id);
      lb->mutable_block()->set_gen_stamp(br.gen_stamp());
      lb->mutable_block()->set_num_bytes(len);
      lb->set_offset(pos);
      lb->set_under_construction(uc);
      bool corrupt = false;
      for (auto& d : blocks_->Locations(BlockId(id), c.ip, &corrupt)) *lb->add_locations() = std::move(d);
      lb->set_corrupt(corrupt);
    }
    pos += len;
    if (pos >= end) break;
  }
  return Status::OK();
}

}  // namespace dfs::namenode
