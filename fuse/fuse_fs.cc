#include "fuse/fuse_fs.h"

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "common/buffer_pool.h"
#include "common/logging.h"
#include "common/path.h"
#include "common/users.h"
#include "fuse/errno_map.h"
#include "fuse/inode_table.h"
#include "fuse/read_ahead.h"

namespace dfs::fuse {

namespace {

using Clock = std::chrono::steady_clock;

const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

std::string Child(const std::string& dir, const char* name) { return JoinPath(dir, name); }

}  // namespace

FuseFsOptions FuseFsOptionsFrom(const Config& conf) {
  FuseFsOptions o;
  auto secs = [&](const char* key) { return static_cast<double>(conf.GetDuration(key).count()) / 1000.0; };
  o.attr_timeout_s = secs("dfs.fuse.attr.timeout");
  o.entry_timeout_s = secs("dfs.fuse.entry.timeout");
  o.negative_timeout_s = secs("dfs.fuse.negative.timeout");
  o.readahead = std::max<size_t>(conf.GetSize("dfs.fuse.readahead"), ReadAhead::kFirstWindow);
  o.kernel_readahead = conf.GetSize("dfs.fuse.readahead.kernel");
  o.namenode_retry = conf.GetDuration("dfs.fuse.namenode.retry");
  return o;
}

namespace {

// One open file (the kernel's file handle, fi->fh points at a shared_ptr to it).
struct OpenFile {
  std::mutex mu;
  uint64_t ino = 0;
  std::string path;
  uint32_t mode = 0644;
  // Reading: opened at the first read.
  std::shared_ptr<ReadAhead> reader;
  // Writing. `out` is open while bytes are being written; after a close of
  // one descriptor (flush) it is null until the next write, which must then
  // start at the file's end (it appends).
  bool writable = false;
  std::unique_ptr<client::OutputStream> out;
  uint64_t out_start = 0;  // pos when `out` was opened
  uint64_t pos = 0;  // where the next sequential write must start: the file's length
  Status broken;     // a write failed: later writes and the close report it
};
using FileRef = std::shared_ptr<OpenFile>;

// One open directory: its entries, fetched page by page as the reader goes on.
struct OpenDir {
  std::mutex mu;
  std::string path;
  std::vector<client::FileInfo> entries;
  bool complete = false;
};

constexpr size_t kDirPage = 1024;

}  // namespace

struct FuseFs::Impl {
  Impl(std::unique_ptr<client::FileSystem> f, FuseFsOptions o)
      : fs(std::move(f)), opts(o), windows(o.readahead, 8), fills(kFillThreads) {}

  std::unique_ptr<client::FileSystem> fs;
  const FuseFsOptions opts;
  InodeTable inodes;
  BufferPool windows;  // read-ahead windows, reused from file to file
  // Background fills of read-ahead windows. Declared after fs and windows:
  // it is stopped (its queue run) before they go.
  static constexpr int kFillThreads = 4;
  TaskPool fills;
  const uid_t my_uid = getuid();
  const gid_t my_gid = getgid();

  std::function<void()> after_init;  // see FuseFs::AfterInit
  std::once_flag after_init_once;

  std::mutex writers_mu;
  std::unordered_map<std::string, FileRef> writers;  // path → the handle writing it

  std::mutex versions_mu;
  std::unordered_map<uint64_t, std::pair<uint64_t, int64_t>> versions;  // ino → (length, mtime) at the last open

  std::mutex names_mu;
  std::unordered_map<std::string, uid_t> uids;
  std::unordered_map<std::string, gid_t> gids;

  // ------------------------------------------------------------ NameNode calls

  // Runs a NameNode call; while the NameNode is unreachable, retries for
  // dfs.fuse.namenode.retry. A call that may have reached the NameNode is
  // retried only when it is idempotent.
  template <typename F>
  auto Retry(const char* op, const std::string& path, bool idempotent, F&& f) -> decltype(f()) {
    const auto deadline = Clock::now() + opts.namenode_retry;
    auto backoff = std::chrono::milliseconds(100);
    bool logged = false;
    for (;;) {
      auto r = f();
      const Status& s = StatusOf(r);
      if (s.ok() || !(idempotent ? Unreachable(s) : NotSent(s))) {
        if (logged) Log("fuse")->info("{} {}: the NameNode answers again", op, path);
        return r;
      }
      const auto now = Clock::now();
      if (now >= deadline) {
        Log("fuse")->error("{} {}: the NameNode is still unreachable after {} s ({}); failing with EIO", op, path,
                           opts.namenode_retry.count() / 1000, s.message());
        return r;
      }
      if (!logged) {
        Log("fuse")->warn("{} {}: {}; retrying for up to {} s", op, path, s.message(),
                          opts.namenode_retry.count() / 1000);
        logged = true;
      }
      std::this_thread::sleep_for(std::min<Clock::duration>(backoff, deadline - now));
      backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
    }
  }

  Result<client::FileInfo> Stat(const std::string& path) {
    return Retry("stat", path, true, [&] { return fs->GetFileInfo(path); });
  }

  // ------------------------------------------------------------ attributes

  uid_t UidOf(const std::string& owner) {
    if (owner == fs->user()) return my_uid;
    std::lock_guard<std::mutex> l(names_mu);
    auto it = uids.find(owner);
    if (it != uids.end()) return it->second;
    // nobody (65534): a cluster user without a local account
    return uids[owner] = LocalUid(owner).value_or(65534);
  }

  gid_t GidOf(const std::string& group) {
    std::lock_guard<std::mutex> l(names_mu);
    auto it = gids.find(group);
    if (it != gids.end()) return it->second;
    return gids[group] = LocalGid(group).value_or(65534);
  }

  static std::string NameOfUid(uid_t uid) { return LocalUserName(uid).value_or(std::to_string(uid)); }
  static std::string NameOfGid(gid_t gid) { return LocalGroupName(gid).value_or(std::to_string(gid)); }

  FileRef WriterOf(const std::string& path) {
    std::lock_guard<std::mutex> l(writers_mu);
    auto it = writers.find(path);
    return it == writers.end() ? nullptr : it->second;
  }

  struct stat ToStat(uint64_t ino, const client::FileInfo& f) {
    struct stat st {};
    st.st_ino = ino;
    st.st_mode = (f.is_dir ? S_IFDIR : S_IFREG) | (f.mode & 07777);
    // 1 for directories means "subdirectory count unknown" to find and fts,
    // which would otherwise skip stat calls they need.
    st.st_nlink = 1;
    st.st_uid = UidOf(f.owner);
    st.st_gid = GidOf(f.group);
    uint64_t size = f.is_dir ? 4096 : f.length;
    if (f.under_construction) {
      // The NameNode counts completed blocks only; a writer in this mount knows better.
      if (FileRef w = WriterOf(f.path)) size = std::max<uint64_t>(size, w->pos);
    }
    st.st_size = static_cast<off_t>(size);
    // cp and friends size their buffers by st_blksize: 1 MiB writes go into the
    // pipeline in one FUSE request each.
    st.st_blksize = static_cast<blksize_t>(opts.max_write);
    st.st_blocks = static_cast<blkcnt_t>((size + 511) / 512);
    auto ts = [](int64_t ms) {
      timespec t{};
      t.tv_sec = ms / 1000;
      t.tv_nsec = (ms % 1000) * 1'000'000;
      return t;
    };
    st.st_mtim = ts(f.mtime_ms);
    st.st_atim = ts(f.atime_ms ? f.atime_ms : f.mtime_ms);
    st.st_ctim = st.st_mtim;
    return st;
  }

  // Fills `e` for `f`, adding one kernel reference to it.
  void MakeEntry(const client::FileInfo& f, fuse_entry_param* e) {
    e->ino = inodes.Add(f.path, f.inode.value());
    e->attr = ToStat(e->ino, f);
    e->attr_timeout = opts.attr_timeout_s;
    e->entry_timeout = opts.entry_timeout_s;
  }

  void ReplyEntry(fuse_req_t req, const client::FileInfo& f) {
    fuse_entry_param e{};
    MakeEntry(f, &e);
    fuse_reply_entry(req, &e);
  }

  // Stats `path` and replies with its entry.
  void ReplyEntryOf(fuse_req_t req, const std::string& path) {
    auto f = Stat(path);
    if (!f.ok()) return ReplyStatus(req, f.status());
    ReplyEntry(req, *f);
  }

  bool PathOf(fuse_req_t req, fuse_ino_t ino, std::string* path) {
    auto p = inodes.Path(ino);
    if (!p) {
      fuse_reply_err(req, ESTALE);
      return false;
    }
    *path = std::move(*p);
    return true;
  }

  static void ReplyStatus(fuse_req_t req, const Status& s) { fuse_reply_err(req, ErrnoOf(s)); }

  // ------------------------------------------------------------ writers

  // Registers `f` as the writer of its path. EBUSY when another handle of this
  // mount writes it: the NameNode's lease cannot tell them apart (they are the
  // same client), so the mount must.
  int ClaimWriter(const FileRef& f) {
    std::lock_guard<std::mutex> l(writers_mu);
    auto [it, inserted] = writers.emplace(f->path, f);
    return inserted || it->second == f ? 0 : EBUSY;
  }
  void DropWriter(OpenFile* f) {
    std::lock_guard<std::mutex> l(writers_mu);
    auto it = writers.find(f->path);
    if (it != writers.end() && it->second.get() == f) writers.erase(it);
  }

  // Creates (or replaces) the file, to be written from its start. f->mu held.
  Status StartFresh(const FileRef& f, bool overwrite, uint32_t replication, uint64_t block_size) {
    if (ClaimWriter(f) != 0) {
      return Status::LeaseConflict(f->path + " is being written through this mount by another open file");
    }
    client::CreateOptions co;
    co.overwrite = overwrite;
    co.create_parent = false;
    co.mode = f->mode;
    co.replication = replication;
    co.block_size = block_size;
    auto out = Retry("create", f->path, false, [&] { return fs->Create(f->path, co); });
    if (!out.ok()) {
      DropWriter(f.get());
      return out.status();
    }
    f->out = std::move(*out);
    f->pos = 0;
    f->out_start = 0;
    return Status::OK();
  }

  // Completes the file `f` writes: durable and visible to every client. f->mu held.
  Status FinishWrite(OpenFile* f) {
    if (!f->out) return f->broken;
    Status s = f->out->Close();
    f->out.reset();
    DropWriter(f);
    if (!s.ok()) {
      Log("fuse")->error("close {}: {}", f->path, s.message());
      if (f->broken.ok()) f->broken = s;
    }
    return f->broken;
  }

  // Refuses a write that is not at the end of what is written.
  void RefuseWrite(fuse_req_t req, const OpenFile& f, uint64_t off, size_t size) {
    Log("fuse")->warn(
        "write of {} bytes at offset {} of {} refused (EOPNOTSUPP): dfs files are written sequentially, and this "
        "one continues at offset {}. Write the file from its start (open it with O_TRUNC) or append to it",
        size, off, f.path, f.pos);
    fuse_reply_err(req, EOPNOTSUPP);
  }

  // ------------------------------------------------------------ reads

  // Serves [off, off+size) of `f` from its read-ahead windows.
  void Read(fuse_req_t req, const FileRef& f, size_t size, uint64_t off) {
    std::shared_ptr<ReadAhead> reader;
    {
      std::lock_guard<std::mutex> l(f->mu);
      if (f->out) {
        Log("fuse")->warn("read of {} refused (EOPNOTSUPP): it is being written through the same open file; close "
                          "it and open it again to read it",
                          f->path);
        return (void)fuse_reply_err(req, EOPNOTSUPP);
      }
      if (!f->reader) {
        auto in = Retry("open", f->path, true, [&] { return fs->Open(f->path); });
        if (!in.ok()) return ReplyStatus(req, in.status());
        f->reader = ReadAhead::Make(std::move(*in), &windows, &fills);
      }
      reader = f->reader;
    }
    // Without f->mu: the kernel sends several reads of one file at once.
    Status s = reader->Read(off, size, [&](const iovec* v, int n) {
      if (n == 0) return (void)fuse_reply_buf(req, nullptr, 0);  // at or past the end
      // Through fuse_reply_data, which splices the bytes into the kernel
      // when it can (FUSE_CAP_SPLICE_WRITE): a plain reply makes the kernel
      // pin our buffer one page at a time, which costs more than the copy.
      // fuse_bufvec ends in a one-entry array, buf[1]; a second fuse_buf
      // placed right after it is read as buf[1] when count is 2.
      struct TwoBufs {
        fuse_bufvec bv;
        fuse_buf second;
      } bufs{};
      static_assert(offsetof(TwoBufs, second) == offsetof(TwoBufs, bv) + offsetof(fuse_bufvec, buf) + sizeof(fuse_buf),
                    "the second fuse_buf must follow the first");
      bufs.bv.count = static_cast<size_t>(n);
      for (int i = 0; i < n; ++i) {
        fuse_buf& b = i == 0 ? bufs.bv.buf[0] : bufs.second;
        b.mem = v[i].iov_base;
        b.size = v[i].iov_len;
      }
      fuse_reply_data(req, &bufs.bv, FUSE_BUF_SPLICE_MOVE);
    });
    if (!s.ok()) ReplyReadError(req, *f, s, off);
  }

  static void ReplyReadError(fuse_req_t req, const OpenFile& f, const Status& s, uint64_t off) {
    Log("fuse")->error("read {} at offset {}: {}", f.path, off, s.message());
    ReplyStatus(req, s);
  }

  // ------------------------------------------------------------ directories

  // Fetches entries of `d` until index `upto` exists or the listing ends. d->mu held.
  Status Fill(OpenDir* d, size_t upto) {
    while (!d->complete && d->entries.size() <= upto) {
      const std::string after = d->entries.empty() ? "" : d->entries.back().name;
      const size_t before = d->entries.size();
      Status s = Retry("readdir", d->path, true, [&] {
        d->entries.resize(before);  // a retried page starts over
        return fs->ListFrom(d->path, after, [&](const client::FileInfo& e) {
          d->entries.push_back(e);
          return d->entries.size() - before < kDirPage;
        });
      });
      if (!s.ok()) return s;
      if (d->entries.size() - before < kDirPage) d->complete = true;
    }
    return Status::OK();
  }

  // Replies only after d->mu is released: once the reply is out, the kernel
  // may send releasedir, which frees `d` on another thread.
  void ReadDir(fuse_req_t req, OpenDir* d, fuse_ino_t ino, size_t size, off_t off, bool plus) {
    std::vector<char> buf(size);
    size_t used = 0;
    Status s = FillBuffer(req, d, ino, off, plus, &buf, &used);
    if (!s.ok()) return ReplyStatus(req, s);
    fuse_reply_buf(req, buf.data(), used);
  }

  Status FillBuffer(fuse_req_t req, OpenDir* d, fuse_ino_t ino, off_t off, bool plus, std::vector<char>* out,
                    size_t* used_out) {
    std::lock_guard<std::mutex> l(d->mu);
    std::vector<char>& buf = *out;
    const size_t size = buf.size();
    size_t& used = *used_out;
    // Offsets: 0 and 1 are "." and ".."; listing entry i is i + 2.
    for (size_t i = static_cast<size_t>(off);; ++i) {
      const client::FileInfo* f = nullptr;
      if (i >= 2) {
        if (Status s = Fill(d, i - 2); !s.ok()) {
          if (used > 0) break;  // what we have now; the error comes back on the next call
          return s;
        }
        if (i - 2 >= d->entries.size()) break;
        f = &d->entries[i - 2];
      }
      const char* name = f ? f->name.c_str() : i == 0 ? "." : "..";
      const off_t next = static_cast<off_t>(i + 1);
      char* at = buf.data() + used;
      const size_t room = size - used;
      size_t n = 0;
      if (!plus) {
        struct stat st {};
        st.st_ino = f ? f->inode.value() : i == 0 ? ino : kRootIno;
        st.st_mode = !f || f->is_dir ? S_IFDIR : S_IFREG;
        n = fuse_add_direntry(req, at, room, name, &st, next);
      } else {
        fuse_entry_param e{};
        if (f) {
          // Measure first: an entry that does not fit must not count as a lookup.
          if (fuse_add_direntry_plus(req, nullptr, 0, name, &e, next) > room) break;
          MakeEntry(*f, &e);
        } else {
          e.attr.st_ino = i == 0 ? ino : kRootIno;  // ino 0: no lookup reference for . and ..
          e.attr.st_mode = S_IFDIR;
        }
        n = fuse_add_direntry_plus(req, at, room, name, &e, next);
      }
      if (n > room) break;
      used += n;
    }
    return Status::OK();
  }

  // Applies a size change (truncate): dfs can empty a file or leave it at its
  // length, nothing else.
  Status Truncate(const std::string& path, uint64_t size, const FileRef& handle) {
    FileRef w = handle && handle->writable ? handle : WriterOf(path);
    if (w) {
      std::lock_guard<std::mutex> l(w->mu);
      if (size == w->pos && (w->out || size > 0)) return Status::OK();
      if (size == 0 && !w->out) {
        Status s = StartFresh(w, true, 0, 0);
        return s.ok() ? Status::OK() : s;
      }
    } else {
      DFS_ASSIGN_OR_RETURN(client::FileInfo f, Stat(path));
      if (f.is_dir) return Status::IsADirectory(path + " is a directory");
      if (size == f.length) return Status::OK();
      if (size == 0) {
        client::CreateOptions co;
        co.overwrite = true;
        co.create_parent = false;
        co.mode = f.mode;
        co.replication = f.replication;
        co.block_size = f.block_size;
        auto out = Retry("truncate", path, false, [&] { return fs->Create(path, co); });
        if (!out.ok()) return out.status();
        return (*out)->Close();
      }
    }
    Log("fuse")->warn("truncate {} to {} bytes refused (EOPNOTSUPP): a dfs file can only be emptied (truncated to 0)",
                      path, size);
    return Status::NotSupported("truncate to a size other than 0");
  }
};

// ============================================================== operations

namespace {

using Impl = FuseFs::Impl;

// Every operation but init and destroy starts here.
Impl& Fs(fuse_req_t req) {
  auto& im = *static_cast<Impl*>(fuse_req_userdata(req));
  // The kernel sends nothing else until it has taken init's reply.
  if (im.after_init) std::call_once(im.after_init_once, im.after_init);
  return im;
}
FileRef& FileOf(fuse_file_info* fi) { return *reinterpret_cast<FileRef*>(fi->fh); }
OpenDir* DirOf(fuse_file_info* fi) { return reinterpret_cast<OpenDir*>(fi->fh); }

void OpInit(void* userdata, fuse_conn_info* conn) {
  auto& im = *static_cast<Impl*>(userdata);
  conn->max_write = static_cast<unsigned>(im.opts.max_write);
  conn->max_read = static_cast<unsigned>(im.opts.max_read);  // the same as the mount's -o max_read
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO;
  if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA) conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE;
  // Writes must reach us in order, at the offsets the program wrote: no
  // kernel write-back cache (it would also read pages back to fill partial ones).
  conn->want &= ~static_cast<unsigned>(FUSE_CAP_WRITEBACK_CACHE);
  conn->time_gran = 1'000'000;  // the NameNode keeps times in milliseconds
  Log("fuse")->info("FUSE protocol {}.{}: max_write {} KiB, max_readahead {} KiB, capable {:#x}, want {:#x}",
                    conn->proto_major, conn->proto_minor, conn->max_write >> 10, conn->max_readahead >> 10,
                    conn->capable, conn->want);
}

void OpDestroy(void* userdata) {
  auto& im = *static_cast<Impl*>(userdata);
  // Files still open for writing at unmount are completed, not left to their lease.
  std::vector<FileRef> open;
  {
    std::lock_guard<std::mutex> l(im.writers_mu);
    for (auto& [p, f] : im.writers) open.push_back(f);
  }
  for (auto& f : open) {
    std::lock_guard<std::mutex> l(f->mu);
    (void)im.FinishWrite(f.get());
  }
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto& im = Fs(req);
  std::string dir;
  if (!im.PathOf(req, parent, &dir)) return;
  if (std::strlen(name) > 255) return (void)fuse_reply_err(req, ENAMETOOLONG);
  auto f = im.Stat(Child(dir, name));
  if (!f.ok()) {
    if (f.status().code() == StatusCode::kNotFound && im.opts.negative_timeout_s > 0) {
      fuse_entry_param e{};  // ino 0: the kernel remembers the absence
      e.entry_timeout = im.opts.negative_timeout_s;
      fuse_reply_entry(req, &e);
      return;
    }
    return Impl::ReplyStatus(req, f.status());
  }
  im.ReplyEntry(req, *f);
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Fs(req).inodes.Forget(ino, nlookup);
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  auto& im = Fs(req);
  for (size_t i = 0; i < count; ++i) im.inodes.Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  auto& im = Fs(req);
  std::string path;
  if (!im.PathOf(req, ino, &path)) return;
  auto f = im.Stat(path);
  if (!f.ok()) return Impl::ReplyStatus(req, f.status());
  const struct stat st = im.ToStat(ino, *f);
  fuse_reply_attr(req, &st, im.opts.attr_timeout_s);
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  auto& im = Fs(req);
  std::string path;
  if (!im.PathOf(req, ino, &path)) return;
  Status s;
  if (to_set & FUSE_SET_ATTR_MODE) {
    s = im.Retry("chmod", path, true, [&] { return im.fs->SetPermission(path, attr->st_mode & 07777); });
  }
  if (s.ok() && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
    const std::string owner = (to_set & FUSE_SET_ATTR_UID) ? Impl::NameOfUid(attr->st_uid) : "";
    const std::string group = (to_set & FUSE_SET_ATTR_GID) ? Impl::NameOfGid(attr->st_gid) : "";
    s = im.Retry("chown", path, true, [&] { return im.fs->SetOwner(path, owner, group); });
  }
  if (s.ok() && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
                           FUSE_SET_ATTR_MTIME_NOW))) {
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    auto ms = [](const timespec& t) { return static_cast<int64_t>(t.tv_sec) * 1000 + t.tv_nsec / 1'000'000; };
    const int64_t mtime = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? now
                          : (to_set & FUSE_SET_ATTR_MTIME) ? ms(attr->st_mtim)
                                                           : -1;
    const int64_t atime = (to_set & FUSE_SET_ATTR_ATIME_NOW) ? now
                          : (to_set & FUSE_SET_ATTR_ATIME) ? ms(attr->st_atim)
                                                           : -1;
    s = im.Retry("utimens", path, true, [&] { return im.fs->SetTimes(path, mtime, atime); });
  }
  if (s.ok() && (to_set & FUSE_SET_ATTR_SIZE)) {
    s = im.Truncate(path, static_cast<uint64_t>(attr->st_size), fi ? FileOf(fi) : nullptr);
  }
  if (!s.ok()) return Impl::ReplyStatus(req, s);
  auto f = im.Stat(path);
  if (!f.ok()) return Impl::ReplyStatus(req, f.status());
  const struct stat st = im.ToStat(ino, *f);
  fuse_reply_attr(req, &st, im.opts.attr_timeout_s);
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  auto& im = Fs(req);
  std::string dir;
  if (!im.PathOf(req, parent, &dir)) return;
  const std::string path = Child(dir, name);
  if (im.Stat(path).ok()) return (void)fuse_reply_err(req, EEXIST);
  Status s = im.Retry("mkdir", path, false, [&] { return im.fs->Mkdirs(path, mode & 07777, false); });
  if (!s.ok()) return Impl::ReplyStatus(req, s);
  im.ReplyEntryOf(req, path);
}

void Remove(fuse_req_t req, fuse_ino_t parent, const char* name, bool dir_wanted) {
  auto& im = Fs(req);
  std::string dir;
  if (!im.PathOf(req, parent, &dir)) return;
  const std::string path = Child(dir, name);
  auto f = im.Stat(path);
  if (!f.ok()) return Impl::ReplyStatus(req, f.status());
  if (f->is_dir != dir_wanted) return (void)fuse_reply_err(req, dir_wanted ? ENOTDIR : EISDIR);
  Status s = im.Retry(dir_wanted ? "rmdir" : "unlink", path, false, [&] { return im.fs->Delete(path, false); });
  Impl::ReplyStatus(req, s);
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) { Remove(req, parent, name, false); }
void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) { Remove(req, parent, name, true); }

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
              unsigned int flags) {
  auto& im = Fs(req);
  if (flags & RENAME_EXCHANGE) {
    Log("fuse")->warn("rename with RENAME_EXCHANGE refused (EINVAL): dfs cannot swap two names atomically");
    return (void)fuse_reply_err(req, EINVAL);
  }
  std::string from_dir, to_dir;
  if (!im.PathOf(req, parent, &from_dir) || !im.PathOf(req, newparent, &to_dir)) return;
  const std::string from = Child(from_dir, name), to = Child(to_dir, newname);
  if (from == to) return (void)fuse_reply_err(req, 0);
  // POSIX rename replaces the target (editors save this way), unless NOREPLACE.
  const bool overwrite = !(flags & RENAME_NOREPLACE);
  Status s = im.Retry("rename", from, false, [&] { return im.fs->Rename(from, to, overwrite); });
  if (s.ok()) im.inodes.Renamed(from, to);
  Impl::ReplyStatus(req, s);
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto& im = Fs(req);
  std::string path;
  if (!im.PathOf(req, ino, &path)) return;
  auto info = im.Stat(path);
  if (!info.ok()) return Impl::ReplyStatus(req, info.status());
  if (info->is_dir) return (void)fuse_reply_err(req, EISDIR);
  auto f = std::make_shared<OpenFile>();
  f->ino = ino;
  f->path = path;
  f->mode = info->mode & 07777;
  if ((fi->flags & O_ACCMODE) != O_RDONLY) {
    f->writable = true;
    f->pos = info->length;
    if (fi->flags & O_TRUNC) {
      std::lock_guard<std::mutex> l(f->mu);
      Status s = im.StartFresh(f, true, info->replication, info->block_size);
      if (!s.ok()) return Impl::ReplyStatus(req, s);
    }
  } else {
    // Keep the kernel's cached pages when the file is as it was at the last open.
    std::lock_guard<std::mutex> l(im.versions_mu);
    auto version = std::make_pair(info->length, info->mtime_ms);
    auto [it, inserted] = im.versions.emplace(ino, version);
    fi->keep_cache = !inserted && it->second == version && !info->under_construction;
    it->second = version;
  }
  fi->fh = reinterpret_cast<uint64_t>(new FileRef(std::move(f)));
  if (fuse_reply_open(req, fi) != 0) delete &FileOf(fi);  // interrupted: no release will come
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  auto& im = Fs(req);
  std::string dir;
  if (!im.PathOf(req, parent, &dir)) return;
  auto f = std::make_shared<OpenFile>();
  f->path = Child(dir, name);
  f->mode = mode & 07777;
  f->writable = true;
  {
    std::lock_guard<std::mutex> l(f->mu);
    Status s = im.StartFresh(f, false, 0, 0);
    if (!s.ok()) return Impl::ReplyStatus(req, s);
  }
  auto info = im.Stat(f->path);
  if (!info.ok()) {
    std::lock_guard<std::mutex> l(f->mu);
    (void)im.FinishWrite(f.get());
    return Impl::ReplyStatus(req, info.status());
  }
  fuse_entry_param e{};
  im.MakeEntry(*info, &e);
  f->ino = e.ino;
  fi->fh = reinterpret_cast<uint64_t>(new FileRef(f));
  if (fuse_reply_create(req, &e, fi) != 0) {
    std::lock_guard<std::mutex> l(f->mu);
    (void)im.FinishWrite(f.get());
    delete &FileOf(fi);
  }
}

void OpRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  Fs(req).Read(req, FileOf(fi), size, static_cast<uint64_t>(off));
}

void OpWrite(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  auto& im = Fs(req);
  FileRef f = FileOf(fi);
  std::lock_guard<std::mutex> l(f->mu);
  if (!f->broken.ok()) return Impl::ReplyStatus(req, f->broken);
  if (static_cast<uint64_t>(off) != f->pos) return im.RefuseWrite(req, *f, static_cast<uint64_t>(off), size);
  if (!f->out) {
    // At the end of a closed file: append to it.
    if (im.ClaimWriter(f) != 0) return (void)fuse_reply_err(req, EBUSY);
    auto out = im.Retry("append", f->path, false, [&] { return im.fs->Append(f->path); });
    if (!out.ok()) {
      im.DropWriter(f.get());
      Log("fuse")->warn("append to {}: {}", f->path, out.status().message());
      return Impl::ReplyStatus(req, out.status());
    }
    if ((*out)->Position() != f->pos) {
      // Changed by another client since it was opened here.
      Status s = (*out)->Close();
      im.DropWriter(f.get());
      Log("fuse")->warn("append to {} refused: the file is now {} bytes, not {} (changed by another client){}",
                        f->path, (*out)->Position(), f->pos, s.ok() ? "" : "; " + s.message());
      return (void)fuse_reply_err(req, EOPNOTSUPP);
    }
    f->out = std::move(*out);
    f->out_start = f->pos;
  }
  Status s = f->out->Write(buf, size);
  if (!s.ok()) {
    Log("fuse")->error("write {} at offset {}: {}", f->path, off, s.message());
    f->broken = s;
    return Impl::ReplyStatus(req, s);
  }
  f->pos += size;
  fuse_reply_write(req, size);
}

void OpFlush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  auto& im = Fs(req);
  FileRef f = FileOf(fi);
  std::lock_guard<std::mutex> l(f->mu);
  // close(2): the file is completed, so whatever was written is durable and
  // visible to every client when close returns. Not before the first byte:
  // a shell's `> file` opens, duplicates and closes the descriptor before the
  // command writes anything, and completing then would make every write an append.
  if (!f->writable || (f->out && f->pos == f->out_start)) return Impl::ReplyStatus(req, f->broken);
  Impl::ReplyStatus(req, im.FinishWrite(f.get()));
}

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  auto& im = Fs(req);
  FileRef* ref = &FileOf(fi);
  {
    FileRef f = *ref;
    std::lock_guard<std::mutex> l(f->mu);
    if (f->out) (void)im.FinishWrite(f.get());
  }
  delete ref;
  fuse_reply_err(req, 0);
}

void OpFsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info* fi) {
  FileRef f = FileOf(fi);
  std::lock_guard<std::mutex> l(f->mu);
  Status s = f->broken;
  if (s.ok() && f->out) s = f->out->Sync();
  if (!s.ok()) Log("fuse")->error("fsync {}: {}", f->path, s.message());
  Impl::ReplyStatus(req, s);
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto& im = Fs(req);
  std::string path;
  if (!im.PathOf(req, ino, &path)) return;
  auto info = im.Stat(path);
  if (!info.ok()) return Impl::ReplyStatus(req, info.status());
  if (!info->is_dir) return (void)fuse_reply_err(req, ENOTDIR);
  auto* d = new OpenDir;
  d->path = path;
  fi->fh = reinterpret_cast<uint64_t>(d);
  if (fuse_reply_open(req, fi) != 0) delete d;
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  Fs(req).ReadDir(req, DirOf(fi), ino, size, off, false);
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  Fs(req).ReadDir(req, DirOf(fi), ino, size, off, true);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete DirOf(fi);
  fuse_reply_err(req, 0);
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  auto& im = Fs(req);
  auto st = im.Retry("statfs", "/", true, [&] { return im.fs->GetStats(); });
  if (!st.ok()) return Impl::ReplyStatus(req, st.status());
  struct statvfs v {};
  constexpr uint64_t kUnit = 4096;
  v.f_bsize = kUnit;
  v.f_frsize = kUnit;
  v.f_blocks = st->capacity() / kUnit;
  v.f_bfree = st->remaining() / kUnit;
  v.f_bavail = v.f_bfree;
  v.f_files = st->files() + st->directories();
  v.f_ffree = 1ULL << 32;  // no inode limit
  v.f_favail = v.f_ffree;
  v.f_namemax = 255;
  fuse_reply_statfs(req, &v);
}

void OpAccess(fuse_req_t req, fuse_ino_t ino, int mask) {
  auto& im = Fs(req);
  std::string path;
  if (!im.PathOf(req, ino, &path)) return;
  auto f = im.Stat(path);
  if (!f.ok()) return Impl::ReplyStatus(req, f.status());
  if (mask == F_OK) return (void)fuse_reply_err(req, 0);
  const fuse_ctx* ctx = fuse_req_ctx(req);
  const uint32_t mode = f->mode;
  int allowed;
  if (ctx->uid == 0) {
    allowed = R_OK | W_OK | ((f->is_dir || (mode & 0111)) ? X_OK : 0);
  } else if (ctx->uid == im.UidOf(f->owner)) {
    allowed = static_cast<int>((mode >> 6) & 7);
  } else if (ctx->gid == im.GidOf(f->group)) {
    allowed = static_cast<int>((mode >> 3) & 7);
  } else {
    allowed = static_cast<int>(mode & 7);
  }
  fuse_reply_err(req, (mask & allowed) == mask ? 0 : EACCES);
}

fuse_lowlevel_ops MakeOperations() {
  fuse_lowlevel_ops ops{};
  ops.init = OpInit;
  ops.destroy = OpDestroy;
  ops.lookup = OpLookup;
  ops.forget = OpForget;
  ops.forget_multi = OpForgetMulti;
  ops.getattr = OpGetattr;
  ops.setattr = OpSetattr;
  ops.mkdir = OpMkdir;
  ops.unlink = OpUnlink;
  ops.rmdir = OpRmdir;
  ops.rename = OpRename;
  ops.open = OpOpen;
  ops.create = OpCreate;
  ops.read = OpRead;
  ops.write = OpWrite;
  ops.flush = OpFlush;
  ops.release = OpRelease;
  ops.fsync = OpFsync;
  ops.opendir = OpOpendir;
  ops.readdir = OpReaddir;
  ops.readdirplus = OpReaddirplus;
  ops.releasedir = OpReleasedir;
  ops.statfs = OpStatfs;
  ops.access = OpAccess;
  return ops;
}

}  // namespace

FuseFs::FuseFs(std::unique_ptr<client::FileSystem> fs, FuseFsOptions opts)
    : impl_(std::make_unique<Impl>(std::move(fs), opts)) {}

FuseFs::~FuseFs() = default;

const fuse_lowlevel_ops& FuseFs::Operations() {
  static const fuse_lowlevel_ops ops = MakeOperations();
  return ops;
}

void* FuseFs::userdata() { return impl_.get(); }

void FuseFs::AfterInit(std::function<void()> fn) { impl_->after_init = std::move(fn); }

const InodeTable& FuseFs::inodes() const { return impl_->inodes; }

}  // namespace dfs::fuse
