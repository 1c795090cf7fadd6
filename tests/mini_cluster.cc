#include "tests/mini_cluster.h"

#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <xxhash.h>

#include "common/logging.h"
#include "datanode/datanode.h"
#include "namenode/block_manager.h"
#include "namenode/namenode.h"

namespace dfs::test {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/dfs-test-XXXXXX";
  char* p = mkdtemp(tmpl.data());
  if (!p) {
    std::perror("mkdtemp");
    std::abort();
  }
  path_ = p;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  auto pause = std::chrono::milliseconds(1);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
  return cond();
}

Config MiniCluster::BaseConfig() const {
  Config c;
  auto set = [&](const std::string& k, const std::string& v) {
    Status s = c.Set(k, v);
    if (!s.ok()) {
      std::fprintf(stderr, "MiniCluster config: %s\n", s.message().c_str());
      std::abort();
    }
  };
  set("fs.defaultFS", fmt::format("127.0.0.1:{}", nn_port_));
  set("dfs.blocksize", std::to_string(opts_.block_size));
  set("dfs.heartbeat.interval", "100ms");
  set("dfs.namenode.datanode.dead.interval", "3s");
  set("dfs.namenode.replication.interval", "200ms");
  set("dfs.client.socket-timeout", "10s");
  set("dfs.client.rpc-timeout", "20s");
  set("dfs.datanode.sync-on-close", "false");  // tests need no power-loss safety; keeps them fast
  set("dfs.log.level", std::getenv("DFS_TEST_LOG") ? std::getenv("DFS_TEST_LOG") : "warn");
  for (const auto& [k, v] : opts_.conf) set(k, v);
  return c;
}

Config MiniCluster::ClientConfig() const { return BaseConfig(); }

std::string MiniCluster::namenode_address() const { return fmt::format("127.0.0.1:{}", nn_port_); }

std::string MiniCluster::datanode_dir(int i) const { return fmt::format("{}/dn{}", tmp_.path(), i); }

Result<std::unique_ptr<MiniCluster>> MiniCluster::Start(const Options& options) {
  std::unique_ptr<MiniCluster> mc(new MiniCluster());
  mc->opts_ = options;
  InitLogging(std::getenv("DFS_TEST_LOG") ? std::getenv("DFS_TEST_LOG") : "warn", "test");
  DFS_RETURN_IF_ERROR(mc->StartNameNode());
  for (int i = 0; i < options.num_datanodes; ++i) {
    mc->dns_.emplace_back();
    DFS_RETURN_IF_ERROR(mc->StartDataNode(i));
  }
  DFS_RETURN_IF_ERROR(mc->WaitForDatanodes(options.num_datanodes));
  return mc;
}

MiniCluster::~MiniCluster() {
  for (auto& dn : dns_) {
    if (dn) dn->Shutdown();
  }
  if (nn_) nn_->Shutdown();
}

Status MiniCluster::StartNameNode() {
  Config c = BaseConfig();
  DFS_RETURN_IF_ERROR(c.Set("dfs.namenode.rpc-address", fmt::format("127.0.0.1:{}", nn_port_)));
  DFS_RETURN_IF_ERROR(c.Set("dfs.namenode.name.dir", tmp_.path() + "/nn"));
  // Small: every test cluster writes its spare WAL (the code path stays the same).
  DFS_RETURN_IF_ERROR(c.Set("dfs.namenode.wal.spare-size", "2m"));
  DFS_ASSIGN_OR_RETURN(nn_, namenode::NameNode::Create(c));
  DFS_RETURN_IF_ERROR(nn_->Start());
  nn_port_ = nn_->rpc_port();
  return Status::OK();
}

Status MiniCluster::StopNameNode() {
  if (nn_) nn_->Shutdown();
  nn_.reset();
  return Status::OK();
}

Status MiniCluster::RestartNameNode() {
  DFS_RETURN_IF_ERROR(StopNameNode());
  return StartNameNode();
}

void MiniCluster::StopDataNode(int i) {
  auto& dn = dns_[static_cast<size_t>(i)];
  if (dn) dn->Shutdown();
  dn.reset();
}

Status MiniCluster::StartDataNode(int i) {
  Config c = BaseConfig();
  DFS_RETURN_IF_ERROR(c.Set("dfs.datanode.address", "127.0.0.1:0"));
  DFS_RETURN_IF_ERROR(c.Set("dfs.datanode.data.dir", datanode_dir(i)));
  if (auto it = opts_.datanode_conf.find(i); it != opts_.datanode_conf.end()) {
    for (const auto& [k, v] : it->second) DFS_RETURN_IF_ERROR(c.Set(k, v));
  }
  DFS_ASSIGN_OR_RETURN(auto dn, datanode::DataNode::Create(c));
  DFS_RETURN_IF_ERROR(dn->Start());
  dns_[static_cast<size_t>(i)] = std::move(dn);
  return Status::OK();
}

Status MiniCluster::WaitForDatanodes(int n, std::chrono::milliseconds deadline) {
  bool ok = WaitFor([&] {
    return nn_ && static_cast<int>(nn_->block_manager()->NumLiveDatanodes()) >= n && !nn_->block_manager()->InSafeMode();
  }, deadline);
  if (!ok) {
    return Status::TimedOut(fmt::format("only {} of {} DataNodes became live",
                                        nn_ ? nn_->block_manager()->NumLiveDatanodes() : 0, n));
  }
  return Status::OK();
}

std::unique_ptr<client::FileSystem> MiniCluster::NewClient(const std::vector<std::pair<std::string, std::string>>& conf) {
  Config c = BaseConfig();
  for (const auto& [k, v] : conf) (void)c.Set(k, v);
  auto fs = client::FileSystem::Connect(c, namenode_address());
  return std::move(fs).value();
}

Result<uint64_t> DigestFile(client::FileSystem& fs, const std::string& path) {
  DFS_ASSIGN_OR_RETURN(auto in, fs.Open(path));
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  std::vector<char> buf(1 << 20);
  for (;;) {
    auto r = in->Read(buf.data(), buf.size());
    if (!r.ok()) {
      XXH3_freeState(st);
      return r.status();
    }
    if (*r == 0) break;
    XXH3_64bits_update(st, buf.data(), *r);
  }
  uint64_t d = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return d;
}

Status WriteFile(client::FileSystem& fs, const std::string& path, const std::string& data,
                 const client::CreateOptions& opts) {
  DFS_ASSIGN_OR_RETURN(auto out, fs.Create(path, opts));
  DFS_RETURN_IF_ERROR(out->Write(data.data(), data.size()));
  return out->Close();
}

Result<std::string> ReadFile(client::FileSystem& fs, const std::string& path) {
  DFS_ASSIGN_OR_RETURN(auto in, fs.Open(path));
  std::string out(in->Length(), '\0');
  size_t done = 0;
  while (done < out.size()) {
    DFS_ASSIGN_OR_RETURN(size_t n, in->Read(out.data() + done, out.size() - done));
    if (n == 0) break;
    done += n;
  }
  out.resize(done);
  return out;
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  for (; i < n; ++i) s[i] = static_cast<char>(rng());
  return s;
}

}  // namespace dfs::test
