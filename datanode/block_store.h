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
//   any data file without a meta file (or the reverse), so a crash never leaves
//   a half-written replica under a final name. What a crash or kill left under
//   tmp/ is cut to its longest prefix whose checksums verify and kept as a
//   recoverable replica (see Recover), as a suspended write is: a writer's
//   pipeline recovery or the NameNode's lease recovery finishes it, and
//   ExpireRecoverable deletes it when nobody does. Bytes a writer hsynced
//   (ReplicaWriter::Sync) are therefore still there after a crash or kill -9.
//
// Meta file (integers little-endian):
//
//   offset 0   4 bytes   magic "DFSM"
//   offset 4   u16       version (kMetaVersion = 1)
//   offset 6   u16       checksum type (1 = XXH3-64)
//   offset 8   u32       bytes_per_checksum
//   offset 12  u32       tail: bytes of the last chunk that its stored checksum covers, 0 when
//                        that chunk is whole (version 1 wrote 0 here; readers ignore it). It
//                        matters under tmp/ only: an append writes the data, then the
//                        checksums, then this field, so after a kill part-way through a
//                        rewrite of a partial last chunk, Open() still finds the length
//                        that the stored checksum covers.
//   offset 16  u64 × N   one checksum per chunk of the data, N = ceil(num_bytes / bytes_per_checksum);
//                        the last chunk may be shorter than bytes_per_checksum
//
// Volume failures: an I/O error on a volume (EIO, EROFS, a vanished device), or
// any other unexpected error after which the volume fails a check (its
// current/ and tmp/ are directories, can be listed, and take a small synced
// file), takes that volume out of service for good: its replicas leave the map
// (the next block report omits them, so the NameNode re-replicates them),
// nothing is placed there any more, failed_volumes() counts it and
// Options::on_volume_failure is told. ENOSPC only fails the write at hand (its
// temporary is removed). A volume with less than Options::block_size of room
// takes a new replica only when no volume has a block of room.
//
// Space: Options::capacity caps what each volume gives dfs (a teacher's limit on
// a lab machine, or a test's); an Append beyond it fails with NoSpace. Every
// replica being written holds a reservation of block_size bytes on its volume
// until it has written that much, so remaining() already counts blocks that
// are still arriving.
//
// Thread-safety: every method may be called from any thread. A ReplicaWriter or
// ReplicaReader is used by one thread at a time and must not outlive its store.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
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

// What a reader may see of a replica being written: the bytes that this node
// and every node behind it in the pipeline have acknowledged (HDFS's
// bytesAcked), with the checksum of the partial chunk they end in, if they
// end inside one (the sum stored on disk may already cover later bytes).
// Written by the transfer server as it acks, read by readers; thread-safe.
class ReplicaProgress {
 public:
  void Publish(uint64_t acked, uint64_t tail_checksum) {
    std::lock_guard<std::mutex> l(mu_);
    acked_ = acked;
    tail_checksum_ = tail_checksum;
  }
  // {acked bytes, checksum of their partial last chunk (0 when it is whole)}.
  std::pair<uint64_t, uint64_t> Get() const {
    std::lock_guard<std::mutex> l(mu_);
    return {acked_, tail_checksum_};
  }

 private:
  mutable std::mutex mu_;
  uint64_t acked_ = 0;
  uint64_t tail_checksum_ = 0;
};

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
  // hsync: fdatasyncs the data and meta files (and, the first time, tmp/, so
  // the names survive a power loss too), whatever sync_on_close says.
  [[nodiscard]] Status Sync();
  // Syncs (when sync_on_close), publishes the replica and returns it with num_bytes.
  [[nodiscard]] Result<proto::Block> Finalize();
  // Removes the temporary files. Idempotent.
  void Abort();
  // Ends a write that failed because of the pipeline (a peer vanished or sent
  // garbage), keeping the verified bytes under tmp/ as a recoverable replica:
  // the writer may continue it (pipeline recovery) or the NameNode may close it
  // (lease recovery). See BlockStore::Recover. Idempotent.
  void Suspend();

  uint64_t length() const { return length_; }
  uint32_t bytes_per_checksum() const { return bpc_; }
  const proto::Block& block() const { return block_; }
  // The checksum of the partial chunk that length() ends in; 0 when it ends on a chunk boundary.
  uint64_t tail_checksum() const { return tail_sum_; }
  // Where the caller publishes what readers may see (see ReplicaProgress).
  const std::shared_ptr<ReplicaProgress>& progress() const { return progress_; }

 private:
  friend class BlockStore;
  ReplicaWriter(BlockStore* store, size_t volume, proto::Block block, uint32_t bpc, std::string tmp_data,
                std::string tmp_meta, int data_fd, int meta_fd);
  void CloseFds();
  // Gives back this writer's share of its volume's in-flight bytes and reservation. Idempotent.
  void ReleaseSpace();
  Status Failed(Status s, int err);

  BlockStore* store_;
  size_t volume_;
  proto::Block block_;
  uint32_t bpc_;
  std::string tmp_data_, tmp_meta_;
  int data_fd_, meta_fd_;
  uint64_t length_ = 0;
  std::unique_ptr<char[]> tail_;  // bytes of a partial last chunk, kept only across a mid-chunk end
  size_t tail_len_ = 0;
  uint64_t tail_sum_ = 0;    // tail_checksum()
  uint32_t meta_tail_ = 0;   // the tail field in the meta header (see the top of this file)
  bool dir_synced_ = false;  // tmp/ was fsynced since these files got their names
  bool done_ = false;
  std::shared_ptr<ReplicaProgress> progress_;
  uint64_t in_flight_ = 0;  // bytes this writer put under tmp/ (data and meta), counted in its volume's in_flight
  uint64_t reserved_ = 0;   // reservation not yet written, counted in its volume's reserved
};

// An open replica: a finalized one, or one being written, of which it reads
// the bytes acknowledged when it was opened. File descriptors stay valid even
// if the replica is deleted, published or recovered meanwhile.
class ReplicaReader {
 public:
  ~ReplicaReader();
  ReplicaReader(const ReplicaReader&) = delete;
  ReplicaReader& operator=(const ReplicaReader&) = delete;

  const proto::Block& block() const { return block_; }  // num_bytes is the length
  uint64_t length() const { return block_.num_bytes(); }
  uint32_t bytes_per_checksum() const { return bpc_; }
  int data_fd() const { return data_fd_; }
  bool being_written() const { return being_written_; }
  // Reads `count` checksums starting at chunk `first_chunk`. For a replica
  // being written, the partial chunk that length() ends in gets the sum of
  // those bytes (ReplicaProgress), not the stored one.
  [[nodiscard]] Status ReadChecksums(uint64_t first_chunk, size_t count, uint64_t* out) const;
  // Reads data bytes with pread (for callers that cannot use data_fd with sendfile).
  [[nodiscard]] Status ReadData(uint64_t offset, size_t n, char* out) const;

 private:
  friend class BlockStore;
  ReplicaReader(BlockStore* store, size_t volume, proto::Block block, uint32_t bpc, int data_fd, int meta_fd,
                std::string path)
      : store_(store),
        volume_(volume),
        block_(std::move(block)),
        bpc_(bpc),
        data_fd_(data_fd),
        meta_fd_(meta_fd),
        path_(std::move(path)) {}
  BlockStore* store_;
  size_t volume_;
  proto::Block block_;
  uint32_t bpc_;
  int data_fd_, meta_fd_;
  std::string path_;
  bool being_written_ = false;
  uint64_t tail_checksum_ = 0;  // being written: the sum of the partial chunk length() ends in
};

class BlockStore {
 public:
  struct Options {
    std::vector<std::string> dirs;  // data dirs; created when missing
    uint64_t reserved_bytes = 0;    // per volume, left for non-dfs use (dfs.datanode.du.reserved)
    bool sync_on_close = true;      // fsync replicas and dirs before publishing (dfs.datanode.sync-on-close)
    uint64_t capacity = 0;          // per volume, most bytes dfs may store there; 0 = the file system's size
                                    // (dfs.datanode.capacity)
    uint64_t block_size = 0;        // a block (dfs.blocksize): reserved per replica being written, and the room
                                    // a volume needs to count in remaining() and to be preferred for placement
    // Called once per volume that fails at run time, with its dir and why, from
    // whichever thread saw the error; must not call back into the store.
    std::function<void(const std::string& dir, const Status& why)> on_volume_failure;
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

  // Opens the finalized replica, or else the one being written with
  // block.gen_stamp(), or one whose write was suspended (until a recovery
  // takes it), up to what its pipeline acknowledged (a reader of a file being
  // written, or of one whose writer vanished). NotFound when absent; Stale when the stored gen
  // stamp differs from block.gen_stamp(); Corruption when its meta file is bad.
  Result<std::unique_ptr<ReplicaReader>> OpenForRead(const proto::Block& block);

  // ---- Recovery of replicas whose write did not finish --------------------
  // What this node holds of a block: a finalized replica, else a recoverable
  // temporary (left by Suspend), else nothing (state REPLICA_NONE). `writing`
  // is set when a write of the block is still in progress.
  struct ReplicaInfo {
    int state = 0;  // proto::ReplicaState
    uint64_t gen_stamp = 0;
    uint64_t num_bytes = 0;
    bool writing = false;
  };
  ReplicaInfo Inspect(BlockId id) const;
  // What OpenForRead would serve of `block`: state REPLICA_FINALIZED and its
  // length, or REPLICA_BEING_WRITTEN (REPLICA_TEMPORARY when suspended) and
  // the bytes acknowledged so far. Same
  // errors as OpenForRead, without opening anything.
  Result<ReplicaInfo> VisibleLength(const proto::Block& block) const;
  // Reopens this node's replica of `id` stored under a gen stamp in
  // [min_gen_stamp, new_gen_stamp) (a recoverable temporary, or a finalized
  // replica, which goes back to tmp/), truncated to `length` bytes and renamed
  // to new_gen_stamp, for appending or finalizing. NotFound when there is no
  // such replica, Stale when it is shorter than `length`, AlreadyExists when
  // a write of it is still in progress.
  Result<std::unique_ptr<ReplicaWriter>> Recover(BlockId id, uint64_t min_gen_stamp, uint64_t new_gen_stamp,
                                                 uint64_t length);
  // Deletes recoverable temporaries older than max_age (nobody came back for
  // them). Returns how many.
  size_t ExpireRecoverable(std::chrono::milliseconds max_age);
  size_t num_recoverable() const;

  // Removes a finalized replica. NotFound when absent; Stale (and nothing is
  // removed) when the stored gen stamp is newer than block.gen_stamp().
  Status Delete(const proto::Block& block);

  // The finalized replica of `id`, if any (num_bytes set).
  std::optional<proto::Block> GetReplica(BlockId id) const;
  // Every finalized replica, for block reports.
  std::vector<proto::Block> AllReplicas() const;
  size_t num_replicas() const;

  // Totals over healthy volumes, in bytes. capacity = file system size minus
  // reserved, at most Options::capacity; remaining = room for new replicas:
  // free space for non-root users minus reserved, minus the reservations of
  // replicas being written, within the capacity limit, summed over the volumes
  // that have room for a whole block (the others cannot take one, so the
  // NameNode must not count on them); dfs_used = bytes of replica data and meta
  // files.
  uint64_t capacity() const;
  uint64_t dfs_used() const;
  uint64_t remaining() const;
  // Volumes that could not be opened or failed since.
  uint32_t failed_volumes() const { return failed_volumes_.load(); }
  // The dirs of the volumes in service.
  std::vector<std::string> volumes() const;

  // Checks every volume in service (see the top of this file) and takes the
  // broken ones out. Returns how many failed now. Does disk I/O: not for hot paths.
  size_t CheckVolumes();
  // Test hook (a fault point that costs one relaxed load when off): every later
  // Append, Sync, ReadData and ReadChecksums on the volume of `dir` fails with
  // errno `err` (0 turns it off), as a failing disk would.
  void InjectFault(const std::string& dir, int err);
  // Test hook: every later ReplicaWriter::Sync sleeps this long first (0: not).
  void InjectSyncDelay(std::chrono::milliseconds delay) { sync_delay_ms_ = delay.count(); }
  // ReplicaWriter::Sync calls that fdatasynced a replica (hsync requests served).
  uint64_t sync_count() const { return syncs_.load(); }

 private:
  friend class ReplicaWriter;
  friend class ReplicaReader;
  struct Volume {
    std::string dir;
    std::atomic<uint64_t> used{0};       // replica data and meta files in current/
    std::atomic<uint64_t> in_flight{0};  // bytes written so far to replicas being written
    std::atomic<uint64_t> reserved{0};   // reservations of replicas being written, not yet written
    std::atomic<bool> failed{false};     // out of service for good (volumes_ keeps it so indexes stay valid)
    std::atomic<int> fault{0};           // InjectFault
  };
  struct Replica {
    uint64_t gen_stamp;
    uint64_t num_bytes;
    size_t volume;
    uint32_t bpc;
  };
  struct Recoverable {
    uint64_t gen_stamp;
    uint64_t num_bytes;
    size_t volume;
    uint32_t bpc;
    std::chrono::steady_clock::time_point since;
    // What its pipeline had acknowledged when the write was suspended, still
    // served to readers; none for what a restart found.
    std::shared_ptr<ReplicaProgress> progress = nullptr;
  };

  explicit BlockStore(Options options) : options_(std::move(options)) {}
  Status ScanVolume(size_t v);
  // Keeps what a crash or kill left under v's tmp/ as recoverable replicas
  // (their verified prefix), deleting what is unusable or superseded. Runs
  // after every volume's current/ was scanned.
  void LoadTemporaries(size_t v);
  std::string FinalPath(size_t volume, uint64_t id, uint64_t gs) const;
  Result<size_t> ChooseVolume();
  uint64_t VolumeRemaining(size_t v) const;
  // What an I/O error `err` (errno, 0 when none) met on volume v means: on a
  // disk error, or when the volume then fails its check, the volume is taken
  // out of service. Returns `s`, saying so. Call without mu_ held.
  Status OnIoError(size_t v, const Status& s, int err);
  Status CheckVolume(size_t v) const;
  void FailVolume(size_t v, const Status& why);
  Result<proto::Block> Publish(ReplicaWriter* w, int* err);
  void ForgetTemporary(uint64_t id, uint64_t gs);
  void KeepRecoverable(ReplicaWriter* w);
  std::string TmpPath(size_t volume, uint64_t id, uint64_t gs) const;
  // Forgets and deletes a recoverable temporary of `id` older than gen stamp `gs`.
  void DropRecoverableLocked(uint64_t id, uint64_t below_gs);

  Options options_;
  std::vector<std::unique_ptr<Volume>> volumes_;
  std::vector<std::string> volume_dirs_;  // guarded by mu_: volumes in service
  std::atomic<uint32_t> failed_volumes_{0};

  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Replica> replicas_;   // by block id; finalized only
  struct Writing {
    size_t volume;
    uint32_t bpc;
    std::shared_ptr<ReplicaProgress> progress;
  };
  std::map<std::pair<uint64_t, uint64_t>, Writing> writing_;  // by (id, gs): being written under tmp/
  std::unordered_map<uint64_t, Recoverable> recoverable_;  // by block id: suspended writes under tmp/
  size_t next_volume_ = 0;                           // round robin among ties
  std::atomic<uint64_t> syncs_{0};
  std::atomic<int64_t> sync_delay_ms_{0};
};

}  // namespace dfs::datanode
