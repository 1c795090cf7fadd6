#include "datanode/block_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>
#include <tuple>

#include "common/checksum.h"
#include "common/data_transfer.h"
#include "common/logging.h"

namespace dfs::datanode {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kTieBytes = 1u << 20;  // volumes this close in free space count as tied

// What an errno from a replica's file means for its volume.
enum class IoFault {
  kNone,    // not about the disk (no errno, out of descriptors or memory): nothing to do
  kFull,    // no space: this write fails, the volume stays
  kDisk,    // the device itself failed: the volume goes
  kSuspect  // unexpected (a file or dir vanished, permissions changed): the volume goes if it fails its check
};

IoFault ClassifyErrno(int err) {
  switch (err) {
    case 0:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case EAGAIN:
    case EINTR:
      return IoFault::kNone;
    case ENOSPC:
    case EDQUOT:
      return IoFault::kFull;
    case EIO:
    case EROFS:  // the kernel remounts a file system read-only after errors
    case ENODEV:
    case ENXIO:
    case ENOMEDIUM:
    case EUCLEAN:  // "structure needs cleaning": a corrupt file system
    case ESTALE:
    case ENOTCONN:
      return IoFault::kDisk;
    default:
      return IoFault::kSuspect;
  }
}

// The I/O helpers store the failing call's errno in *err when given one (the
// store's reaction depends on it: a full disk is not a broken one).
Status WriteAll(int fd, const char* p, size_t n, const std::string& path, int* err = nullptr) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (err) *err = errno;
      return Status::FromErrno("write " + path, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::OK();
}

Status PWriteAll(int fd, const void* buf, size_t n, uint64_t off, const std::string& path, int* err = nullptr) {
  auto p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      if (err) *err = errno;
      return Status::FromErrno("write " + path, errno);
    }
    p += w;
    off += static_cast<uint64_t>(w);
    n -= static_cast<size_t>(w);
  }
  return Status::OK();
}

Status PReadAll(int fd, void* buf, size_t n, uint64_t off, const std::string& path, int* err = nullptr) {
  auto p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      if (err) *err = errno;
      return Status::FromErrno("read " + path, errno);
    }
    if (r == 0) return Status::Corruption(fmt::format("{} is shorter than expected", path));
    p += r;
    off += static_cast<uint64_t>(r);
    n -= static_cast<size_t>(r);
  }
  return Status::OK();
}

Status FsyncPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open " + path, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  return rc == 0 ? Status::OK() : Status::FromErrno("fsync " + path, err);
}

void EncodeMetaHeader(uint32_t bpc, char* out) {
  std::memcpy(out, "DFSM", 4);
  uint16_t version = kMetaVersion, type = kChecksumTypeXxh3;
  uint32_t reserved = 0;
  std::memcpy(out + 4, &version, 2);  // little-endian host (static_assert in data_transfer.cc)
  std::memcpy(out + 6, &type, 2);
  std::memcpy(out + 8, &bpc, 4);
  std::memcpy(out + 12, &reserved, 4);
}

// Returns bytes_per_checksum from a meta header, or Corruption naming the file.
Result<uint32_t> DecodeMetaHeader(const char* in, const std::string& path) {
  uint16_t version, type;
  uint32_t bpc;
  std::memcpy(&version, in + 4, 2);
  std::memcpy(&type, in + 6, 2);
  std::memcpy(&bpc, in + 8, 4);
  if (std::memcmp(in, "DFSM", 4) != 0) return Status::Corruption(path + " is not a dfs meta file (bad magic)");
  if (version != kMetaVersion) {
    return Status::Corruption(
        fmt::format("{} has meta version {}, this DataNode reads {}", path, version, kMetaVersion));
  }
  if (type != kChecksumTypeXxh3) return Status::Corruption(fmt::format("{} has unknown checksum type {}", path, type));
  if (bpc == 0) return Status::Corruption(path + " has bytes_per_checksum 0");
  return bpc;
}

uint64_t MetaFileSize(uint64_t num_bytes, uint32_t bpc) {
  return kMetaHeaderBytes + PacketChunks(0, num_bytes, bpc) * 8;
}

constexpr uint64_t kMetaTailOffset = 12;  // the header's tail field (see block_store.h)

// "blk_<id>_<gs>" or "blk_<id>_<gs>.meta" → id, gs, is_meta.
bool ParseReplicaName(const std::string& name, uint64_t* id, uint64_t* gs, bool* is_meta) {
  std::string_view s(name);
  if (s.substr(0, 4) != "blk_") return false;
  s.remove_prefix(4);
  *is_meta = s.size() > 5 && s.substr(s.size() - 5) == ".meta";
  if (*is_meta) s.remove_suffix(5);
  auto us = s.find('_');
  if (us == std::string_view::npos) return false;
  auto r1 = std::from_chars(s.data(), s.data() + us, *id);
  auto r2 = std::from_chars(s.data() + us + 1, s.data() + s.size(), *gs);
  return r1.ec == std::errc() && r1.ptr == s.data() + us && r2.ec == std::errc() && r2.ptr == s.data() + s.size() &&
         us > 0 && us + 1 < s.size();
}

std::string ReplicaFileName(uint64_t id, uint64_t gs) { return fmt::format("blk_{}_{}", id, gs); }
std::string SubdirName(uint64_t id) { return fmt::format("subdir{:02}", id % kSubdirs); }

// The longest prefix of a temporary replica (files dfd and mfd at `path`) whose
// checksums verify, after a crash or a kill: `sums` is how many checksums its
// meta file holds, `tail_hint` its header's tail field. An append writes the
// data, then the checksums, then the tail field, so a write cut short leaves
// either the full length verifying, or the last chunk's stored sum covering
// the `tail_hint` bytes it covered before; anything else walks back a chunk
// at a time (every earlier chunk was complete before the cut).
Result<uint64_t> VerifiedLength(int dfd, int mfd, uint32_t bpc, uint64_t data_size, uint64_t sums,
                                uint32_t tail_hint, const std::string& path) {
  std::unique_ptr<char[]> buf(new char[bpc]);
  // Whether [start, end), within one chunk, matches that chunk's stored sum.
  auto matches = [&](uint64_t start, uint64_t end) -> Result<bool> {
    uint64_t want = 0;
    DFS_RETURN_IF_ERROR(PReadAll(mfd, &want, 8, kMetaHeaderBytes + start / bpc * 8, path + ".meta"));
    DFS_RETURN_IF_ERROR(PReadAll(dfd, buf.get(), static_cast<size_t>(end - start), start, path));
    return ChunkChecksum(buf.get(), static_cast<size_t>(end - start)) == want;
  };
  uint64_t len = std::min(data_size, sums * bpc);
  bool last = true;
  while (len > 0) {
    const uint64_t start = (len - 1) / bpc * bpc;
    DFS_ASSIGN_OR_RETURN(bool ok, matches(start, len));
    if (ok) return len;
    if (last && start / bpc + 1 == sums && tail_hint > 0 && start + tail_hint < len) {
      DFS_ASSIGN_OR_RETURN(ok, matches(start, start + tail_hint));
      if (ok) return start + tail_hint;
    }
    last = false;
    len = start;
  }
  return uint64_t{0};
}

}  // namespace

// ---------------------------------------------------------------------------
// ReplicaWriter

ReplicaWriter::ReplicaWriter(BlockStore* store, size_t volume, proto::Block block, uint32_t bpc, std::string tmp_data,
                             std::string tmp_meta, int data_fd, int meta_fd)
    : store_(store),
      volume_(volume),
      block_(std::move(block)),
      bpc_(bpc),
      tmp_data_(std::move(tmp_data)),
      tmp_meta_(std::move(tmp_meta)),
      data_fd_(data_fd),
      meta_fd_(meta_fd) {}

ReplicaWriter::~ReplicaWriter() {
  Abort();
  ReleaseSpace();  // after Suspend, the bytes left under tmp/ no longer count as being written
}

void ReplicaWriter::ReleaseSpace() {
  BlockStore::Volume& vol = *store_->volumes_[volume_];
  vol.in_flight -= in_flight_;
  vol.reserved -= reserved_;
  in_flight_ = reserved_ = 0;
}

Status ReplicaWriter::Failed(Status s, int err) {
  s = store_->OnIoError(volume_, s, err);
  // Nothing half-written stays behind on a full or failed volume.
  if (s.code() == StatusCode::kNoSpace || store_->volumes_[volume_]->failed) Abort();
  return s;
}

void ReplicaWriter::CloseFds() {
  if (data_fd_ >= 0) ::close(data_fd_);
  if (meta_fd_ >= 0) ::close(meta_fd_);
  data_fd_ = meta_fd_ = -1;
}

Status ReplicaWriter::Append(const char* data, size_t n, const uint64_t* checksums) {
  if (done_) return Status::Internal("append to a replica that is already finalized or aborted");
  if (n == 0) return Status::OK();
  BlockStore::Volume& vol = *store_->volumes_[volume_];
  if (int fault = vol.fault.load(std::memory_order_relaxed)) {
    return Failed(Status::FromErrno("write " + tmp_data_ + " (injected fault)", fault), fault);
  }
  const uint64_t grow = n + MetaFileSize(length_ + n, bpc_) - MetaFileSize(length_, bpc_);
  if (const uint64_t cap = store_->options_.capacity; cap > 0) {
    const uint64_t have = vol.used.load() + vol.in_flight.load();
    if (have + grow > cap) {
      return Failed(Status::NoSpace(fmt::format("data dir {} is full: it holds {} bytes and the capacity limit "
                                                "dfs.datanode.capacity = {} leaves no room for {} more",
                                                vol.dir, have, cap, grow)),
                    0);
    }
  }
  const uint64_t first_chunk = length_ / bpc_;
  const size_t nsums = PacketChunks(length_, n, bpc_);
  uint64_t combined = 0;  // the first chunk's sum, when this append continues a partial chunk
  int err = 0;
  Status s = WriteAll(data_fd_, data, n, tmp_data_, &err);
  const uint64_t sums_off = kMetaHeaderBytes + first_chunk * 8;
  if (s.ok() && tail_len_ > 0) {
    // The previous append ended inside a chunk: the stored sum covers only its
    // first part, so hash the whole chunk again.
    size_t piece = std::min<size_t>(n, bpc_ - tail_len_);
    std::memcpy(tail_.get() + tail_len_, data, piece);
    combined = ChunkChecksum(tail_.get(), tail_len_ + piece);
    s = PWriteAll(meta_fd_, &combined, 8, sums_off, tmp_meta_, &err);
    if (s.ok() && nsums > 1) s = PWriteAll(meta_fd_, checksums + 1, (nsums - 1) * 8, sums_off + 8, tmp_meta_, &err);
  } else if (s.ok()) {
    s = PWriteAll(meta_fd_, checksums, nsums * 8, sums_off, tmp_meta_, &err);
  }
  // Last, the tail field, for a restart after a kill part-way through the next
  // append (see block_store.h). Packets normally end on chunk boundaries, so
  // it rarely changes.
  const uint32_t new_tail = static_cast<uint32_t>((length_ + n) % bpc_);
  if (s.ok() && new_tail != meta_tail_) {
    s = PWriteAll(meta_fd_, &new_tail, 4, kMetaTailOffset, tmp_meta_, &err);
    if (s.ok()) meta_tail_ = new_tail;
  }
  if (!s.ok()) return Failed(s, err);
  in_flight_ += grow;
  vol.in_flight += grow;
  const uint64_t used_up = std::min(reserved_, grow);
  reserved_ -= used_up;
  vol.reserved -= used_up;
  const size_t old_tail = tail_len_;
  length_ += n;
  const size_t rem = static_cast<size_t>(length_ % bpc_);
  // The sum of the partial chunk the replica now ends in: the one just stored
  // for it (the last piece starts on a chunk boundary unless it continued the
  // partial chunk, whose sum was hashed above).
  tail_sum_ = rem == 0 ? 0 : (old_tail > 0 && nsums == 1) ? combined : checksums[nsums - 1];
  if (rem == 0) {
    tail_len_ = 0;
  } else if (old_tail > 0 && rem == old_tail + n) {
    tail_len_ = rem;  // still inside the same chunk; already copied above
  } else {
    if (!tail_) tail_.reset(new char[bpc_]);
    std::memcpy(tail_.get(), data + n - rem, rem);
    tail_len_ = rem;
  }
  return Status::OK();
}

Status ReplicaWriter::Sync() {
  if (done_) return Status::Internal("sync of a replica that is already finalized or aborted");
  BlockStore::Volume& vol = *store_->volumes_[volume_];
  if (int64_t delay = store_->sync_delay_ms_.load(std::memory_order_relaxed); delay > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  }
  if (int fault = vol.fault.load(std::memory_order_relaxed)) {
    return Failed(Status::FromErrno("fsync " + tmp_data_ + " (injected fault)", fault), fault);
  }
  for (auto [fd, path] : {std::pair{data_fd_, &tmp_data_}, std::pair{meta_fd_, &tmp_meta_}}) {
    if (::fdatasync(fd) != 0) {
      const int err = errno;
      return Failed(Status::FromErrno("fsync " + *path, err), err);
    }
  }
  if (!dir_synced_) {
    // A new name (a new replica, or one renamed by a recovery) is durable only
    // once its directory is.
    const std::string tmp_dir = tmp_data_.substr(0, tmp_data_.rfind('/'));
    if (Status s = FsyncPath(tmp_dir); !s.ok()) return Failed(s, 0);
    dir_synced_ = true;
  }
  ++store_->syncs_;
  return Status::OK();
}

Result<proto::Block> ReplicaWriter::Finalize() {
  if (done_) return Status::Internal("finalize of a replica that is already finalized or aborted");
  if (store_->options_.sync_on_close) {
    for (auto [fd, path] : {std::pair{data_fd_, &tmp_data_}, std::pair{meta_fd_, &tmp_meta_}}) {
      if (::fdatasync(fd) != 0) {
        const int err = errno;
        Status s = Failed(Status::FromErrno("fsync " + *path, err), err);
        Abort();
        return s;
      }
    }
  }
  CloseFds();
  block_.set_num_bytes(length_);
  int err = 0;
  auto r = store_->Publish(this, &err);
  if (!r.ok()) {
    Status s = err ? Failed(r.status(), err) : r.status();
    Abort();
    return s;
  }
  done_ = true;
  return r;
}

void ReplicaWriter::Suspend() {
  if (done_) return;
  done_ = true;
  CloseFds();
  store_->KeepRecoverable(this);
}

void ReplicaWriter::Abort() {
  if (done_) return;
  done_ = true;
  CloseFds();
  ::unlink(tmp_data_.c_str());
  ::unlink(tmp_meta_.c_str());
  ReleaseSpace();
  store_->ForgetTemporary(block_.id(), block_.gen_stamp());
}

// ---------------------------------------------------------------------------
// ReplicaReader

ReplicaReader::~ReplicaReader() {
  if (data_fd_ >= 0) ::close(data_fd_);
  if (meta_fd_ >= 0) ::close(meta_fd_);
}

Status ReplicaReader::ReadChecksums(uint64_t first_chunk, size_t count, uint64_t* out) const {
  int err = store_->volumes_[volume_]->fault.load(std::memory_order_relaxed);
  Status s = err ? Status::FromErrno("read " + path_ + ".meta (injected fault)", err)
                 : PReadAll(meta_fd_, out, count * 8, kMetaHeaderBytes + first_chunk * 8, path_ + ".meta", &err);
  if (!s.ok()) return store_->OnIoError(volume_, s, err);
  if (being_written_ && count > 0 && length() % bpc_ != 0 && first_chunk + count - 1 == length() / bpc_) {
    out[count - 1] = tail_checksum_;  // the stored sum may cover bytes written since
  }
  return s;
}

Status ReplicaReader::ReadData(uint64_t offset, size_t n, char* out) const {
  int err = store_->volumes_[volume_]->fault.load(std::memory_order_relaxed);
  Status s = err ? Status::FromErrno("read " + path_ + " (injected fault)", err)
                 : PReadAll(data_fd_, out, n, offset, path_, &err);
  return s.ok() ? s : store_->OnIoError(volume_, s, err);
}

// ---------------------------------------------------------------------------
// BlockStore

BlockStore::~BlockStore() = default;

Result<std::unique_ptr<BlockStore>> BlockStore::Open(const Options& options) {
  if (options.dirs.empty()) return Status::InvalidArgument("no data dir configured (dfs.datanode.data.dir)");
  std::unique_ptr<BlockStore> store(new BlockStore(options));
  auto log = Log("dn");
  std::vector<std::string> errors;
  for (const auto& dir : options.dirs) {
    std::error_code ec;
    fs::create_directories(fs::path(dir) / "current", ec);
    if (!ec) fs::create_directories(fs::path(dir) / "tmp", ec);
    for (uint32_t i = 0; !ec && i < kSubdirs; ++i) {
      fs::create_directories(fs::path(dir) / "current" / fmt::format("subdir{:02}", i), ec);
    }
    if (ec) {
      errors.push_back(fmt::format("{}: {}", dir, ec.message()));
      log->warn("data dir {} is unusable and counts as a failed volume: {}", dir, ec.message());
      ++store->failed_volumes_;
      continue;
    }
    auto vol = std::make_unique<Volume>();
    vol->dir = dir;
    store->volumes_.push_back(std::move(vol));
    size_t v = store->volumes_.size() - 1;
    Status s = store->ScanVolume(v);
    if (!s.ok()) {
      errors.push_back(s.message());
      log->warn("data dir {} could not be scanned and counts as a failed volume: {}", dir, s.ToString());
      ++store->failed_volumes_;
      // Forget what this volume contributed so far.
      for (auto it = store->replicas_.begin(); it != store->replicas_.end();) {
        it = it->second.volume == v ? store->replicas_.erase(it) : std::next(it);
      }
      store->volumes_.pop_back();
      continue;
    }
    store->volume_dirs_.push_back(dir);
  }
  if (store->volumes_.empty()) {
    std::string all;
    for (auto& e : errors) all += (all.empty() ? "" : "; ") + e;
    return Status::IOError("no usable data dir: " + all);
  }
  for (size_t v = 0; v < store->volumes_.size(); ++v) store->LoadTemporaries(v);
  log->info("block store opened: {} volume(s), {} failed, {} replicas, {} bytes used, {} unfinished replica(s) "
            "kept for recovery",
            store->volumes_.size(), store->failed_volumes(), store->replicas_.size(), store->dfs_used(),
            store->recoverable_.size());
  return store;
}

std::string BlockStore::FinalPath(size_t volume, uint64_t id, uint64_t gs) const {
  return fmt::format("{}/current/{}/{}", volumes_[volume]->dir, SubdirName(id), ReplicaFileName(id, gs));
}

Status BlockStore::ScanVolume(size_t v) {
  auto log = Log("dn");
  const fs::path root(volumes_[v]->dir);
  std::error_code ec;
  // Temporaries are looked at once every volume's finalized replicas are
  // known (LoadTemporaries); tmp/ must be readable for the volume to count.
  { fs::directory_iterator probe(root / "tmp", ec); }
  if (ec) return Status::IOError(fmt::format("cannot list {}/tmp: {}", root.string(), ec.message()));

  struct Files {
    bool data = false, meta = false;
    uint64_t data_size = 0;
  };
  for (fs::directory_iterator sit(root / "current", ec), end; !ec && sit != end; sit.increment(ec)) {
    if (!sit->is_directory()) continue;
    const std::string subdir = sit->path().filename().string();
    std::map<std::pair<uint64_t, uint64_t>, Files> found;
    std::error_code fec;
    for (fs::directory_iterator fit(sit->path(), fec); !fec && fit != end; fit.increment(fec)) {
      uint64_t id = 0, gs = 0;
      bool is_meta = false;
      const std::string name = fit->path().filename().string();
      if (!ParseReplicaName(name, &id, &gs, &is_meta) || SubdirName(id) != subdir) {
        log->warn("ignoring unexpected file {} in the data dir", fit->path().string());
        continue;
      }
      Files& f = found[{id, gs}];
      if (is_meta) {
        f.meta = true;
      } else {
        f.data = true;
        std::error_code sec;
        f.data_size = fs::file_size(fit->path(), sec);
      }
    }
    if (fec) return Status::IOError(fmt::format("cannot list {}: {}", sit->path().string(), fec.message()));
    for (auto& [key, f] : found) {
      auto [id, gs] = key;
      const std::string path = (sit->path() / ReplicaFileName(id, gs)).string();
      if (!f.data || !f.meta) {
        // Publication renames meta first then data, so a lone file is a crash
        // leftover (or half of a deletion): neither is a usable replica.
        ::unlink((path + (f.data ? "" : ".meta")).c_str());
        log->info("removed orphaned {} {}", f.data ? "data file" : "meta file", path + (f.data ? "" : ".meta"));
        continue;
      }
      char hdr[kMetaHeaderBytes];
      int fd = ::open((path + ".meta").c_str(), O_RDONLY | O_CLOEXEC);
      struct stat st {};
      Status hs = fd < 0 ? Status::FromErrno("open " + path + ".meta", errno)
                         : PReadAll(fd, hdr, sizeof hdr, 0, path + ".meta");
      if (fd >= 0 && hs.ok() && ::fstat(fd, &st) != 0) hs = Status::FromErrno("stat " + path + ".meta", errno);
      if (fd >= 0) ::close(fd);
      Result<uint32_t> bpc = hs.ok() ? DecodeMetaHeader(hdr, path + ".meta") : Result<uint32_t>(hs);
      if (!bpc.ok()) {
        log->warn("skipping replica {}: {}", path, bpc.status().ToString());
        continue;
      }
      const uint64_t meta_size = static_cast<uint64_t>(st.st_size);
      if (meta_size != MetaFileSize(f.data_size, *bpc)) {
        log->warn("skipping replica {}: its meta file has {} bytes but {} data bytes need {}", path, meta_size,
                  f.data_size, MetaFileSize(f.data_size, *bpc));
        continue;
      }
      auto it = replicas_.find(id);
      if (it != replicas_.end()) {
        // Two replicas of one block: keep the newer generation stamp.
        const Replica old = it->second;
        if (old.gen_stamp >= gs) {
          ::unlink(path.c_str());
          ::unlink((path + ".meta").c_str());
          log->info("removed {}: generation stamp {} is already stored", path, old.gen_stamp);
          continue;
        }
        const std::string old_path = FinalPath(old.volume, id, old.gen_stamp);
        ::unlink(old_path.c_str());
        ::unlink((old_path + ".meta").c_str());
        volumes_[old.volume]->used -= old.num_bytes + MetaFileSize(old.num_bytes, old.bpc);
        log->info("removed {}: superseded by generation stamp {}", old_path, gs);
      }
      replicas_[id] = Replica{gs, f.data_size, v, *bpc};
      volumes_[v]->used += f.data_size + meta_size;
    }
  }
  if (ec) return Status::IOError(fmt::format("cannot list {}/current: {}", root.string(), ec.message()));
  return Status::OK();
}

namespace {
uint64_t SubSat(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }
}  // namespace

uint64_t BlockStore::VolumeRemaining(size_t v) const {
  const Volume& vol = *volumes_[v];
  if (vol.failed) return 0;
  struct statvfs sv {};
  if (::statvfs(vol.dir.c_str(), &sv) != 0) return 0;
  if (sv.f_files > 0 && sv.f_favail == 0) return 0;  // out of inodes: no replica file can be created
  uint64_t room = SubSat(SubSat(static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize, options_.reserved_bytes),
                         vol.reserved.load());
  if (options_.capacity > 0) {
    room = std::min(room, SubSat(options_.capacity, vol.used.load() + vol.in_flight.load() + vol.reserved.load()));
  }
  return room;
}

Result<size_t> BlockStore::ChooseVolume() {
  std::vector<uint64_t> rem(volumes_.size(), 0);
  uint64_t best = 0;
  size_t in_service = 0;
  for (size_t v = 0; v < volumes_.size(); ++v) {
    if (volumes_[v]->failed) continue;
    ++in_service;
    best = std::max(best, rem[v] = VolumeRemaining(v));
  }
  if (in_service == 0) {
    return Status::IOError(fmt::format("every data dir of this DataNode has failed ({} failed volumes)",
                                       failed_volumes()));
  }
  if (best == 0) {
    return Status::NoSpace(fmt::format(
        "no data dir has room for a new replica: {} (dfs.datanode.du.reserved = {} bytes{}); delete files, raise "
        "the limit or add a data dir",
        fmt::join(volume_dirs_, ", "), options_.reserved_bytes,
        options_.capacity ? fmt::format(", dfs.datanode.capacity = {} bytes", options_.capacity) : ""));
  }
  // Volumes with room for a whole block go first; one with less takes a
  // replica only when no volume has a block of room (the replica may be short).
  const uint64_t floor = best >= options_.block_size ? std::max<uint64_t>(options_.block_size, 1) : 1;
  std::vector<size_t> ties;
  for (size_t v = 0; v < volumes_.size(); ++v) {
    if (rem[v] >= floor && rem[v] + kTieBytes >= best) ties.push_back(v);
  }
  return ties[next_volume_++ % ties.size()];
}

Result<std::unique_ptr<ReplicaWriter>> BlockStore::CreateTemporary(const proto::Block& block,
                                                                   uint32_t bytes_per_checksum) {
  const uint64_t id = block.id(), gs = block.gen_stamp();
  const std::string name = BlockName(BlockId(id));
  if (bytes_per_checksum == 0) return Status::InvalidArgument("bytes_per_checksum must be positive");
  // A volume that turns out to be broken is taken out and the next one tried.
  for (size_t attempt = 0;; ++attempt) {
    size_t v;
    auto progress = std::make_shared<ReplicaProgress>();
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = replicas_.find(id);
      if (it != replicas_.end() && it->second.gen_stamp == gs) {
        return Status::AlreadyExists(fmt::format("{} with generation stamp {} is already stored here", name, gs));
      }
      if (it != replicas_.end() && it->second.gen_stamp > gs) {
        return Status::Stale(fmt::format("{} is stored with generation stamp {}, newer than the {} being written",
                                         name, it->second.gen_stamp, gs));
      }
      if (writing_.count({id, gs})) {
        return Status::AlreadyExists(
            fmt::format("{} with generation stamp {} is already being written here", name, gs));
      }
      DFS_ASSIGN_OR_RETURN(v, ChooseVolume());
      writing_.emplace(std::pair{id, gs}, Writing{v, bytes_per_checksum, progress});
    }
    const std::string base = fmt::format("{}/tmp/{}", volumes_[v]->dir, ReplicaFileName(id, gs));
    const std::string meta = base + ".meta";
    int dfd = ::open(base.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int mfd = dfd < 0 ? -1 : ::open(meta.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (dfd < 0 || mfd < 0) {
      const int err = errno;
      Status s = Status::FromErrno("create " + (dfd < 0 ? base : meta), err);
      if (dfd >= 0) {
        ::close(dfd);
        ::unlink(base.c_str());
      }
      ForgetTemporary(id, gs);
      s = OnIoError(v, s, err);
      if (volumes_[v]->failed && attempt < volumes_.size()) continue;
      return s;
    }
    proto::Block b;
    b.set_id(id);
    b.set_gen_stamp(gs);
    std::unique_ptr<ReplicaWriter> w(new ReplicaWriter(this, v, b, bytes_per_checksum, base, meta, dfd, mfd));
    w->progress_ = std::move(progress);
    w->reserved_ = options_.block_size;
    volumes_[v]->reserved += w->reserved_;
    w->in_flight_ = kMetaHeaderBytes;
    volumes_[v]->in_flight += kMetaHeaderBytes;
    char hdr[kMetaHeaderBytes];
    EncodeMetaHeader(bytes_per_checksum, hdr);
    int err = 0;
    Status s = PWriteAll(mfd, hdr, sizeof hdr, 0, meta, &err);
    if (!s.ok()) return w->Failed(s, err);  // ~ReplicaWriter removes the files
    return w;
  }
}

void BlockStore::ForgetTemporary(uint64_t id, uint64_t gs) {
  std::lock_guard<std::mutex> l(mu_);
  writing_.erase({id, gs});
}

Result<proto::Block> BlockStore::Publish(ReplicaWriter* w, int* err) {
  const uint64_t id = w->block_.id(), gs = w->block_.gen_stamp();
  const std::string name = BlockName(BlockId(id));
  const std::string final_path = FinalPath(w->volume_, id, gs);
  std::string old_path;
  uint64_t old_bytes = 0;
  size_t old_volume = 0;
  uint32_t old_bpc = 1;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = replicas_.find(id);
    if (it != replicas_.end() && it->second.gen_stamp == gs) {
      return Status::AlreadyExists(fmt::format("{} with generation stamp {} is already stored here", name, gs));
    }
    if (it != replicas_.end() && it->second.gen_stamp > gs) {
      return Status::Stale(fmt::format("{} was stored with generation stamp {} while {} was being written", name,
                                       it->second.gen_stamp, gs));
    }
    if (volumes_[w->volume_]->failed) {
      return Status::IOError(fmt::format("{} cannot be stored: data dir {} has failed", name, volumes_[w->volume_]->dir));
    }
    if (::rename(w->tmp_meta_.c_str(), (final_path + ".meta").c_str()) != 0) {
      *err = errno;
      return Status::FromErrno(fmt::format("publish {}: rename {}", name, w->tmp_meta_), *err);
    }
    if (::rename(w->tmp_data_.c_str(), final_path.c_str()) != 0) {
      *err = errno;
      Status s = Status::FromErrno(fmt::format("publish {}: rename {}", name, w->tmp_data_), *err);
      ::unlink((final_path + ".meta").c_str());
      return s;
    }
    if (it != replicas_.end()) {
      old_path = FinalPath(it->second.volume, id, it->second.gen_stamp);
      old_bytes = it->second.num_bytes;
      old_volume = it->second.volume;
      old_bpc = it->second.bpc;
    }
    replicas_[id] = Replica{gs, w->length_, w->volume_, w->bpc_};
    writing_.erase({id, gs});
    DropRecoverableLocked(id, gs + 1);
    volumes_[w->volume_]->used += w->length_ + MetaFileSize(w->length_, w->bpc_);
    w->ReleaseSpace();  // now counted in used
    if (!old_path.empty()) volumes_[old_volume]->used -= old_bytes + MetaFileSize(old_bytes, old_bpc);
  }
  if (!old_path.empty()) {
    ::unlink(old_path.c_str());
    ::unlink((old_path + ".meta").c_str());
  }
  if (options_.sync_on_close) {
    Status s = FsyncPath(fmt::format("{}/current/{}", volumes_[w->volume_]->dir, SubdirName(id)));
    if (!s.ok()) Log("dn")->warn("{} published but its directory could not be synced: {}", name, s.ToString());
  }
  return w->block_;
}

Result<BlockStore::ReplicaInfo> BlockStore::VisibleLength(const proto::Block& block) const {
  const uint64_t id = block.id();
  std::lock_guard<std::mutex> l(mu_);
  ReplicaInfo info;
  auto it = replicas_.find(id);
  if (it != replicas_.end() && it->second.gen_stamp == block.gen_stamp()) {
    info.state = proto::REPLICA_FINALIZED;
    info.gen_stamp = it->second.gen_stamp;
    info.num_bytes = it->second.num_bytes;
    return info;
  }
  if (auto w = writing_.find({id, block.gen_stamp()}); w != writing_.end()) {
    info.state = proto::REPLICA_BEING_WRITTEN;
    info.gen_stamp = block.gen_stamp();
    info.num_bytes = w->second.progress->Get().first;
    info.writing = true;
    return info;
  }
  if (auto rt = recoverable_.find(id);
      rt != recoverable_.end() && rt->second.gen_stamp == block.gen_stamp() && rt->second.progress) {
    info.state = proto::REPLICA_TEMPORARY;
    info.gen_stamp = block.gen_stamp();
    info.num_bytes = rt->second.progress->Get().first;
    return info;
  }
  const std::string name = BlockName(BlockId(id));
  if (it == replicas_.end()) return Status::NotFound(fmt::format("{} is not stored on this DataNode", name));
  return Status::Stale(fmt::format("{} is stored with generation stamp {}, not the requested {}", name,
                                   it->second.gen_stamp, block.gen_stamp()));
}

Result<std::unique_ptr<ReplicaReader>> BlockStore::OpenForRead(const proto::Block& block) {
  const uint64_t id = block.id();
  const std::string name = BlockName(BlockId(id));
  // A replica being written may be published (or given up) between the
  // look-up and the open: then the second round finds it finalized (or gone).
  for (int round = 0;; ++round) {
    Replica r;
    std::shared_ptr<ReplicaProgress> progress;  // set when the replica is being written, or suspended
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = replicas_.find(id);
      auto w = writing_.find({id, block.gen_stamp()});
      auto rt = recoverable_.find(id);
      if (rt != recoverable_.end() && (rt->second.gen_stamp != block.gen_stamp() || !rt->second.progress)) {
        rt = recoverable_.end();
      }
      if (it != replicas_.end() && (it->second.gen_stamp == block.gen_stamp() ||
                                    (w == writing_.end() && rt == recoverable_.end()))) {
        r = it->second;
      } else if (w != writing_.end()) {
        r = Replica{block.gen_stamp(), 0, w->second.volume, w->second.bpc};
        progress = w->second.progress;
      } else if (rt != recoverable_.end()) {
        r = Replica{block.gen_stamp(), 0, rt->second.volume, rt->second.bpc};
        progress = rt->second.progress;
      } else {
        return Status::NotFound(fmt::format("{} is not stored on this DataNode", name));
      }
    }
    if (r.gen_stamp != block.gen_stamp()) {
      return Status::Stale(fmt::format("{} is stored with generation stamp {}, not the requested {}", name,
                                       r.gen_stamp, block.gen_stamp()));
    }
    const std::string path = progress ? TmpPath(r.volume, id, r.gen_stamp) : FinalPath(r.volume, id, r.gen_stamp);
    int dfd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (dfd < 0) {
      const int err = errno;
      if (err == ENOENT && progress && round == 0) continue;
      // ENOENT: deleted between the lookup and the open, unless the volume is gone.
      return OnIoError(r.volume,
                       err == ENOENT ? Status::NotFound(fmt::format("{} is not stored on this DataNode", name))
                                     : Status::FromErrno("open " + path, err),
                       err);
    }
    int mfd = ::open((path + ".meta").c_str(), O_RDONLY | O_CLOEXEC);
    if (mfd < 0) {
      const int err = errno;
      ::close(dfd);
      if (err == ENOENT && progress && round == 0) continue;
      return OnIoError(r.volume, Status::FromErrno("open " + path + ".meta", err), err);
    }
    uint64_t tail_sum = 0;
    if (progress) std::tie(r.num_bytes, tail_sum) = progress->Get();
    proto::Block b;
    b.set_id(id);
    b.set_gen_stamp(r.gen_stamp);
    b.set_num_bytes(r.num_bytes);
    std::unique_ptr<ReplicaReader> reader(new ReplicaReader(this, r.volume, b, 0, dfd, mfd, path));
    reader->being_written_ = progress != nullptr;
    reader->tail_checksum_ = tail_sum;
    char hdr[kMetaHeaderBytes];
    int err = 0;
    if (Status s = PReadAll(mfd, hdr, sizeof hdr, 0, path + ".meta", &err); !s.ok()) return OnIoError(r.volume, s, err);
    DFS_ASSIGN_OR_RETURN(reader->bpc_, DecodeMetaHeader(hdr, path + ".meta"));
    struct stat st {};
    if (::fstat(dfd, &st) != 0) return Status::FromErrno("stat " + path, errno);
    // A replica being written holds at least what was acknowledged, unless a
    // pipeline recovery cut it back (under a new gen stamp) since the look-up.
    if (progress && static_cast<uint64_t>(st.st_size) < r.num_bytes) {
      return Status::Stale(fmt::format("{} was cut back by a pipeline recovery while it was being opened", name));
    }
    if (!progress && static_cast<uint64_t>(st.st_size) != r.num_bytes) {
      return Status::Corruption(
          fmt::format("{} has {} bytes on disk but {} were written", path, st.st_size, r.num_bytes));
    }
    return reader;
  }
}

Status BlockStore::Delete(const proto::Block& block) {
  const uint64_t id = block.id();
  const std::string name = BlockName(BlockId(id));
  std::string path;
  size_t volume;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = replicas_.find(id);
    if (it == replicas_.end()) return Status::NotFound(fmt::format("{} is not stored on this DataNode", name));
    const Replica r = it->second;
    volume = r.volume;
    if (r.gen_stamp > block.gen_stamp()) {
      return Status::Stale(fmt::format("not deleting {}: the stored generation stamp {} is newer than {}", name,
                                       r.gen_stamp, block.gen_stamp()));
    }
    path = FinalPath(r.volume, id, r.gen_stamp);
    volumes_[r.volume]->used -= r.num_bytes + MetaFileSize(r.num_bytes, r.bpc);
    replicas_.erase(it);
  }
  // Data first: a crash in between leaves a lone meta file, which Open() removes.
  for (const std::string& p : {path, path + ".meta"}) {
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
      const int err = errno;
      return OnIoError(volume, Status::FromErrno("delete " + p, err), err);
    }
  }
  return Status::OK();
}

std::optional<proto::Block> BlockStore::GetReplica(BlockId id) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = replicas_.find(id.value());
  if (it == replicas_.end()) return std::nullopt;
  proto::Block b;
  b.set_id(id.value());
  b.set_gen_stamp(it->second.gen_stamp);
  b.set_num_bytes(it->second.num_bytes);
  return b;
}

std::vector<proto::Block> BlockStore::AllReplicas() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<proto::Block> out;
  out.reserve(replicas_.size());
  for (const auto& [id, r] : replicas_) {
    proto::Block& b = out.emplace_back();
    b.set_id(id);
    b.set_gen_stamp(r.gen_stamp);
    b.set_num_bytes(r.num_bytes);
  }
  return out;
}

size_t BlockStore::num_replicas() const {
  std::lock_guard<std::mutex> l(mu_);
  return replicas_.size();
}

uint64_t BlockStore::capacity() const {
  uint64_t total = 0;
  for (const auto& vol : volumes_) {
    struct statvfs sv {};
    if (vol->failed || ::statvfs(vol->dir.c_str(), &sv) != 0) continue;
    uint64_t size = SubSat(static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize, options_.reserved_bytes);
    total += options_.capacity > 0 ? std::min(size, options_.capacity) : size;
  }
  return total;
}

uint64_t BlockStore::dfs_used() const {
  uint64_t total = 0;
  for (const auto& vol : volumes_) total += vol->used.load();
  return total;
}

uint64_t BlockStore::remaining() const {
  const uint64_t block = std::max<uint64_t>(options_.block_size, 1);
  uint64_t total = 0;
  for (size_t v = 0; v < volumes_.size(); ++v) {
    const uint64_t room = VolumeRemaining(v);
    if (room >= block) total += room;
  }
  return total;
}

std::vector<std::string> BlockStore::volumes() const {
  std::lock_guard<std::mutex> l(mu_);
  return volume_dirs_;
}

// ---------------------------------------------------------------------------
// Failing volumes

Status BlockStore::OnIoError(size_t v, const Status& s, int err) {
  Volume& vol = *volumes_[v];
  if (vol.failed) return s;
  switch (ClassifyErrno(err)) {
    case IoFault::kNone:
    case IoFault::kFull:
      return s;
    case IoFault::kDisk:
      FailVolume(v, s);
      break;
    case IoFault::kSuspect: {
      Status check = CheckVolume(v);
      if (check.ok()) return s;  // about this one file only
      FailVolume(v, Status(s.code(), fmt::format("{}; then the volume check failed: {}", s.message(), check.message())));
      break;
    }
  }
  return Status(s.code(), fmt::format("{}; data dir {} is out of service", s.message(), vol.dir));
}

Status BlockStore::CheckVolume(size_t v) const {
  const std::string& dir = volumes_[v]->dir;
  for (const char* sub : {"current", "tmp"}) {
    const std::string p = dir + "/" + sub;
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return Status::FromErrno("stat " + p, errno);
    if (!S_ISDIR(st.st_mode)) return Status::IOError(p + " is not a directory");
  }
  // Listing current/ reads the disk: a dead one fails here.
  const std::string current = dir + "/current";
  DIR* d = ::opendir(current.c_str());
  if (!d) return Status::FromErrno("list " + current, errno);
  errno = 0;
  while (::readdir(d) != nullptr) {
  }
  const int list_err = errno;
  ::closedir(d);
  if (list_err) return Status::FromErrno("list " + current, list_err);
  // A small file written, synced, read back and removed. A full disk is not a broken one.
  static std::atomic<uint64_t> seq{0};
  const std::string probe = fmt::format("{}/tmp/.volume-check-{}-{}", dir, ::getpid(), seq++);
  int err = 0;
  Status s;
  int fd = ::open(probe.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    err = errno;
    s = Status::FromErrno("create " + probe, err);
  } else {
    const char out[16] = {'d', 'f', 's', ' ', 'v', 'o', 'l', 'u', 'm', 'e', ' ', 'c', 'h', 'e', 'c', 'k'};
    char in[sizeof out];
    s = PWriteAll(fd, out, sizeof out, 0, probe, &err);
    if (s.ok() && ::fdatasync(fd) != 0) {
      err = errno;
      s = Status::FromErrno("fsync " + probe, err);
    }
    if (s.ok()) s = PReadAll(fd, in, sizeof in, 0, probe, &err);
    if (s.ok() && std::memcmp(in, out, sizeof out) != 0) s = Status::IOError(probe + " reads back other bytes than written");
    ::close(fd);
    ::unlink(probe.c_str());
  }
  if (!s.ok() && err != 0 && (ClassifyErrno(err) == IoFault::kFull || ClassifyErrno(err) == IoFault::kNone)) {
    return Status::OK();
  }
  return s;
}

void BlockStore::FailVolume(size_t v, const Status& why) {
  Volume& vol = *volumes_[v];
  size_t dropped = 0, left = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (vol.failed.exchange(true)) return;
    ++failed_volumes_;
    for (auto it = replicas_.begin(); it != replicas_.end();) {
      if (it->second.volume == v) {
        it = replicas_.erase(it);
        ++dropped;
      } else {
        ++it;
      }
    }
    std::erase_if(recoverable_, [v](const auto& e) { return e.second.volume == v; });
    vol.used = 0;
    std::erase(volume_dirs_, vol.dir);
    left = volume_dirs_.size();
  }
  Log("dn")->error(
      "data dir {} failed and is out of service: {}. Its {} replicas are dropped (the NameNode re-replicates them "
      "from other DataNodes); {} data dir(s) left. Replace the disk and restart the DataNode to use it again",
      vol.dir, why.message(), dropped, left);
  if (options_.on_volume_failure) options_.on_volume_failure(vol.dir, why);
}

size_t BlockStore::CheckVolumes() {
  size_t failed = 0;
  for (size_t v = 0; v < volumes_.size(); ++v) {
    if (volumes_[v]->failed) continue;
    Status check = CheckVolume(v);
    if (!check.ok()) {
      FailVolume(v, check.Prepend("volume check"));
      ++failed;
    }
  }
  return failed;
}

void BlockStore::InjectFault(const std::string& dir, int err) {
  for (auto& vol : volumes_) {
    if (vol->dir == dir) vol->fault = err;
  }
}

// ---------------------------------------------------------------------------
// Recovery of replicas whose write did not finish

std::string BlockStore::TmpPath(size_t volume, uint64_t id, uint64_t gs) const {
  return fmt::format("{}/tmp/{}", volumes_[volume]->dir, ReplicaFileName(id, gs));
}

void BlockStore::KeepRecoverable(ReplicaWriter* w) {
  const uint64_t id = w->block_.id(), gs = w->block_.gen_stamp();
  std::lock_guard<std::mutex> l(mu_);
  writing_.erase({id, gs});
  auto fin = replicas_.find(id);
  if ((fin != replicas_.end() && fin->second.gen_stamp >= gs) ||
      (recoverable_.count(id) && recoverable_[id].gen_stamp > gs) || volumes_[w->volume_]->failed.load()) {
    ::unlink(w->tmp_data_.c_str());  // something newer exists, or its dir failed: of no use
    ::unlink(w->tmp_meta_.c_str());
    return;
  }
  DropRecoverableLocked(id, gs);
  recoverable_[id] = Recoverable{gs, w->length_, w->volume_, w->bpc_, std::chrono::steady_clock::now(), w->progress_};
  Log("dn")->info("kept the unfinished {} ({} bytes, generation stamp {}) for recovery",
                  BlockName(BlockId(id)), w->length_, gs);
}

void BlockStore::LoadTemporaries(size_t v) {
  auto log = Log("dn");
  const fs::path tmp = fs::path(volumes_[v]->dir) / "tmp";
  std::map<std::pair<uint64_t, uint64_t>, int> found;  // (id, gs) → 1 data, 2 meta, 3 both
  std::error_code ec;
  for (fs::directory_iterator it(tmp, ec), end; !ec && it != end; it.increment(ec)) {
    uint64_t id = 0, gs = 0;
    bool is_meta = false;
    if (!it->is_regular_file() || !ParseReplicaName(it->path().filename().string(), &id, &gs, &is_meta)) {
      std::error_code rec;
      fs::remove_all(it->path(), rec);  // e.g. a volume check's probe
      log->info("removed leftover {}", it->path().string());
      continue;
    }
    found[{id, gs}] |= is_meta ? 2 : 1;
  }
  for (const auto& [key, have] : found) {
    const auto [id, gs] = key;
    const std::string path = (tmp / ReplicaFileName(id, gs)).string();
    auto drop = [&](const std::string& why) {
      ::unlink(path.c_str());
      ::unlink((path + ".meta").c_str());
      log->info("removed the unfinished {}: {}", path, why);
    };
    if (have != 3) {
      drop(have == 1 ? "it has no meta file" : "it has no data file");
      continue;
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      auto fin = replicas_.find(id);
      if (fin != replicas_.end() && fin->second.gen_stamp >= gs) {
        drop(fmt::format("generation stamp {} is finalized here", fin->second.gen_stamp));
        continue;
      }
    }
    int dfd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    int mfd = dfd < 0 ? -1 : ::open((path + ".meta").c_str(), O_RDWR | O_CLOEXEC);
    struct Closer {
      int a, b;
      ~Closer() {
        if (a >= 0) ::close(a);
        if (b >= 0) ::close(b);
      }
    } closer{dfd, mfd};
    struct stat dst {}, mst {};
    char hdr[kMetaHeaderBytes];
    Status s = dfd < 0 || mfd < 0 ? Status::FromErrno("open " + path, errno) : Status::OK();
    if (s.ok() && (::fstat(dfd, &dst) != 0 || ::fstat(mfd, &mst) != 0)) s = Status::FromErrno("stat " + path, errno);
    if (s.ok() && static_cast<uint64_t>(mst.st_size) < kMetaHeaderBytes) {
      s = Status::Corruption(path + ".meta is shorter than its header");
    }
    if (s.ok()) s = PReadAll(mfd, hdr, sizeof hdr, 0, path + ".meta");
    Result<uint32_t> bpc = s.ok() ? DecodeMetaHeader(hdr, path + ".meta") : Result<uint32_t>(s);
    uint32_t tail_hint = 0;
    if (bpc.ok()) std::memcpy(&tail_hint, hdr + kMetaTailOffset, 4);
    Result<uint64_t> len =
        bpc.ok() ? VerifiedLength(dfd, mfd, *bpc, static_cast<uint64_t>(dst.st_size),
                                  (static_cast<uint64_t>(mst.st_size) - kMetaHeaderBytes) / 8, tail_hint, path)
                 : Result<uint64_t>(bpc.status());
    if (!len.ok()) {
      drop(len.status().ToString());
      continue;
    }
    if (*len == 0) {
      drop("no byte of it verifies");
      continue;
    }
    // Cut to the verified prefix, so the files are exactly what a recovery continues.
    const uint32_t tail = static_cast<uint32_t>(*len % *bpc);
    if (::ftruncate(dfd, static_cast<off_t>(*len)) != 0 ||
        ::ftruncate(mfd, static_cast<off_t>(MetaFileSize(*len, *bpc))) != 0 ||
        (tail != tail_hint && !PWriteAll(mfd, &tail, 4, kMetaTailOffset, path + ".meta").ok())) {
      drop(fmt::format("it cannot be cut to its {} verified bytes: {}", *len, std::strerror(errno)));
      continue;
    }
    std::lock_guard<std::mutex> l(mu_);
    auto rt = recoverable_.find(id);
    if (rt != recoverable_.end() && rt->second.gen_stamp >= gs) {
      ::unlink(path.c_str());
      ::unlink((path + ".meta").c_str());
      continue;
    }
    DropRecoverableLocked(id, gs);
    recoverable_[id] = Recoverable{gs, *len, v, *bpc, std::chrono::steady_clock::now()};
    log->info("kept the unfinished {} ({} of {} bytes verify, generation stamp {}) for a pipeline or lease recovery",
              BlockName(BlockId(id)), *len, dst.st_size, gs);
  }
}

void BlockStore::DropRecoverableLocked(uint64_t id, uint64_t below_gs) {
  auto it = recoverable_.find(id);
  if (it == recoverable_.end() || it->second.gen_stamp >= below_gs) return;
  const std::string path = TmpPath(it->second.volume, id, it->second.gen_stamp);
  ::unlink(path.c_str());
  ::unlink((path + ".meta").c_str());
  recoverable_.erase(it);
}

BlockStore::ReplicaInfo BlockStore::Inspect(BlockId id) const {
  std::lock_guard<std::mutex> l(mu_);
  ReplicaInfo info;
  auto w = writing_.lower_bound({id.value(), 0});
  info.writing = w != writing_.end() && w->first.first == id.value();
  if (auto it = replicas_.find(id.value()); it != replicas_.end()) {
    info.state = proto::REPLICA_FINALIZED;
    info.gen_stamp = it->second.gen_stamp;
    info.num_bytes = it->second.num_bytes;
  } else if (auto rt = recoverable_.find(id.value()); rt != recoverable_.end()) {
    info.state = proto::REPLICA_TEMPORARY;
    info.gen_stamp = rt->second.gen_stamp;
    info.num_bytes = rt->second.num_bytes;
  }
  return info;
}

Result<std::unique_ptr<ReplicaWriter>> BlockStore::Recover(BlockId block_id, uint64_t min_gs, uint64_t new_gs,
                                                           uint64_t length) {
  const uint64_t id = block_id.value();
  const std::string name = BlockName(block_id);
  size_t volume;
  uint32_t bpc;
  uint64_t old_gs, have;
  std::string old_data;
  auto progress = std::make_shared<ReplicaProgress>();
  {
    std::lock_guard<std::mutex> l(mu_);
    auto w = writing_.lower_bound({id, 0});
    if (w != writing_.end() && w->first.first == id) {
      return Status::AlreadyExists(
          fmt::format("{} (generation stamp {}) is still being written here; retry once that write ends", name,
                      w->first.second));
    }
    auto fin = replicas_.find(id);
    auto rt = recoverable_.find(id);
    if (fin != replicas_.end() && fin->second.gen_stamp >= min_gs && fin->second.gen_stamp < new_gs) {
      // Finalized before the pipeline broke: it goes back to tmp/ to be continued.
      old_gs = fin->second.gen_stamp;
      have = fin->second.num_bytes;
      volume = fin->second.volume;
      bpc = fin->second.bpc;
      old_data = FinalPath(volume, id, old_gs);
    } else if (rt != recoverable_.end() && rt->second.gen_stamp >= min_gs && rt->second.gen_stamp < new_gs) {
      old_gs = rt->second.gen_stamp;
      have = rt->second.num_bytes;
      volume = rt->second.volume;
      bpc = rt->second.bpc;
      old_data = TmpPath(volume, id, old_gs);
    } else {
      return Status::NotFound(fmt::format("{} with a generation stamp in [{}, {}) is not stored on this DataNode",
                                          name, min_gs, new_gs));
    }
    if (have < length) {
      return Status::Stale(
          fmt::format("{} has only {} bytes here, fewer than the {} to recover", name, have, length));
    }
    const std::string tmp = TmpPath(volume, id, new_gs);
    if (::rename((old_data + ".meta").c_str(), (tmp + ".meta").c_str()) != 0) {
      return Status::FromErrno(fmt::format("recover {}: rename {}.meta", name, old_data), errno);
    }
    if (::rename(old_data.c_str(), tmp.c_str()) != 0) {
      Status s = Status::FromErrno(fmt::format("recover {}: rename {}", name, old_data), errno);
      ::rename((tmp + ".meta").c_str(), (old_data + ".meta").c_str());
      return s;
    }
    if (fin != replicas_.end() && fin->second.gen_stamp == old_gs) {
      volumes_[volume]->used -= have + MetaFileSize(have, bpc);
      replicas_.erase(fin);
    } else {
      recoverable_.erase(rt);
    }
    writing_.emplace(std::pair{id, new_gs}, Writing{volume, bpc, progress});
  }
  const std::string data = TmpPath(volume, id, new_gs);
  const std::string meta = data + ".meta";
  proto::Block b;
  b.set_id(id);
  b.set_gen_stamp(new_gs);
  int dfd = ::open(data.c_str(), O_RDWR | O_CLOEXEC);
  int mfd = dfd < 0 ? -1 : ::open(meta.c_str(), O_RDWR | O_CLOEXEC);
  if (dfd < 0 || mfd < 0) {
    Status s = Status::FromErrno(fmt::format("recover {}: open {}", name, dfd < 0 ? data : meta), errno);
    if (dfd >= 0) ::close(dfd);
    ForgetTemporary(id, new_gs);
    return s;
  }
  // From here on the writer owns the files: an error below aborts (deletes) them.
  std::unique_ptr<ReplicaWriter> w(new ReplicaWriter(this, volume, b, bpc, data, meta, dfd, mfd));
  w->progress_ = std::move(progress);
  // The kept bytes count as being written, as a new replica's do (capacity checks, remaining()).
  w->in_flight_ = length + MetaFileSize(length, bpc);
  volumes_[volume]->in_flight += w->in_flight_;
  if (::ftruncate(dfd, static_cast<off_t>(length)) != 0 ||
      ::ftruncate(mfd, static_cast<off_t>(MetaFileSize(length, bpc))) != 0) {
    return Status::FromErrno(fmt::format("recover {}: truncate to {} bytes", name, length), errno);
  }
  if (::lseek(dfd, static_cast<off_t>(length), SEEK_SET) < 0) {
    return Status::FromErrno(fmt::format("recover {}: seek", name), errno);
  }
  w->length_ = length;
  const size_t rem = static_cast<size_t>(length % bpc);
  if (rem > 0) {
    // The stored sum of the last chunk may cover bytes beyond `length`: redo it.
    w->tail_.reset(new char[bpc]);
    DFS_RETURN_IF_ERROR(PReadAll(dfd, w->tail_.get(), rem, length - rem, data));
    w->tail_len_ = rem;
    w->tail_sum_ = ChunkChecksum(w->tail_.get(), rem);
    DFS_RETURN_IF_ERROR(PWriteAll(mfd, &w->tail_sum_, 8, kMetaHeaderBytes + (length / bpc) * 8, meta));
  }
  const uint32_t tail = static_cast<uint32_t>(rem);
  DFS_RETURN_IF_ERROR(PWriteAll(mfd, &tail, 4, kMetaTailOffset, meta));
  w->meta_tail_ = tail;
  // The writer acknowledged the kept bytes, and every node of the new pipeline has them.
  w->progress_->Publish(length, w->tail_checksum());
  Log("dn")->info("recovering {}: generation stamp {} -> {}, {} of {} bytes kept", name, old_gs, new_gs, length,
                  have);
  return w;
}

size_t BlockStore::ExpireRecoverable(std::chrono::milliseconds max_age) {
  std::lock_guard<std::mutex> l(mu_);
  const auto now = std::chrono::steady_clock::now();
  std::vector<uint64_t> old;
  for (const auto& [id, r] : recoverable_) {
    if (now - r.since > max_age) old.push_back(id);
  }
  for (uint64_t id : old) {
    Log("dn")->info("deleting the unfinished {}: nobody recovered it in {} s", BlockName(BlockId(id)),
                    max_age.count() / 1000);
    DropRecoverableLocked(id, UINT64_MAX);
  }
  return old.size();
}

size_t BlockStore::num_recoverable() const {
  std::lock_guard<std::mutex> l(mu_);
  return recoverable_.size();
}

}  // namespace dfs::datanode
