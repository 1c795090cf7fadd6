// DfsOutputStream: writes a new file, or appends to one, block by block. For
// each block it asks the NameNode for a block and a pipeline of DataNodes
// (addBlock), streams the bytes through a BlockWriter, and on close asks the
// NameNode to complete the file, retrying while the last block's replicas are
// still being reported. An append never touches the file's old blocks: its
// bytes go into new ones, so a file may have partial blocks in the middle.
#include <thread>

#include <fmt/format.h>

#include "client/fs_impl.h"
#include "common/logging.h"

namespace dfs::client {

namespace {

class DfsOutputStream : public OutputStream {
 public:
  // `st` is the file as create or append left it: an append starts at its
  // length, in a new block, so the first addBlock names no previous block.
  DfsOutputStream(FileSystemImpl* fs, std::string path, const proto::FileStatus& st)
      : fs_(fs), path_(std::move(path)), inode_(st.inode_id()), block_size_(st.block_size()), pos_(st.length()) {
    fs_->BeginWrite();
  }

  ~DfsOutputStream() override {
    if (!closed_) {
      if (writer_) writer_->Abort();
      Log("client")->warn("{} was not closed; it stays open for writing until its lease expires", path_);
    }
    fs_->EndWrite();
  }

  Status Write(const void* data, size_t n) override {
    DFS_RETURN_IF_ERROR(CheckUsable());
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      if (!writer_) DFS_RETURN_IF_ERROR(Fail(NextBlock()));
      size_t take = static_cast<size_t>(std::min<uint64_t>(n, block_size_ - in_block_));
      const uint64_t before = writer_->bytes_written();
      Status s = writer_->Write(p, take);
      // A rebuilt pipeline holds every byte the broken one accepted.
      if (!s.ok()) DFS_RETURN_IF_ERROR(Fail(RecoverPipeline(s)));
      const size_t done = static_cast<size_t>(writer_->bytes_written() - before);
      in_block_ += done;
      pos_ += done;
      p += done;
      n -= done;
      if (in_block_ == block_size_) DFS_RETURN_IF_ERROR(Fail(FinishBlock()));
    }
    return Status::OK();
  }

  Status Flush() override {
    DFS_RETURN_IF_ERROR(CheckUsable());
    if (!writer_) return Status::OK();
    for (Status s = writer_->Flush(); !s.ok(); s = writer_->Flush()) {
      DFS_RETURN_IF_ERROR(Fail(RecoverPipeline(s)));
    }
    return Status::OK();
  }

  // Blocks already finished were fsynced by their DataNodes when finalized
  // (dfs.datanode.sync-on-close, on by default), so only the block being
  // written needs a sync packet; with none (nothing written yet, or a block
  // just filled) there is nothing to do.
  Status Sync() override {
    DFS_RETURN_IF_ERROR(CheckUsable());
    if (!writer_) return Status::OK();
    // A rebuilt pipeline is synced again from scratch: the new sync packet
    // covers every byte its replicas hold.
    for (Status s = writer_->Sync(); !s.ok(); s = writer_->Sync()) {
      DFS_RETURN_IF_ERROR(Fail(RecoverPipeline(s)));
    }
    return Status::OK();
  }

  Status Close() override {
    if (closed_) return error_;
    DFS_RETURN_IF_ERROR(CheckUsable());
    if (writer_) DFS_RETURN_IF_ERROR(Fail(FinishBlock()));
    DFS_RETURN_IF_ERROR(Fail(Complete()));
    closed_ = true;
    return Status::OK();
  }

  uint64_t Position() const override { return pos_; }
  const std::string& path() const override { return path_; }

 private:
  Status CheckUsable() const {
    if (!error_.ok()) return error_;
    if (closed_) return Status::InvalidArgument(fmt::format("{} is already closed", path_));
    return Status::OK();
  }

  Status Fail(Status s) {
    if (!s.ok() && error_.ok()) {
      error_ = s;
      if (writer_) writer_->Abort();
    }
    return s;
  }

  // Gets a block and a pipeline, retrying with the DataNodes that failed excluded.
  Status NextBlock() {
    constexpr int kAttempts = 3;
    Status last;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
      proto::AddBlockRequest req;
      req.set_path(path_);
      req.set_inode_id(inode_);
      if (last_block_.id()) *req.mutable_previous() = last_block_;
      for (const auto& u : excluded_) req.add_excluded_uuids(u);
      proto::AddBlockResponse resp;
      DFS_RETURN_IF_ERROR(fs_->Call(proto::ADD_BLOCK, req, &resp));
      const auto& lb = resp.block();
      std::vector<proto::DatanodeId> targets(lb.locations().begin(), lb.locations().end());
      int failed = -1;
      auto w = BlockWriter::Open(lb.block(), targets, fs_->writer_options(), &failed);
      if (w.ok()) {
        writer_ = std::move(w).value();
        block_ = lb.block();
        in_block_ = 0;
        return Status::OK();
      }
      last = w.status();
      Log("client")->warn("{}: could not set up the pipeline for {}: {}", path_, BlockName(BlockId(lb.block().id())),
                          last.message());
      proto::AbandonBlockRequest ab;
      ab.set_path(path_);
      ab.set_inode_id(inode_);
      *ab.mutable_block() = lb.block();
      proto::AbandonBlockResponse abr;
      DFS_RETURN_IF_ERROR(fs_->Call(proto::ABANDON_BLOCK, ab, &abr));
      if (failed >= 0 && failed < static_cast<int>(targets.size())) excluded_.push_back(targets[failed].uuid());
    }
    return last.Prepend(fmt::format("writing {}: no working pipeline after {} attempts", path_, kAttempts));
  }

  Status FinishBlock() {
    auto len = writer_->Finish();
    while (!len.ok()) {
      DFS_RETURN_IF_ERROR(RecoverPipeline(len.status()));
      len = writer_->Finish();
    }
    last_block_ = block_;
    last_block_.set_num_bytes(*len);
    writer_.reset();
    return Status::OK();
  }

  // The pipeline of the current block broke (`cause`): rebuilds it from the
  // DataNodes that are still fine under a new generation stamp, and resends
  // what they had not all acknowledged. The NameNode restores the full
  // replication once the block is finished.
  Status RecoverPipeline(Status cause) {
    const std::string bname = BlockName(BlockId(block_.id()));
    std::vector<proto::DatanodeId> targets = writer_->targets();
    int bad = writer_->failed_target();
    std::string pending;
    auto acked = writer_->TakeUnacked(&pending);
    writer_.reset();
    if (!acked.ok()) return acked.status().Prepend(fmt::format("writing {}", path_));
    while (true) {
      if (++recoveries_ > kMaxPipelineRecoveries) {
        return cause.Prepend(fmt::format("writing {}: giving up after {} pipeline recoveries", path_,
                                         kMaxPipelineRecoveries));
      }
      if (bad < 0 || bad >= static_cast<int>(targets.size())) bad = 0;  // unknown: the first node saw it
      const std::string lost = DataNodeName(targets[static_cast<size_t>(bad)]);
      excluded_.push_back(targets[static_cast<size_t>(bad)].uuid());  // not for the next blocks either
      targets.erase(targets.begin() + bad);
      if (targets.empty()) {
        return cause.Prepend(fmt::format("writing {}: every DataNode of the pipeline for {} failed", path_, bname));
      }
      Log("client")->warn("{}: {} failed while writing {} ({}); carrying on with {} DataNode(s) from byte "
                          "{} of the block",
                          path_, lost, bname, cause.message(), targets.size(), *acked);
      proto::UpdateBlockForPipelineRequest req;
      req.set_path(path_);
      req.set_inode_id(inode_);
      *req.mutable_block() = block_;
      proto::UpdateBlockForPipelineResponse resp;
      DFS_RETURN_IF_ERROR(fs_->Call(proto::UPDATE_BLOCK_FOR_PIPELINE, req, &resp));
      BlockWriter::Recovery rec{block_.gen_stamp(), *acked};
      int failed = -1;
      auto w = BlockWriter::Open(resp.block(), targets, fs_->writer_options(), &failed, &rec);
      if (!w.ok()) {
        cause = w.status();
        bad = failed;
        continue;
      }
      writer_ = std::move(w).value();
      block_ = resp.block();
      Status s = writer_->Write(pending.data(), pending.size());
      if (s.ok()) return Status::OK();
      cause = s;
      targets = writer_->targets();
      bad = writer_->failed_target();
      acked = writer_->TakeUnacked(&pending);
      writer_.reset();
      if (!acked.ok()) return acked.status().Prepend(fmt::format("writing {}", path_));
    }
  }

  Status Complete() {
    proto::CompleteRequest req;
    req.set_path(path_);
    req.set_inode_id(inode_);
    if (last_block_.id()) *req.mutable_last() = last_block_;
    // The DataNodes report the block right after they ack its last packet,
    // so the first retries come soon (a small file's close is mostly this wait).
    std::chrono::microseconds backoff(250);
    std::string waiting;
    for (int i = 0; i <= fs_->complete_retries(); ++i) {
      proto::CompleteResponse resp;
      DFS_RETURN_IF_ERROR(fs_->Call(proto::COMPLETE, req, &resp));
      if (resp.completed()) return Status::OK();
      waiting = resp.waiting_for();
      std::this_thread::sleep_for(backoff);
      backoff = std::min<std::chrono::microseconds>(backoff * 2, std::chrono::milliseconds(800));
    }
    return Status::TimedOut(fmt::format("could not close {}: {}; check `dfs admin report` for live DataNodes", path_,
                                        waiting));
  }

  FileSystemImpl* fs_;
  const std::string path_;
  const uint64_t inode_;
  const uint64_t block_size_;
  std::unique_ptr<BlockWriter> writer_;
  proto::Block block_;       // being written
  proto::Block last_block_;  // finished, with its length
  uint64_t in_block_ = 0;
  uint64_t pos_;
  std::vector<std::string> excluded_;
  static constexpr int kMaxPipelineRecoveries = 5;  // per file
  int recoveries_ = 0;
  Status error_;
  bool closed_ = false;
};

}  // namespace

Result<std::unique_ptr<OutputStream>> FileSystemImpl::Create(const std::string& path, const CreateOptions& opts) {
  proto::CreateRequest req;
  req.set_path(path);
  req.set_mode(opts.mode);
  req.set_overwrite(opts.overwrite);
  req.set_create_parent(opts.create_parent);
  req.set_replication(opts.replication ? opts.replication : static_cast<uint32_t>(config().GetInt("dfs.replication")));
  req.set_block_size(opts.block_size ? opts.block_size : config().GetSize("dfs.blocksize"));
  proto::CreateResponse resp;
  DFS_RETURN_IF_ERROR(Call(proto::CREATE, req, &resp));
  return std::unique_ptr<OutputStream>(new DfsOutputStream(this, path, resp.status()));
}

Result<std::unique_ptr<OutputStream>> FileSystemImpl::Append(const std::string& path) {
  proto::AppendRequest req;
  req.set_path(path);
  proto::AppendResponse resp;
  DFS_RETURN_IF_ERROR(Call(proto::APPEND, req, &resp));
  return std::unique_ptr<OutputStream>(new DfsOutputStream(this, path, resp.status()));
}

}  // namespace dfs::client
