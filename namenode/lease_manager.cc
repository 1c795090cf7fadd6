#include "namenode/lease_manager.h"

namespace dfs::namenode {

void LeaseManager::Add(const std::string& holder, uint64_t inode) {
  std::lock_guard<std::mutex> l(mu_);
  Lease& lease = leases_[holder];
  lease.renewed = Clock::now();
  lease.inodes.insert(inode);
}

void LeaseManager::Remove(const std::string& holder, uint64_t inode) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = leases_.find(holder);
  if (it == leases_.end()) return;
  it->second.inodes.erase(inode);
  if (it->second.inodes.empty()) leases_.erase(it);
}

bool LeaseManager::Renew(const std::string& holder) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = leases_.find(holder);
  if (it == leases_.end()) return false;
  it->second.renewed = Clock::now();
  return true;
}

bool LeaseManager::IsStale(const std::string& holder, std::chrono::milliseconds soft_limit) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = leases_.find(holder);
  return it == leases_.end() || Clock::now() - it->second.renewed > soft_limit;
}

size_t LeaseManager::NumLeases() const {
  std::lock_guard<std::mutex> l(mu_);
  return leases_.size();
}

}  // namespace dfs::namenode
