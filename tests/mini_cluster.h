// MiniCluster: a real NameNode and DataNodes in this process, on 127.0.0.1
// with port 0, in a fresh temporary directory that is removed afterwards.
// Small blocks (1 MiB by default) make multi-block files cheap. Modelled on
// Kudu's InternalMiniCluster.
//
// Thread-safety: drive it from the test's thread; clients may be used from any.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "client/filesystem.h"
#include "common/config.h"
#include "common/status.h"

namespace dfs::namenode {
class NameNode;
}
namespace dfs::datanode {
class DataNode;
}

namespace dfs::test {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Polls cond until it holds or the deadline passes; returns whether it held.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline = std::chrono::seconds(20));

class MiniCluster {
 public:
  struct Options {
    int num_datanodes = 3;
    uint64_t block_size = 1 << 20;
    std::vector<std::pair<std::string, std::string>> conf;  // extra keys for every daemon and client
    // Extra keys for DataNode i only (after `conf`; may override dfs.datanode.data.dir).
    std::map<int, std::vector<std::pair<std::string, std::string>>> datanode_conf;
  };

  static Result<std::unique_ptr<MiniCluster>> Start(const Options& options);
  static Result<std::unique_ptr<MiniCluster>> Start() { return Start(Options{}); }
  ~MiniCluster();

  std::unique_ptr<client::FileSystem> NewClient(const std::vector<std::pair<std::string, std::string>>& conf = {});
  Config ClientConfig() const;
  std::string namenode_address() const;

  Status RestartNameNode();
  Status StopNameNode();
  Status StartNameNode();
  void StopDataNode(int i);
  Status StartDataNode(int i);
  // Waits until n DataNodes are live at the NameNode and it left safe mode.
  Status WaitForDatanodes(int n, std::chrono::milliseconds deadline = std::chrono::seconds(20));

  namenode::NameNode* namenode() { return nn_.get(); }
  datanode::DataNode* datanode(int i) { return dns_[static_cast<size_t>(i)].get(); }
  int num_datanodes() const { return static_cast<int>(dns_.size()); }
  const std::string& dir() const { return tmp_.path(); }
  std::string datanode_dir(int i) const;

 private:
  MiniCluster() = default;
  Config BaseConfig() const;

  Options opts_;
  TempDir tmp_;
  uint16_t nn_port_ = 0;
  std::unique_ptr<namenode::NameNode> nn_;
  std::vector<std::unique_ptr<datanode::DataNode>> dns_;
};

// xxHash digest of a whole dfs file, read sequentially.
Result<uint64_t> DigestFile(client::FileSystem& fs, const std::string& path);
// Writes `data` to a new dfs file.
Status WriteFile(client::FileSystem& fs, const std::string& path, const std::string& data,
                 const client::CreateOptions& opts = {});
Result<std::string> ReadFile(client::FileSystem& fs, const std::string& path);
// Deterministic pseudo-random bytes.
std::string RandomBytes(size_t n, uint64_t seed);

}  // namespace dfs::test
