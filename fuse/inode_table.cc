#include "fuse/inode_table.h"

namespace dfs::fuse {

InodeTable::InodeTable() { nodes_[kRootIno] = Node{"/", 1}; }  // never forgotten

uint64_t InodeTable::Add(const std::string& path, uint64_t id) {
  const uint64_t ino = path == "/" ? kRootIno : id;
  std::lock_guard<std::mutex> l(mu_);
  Node& n = nodes_[ino];
  n.path = path;  // the same id under another name: renamed by another client
  if (ino != kRootIno) ++n.lookups;
  return ino;
}

std::optional<std::string> InodeTable::Path(uint64_t ino) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return std::nullopt;
  return it->second.path;
}

void InodeTable::Forget(uint64_t ino, uint64_t n) {
  if (ino == kRootIno) return;
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return;
  it->second.lookups = n >= it->second.lookups ? 0 : it->second.lookups - n;
  if (it->second.lookups == 0) nodes_.erase(it);
}

void InodeTable::Renamed(const std::string& from, const std::string& to) {
  if (from == to || from == "/") return;
  const std::string prefix = from + "/";
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [ino, n] : nodes_) {
    if (n.path == from) {
      n.path = to;
    } else if (n.path.size() > prefix.size() && n.path.compare(0, prefix.size(), prefix) == 0) {
      n.path = to + "/" + n.path.substr(prefix.size());
    }
  }
}

size_t InodeTable::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return nodes_.size();
}

uint64_t InodeTable::lookups(uint64_t ino) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(ino);
  return it == nodes_.end() ? 0 : it->second.lookups;
}

}  // namespace dfs::fuse
