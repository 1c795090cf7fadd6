// Namesystem recovery of writes that did not finish: pipeline recovery (the
// writer carries on under a new generation stamp) and lease recovery (the
// writer vanished; the NameNode closes the file at the longest length its
// surviving replicas agree on), as HDFS does them.
//
// Lease recovery of a file whose last block is still being written:
//   1. under the namespace lock: the lease moves to the NameNode, and the block
//      gets a new generation stamp, both durably, so the vanished writer (if it
//      comes back) is refused and a crash part-way simply starts over;
//   2. without the lock: every live DataNode is asked what it holds of the
//      block (RECOVER_REPLICA); among the replicas with the newest generation
//      stamp, a finalized one fixes the length, else the shortest one does
//      (every replica of a pipeline holds a prefix of the same bytes);
//   3. those replicas are truncated to that length and finalized under the new
//      generation stamp, and the file is closed durably.
#include <fmt/format.h>
#include <rocksdb/write_batch.h>

#include "common/data_transfer.h"
#include "common/logging.h"
#include "namenode/key_prefix.h"
#include "namenode/namesystem.h"

namespace dfs::namenode {

namespace {

constexpr const char* kRecoveryHolder = kLeaseRecoveryHolder;

struct ReplicaReport {
  proto::DatanodeId node;
  proto::OpResponse resp;
};

// One RECOVER_REPLICA exchange with a DataNode.
Status AskDatanode(const proto::DatanodeId& dn, const proto::OpRequest& req, Millis timeout,
                   proto::OpResponse* resp) {
  DFS_ASSIGN_OR_RETURN(Socket sock, Socket::Connect(dn.ip(), static_cast<uint16_t>(dn.xfer_port()), timeout,
                                                    DataNodeName(dn)));
  DFS_RETURN_IF_ERROR(SendOpRequest(sock, req, timeout));
  DFS_RETURN_IF_ERROR(ReadOpResponse(sock, resp, timeout));
  if (resp->code() != proto::OK) return FromProto(resp->code(), resp->message());
  return Status::OK();
}

}  // namespace

Status Namesystem::UpdateBlockForPipeline(const Caller& c, const proto::UpdateBlockForPipelineRequest& req,
                                          proto::UpdateBlockForPipelineResponse* resp) {
  uint64_t ticket = 0;
  {
    std::unique_lock l(mu_);
    DFS_RETURN_IF_ERROR(CheckWritable());
    Entry e;
    DFS_RETURN_IF_ERROR(ResolveFileForWrite(c, req.inode_id(), req.path(), &e));
    const uint64_t id = req.block().id();
    const std::string name = BlockName(BlockId(id));
    if (e.rec.block_ids_size() == 0 || e.rec.block_ids(e.rec.block_ids_size() - 1) != id) {
      return Status::InvalidArgument(
          fmt::format("{}: {} is not the file's last block, so its pipeline cannot be rebuilt", req.path(), name));
    }
    DFS_ASSIGN_OR_RETURN(proto::BlockRecord br, store_->GetBlock(id));
    if (br.committed()) {
      return Status::InvalidArgument(
          fmt::format("{}: {} is already finished, so its pipeline cannot be rebuilt", req.path(), name));
    }
    if (req.block().gen_stamp() > br.gen_stamp()) {
      return Status::InvalidArgument(fmt::format("{}: the client has {} at generation stamp {}, newer than the {} "
                                                 "the NameNode knows",
                                                 req.path(), name, req.block().gen_stamp(), br.gen_stamp()));
    }
    const uint64_t gs = next_gen_stamp_++;
    rocksdb::WriteBatch batch;
    PutMeta(&batch, kMetaNextGenStamp, EncodeBE64(next_gen_stamp_));
    br.set_gen_stamp(gs);
    PutBlock(&batch, id, br);
    DFS_RETURN_IF_ERROR(Commit(&batch, &ticket));
    blocks_->UpdateGenStamp(BlockId(id), gs);
    resp->mutable_block()->set_id(id);
    resp->mutable_block()->set_gen_stamp(gs);
    Log("nn")->info("{}: pipeline of {} rebuilt by {}; generation stamp {} -> {}", req.path(), name, c.client_name,
                    req.block().gen_stamp(), gs);
  }
  leases_.Renew(c.client_name);
  return store_->WaitDurable(ticket);
}

size_t Namesystem::RecoverExpiredLeases() {
  if (blocks_->InSafeMode()) return 0;  // nothing is decided before the replicas are reported
  size_t closed = 0;
  for (const auto& [holder, inode] : leases_.Expired(opts_.lease_hard_limit)) {
    Status s = RecoverFile(holder, inode);
    if (s.ok()) {
      ++closed;
    } else {
      Log("nn")->warn("lease recovery of file #{} (writer {}) must wait: {}", inode, holder, s.ToString());
      // Retried after another hard limit, under whichever holder it has now
      // (the NameNode's once step 1 of RecoverFile went through).
      leases_.Renew(holder);
      leases_.Renew(kRecoveryHolder);
    }
  }
  return closed;
}

Status Namesystem::RecoverFile(const std::string& holder, uint64_t inode_id) {
  auto log = Log("nn");
  // Step 1: take the lease over and give the last block a new generation stamp.
  uint64_t ticket = 0, block_id = 0, gen_stamp = 0;
  std::string path_hint;
  {
    std::unique_lock l(mu_);
    DFS_RETURN_IF_ERROR(CheckWritable());
    Entry e;
    Status s = FindFile(inode_id, &e);
    if (s.IsNotFound() || (s.ok() && (!e.rec.under_construction() || e.rec.lease_holder() != holder))) {
      leases_.Remove(holder, inode_id);  // deleted, closed or taken over meanwhile
      return Status::OK();
    }
    DFS_RETURN_IF_ERROR(s);
    path_hint = e.name;
    proto::InodeRecord& rec = e.rec;
    rocksdb::WriteBatch batch;
    const uint64_t last = rec.block_ids_size() ? rec.block_ids(rec.block_ids_size() - 1) : 0;
    proto::BlockRecord br;
    if (last) {
      DFS_ASSIGN_OR_RETURN(br, store_->GetBlock(last));
    }
    if (!last || br.committed()) {
      // Nothing is being written: the file just needs closing.
      rec.set_under_construction(false);
      rec.clear_lease_holder();
      rec.clear_append_first_block();
      rec.set_mtime_ms(NowMs());
      PutDentry(&batch, e.parent, e.name, rec);
      DFS_RETURN_IF_ERROR(Commit(&batch, &ticket));
      leases_.Remove(holder, inode_id);
      log->info("lease recovery: closed {} (file #{}) of vanished writer {} at {} bytes", e.name, inode_id, holder,
                rec.length());
      l.unlock();
      return store_->WaitDurable(ticket);
    }
    block_id = last;
    gen_stamp = next_gen_stamp_++;
    PutMeta(&batch, kMetaNextGenStamp, EncodeBE64(next_gen_stamp_));
    br.set_gen_stamp(gen_stamp);
    PutBlock(&batch, last, br);
    rec.set_lease_holder(kRecoveryHolder);
    PutDentry(&batch, e.parent, e.name, rec);
    DFS_RETURN_IF_ERROR(Commit(&batch, &ticket));
    leases_.Reassign(holder, inode_id, kRecoveryHolder);
    blocks_->UpdateGenStamp(BlockId(last), gen_stamp);
  }
  DFS_RETURN_IF_ERROR(store_->WaitDurable(ticket));
  const std::string bname = BlockName(BlockId(block_id));
  log->info("lease recovery of {} (file #{}, writer {} vanished): recovering {} under generation stamp {}",
            path_hint, inode_id, holder, bname, gen_stamp);

  // Step 2: what does each live DataNode hold of the block?
  std::vector<ReplicaReport> found;
  size_t unreachable = 0;
  proto::OpRequest ask;
  ask.set_op(proto::RECOVER_REPLICA);
  ask.mutable_block()->set_id(block_id);
  ask.mutable_block()->set_gen_stamp(gen_stamp);
  ask.set_client_name(kRecoveryHolder);
  const std::vector<proto::DatanodeId> live = blocks_->LiveDatanodes();
  if (live.empty()) {
    return Status::Unavailable(fmt::format("no DataNode is live to ask for {}; start the DataNodes that held it",
                                           bname));
  }
  for (const auto& dn : live) {
    proto::OpResponse resp;
    Status s = AskDatanode(dn, ask, opts_.socket_timeout, &resp);
    if (!s.ok()) {
      ++unreachable;
      log->warn("lease recovery of {}: {} did not answer: {}", bname, DataNodeName(dn), s.ToString());
      continue;
    }
    if (resp.replica_state() != proto::REPLICA_NONE && resp.replica_gen_stamp() < gen_stamp) {
      found.push_back({dn, resp});
    }
  }
  uint64_t newest = 0;
  for (const auto& r : found) newest = std::max(newest, r.resp.replica_gen_stamp());
  std::vector<ReplicaReport> group;
  for (const auto& r : found) {
    if (r.resp.replica_gen_stamp() == newest) group.push_back(r);
  }
  uint64_t length = UINT64_MAX;
  for (const auto& r : group) {
    if (r.resp.replica_state() == proto::REPLICA_FINALIZED) length = r.resp.replica_length();
  }
  if (length == UINT64_MAX) {
    for (const auto& r : group) length = std::min(length, r.resp.replica_length());
  }
  if (group.empty()) {
    if (unreachable > 0) {
      return Status::Unavailable(fmt::format("no live DataNode that answered holds {}; {} did not answer", bname,
                                             unreachable));
    }
    length = 0;  // the writer died before any byte of the block reached a DataNode
  }

  // Step 3: truncate and finalize the agreeing replicas, then close the file.
  size_t finalized = 0;
  if (length > 0) {
    proto::OpRequest fin = ask;
    fin.set_finalize(true);
    fin.set_recover_gen_stamp(newest);
    fin.set_recover_length(length);
    for (const auto& r : group) {
      if (r.resp.replica_length() < length) continue;
      proto::OpResponse resp;
      Status s = AskDatanode(r.node, fin, opts_.socket_timeout, &resp);
      if (s.ok()) {
        ++finalized;
      } else {
        log->warn("lease recovery of {}: {} could not finalize it: {}", bname, DataNodeName(r.node), s.ToString());
      }
    }
    if (finalized == 0) {
      return Status::Unavailable(fmt::format("no DataNode could finalize {} at {} bytes", bname, length));
    }
  }
  std::vector<proto::Block> dropped;
  {
    std::unique_lock l(mu_);
    DFS_RETURN_IF_ERROR(CheckWritable());
    Entry e;
    Status s = FindFile(inode_id, &e);
    if (s.IsNotFound() || (s.ok() && (!e.rec.under_construction() || e.rec.lease_holder() != kRecoveryHolder))) {
      leases_.Remove(kRecoveryHolder, inode_id);
      return Status::OK();
    }
    DFS_RETURN_IF_ERROR(s);
    proto::InodeRecord& rec = e.rec;
    if (rec.block_ids_size() == 0 || rec.block_ids(rec.block_ids_size() - 1) != block_id) {
      return Status::Aborted(fmt::format("the last block of file #{} changed during its recovery", inode_id));
    }
    rocksdb::WriteBatch batch;
    if (length == 0) {
      rec.mutable_block_ids()->RemoveLast();
      DeleteBlock(&batch, block_id);
      proto::Block b;
      b.set_id(block_id);
      b.set_gen_stamp(gen_stamp);
      dropped.push_back(b);
    } else {
      DFS_ASSIGN_OR_RETURN(proto::BlockRecord br, store_->GetBlock(block_id));
      br.set_gen_stamp(gen_stamp);
      br.set_num_bytes(length);
      br.set_committed(true);
      PutBlock(&batch, block_id, br);
      rec.set_length(rec.length() + length);
    }
    rec.set_under_construction(false);
    rec.clear_lease_holder();
    rec.clear_append_first_block();
    rec.set_mtime_ms(NowMs());
    PutDentry(&batch, e.parent, e.name, rec);
    DFS_RETURN_IF_ERROR(Commit(&batch, &ticket));
    if (length > 0) blocks_->CommitBlock(BlockId(block_id), length);
    leases_.Remove(kRecoveryHolder, inode_id);
    log->info("lease recovery: closed {} (file #{}) at {} bytes; {} kept {} bytes on {} DataNode(s)", e.name,
              inode_id, rec.length(), bname, length, finalized);
  }
  DFS_RETURN_IF_ERROR(store_->WaitDurable(ticket));
  if (!dropped.empty()) blocks_->RemoveBlocks(dropped);
  return Status::OK();
}

}  // namespace dfs::namenode
