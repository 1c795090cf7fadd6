// DfsInputStream: reads a file block by block from the nearest healthy
// replica. A sequential read keeps one BlockReader streaming the rest of the
// block (the DataNode sends ahead; TCP buffers it), so reads do not wait on a
// round trip per call. On an I/O error the next replica is tried; on a checksum
// mismatch the replica is also reported to the NameNode. Of a file being
// written, it reads what the pipeline has acknowledged (HDFS's visible length),
// as of the open or the last Refresh.
#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "client/fs_impl.h"
#include "common/logging.h"

namespace dfs::client {

namespace {

class DfsInputStream : public InputStream {
 public:
  DfsInputStream(FileSystemImpl* fs, std::string path) : fs_(fs), path_(std::move(path)) {}

  Status Refresh() override {
    proto::GetBlockLocationsResponse resp;
    DFS_RETURN_IF_ERROR(fs_->Locate(path_, &resp));
    std::vector<proto::LocatedBlock> blocks(resp.blocks().begin(), resp.blocks().end());
    if (!blocks.empty() && blocks.back().under_construction()) LearnVisibleLength(&blocks);
    std::lock_guard<std::mutex> l(mu_);
    blocks_ = std::move(blocks);
    length_ = 0;
    for (const auto& b : blocks_) length_ = std::max(length_, b.offset() + b.block().num_bytes());
    return Status::OK();
  }

  Result<size_t> Read(void* buf, size_t n) override {
    if (pos_ >= Length() || n == 0) return size_t{0};
    for (int attempt = 0;; ++attempt) {
      // A new reader when there is none, after a seek, or at the end of a block.
      if (!reader_ || reader_pos_ != pos_ || reader_->position() >= reader_->range_end()) {
        reader_.reset();
        DFS_ASSIGN_OR_RETURN(reader_, OpenAt(pos_, 0, &reader_node_, &reader_block_));
        reader_pos_ = pos_;
      }
      auto r = reader_->Read(static_cast<char*>(buf), n);
      if (r.ok() && *r > 0) {
        pos_ += *r;
        reader_pos_ = pos_;
        return r;
      }
      Status s = r.ok() ? Status::IOError("the DataNode ended the block early") : r.status();
      OnReplicaError(reader_block_, reader_node_, s);
      reader_.reset();
      if (attempt >= kMaxAttempts) return s.Prepend(fmt::format("reading {} at offset {}", path_, pos_));
    }
  }

  Result<size_t> PRead(uint64_t offset, void* buf, size_t n) override {
    size_t done = 0;
    char* out = static_cast<char*>(buf);
    const uint64_t len = Length();
    while (done < n && offset + done < len) {
      const uint64_t at = offset + done;
      proto::LocatedBlock lb;
      DFS_RETURN_IF_ERROR(BlockAt(at, &lb));
      const uint64_t in_block = std::min<uint64_t>(n - done, lb.offset() + lb.block().num_bytes() - at);
      size_t got = 0;
      for (int attempt = 0; got < in_block; ++attempt) {
        proto::DatanodeId node;
        proto::Block block;
        auto rd = OpenAt(at + got, in_block - got, &node, &block);
        if (!rd.ok()) return rd.status();
        Status err;
        while (got < in_block) {
          auto r = (*rd)->Read(out + done + got, static_cast<size_t>(in_block - got));
          if (!r.ok() || *r == 0) {
            err = r.ok() ? Status::IOError("the DataNode ended the block early") : r.status();
            break;
          }
          got += *r;
        }
        if (err.ok()) break;
        OnReplicaError(block, node, err);
        if (attempt >= kMaxAttempts) return err.Prepend(fmt::format("reading {} at offset {}", path_, at + got));
      }
      done += got;
    }
    return done;
  }

  Status Seek(uint64_t pos) override {
    pos_ = pos;
    return Status::OK();
  }
  uint64_t Position() const override { return pos_; }
  uint64_t Length() const override {
    std::lock_guard<std::mutex> l(mu_);
    return length_;
  }

 private:
  static constexpr int kMaxAttempts = 6;

  // The block being written (the last one): asks its DataNodes, nearest
  // first, how much of it their pipeline has acknowledged, and moves the
  // first that answers to the front, since a node has at least what it
  // acknowledged while one before it in the pipeline may not have it yet.
  // When none answers, the block is left out (unless the NameNode knows a
  // length for it): the reader sees the completed blocks. Nodes that do not
  // have the block yet (the writer is still setting up its pipeline) mean
  // nothing was written to it.
  void LearnVisibleLength(std::vector<proto::LocatedBlock>* blocks) {
    proto::LocatedBlock& lb = blocks->back();
    auto* locs = lb.mutable_locations();
    Status failed;  // the last answer other than NotFound
    for (int i = 0; i < locs->size(); ++i) {
      auto len = BlockReader::VisibleLength(locs->Get(i), lb.block(), fs_->reader_options());
      if (len.ok()) {
        lb.mutable_block()->set_num_bytes(std::max(*len, lb.block().num_bytes()));
        std::rotate(locs->begin(), locs->begin() + i, locs->begin() + i + 1);
        return;
      }
      if (len.status().code() != StatusCode::kNotFound) failed = len.status();
    }
    if (!failed.ok() && !warned_length_) {
      warned_length_ = true;
      Log("client")->warn(
          "{}: no DataNode of the block being written ({}) answered, so reads stop at the completed blocks until "
          "one of its DataNodes is back or the file is closed: {}",
          path_, BlockName(BlockId(lb.block().id())), failed.message());
    }
    if (lb.block().num_bytes() == 0) blocks->pop_back();
  }

  Status BlockAt(uint64_t pos, proto::LocatedBlock* out) const {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& b : blocks_) {
      if (pos >= b.offset() && pos < b.offset() + b.block().num_bytes()) {
        *out = b;
        return Status::OK();
      }
    }
    return Status::InvalidArgument(fmt::format("offset {} is past the end of {} ({} bytes)", pos, path_, length_));
  }

  // Opens a reader at file offset `pos` for `len` bytes (0: to the block's end)
  // on the best replica not known to be bad.
  Result<std::unique_ptr<BlockReader>> OpenAt(uint64_t pos, uint64_t len, proto::DatanodeId* node,
                                              proto::Block* block) {
    proto::LocatedBlock lb;
    DFS_RETURN_IF_ERROR(BlockAt(pos, &lb));
    *block = lb.block();
    if (lb.corrupt()) {
      return Status::Corruption(fmt::format(
          "every replica of {} ({} at offset {}) is corrupt; the data of that block is lost. `dfs fsck {}` lists "
          "the damage",
          BlockName(BlockId(lb.block().id())), path_, lb.offset(), path_));
    }
    if (lb.locations_size() == 0) {
      return Status::Unavailable(fmt::format(
          "no live DataNode holds {} ({} at offset {}); start the DataNodes that hold it (`dfs fsck {} -files "
          "-blocks -locations` shows the block)",
          BlockName(BlockId(lb.block().id())), path_, lb.offset(), path_));
    }
    const std::string bname = BlockName(BlockId(lb.block().id()));
    // A block being written is read to its known end (the DataNode would send
    // what it acknowledged by now), from the node that told that length.
    if (lb.under_construction() && len == 0) len = lb.offset() + lb.block().num_bytes() - pos;
    if (const std::string& pref = fs_->preferred_datanode(); !pref.empty() && !lb.under_construction()) {
      auto* locs = lb.mutable_locations();
      for (int i = 1; i < locs->size(); ++i) {
        if (locs->Get(i).uuid() == pref) {
          std::rotate(locs->begin(), locs->begin() + i, locs->begin() + i + 1);
          break;
        }
      }
    }
    for (int round = 0; round < 2; ++round) {
      Status last;
      for (const auto& loc : lb.locations()) {
        if (IsBad(lb.block().id(), loc.uuid())) continue;
        auto r = BlockReader::Open(loc, lb.block(), pos - lb.offset(), len, fs_->reader_options());
        if (r.ok()) {
          *node = loc;
          return r;
        }
        OnReplicaError(lb.block(), loc, r.status());
        last = r.status();
      }
      if (!last.ok()) return last.Prepend(fmt::format("reading {}: every replica of {} failed", path_, bname));
      // Every replica was given up on earlier in this stream.
      std::lock_guard<std::mutex> l(mu_);
      size_t corrupt = 0;
      for (const auto& loc : lb.locations()) corrupt += bad_replicas_.count({lb.block().id(), loc.uuid()});
      if (corrupt == static_cast<size_t>(lb.locations_size())) {
        return Status::Corruption(fmt::format(
            "every replica of {} ({} at offset {}) failed its checksum; the data of that block is lost. `dfs fsck "
            "{}` lists the damage",
            bname, path_, lb.offset(), path_));
      }
      // Some only failed to answer: they may be back; try them all once more.
      dead_nodes_.clear();
    }
    return Status::Unavailable(fmt::format("reading {}: no replica of {} could be read", path_, bname));
  }

  bool IsBad(uint64_t block_id, const std::string& uuid) const {
    std::lock_guard<std::mutex> l(mu_);
    return dead_nodes_.count(uuid) > 0 || bad_replicas_.count({block_id, uuid}) > 0;
  }

  void OnReplicaError(const proto::Block& block, const proto::DatanodeId& node, const Status& s) {
    Log("client")->warn("{}: replica of {} on {}:{} failed: {}", path_, BlockName(BlockId(block.id())), node.ip(),
                        node.xfer_port(), s.message());
    {
      // A corrupt replica says nothing about the node's other replicas; a node
      // that does not answer is skipped for the rest of the file.
      std::lock_guard<std::mutex> l(mu_);
      if (s.code() == StatusCode::kCorruption) {
        bad_replicas_.insert({block.id(), node.uuid()});
      } else {
        dead_nodes_.insert(node.uuid());
      }
    }
    if (s.code() == StatusCode::kCorruption) fs_->ReportBadReplica(block, node.uuid());
  }

  FileSystemImpl* fs_;
  const std::string path_;
  mutable std::mutex mu_;  // guards blocks_, length_, dead_nodes_, bad_replicas_ (PRead runs on any thread)
  std::vector<proto::LocatedBlock> blocks_;
  uint64_t length_ = 0;
  uint64_t pos_ = 0;
  std::unique_ptr<BlockReader> reader_;
  uint64_t reader_pos_ = 0;
  proto::DatanodeId reader_node_;
  proto::Block reader_block_;
  bool warned_length_ = false;  // LearnVisibleLength said once that no DataNode answered
  std::set<std::string> dead_nodes_;                           // by uuid
  std::set<std::pair<uint64_t, std::string>> bad_replicas_;  // (block id, uuid) that failed a checksum
};

}  // namespace

Result<std::unique_ptr<InputStream>> FileSystemImpl::Open(const std::string& path) {
  auto s = std::make_unique<DfsInputStream>(this, path);
  DFS_RETURN_IF_ERROR(s->Refresh());
  return std::unique_ptr<InputStream>(std::move(s));
}

}  // namespace dfs::client
