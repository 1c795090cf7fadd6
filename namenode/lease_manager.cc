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

std::vector<std::pair<std::string, uint64_t>> LeaseManager::Expired(std::chrono::milliseconds hard_limit) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::pair<std::string, uint64_t>> out;
  const auto now = Clock::now();
  for (const auto& [holder, lease] : leases_) {
    if (now - lease.renewed <= hard_limit) continue;
    for (uint64_t inode : lease.inodes) out.emplace_back(holder, inode);
  }
  return out;
}

void LeaseManager::Reassign(const std::string& from, uint64_t inode, const std::string& to) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = leases_.find(from);
  if (it != leases_.end()) {
    it->second.inodes.erase(inode);
    if (it->second.inodes.empty()) leases_.erase(it);
  }
  Lease& lease = leases_[to];
  lease.renewed = Clock::now();
  lease.inodes.insert(inode);
}

}  // namespace dfs::namenode
