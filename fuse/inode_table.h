// InodeTable: the mount's map from the kernel's inode numbers to dfs paths.
//
// A FUSE inode number is the NameNode's inode id of the file or directory
// (the root is 1 in both), so `ls -i` and `stat` show the cluster's ids and
// a name looked up twice gets the same number. The kernel holds a lookup
// count per number (each successful lookup, create, mkdir or readdirplus
// entry adds one; forget subtracts); an entry lives while its count is
// above zero. The NameNode names files by path, so the table keeps each
// number's current path and rewrites it when this mount renames a parent.
//
// A file replaced on the cluster (overwritten, or deleted and created again)
// gets a new NameNode id: the next lookup of its name returns the new number,
// and the old number keeps its path until the kernel forgets it (so fstat of
// an open descriptor shows what is now at that path).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace dfs::fuse {

inline constexpr uint64_t kRootIno = 1;

class InodeTable {
 public:
  InodeTable();

  // Records one kernel reference to `path`, whose NameNode inode id is `id`,
  // and returns its inode number.
  uint64_t Add(const std::string& path, uint64_t id);
  // The path of `ino`; nullopt when the kernel has forgotten it (or never had it).
  std::optional<std::string> Path(uint64_t ino) const;
  // The kernel drops `n` references.
  void Forget(uint64_t ino, uint64_t n);
  // `from` (a file or a whole directory tree) is now at `to`.
  void Renamed(const std::string& from, const std::string& to);

  size_t size() const;
  uint64_t lookups(uint64_t ino) const;  // for tests

 private:
  struct Node {
    std::string path;
    uint64_t lookups = 0;
  };
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Node> nodes_;
};

}  // namespace dfs::fuse
