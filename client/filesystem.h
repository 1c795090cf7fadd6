// The dfs client library: the file-system API that the `dfs` shell, the FUSE
// mount and the streaming runner are built on.
//
// A FileSystem holds one RPC connection to the NameNode (shared by all threads)
// and a lease renewer for the files it has open for writing. Paths passed to its
// methods are absolute dfs paths; turn user input into one with ResolvePath().
// Every method returns a Status whose message can be shown to a person as is.
//
// Thread-safety: FileSystem methods may be called from any thread. A stream
// (InputStream, OutputStream) is used by one thread at a time, except
// InputStream::PRead, which any thread may call. Streams must not outlive the
// FileSystem that made them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/ids.h"
#include "common/status.h"
#include "proto/namenode.pb.h"

namespace dfs::client {

struct FileInfo {
  std::string path;  // absolute
  std::string name;  // last component
  InodeId inode;
  bool is_dir = false;
  uint64_t length = 0;
  uint32_t replication = 0;
  uint64_t block_size = 0;
  uint32_t mode = 0;
  std::string owner;
  std::string group;
  int64_t mtime_ms = 0;
  int64_t atime_ms = 0;
  bool under_construction = false;
  uint64_t children = 0;  // directories
};

struct ContentSummary {
  uint64_t length = 0;
  uint64_t file_count = 0;
  uint64_t directory_count = 0;
  uint64_t space_consumed = 0;
};

struct BlockLocation {
  BlockId block;
  uint64_t gen_stamp = 0;
  uint64_t offset = 0;  // in the file
  uint64_t length = 0;
  std::vector<proto::DatanodeId> replicas;  // nearest first
  bool corrupt = false;
};

struct CreateOptions {
  bool overwrite = false;
  bool create_parent = true;
  uint32_t replication = 0;  // 0: the client's dfs.replication
  uint64_t block_size = 0;   // 0: the client's dfs.blocksize
  uint32_t mode = 0644;
};

class FileSystem;

// Sequential writer of a new file (or of what is appended to one). Data is cut into packets and pushed through a
// pipeline of DataNodes per block. Close() returns once every block has enough
// durable replicas and the NameNode has closed the file; a stream destroyed
// without Close() leaves the file open until its lease expires.
class OutputStream {
 public:
  virtual ~OutputStream() = default;
  virtual Status Write(const void* data, size_t n) = 0;
  // Blocks until every byte written so far is acknowledged by the pipeline.
  virtual Status Flush() = 0;
  // Like Flush(), and every DataNode of the pipeline has fsynced the block's
  // data and checksums up to here before acknowledging (HDFS's hsync).
  virtual Status Sync() = 0;
  virtual Status Close() = 0;
  virtual uint64_t Position() const = 0;
  virtual const std::string& path() const = 0;
};

// Reader of a closed (or growing) file. Sequential reads stream each block from
// the nearest replica with read-ahead; PRead serves random reads. Checksums are
// verified on every byte; a bad replica is reported to the NameNode and the read
// goes on from another one.
class InputStream {
 public:
  virtual ~InputStream() = default;
  // Reads up to n bytes at the current position; 0 at the end of the file.
  virtual Result<size_t> Read(void* buf, size_t n) = 0;
  // Reads up to n bytes at `offset` without moving the position. Thread-safe.
  virtual Result<size_t> PRead(uint64_t offset, void* buf, size_t n) = 0;
  virtual Status Seek(uint64_t pos) = 0;
  virtual uint64_t Position() const = 0;
  virtual uint64_t Length() const = 0;
  // Re-reads the file's length and blocks from the NameNode (for tail -f).
  // Of a file being written, the length counts what the DataNodes of its last
  // block acknowledged (everything a Flush or Sync returned for, and more) as
  // of the open or the last Refresh.
  virtual Status Refresh() = 0;
};

class FileSystem {
 public:
  // Finds the NameNode from `namenode` ("host:port"), else $DFS_NAMENODE, else
  // fs.defaultFS. Does not contact the NameNode until the first call.
  static Result<std::unique_ptr<FileSystem>> Connect(const Config& conf, const std::string& namenode = "");
  // The same, acting as `user` instead of $DFS_USER / $USER (the job service
  // and streaming tasks act for the job's owner).
  static Result<std::unique_ptr<FileSystem>> ConnectAs(const Config& conf, const std::string& namenode,
                                                       const std::string& user);
  virtual ~FileSystem() = default;

  // User input → absolute path: relative paths are under the home directory
  // (/user/<name>), as in Hadoop. dfs:// and hdfs:// URIs are accepted.
  virtual std::string ResolvePath(std::string_view user_path) const = 0;
  virtual const std::string& user() const = 0;
  virtual const std::string& home() const = 0;
  virtual const std::string& namenode_address() const = 0;
  virtual const Config& config() const = 0;

  virtual Result<FileInfo> GetFileInfo(const std::string& path) = 0;
  // Calls fn for each entry of a directory, page by page (a file lists itself).
  // fn returns false to stop early.
  virtual Status List(const std::string& path, const std::function<bool(const FileInfo&)>& fn) = 0;
  virtual Result<std::vector<FileInfo>> ListAll(const std::string& path) = 0;
  // Like List, from the entry after the one named `start_after` ("": the
  // first) in the NameNode's (bytewise) name order: a mount pages a big
  // directory with it. The default filters List, for implementations without
  // a cursor.
  virtual Status ListFrom(const std::string& path, const std::string& start_after,
                          const std::function<bool(const FileInfo&)>& fn);
  virtual Status Mkdirs(const std::string& path, uint32_t mode = 0755, bool create_parents = true) = 0;
  virtual Status Delete(const std::string& path, bool recursive) = 0;
  // Renames to exactly `dst`. With overwrite, a file or empty directory at dst is replaced.
  virtual Status Rename(const std::string& src, const std::string& dst, bool overwrite = false) = 0;
  virtual Status SetReplication(const std::string& path, uint32_t replication) = 0;
  virtual Status SetPermission(const std::string& path, uint32_t mode) = 0;
  virtual Status SetOwner(const std::string& path, const std::string& owner, const std::string& group) = 0;
  virtual Status SetTimes(const std::string& path, int64_t mtime_ms, int64_t atime_ms) = 0;
  virtual Result<ContentSummary> GetContentSummary(const std::string& path) = 0;
  // Blocks overlapping [offset, offset+length); length 0 means to the end.
  virtual Result<std::vector<BlockLocation>> GetBlockLocations(const std::string& path, uint64_t offset = 0,
                                                               uint64_t length = 0) = 0;

  virtual Result<std::unique_ptr<OutputStream>> Create(const std::string& path, const CreateOptions& opts = {}) = 0;
  // Opens an existing closed file for appending. The new bytes start a new
  // block (the last block stays as it is, possibly partial), so appending never
  // rewrites a finalized replica. Fails with LeaseConflict while another
  // client is writing the file.
  virtual Result<std::unique_ptr<OutputStream>> Append(const std::string& path) = 0;
  virtual Result<std::unique_ptr<InputStream>> Open(const std::string& path) = 0;

  // Reads try this DataNode's replica first when it has one (a streaming task
  // reading its split from the node it runs on). Set before opening streams.
  virtual void SetPreferredDatanode(const std::string& uuid) {}

  // Administration.
  virtual Result<proto::GetStatsResponse> GetStats() = 0;
  virtual Result<std::vector<proto::DatanodeInfo>> GetDatanodeReport() = 0;
  virtual Result<proto::SafeModeResponse> SafeMode(proto::SafeModeRequest::Action action) = 0;
  // Starts decommissioning a DataNode (uuid, ip:port or hostname:port), or
  // with decommission false puts it back in service.
  virtual Result<proto::SetDatanodeAdminStateResponse> SetDatanodeAdminState(const std::string& datanode,
                                                                             bool decommission) = 0;
};

}  // namespace dfs::client
