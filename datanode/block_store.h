// BlockStore: the block replicas of one DataNode, on one or more data dirs
// (volumes). It owns the files and an in-memory map BlockId → replica that
// Open() rebuilds by scanning the dirs.
//
// On-disk layout of each data dir:
//
//   <dir>/current/subdirNN/blk_<id>_<gs>        block bytes, exactly num_bytes long
//   <dir>/current/subdirNN/blk_<id>_<gs>.meta   checksum sidecar (below)
//   <dir>/tmp/blk_<id>_<gs>[.meta]              replicas being written
//
//   NN = id % kSubdirs, two decimal digits. A replica is written under tmp/,
//   fsynced (when sync_on_close), then published by renaming the meta file and
//   then the data file into current/ and fsyncing that directory; Open() deletes
//   everything in tmp/ and any data file without a meta file (or the reverse),
//   so a crash never leaves a half-written replica under a final name.
//
// Meta file (integers little-endian):
//
//   offset 0   4 bytes   magic "DFSM"
//   offset 4   u16       version (kMetaVersion = 1)
//   offset 6   u16       checksum type (1 = XXH3-64)
//   offset 8   u32       bytes_per_checksum
//   offset 12  u32       reserved, 0
//   offset 16  u64 × N   one checksum per chunk of the data, N = ceil(num_bytes / bytes_per_checksum);
//                        the last chunk may be shorter than bytes_per_checksum
//
// Thread-safety: every method may be called from any thread. A ReplicaWriter or
// ReplicaReader is used by one thread at a time and must not outlive its store.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "proto/types.pb.h"

namespace dfs::datanode {

inline constexpr uint32_t kSubdirs = 64;
inline constexpr size_t kMetaHeaderBytes = 16;
inline constexpr uint16_t kMetaVersion = 1;
inline constexpr uint16_t kChecksumTypeXxh3 = 1;

class BlockStore;

// A replica being written under tmp/. Destroying it without Finalize() aborts it.
class ReplicaWriter {
 public:
  ~ReplicaWriter();
  ReplicaWriter(const ReplicaWriter&) = delete;
  ReplicaWriter& operator=(const ReplicaWriter&) = delete;

  // Appends n bytes at length(). `checksums` holds one XXH3-64 per piece of the
  // chunk grid that [length(), length() + n) touches (see PacketChunks in
  // common/data_transfer.h); the caller has verified them. Appending into a
  // partial last chunk (after a writer's Flush) recomputes that chunk's sum.
  [[nodiscard]] Status Append(const char* data, size_t n, const uint64_t* checksums);
  // Syncs (when sync_on_close), publishes the replica and returns it with num_bytes.
  [[nodiscard]] Result<proto::Block> Finalize();
  // Removes the temporary files. Idempotent.
  void Abort();

  uint64_t length() const { return length_; }
  uint32_t bytes_per_checksum() const { return bpc_; }
  const proto::Block& block() const { return block_; }

 private:
  friend class BlockStore;
  ReplicaWriter(BlockStore* store, size_t volume, proto::Block block, uint32_t bpc, std::string tmp_data,
                std::string tmp_meta, int data_fd, int meta_fd);
  void CloseFds();

  BlockStore* store_;
  size_t volume_;
  proto::Block block_;
  uint32_t bpc_;
  std::string tmp_data_, tmp_meta_;
  int data_fd_, meta_fd_;
  uint64_t length_ = 0;
  std::unique_ptr<char[]> tail_;  // bytes of a partial last chunk, kept only across a mid-chunk end
  size_t tail_len_ = 0;
  bool done_ = false;
};

// An open finalized replica: file descriptors stay valid even if the replica is
// deleted meanwhile.
class ReplicaReader {
 public:
  ~ReplicaReader();
  ReplicaReader(const ReplicaReader&) = delete;
  ReplicaReader& operator=(const ReplicaReader&) = delete;

  const proto::Block& block() const { return block_; }  // num_bytes is the length
  uint64_t length() const { return block_.num_bytes(); }
  uint32_t bytes_per_checksum() const { return bpc_; }
  int data_fd() const { return data_fd_; }
  // Reads `count` stored checksums starting at chunk `first_chunk`.
  [[nodiscard]] Status ReadChecksums(uint64_t first_chunk, size_t count, uint64_t* out) const;
  // Reads data bytes with pread (for callers that cannot use data_fd with sendfile).
  [[nodiscard]] Status ReadData(uint64_t offset, size_t n, char* out) const;

 private:
  friend class BlockStore;
  ReplicaReader(proto::Block block, uint32_t bpc, int data_fd, int meta_fd, std::string path)
      : block_(std::move(block)), bpc_(bpc), data_fd_(data_fd), meta_fd_(meta_fd), path_(std::move(path)) {}
  proto::Block block_;
  uint32_t bpc_;
  int data_fd_, meta_fd_;
  std::string path_;
};

class BlockStore {
 public:
  struct Options {
    std::vector<std::string> dirs;  // data dirs; created when missing
    uint64_t reserved_bytes = 0;    // per volume, left for non-dfs use (dfs.datanode.du.reserved)
    bool sync_on_close = true;      // fsync replicas and dirs before publishing (dfs.datanode.sync-on-close)
  };

  // Creates missing dirs, scans every volume, rebuilds the replica map, and
  // deletes tmp/ leftovers, orphaned data or meta files and older generation
  // stamps of the same block. A dir that cannot be used counts as a failed
  // volume; fails only when no volume is usable.
  static Result<std::unique_ptr<BlockStore>> Open(const Options& options);
  ~BlockStore();

  // Starts a replica under tmp/ on the volume with most remaining space (round
  // robin among volumes within 1 MiB of the best). AlreadyExists when the block
  // is finalized with this gen stamp or being written with it; Stale when a
  // newer gen stamp is finalized; NoSpace when no volume has room.
  Result<std::unique_ptr<ReplicaWriter>> CreateTemporary(const proto::Block& block, uint32_t bytes_per_checksum);

  // Opens a finalized replica. NotFound when absent; Stale when the stored gen
  // stamp differs from block.gen_stamp(); Corruption when its meta file is bad.
  Result<std::unique_ptr<ReplicaReader>> OpenForRead(const proto::Block& block);

  // Removes a finalized replica. NotFound when absent; Stale (and nothing is
  // removed) when the stored gen stamp is newer than block.gen_stamp().
  Status Delete(const proto::Block& block);

  // The finalized replica of `id`, if any (num_bytes set).
  std::optional<proto::Block> GetReplica(BlockId id) const;
  // Every finalized replica, for block reports.
  std::vector<proto::Block> AllReplicas() const;
  size_t num_replicas() const;

  // Totals over healthy volumes, in bytes. capacity = filesystem size minus
  // reserved; remaining = free space for non-root users minus reserved (≥ 0);
  // dfs_used = bytes of replica data and meta files.
  uint64_t capacity() const;
  uint64_t dfs_used() const;
  uint64_t remaining() const;
  uint32_t failed_volumes() const { return failed_volumes_; }
  const std::vector<std::string>& volumes() const;

 private:
  friend class ReplicaWriter;
  struct Volume {
    std::string dir;
    std::atomic<uint64_t> used{0};
  };
  struct Replica {
    uint64_t gen_stamp;
    uint64_t num_bytes;
    size_t volume;
    uint32_t bpc;
  };

  explicit BlockStore(Options options) : options_(std::move(options)) {}
  Status ScanVolume(size_t v);
  std::string FinalPath(size_t volume, uint64_t id, uint64_t gs) const;
  Result<size_t> ChooseVolume();
  uint64_t VolumeRemaining(size_t v) const;
  Result<proto::Block> Publish(ReplicaWriter* w);
  void ForgetTemporary(uint64_t id, uint64_t gs);

  Options options_;
  std::vector<std::unique_ptr<Volume>> volumes_;
  std::vector<std::string> volume_dirs_;
  uint32_t failed_volumes_ = 0;

  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Replica> replicas_;   // by block id; finalized only
  std::set<std::pair<uint64_t, uint64_t>> writing_;  // (id, gs) under tmp/
  size_t next_volume_ = 0;                           // round robin among ties
};

}  // namespace dfs::datanode
