// LeaseManager: who is writing which file. A client holds one lease covering
// every file it has open for writing and renews it periodically; a file under
// construction can only be changed by its lease holder until the lease goes
// stale (the soft limit), after which another writer may take the file over.
//
// Thread-safety: thread-safe (one internal mutex).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace dfs::namenode {

class LeaseManager {
 public:
  using Clock = std::chrono::steady_clock;

  void Add(const std::string& holder, uint64_t inode);
  void Remove(const std::string& holder, uint64_t inode);
  // Renews every lease of the holder; false when it holds none.
  bool Renew(const std::string& holder);
  // True when the holder has not renewed within `soft_limit` (or holds nothing).
  bool IsStale(const std::string& holder, std::chrono::milliseconds soft_limit) const;
  size_t NumLeases() const;
  // Every (holder, file) whose holder has not renewed within `hard_limit`: the
  // writer is presumed dead and its files need lease recovery.
  std::vector<std::pair<std::string, uint64_t>> Expired(std::chrono::milliseconds hard_limit) const;
  // Moves one file's lease to another holder (the NameNode, while it recovers the file).
  void Reassign(const std::string& from, uint64_t inode, const std::string& to);

 private:
  struct Lease {
    Clock::time_point renewed;
    std::set<uint64_t> inodes;
  };
  mutable std::mutex mu_;
  std::map<std::string, Lease> leases_;
};

}  // namespace dfs::namenode
