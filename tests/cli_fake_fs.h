// An in-memory client::FileSystem for the `dfs` shell's tests: a map from
// absolute path to node, with the error codes the real NameNode returns, block
// locations synthesised from the file's block size and replication, and knobs
// for faults (a write that fails after N bytes) and for tweaking replicas;
// and ShellHarness, which runs one command line against it and captures the
// exit code, stdout and stderr. Single-threaded; one instance per test.
#pragma once

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "client/cli/context.h"
#include "client/cli/shell.h"
#include "client/filesystem.h"
#include "common/path.h"
#include "tests/pread_input.h"

namespace dfs::cli::testing {

class FakeFs : public client::FileSystem {
 public:
  struct Node {
    client::FileInfo info;
    std::string data;
  };

  FakeFs() {
    AddDir("/");
    AddDir("/user");
    AddDir("/user/alice");
    stats.set_cluster_id("CID-test");
    stats.set_capacity(uint64_t{100} << 30);
    stats.set_dfs_used(uint64_t{3} << 30);
    stats.set_remaining(uint64_t{90} << 30);
    stats.set_live_datanodes(3);
  }

  // ---- test setup and inspection ----
  void AddDir(const std::string& path) {
    auto& n = nodes_[path];
    n.info = MakeInfo(path, true);
    n.info.mode = 0755;
  }
  void AddFile(const std::string& path, const std::string& data, uint32_t replication = 3,
               uint64_t block_size = 128 << 20) {
    auto& n = nodes_[path];
    n.info = MakeInfo(path, false);
    n.info.replication = replication;
    n.info.block_size = block_size;
    n.info.length = data.size();
    n.data = data;
  }
  bool Exists(const std::string& path) const { return nodes_.count(path) > 0; }
  const Node& At(const std::string& path) const { return nodes_.at(path); }
  Node& At(const std::string& path) { return nodes_.at(path); }
  std::vector<std::string> Paths() const {
    std::vector<std::string> out;
    for (const auto& [p, n] : nodes_) out.push_back(p);
    return out;
  }

  // ---- knobs ----
  int64_t mtime_ms = 1700000000000;          // given to new nodes
  uint32_t max_live_replicas = 3;            // replicas per block are min(replication, this)
  std::optional<uint64_t> fail_write_after;  // Write fails once a file holds this many bytes
  std::function<void(const std::string&, std::vector<client::BlockLocation>*)> locations_hook;
  int block_location_calls = 0;
  client::CreateOptions last_create;
  std::vector<std::string> log;  // "create P", "rename A B", "delete P"
  proto::GetStatsResponse stats;
  std::vector<proto::DatanodeInfo> datanodes;
  bool safe_mode = false;
  int safe_mode_gets_until_off = 0;  // for `safemode wait`
  Config conf;

  // ---- FileSystem ----
  std::string ResolvePath(std::string_view p) const override { return NormalizePath(p, home_); }
  const std::string& user() const override { return user_; }
  const std::string& home() const override { return home_; }
  const std::string& namenode_address() const override { return address_; }
  const Config& config() const override { return conf; }

  Result<client::FileInfo> GetFileInfo(const std::string& path) override {
    auto it = nodes_.find(path);
    if (it == nodes_.end()) return Status::NotFound(path + " does not exist");
    return it->second.info;
  }

  Status List(const std::string& path, const std::function<bool(const client::FileInfo&)>& fn) override {
    auto it = nodes_.find(path);
    if (it == nodes_.end()) return Status::NotFound(path + " does not exist");
    if (!it->second.info.is_dir) {
      fn(it->second.info);
      return Status::OK();
    }
    for (const auto& c : Children(path)) {
      if (!fn(nodes_.at(c).info)) break;
    }
    return Status::OK();
  }

  Result<std::vector<client::FileInfo>> ListAll(const std::string& path) override {
    std::vector<client::FileInfo> out;
    DFS_RETURN_IF_ERROR(List(path, [&](const client::FileInfo& f) {
      out.push_back(f);
      return true;
    }));
    return out;
  }

  Status Mkdirs(const std::string& path, uint32_t mode, bool create_parents) override {
    log.push_back("mkdirs " + path);
    if (Exists(path)) return nodes_[path].info.is_dir ? Status::OK() : Status::NotADirectory(path + " is a file");
    const std::string parent = ParentPath(path);
    if (!Exists(parent)) {
      if (!create_parents) return Status::NotFound("parent " + parent + " does not exist");
      DFS_RETURN_IF_ERROR(Mkdirs(parent, mode, true));
    }
    if (!nodes_[parent].info.is_dir) return Status::NotADirectory(parent + " is a file");
    AddDir(path);
    nodes_[path].info.mode = mode;
    return Status::OK();
  }

  Status Delete(const std::string& path, bool recursive) override {
    log.push_back("delete " + path);
    if (!Exists(path)) return Status::NotFound(path + " does not exist");
    if (nodes_[path].info.is_dir && !Children(path).empty() && !recursive) return Status::NotEmpty(path);
    EraseTree(path);
    return Status::OK();
  }

  Status Rename(const std::string& src, const std::string& dst, bool overwrite) override {
    log.push_back("rename " + src + " " + dst);
    if (!Exists(src)) return Status::NotFound(src + " does not exist");
    if (!Exists(ParentPath(dst))) return Status::NotFound("parent of " + dst + " does not exist");
    if (Exists(dst)) {
      if (!overwrite) return Status::AlreadyExists(dst + " exists");
      if (nodes_[dst].info.is_dir && !Children(dst).empty()) return Status::NotEmpty(dst);
      EraseTree(dst);
    }
    std::vector<std::pair<std::string, Node>> moved;
    for (auto it = nodes_.begin(); it != nodes_.end();) {
      if (IsSameOrUnder(it->first, src)) {
        std::string np = dst + it->first.substr(src.size());
        Node n = std::move(it->second);
        n.info.path = np;
        n.info.name = BaseName(np);
        moved.emplace_back(np, std::move(n));
        it = nodes_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& [p, n] : moved) nodes_[p] = std::move(n);
    return Status::OK();
  }

  Status SetReplication(const std::string& path, uint32_t replication) override {
    log.push_back("setrep " + path);
    if (!Exists(path)) return Status::NotFound(path);
    nodes_[path].info.replication = replication;
    return Status::OK();
  }
  Status SetPermission(const std::string& path, uint32_t mode) override {
    if (!Exists(path)) return Status::NotFound(path);
    nodes_[path].info.mode = mode;
    return Status::OK();
  }
  Status SetOwner(const std::string& path, const std::string& owner, const std::string& group) override {
    if (!Exists(path)) return Status::NotFound(path);
    if (!owner.empty()) nodes_[path].info.owner = owner;
    if (!group.empty()) nodes_[path].info.group = group;
    return Status::OK();
  }
  Status SetTimes(const std::string& path, int64_t mtime, int64_t atime) override {
    if (!Exists(path)) return Status::NotFound(path);
    if (mtime >= 0) nodes_[path].info.mtime_ms = mtime;
    if (atime >= 0) nodes_[path].info.atime_ms = atime;
    return Status::OK();
  }

  Result<client::ContentSummary> GetContentSummary(const std::string& path) override {
    if (!Exists(path)) return Status::NotFound(path + " does not exist");
    client::ContentSummary cs;
    for (const auto& [p, n] : nodes_) {
      if (!IsSameOrUnder(p, path)) continue;
      if (n.info.is_dir) {
        ++cs.directory_count;
      } else {
        ++cs.file_count;
        cs.length += n.info.length;
        cs.space_consumed += n.info.length * n.info.replication;
      }
    }
    return cs;
  }

  Result<std::vector<client::BlockLocation>> GetBlockLocations(const std::string& path, uint64_t, uint64_t) override {
    ++block_location_calls;
    if (!Exists(path)) return Status::NotFound(path + " does not exist");
    const auto& info = nodes_[path].info;
    if (info.is_dir) return Status::IsADirectory(path);
    std::vector<client::BlockLocation> out;
    for (uint64_t off = 0, i = 0; off < info.length; off += info.block_size, ++i) {
      client::BlockLocation b;
      b.block = BlockId(info.inode.value() * 1000 + i);
      b.gen_stamp = 1001;
      b.offset = off;
      b.length = std::min<uint64_t>(info.block_size, info.length - off);
      for (uint32_t r = 0; r < std::min(info.replication, max_live_replicas); ++r) {
        proto::DatanodeId id;
        id.set_uuid("dn-" + std::to_string(r));
        id.set_ip("127.0.0.1");
        id.set_xfer_port(9866 + r);
        b.replicas.push_back(id);
      }
      out.push_back(b);
    }
    if (locations_hook) locations_hook(path, &out);
    return out;
  }

  Result<std::unique_ptr<client::OutputStream>> Create(const std::string& path,
                                                       const client::CreateOptions& opts) override {
    log.push_back("create " + path);
    last_create = opts;
    if (Exists(path)) {
      if (nodes_[path].info.is_dir) return Status::IsADirectory(path + " is a directory");
      if (!opts.overwrite) return Status::AlreadyExists(path + " exists");
    }
    const std::string parent = ParentPath(path);
    if (!Exists(parent)) {
      if (!opts.create_parent) return Status::NotFound("parent " + parent + " does not exist");
      DFS_RETURN_IF_ERROR(Mkdirs(parent, 0755, true));
    }
    AddFile(path, "", opts.replication ? opts.replication : 3, opts.block_size ? opts.block_size : 128 << 20);
    nodes_[path].info.under_construction = true;
    nodes_[path].info.mode = opts.mode;
    return std::unique_ptr<client::OutputStream>(new Out(this, path));
  }

  // Appends to the file's data in place (no blocks to keep apart here).
  Result<std::unique_ptr<client::OutputStream>> Append(const std::string& path) override {
    log.push_back("append " + path);
    if (!Exists(path)) return Status::NotFound(path + ": No such file or directory");
    if (nodes_[path].info.is_dir) return Status::IsADirectory("'" + path + "' is a directory; append needs a file");
    if (nodes_[path].info.under_construction) {
      return Status::LeaseConflict(path + " is being written by another client (fake-writer)");
    }
    nodes_[path].info.under_construction = true;
    return std::unique_ptr<client::OutputStream>(new Out(this, path));
  }

  Result<std::unique_ptr<client::InputStream>> Open(const std::string& path) override {
    if (!Exists(path)) return Status::NotFound(path + " does not exist");
    if (nodes_[path].info.is_dir) return Status::IsADirectory(path + " is a directory");
    return std::unique_ptr<client::InputStream>(new In(this, path));
  }

  Result<proto::GetStatsResponse> GetStats() override { return stats; }
  Result<std::vector<proto::DatanodeInfo>> GetDatanodeReport() override { return datanodes; }
  Result<proto::SafeModeResponse> SafeMode(proto::SafeModeRequest::Action action) override {
    if (action == proto::SafeModeRequest::ENTER) safe_mode = true;
    if (action == proto::SafeModeRequest::LEAVE) safe_mode = false;
    if (action == proto::SafeModeRequest::GET && safe_mode && safe_mode_gets_until_off > 0 &&
        --safe_mode_gets_until_off == 0) {
      safe_mode = false;
    }
    proto::SafeModeResponse r;
    r.set_on(safe_mode);
    return r;
  }
  // Finds the node in `datanodes` by uuid or ip:port; a dead node is
  // decommissioned at once, a live one goes in progress.
  Result<proto::SetDatanodeAdminStateResponse> SetDatanodeAdminState(const std::string& dn, bool decommission) override {
    log.push_back((decommission ? "decommission " : "recommission ") + dn);
    for (auto& d : datanodes) {
      if (d.id().uuid() != dn && d.id().ip() + ":" + std::to_string(d.id().xfer_port()) != dn) continue;
      proto::SetDatanodeAdminStateResponse r;
      r.set_previous(d.admin_state());
      if (!decommission) {
        d.set_admin_state(proto::ADMIN_NORMAL);
      } else if (d.admin_state() == proto::ADMIN_NORMAL) {
        d.set_admin_state(d.live() ? proto::DECOMMISSION_IN_PROGRESS : proto::DECOMMISSIONED);
      }
      *r.mutable_node() = d;
      return r;
    }
    return Status::NotFound("unknown DataNode '" + dn + "': name it by its uuid, ip:xferport or hostname:xferport");
  }

 private:
  class Out : public client::OutputStream {
   public:
    Out(FakeFs* fs, std::string path) : fs_(fs), path_(std::move(path)) {}
    Status Write(const void* data, size_t n) override {
      if (!fs_->Exists(path_)) return Status::NotFound(path_ + " was deleted");
      auto& node = fs_->nodes_[path_];
      if (fs_->fail_write_after && node.data.size() + n > *fs_->fail_write_after) {
        return Status::IOError("all DataNodes in the pipeline failed");
      }
      node.data.append(static_cast<const char*>(data), n);
      node.info.length = node.data.size();
      return Status::OK();
    }
    Status Flush() override { return Status::OK(); }
    Status Sync() override { return Status::OK(); }
    Status Close() override {
      if (!fs_->Exists(path_)) return Status::NotFound(path_ + " was deleted");
      fs_->nodes_[path_].info.under_construction = false;
      return Status::OK();
    }
    uint64_t Position() const override { return fs_->Exists(path_) ? fs_->nodes_.at(path_).data.size() : 0; }
    const std::string& path() const override { return path_; }

   private:
    FakeFs* fs_;
    std::string path_;
  };

  class In : public test::PReadInputStream {
   public:
    In(FakeFs* fs, std::string path) : fs_(fs), path_(std::move(path)), data_(fs->nodes_[path_].data) {}
    Result<size_t> PRead(uint64_t off, void* buf, size_t n) override {
      if (off >= data_.size()) return size_t{0};
      n = std::min<size_t>(n, data_.size() - off);
      std::memcpy(buf, data_.data() + off, n);
      return n;
    }
    uint64_t Length() const override { return data_.size(); }
    Status Refresh() override {
      if (!fs_->Exists(path_)) return Status::NotFound(path_);
      data_ = fs_->nodes_[path_].data;
      return Status::OK();
    }

   private:
    FakeFs* fs_;
    std::string path_;
    std::string data_;
  };

  client::FileInfo MakeInfo(const std::string& path, bool dir) {
    client::FileInfo i;
    i.path = path;
    i.name = BaseName(path);
    i.inode = InodeId(next_inode_++);
    i.is_dir = dir;
    i.mode = dir ? 0755 : 0644;
    i.owner = "alice";
    i.group = "supergroup";
    i.mtime_ms = mtime_ms;
    i.atime_ms = mtime_ms;
    return i;
  }

  std::vector<std::string> Children(const std::string& dir) const {
    std::vector<std::string> out;
    for (const auto& [p, n] : nodes_) {
      if (p != dir && IsSameOrUnder(p, dir) && ParentPath(p) == dir) out.push_back(p);
    }
    return out;
  }

  void EraseTree(const std::string& path) {
    for (auto it = nodes_.begin(); it != nodes_.end();) {
      it = IsSameOrUnder(it->first, path) ? nodes_.erase(it) : std::next(it);
    }
  }

  std::map<std::string, Node> nodes_;
  uint64_t next_inode_ = 16385;
  std::string user_ = "alice";
  std::string home_ = "/user/alice";
  std::string address_ = "127.0.0.1:8020";
};

}  // namespace dfs::cli::testing

// ---- a harness that runs one `dfs` command line against a FakeFs ----

namespace dfs::cli::testing {

struct RunResult {
  int rc;
  std::string out;
  std::string err;
};

class ShellHarness {
 public:
  ShellHarness() {
    setenv("TZ", "UTC", 1);
    tzset();
  }

  RunResult Run(std::vector<std::string> args) {
    std::ostringstream out, err;
    std::istringstream in(stdin_data);
    ShellEnv env;
    env.connect = [this](const Config& c, const std::string& nn) -> Result<std::shared_ptr<client::FileSystem>> {
      connected = true;
      namenode_seen = nn;
      fs->conf = c;
      return std::shared_ptr<client::FileSystem>(fs);
    };
    env.out = &out;
    env.err = &err;
    env.in = &in;
    env.progress = progress;
    env.setup = [this](Context& ctx) {
      ctx.sleep = [this](std::chrono::milliseconds) {
        ++sleeps;
        return on_sleep ? on_sleep() : true;
      };
      ctx.now_ms = [this] { return now_ms; };
    };
    int rc = RunShell(std::move(args), env);
    return {rc, out.str(), err.str()};
  }

  std::shared_ptr<FakeFs> fs = std::make_shared<FakeFs>();
  std::string stdin_data;
  bool progress = false;
  bool connected = false;
  std::string namenode_seen;
  int sleeps = 0;
  std::function<bool()> on_sleep;  // runs at each sleep; false means Ctrl-C
  int64_t now_ms = 1700000000000 + 60000;
};

// A fresh local directory, removed with everything in it.
class LocalDir {
 public:
  LocalDir() {
    char tmpl[] = "/tmp/dfs_cli_test.XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~LocalDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  void Write(const std::string& name, const std::string& data) const {
    std::filesystem::create_directories(std::filesystem::path(*this / name).parent_path());
    std::ofstream(*this / name, std::ios::binary) << data;
  }
  std::string Read(const std::string& name) const {
    std::ifstream f(*this / name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }

 private:
  std::string path_;
};

}  // namespace dfs::cli::testing
