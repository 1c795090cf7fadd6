#include "datanode/block_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <map>

#include "common/checksum.h"
#include "common/data_transfer.h"
#include "common/logging.h"

namespace dfs::datanode {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kTieBytes = 1u << 20;  // volumes this close in free space count as tied

Status WriteAll(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("write " + path, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::OK();
}

Status PWriteAll(int fd, const void* buf, size_t n, uint64_t off, const std::string& path) {
  auto p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("write " + path, errno);
    }
    p += w;
    off += static_cast<uint64_t>(w);
    n -= static_cast<size_t>(w);
  }
  return Status::OK();
}

Status PReadAll(int fd, void* buf, size_t n, uint64_t off, const std::string& path) {
  auto p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) continue;
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

ReplicaWriter::~ReplicaWriter() { Abort(); }

void ReplicaWriter::CloseFds() {
  if (data_fd_ >= 0) ::close(data_fd_);
  if (meta_fd_ >= 0) ::close(meta_fd_);
  data_fd_ = meta_fd_ = -1;
}

Status ReplicaWriter::Append(const char* data, size_t n, const uint64_t* checksums) {
  if (done_) return Status::Internal("append to a replica that is already finalized or aborted");
  if (n == 0) return Status::OK();
  const uint64_t first_chunk = length_ / bpc_;
  const size_t nsums = PacketChunks(length_, n, bpc_);
  DFS_RETURN_IF_ERROR(WriteAll(data_fd_, data, n, tmp_data_));
  const uint64_t sums_off = kMetaHeaderBytes + first_chunk * 8;
  if (tail_len_ > 0) {
    // The previous append ended inside a chunk: the stored sum covers only its
    // first part, so hash the whole chunk again.
    size_t piece = std::min<size_t>(n, bpc_ - tail_len_);
    std::memcpy(tail_.get() + tail_len_, data, piece);
    uint64_t combined = ChunkChecksum(tail_.get(), tail_len_ + piece);
    DFS_RETURN_IF_ERROR(PWriteAll(meta_fd_, &combined, 8, sums_off, tmp_meta_));
    if (nsums > 1) DFS_RETURN_IF_ERROR(PWriteAll(meta_fd_, checksums + 1, (nsums - 1) * 8, sums_off + 8, tmp_meta_));
  } else {
    DFS_RETURN_IF_ERROR(PWriteAll(meta_fd_, checksums, nsums * 8, sums_off, tmp_meta_));
  }
  const size_t old_tail = tail_len_;
  length_ += n;
  const size_t rem = static_cast<size_t>(length_ % bpc_);
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

Result<proto::Block> ReplicaWriter::Finalize() {
  if (done_) return Status::Internal("finalize of a replica that is already finalized or aborted");
  if (store_->options_.sync_on_close) {
    if (::fdatasync(data_fd_) != 0) {
      Status s = Status::FromErrno("fsync " + tmp_data_, errno);
      Abort();
      return s;
    }
    if (::fdatasync(meta_fd_) != 0) {
      Status s = Status::FromErrno("fsync " + tmp_meta_, errno);
      Abort();
      return s;
    }
  }
  CloseFds();
  block_.set_num_bytes(length_);
  auto r = store_->Publish(this);
  if (!r.ok()) {
    Abort();
    return r.status();
  }
  done_ = true;
  return r;
}

void ReplicaWriter::Abort() {
  if (done_) return;
  done_ = true;
  CloseFds();
  ::unlink(tmp_data_.c_str());
  ::unlink(tmp_meta_.c_str());
  store_->ForgetTemporary(block_.id(), block_.gen_stamp());
}

// ---------------------------------------------------------------------------
// ReplicaReader

ReplicaReader::~ReplicaReader() {
  if (data_fd_ >= 0) ::close(data_fd_);
  if (meta_fd_ >= 0) ::close(meta_fd_);
}

Status ReplicaReader::ReadChecksums(uint64_t first_chunk, size_t count, uint64_t* out) const {
  return PReadAll(meta_fd_, out, count * 8, kMetaHeaderBytes + first_chunk * 8, path_ + ".meta");
}

Status ReplicaReader::ReadData(uint64_t offset, size_t n, char* out) const {
  return PReadAll(data_fd_, out, n, offset, path_);
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
  log->info("block store opened: {} volume(s), {} failed, {} replicas, {} bytes used", store->volumes_.size(),
            store->failed_volumes_, store->replicas_.size(), store->dfs_used());
  return store;
}

std::string BlockStore::FinalPath(size_t volume, uint64_t id, uint64_t gs) const {
  return fmt::format("{}/current/{}/{}", volumes_[volume]->dir, SubdirName(id), ReplicaFileName(id, gs));
}

Status BlockStore::ScanVolume(size_t v) {
  auto log = Log("dn");
  const fs::path root(volumes_[v]->dir);
  std::error_code ec;
  // Temporaries are replicas whose writer never finished: a client rewrites them.
  for (fs::directory_iterator it(root / "tmp", ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code rec;
    fs::remove_all(it->path(), rec);
    log->info("removed unfinished temporary {}", it->path().string());
  }
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

uint64_t BlockStore::VolumeRemaining(size_t v) const {
  struct statvfs sv {};
  if (::statvfs(volumes_[v]->dir.c_str(), &sv) != 0) return 0;
  uint64_t avail = static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize;
  return avail > options_.reserved_bytes ? avail - options_.reserved_bytes : 0;
}

Result<size_t> BlockStore::ChooseVolume() {
  std::vector<uint64_t> rem(volumes_.size());
  uint64_t best = 0;
  for (size_t v = 0; v < volumes_.size(); ++v) best = std::max(best, rem[v] = VolumeRemaining(v));
  if (best == 0) {
    return Status::NoSpace(fmt::format("no data dir has free space (reserved {} bytes per dir): {}",
                                       options_.reserved_bytes, fmt::join(volume_dirs_, ", ")));
  }
  std::vector<size_t> ties;
  for (size_t v = 0; v < volumes_.size(); ++v) {
    if (rem[v] + kTieBytes >= best) ties.push_back(v);
  }
  return ties[next_volume_++ % ties.size()];
}

Result<std::unique_ptr<ReplicaWriter>> BlockStore::CreateTemporary(const proto::Block& block,
                                                                   uint32_t bytes_per_checksum) {
  const uint64_t id = block.id(), gs = block.gen_stamp();
  const std::string name = BlockName(BlockId(id));
  if (bytes_per_checksum == 0) return Status::InvalidArgument("bytes_per_checksum must be positive");
  size_t v;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = replicas_.find(id);
    if (it != replicas_.end() && it->second.gen_stamp == gs) {
      return Status::AlreadyExists(fmt::format("{} with generation stamp {} is already stored here", name, gs));
    }
    if (it != replicas_.end() && it->second.gen_stamp > gs) {
      return Status::Stale(fmt::format("{} is stored with generation stamp {}, newer than the {} being written", name,
                                       it->second.gen_stamp, gs));
    }
    if (writing_.count({id, gs})) {
      return Status::AlreadyExists(fmt::format("{} with generation stamp {} is already being written here", name, gs));
    }
    DFS_ASSIGN_OR_RETURN(v, ChooseVolume());
    writing_.insert({id, gs});
  }
  const std::string base = fmt::format("{}/tmp/{}", volumes_[v]->dir, ReplicaFileName(id, gs));
  const std::string meta = base + ".meta";
  int dfd = ::open(base.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (dfd < 0) {
    Status s = Status::FromErrno("create " + base, errno);
    ForgetTemporary(id, gs);
    return s;
  }
  int mfd = ::open(meta.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (mfd < 0) {
    Status s = Status::FromErrno("create " + meta, errno);
    ::close(dfd);
    ::unlink(base.c_str());
    ForgetTemporary(id, gs);
    return s;
  }
  proto::Block b;
  b.set_id(id);
  b.set_gen_stamp(gs);
  std::unique_ptr<ReplicaWriter> w(new ReplicaWriter(this, v, b, bytes_per_checksum, base, meta, dfd, mfd));
  char hdr[kMetaHeaderBytes];
  EncodeMetaHeader(bytes_per_checksum, hdr);
  DFS_RETURN_IF_ERROR(PWriteAll(mfd, hdr, sizeof hdr, 0, meta));  // ~ReplicaWriter cleans up on error
  return w;
}

void BlockStore::ForgetTemporary(uint64_t id, uint64_t gs) {
  std::lock_guard<std::mutex> l(mu_);
  writing_.erase({id, gs});
}

Result<proto::Block> BlockStore::Publish(ReplicaWriter* w) {
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
    if (::rename(w->tmp_meta_.c_str(), (final_path + ".meta").c_str()) != 0) {
      return Status::FromErrno(fmt::format("publish {}: rename {}", name, w->tmp_meta_), errno);
    }
    if (::rename(w->tmp_data_.c_str(), final_path.c_str()) != 0) {
      Status s = Status::FromErrno(fmt::format("publish {}: rename {}", name, w->tmp_data_), errno);
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
    volumes_[w->volume_]->used += w->length_ + MetaFileSize(w->length_, w->bpc_);
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

Result<std::unique_ptr<ReplicaReader>> BlockStore::OpenForRead(const proto::Block& block) {
  const uint64_t id = block.id();
  const std::string name = BlockName(BlockId(id));
  Replica r;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = replicas_.find(id);
    if (it == replicas_.end()) return Status::NotFound(fmt::format("{} is not stored on this DataNode", name));
    r = it->second;
  }
  if (r.gen_stamp != block.gen_stamp()) {
    return Status::Stale(fmt::format("{} is stored with generation stamp {}, not the requested {}", name, r.gen_stamp,
                                     block.gen_stamp()));
  }
  const std::string path = FinalPath(r.volume, id, r.gen_stamp);
  int dfd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (dfd < 0) {
    // Deleted between the lookup and the open.
    if (errno == ENOENT) return Status::NotFound(fmt::format("{} is not stored on this DataNode", name));
    return Status::FromErrno("open " + path, errno);
  }
  int mfd = ::open((path + ".meta").c_str(), O_RDONLY | O_CLOEXEC);
  if (mfd < 0) {
    Status s = Status::FromErrno("open " + path + ".meta", errno);
    ::close(dfd);
    return s;
  }
  proto::Block b;
  b.set_id(id);
  b.set_gen_stamp(r.gen_stamp);
  b.set_num_bytes(r.num_bytes);
  std::unique_ptr<ReplicaReader> reader(new ReplicaReader(b, 0, dfd, mfd, path));
  char hdr[kMetaHeaderBytes];
  DFS_RETURN_IF_ERROR(PReadAll(mfd, hdr, sizeof hdr, 0, path + ".meta"));
  DFS_ASSIGN_OR_RETURN(reader->bpc_, DecodeMetaHeader(hdr, path + ".meta"));
  struct stat st {};
  if (::fstat(dfd, &st) != 0) return Status::FromErrno("stat " + path, errno);
  if (static_cast<uint64_t>(st.st_size) != r.num_bytes) {
    return Status::Corruption(
        fmt::format("{} has {} bytes on disk but {} were written", path, st.st_size, r.num_bytes));
  }
  return reader;
}

Status BlockStore::Delete(const proto::Block& block) {
  const uint64_t id = block.id();
  const std::string name = BlockName(BlockId(id));
  std::string path;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = replicas_.find(id);
    if (it == replicas_.end()) return Status::NotFound(fmt::format("{} is not stored on this DataNode", name));
    const Replica r = it->second;
    if (r.gen_stamp > block.gen_stamp()) {
      return Status::Stale(fmt::format("not deleting {}: the stored generation stamp {} is newer than {}", name,
                                       r.gen_stamp, block.gen_stamp()));
    }
    path = FinalPath(r.volume, id, r.gen_stamp);
    volumes_[r.volume]->used -= r.num_bytes + MetaFileSize(r.num_bytes, r.bpc);
    replicas_.erase(it);
  }
  // Data first: a crash in between leaves a lone meta file, which Open() removes.
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Status::FromErrno("delete " + path, errno);
  if (::unlink((path + ".meta").c_str()) != 0 && errno != ENOENT) {
    return Status::FromErrno("delete " + path + ".meta", errno);
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
    if (::statvfs(vol->dir.c_str(), &sv) != 0) continue;
    uint64_t size = static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize;
    total += size > options_.reserved_bytes ? size - options_.reserved_bytes : 0;
  }
  return total;
}

uint64_t BlockStore::dfs_used() const {
  uint64_t total = 0;
  for (const auto& vol : volumes_) total += vol->used.load();
  return total;
}

uint64_t BlockStore::remaining() const {
  uint64_t total = 0;
  for (size_t v = 0; v < volumes_.size(); ++v) total += VolumeRemaining(v);
  return total;
}

const std::vector<std::string>& BlockStore::volumes() const { return volume_dirs_; }

}  // namespace dfs::datanode
