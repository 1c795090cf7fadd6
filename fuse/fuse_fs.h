// FuseFs: the FUSE3 low-level operations of `dfs mount`, on top of the client
// library. One FuseFs serves one mount; libfuse calls it from its worker
// threads (any number at once), so every member is thread-safe.
//
// Semantics (see fuse/README.md for the user's view):
// - Inode numbers are the NameNode's inode ids (InodeTable).
// - Reads are served from two read-ahead windows per open file, the next
//   fetched in the background while the current one is read (ReadAhead,
//   dfs.fuse.readahead), and spliced into the kernel; the kernel keeps a
//   file's page cache between opens while its size and mtime are unchanged.
// - A file is written sequentially: from its start after O_TRUNC or create,
//   or at its end (appending: O_APPEND, or a write at the end of the file). A
//   write at any other offset fails with EOPNOTSUPP and a log line, never
//   touching the file. The last close (flush) completes the file: it is then
//   durable and visible to every client. fsync waits until the DataNodes have
//   the bytes on disk.
// - Every error goes through ErrnoOf (errno_map.h). While the NameNode is
//   unreachable an operation retries for dfs.fuse.namenode.retry, then fails
//   with EIO; the mount itself stays up and works again once it is back.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>

#include "client/filesystem.h"

struct fuse_lowlevel_ops;

namespace dfs::fuse {

class InodeTable;

struct FuseFsOptions {
  double attr_timeout_s = 1.0;
  double entry_timeout_s = 1.0;
  double negative_timeout_s = 0.0;
  size_t readahead = 8 << 20;         // largest read-ahead window (ReadAhead)
  size_t kernel_readahead = 1 << 20;  // the mount's read_ahead_kb, in bytes; 0: left alone
  std::chrono::milliseconds namenode_retry{20'000};
  size_t max_write = 1 << 20;  // largest write the kernel sends (libfuse's limit)
  // Largest read the kernel asks for. Replies are spliced into the kernel
  // through a pipe, which holds the reply and its header, and which a process
  // without CAP_SYS_RESOURCE cannot grow past fs.pipe-max-size (1 MiB by
  // default); a bigger reply would fall back to a copy with page pinning.
  size_t max_read = 512 << 10;
};

// Options from the configuration's dfs.fuse.* keys.
FuseFsOptions FuseFsOptionsFrom(const Config& conf);

class FuseFs {
 public:
  FuseFs(std::unique_ptr<client::FileSystem> fs, FuseFsOptions opts);
  ~FuseFs();

  // The operation table, and the userdata fuse_session_new must get with it.
  static const fuse_lowlevel_ops& Operations();
  void* userdata();
  // Runs `fn` once, at the first request after the kernel has taken init's
  // reply (settings the kernel fixes at init, such as the mount's
  // read-ahead, can only be changed then). Call before the session starts.
  void AfterInit(std::function<void()> fn);

  const InodeTable& inodes() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace dfs::fuse
