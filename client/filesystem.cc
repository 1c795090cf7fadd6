#include "client/fs_impl.h"

#include <random>
#include <unistd.h>

#include <fmt/format.h>

#include "common/logging.h"
#include "common/path.h"
#include "common/users.h"

namespace dfs::client {

namespace {

std::string CurrentUser() {
  if (const char* u = std::getenv("DFS_USER"); u && *u) return u;
  if (const char* u = std::getenv("USER"); u && *u) return u;
  return LocalUserName(getuid()).value_or("dfs");
}

FileInfo ToFileInfo(const std::string& dir, const proto::FileStatus& s, bool is_self) {
  FileInfo f;
  f.name = s.name();
  f.path = is_self ? dir : JoinPath(dir, s.name());
  f.inode = InodeId(s.inode_id());
  f.is_dir = s.is_dir();
  f.length = s.length();
  f.replication = s.replication();
  f.block_size = s.block_size();
  f.mode = s.mode();
  f.owner = s.owner();
  f.group = s.group();
  f.mtime_ms = s.mtime_ms();
  f.atime_ms = s.atime_ms();
  f.under_construction = s.under_construction();
  f.children = s.children();
  return f;
}

}  // namespace

Result<std::unique_ptr<FileSystem>> FileSystem::Connect(const Config& conf, const std::string& namenode) {
  return ConnectAs(conf, namenode, CurrentUser());
}

Result<std::unique_ptr<FileSystem>> FileSystem::ConnectAs(const Config& conf, const std::string& namenode,
                                                         const std::string& user) {
  std::string addr = namenode;
  if (addr.empty()) {
    if (const char* env = std::getenv("DFS_NAMENODE"); env && *env) addr = env;
  }
  if (addr.empty()) addr = conf.GetString("fs.defaultFS");
  std::string host;
  uint16_t port = 0;
  DFS_RETURN_IF_ERROR(ParseHostPort(addr, &host, &port).Prepend("NameNode address"));
  return std::unique_ptr<FileSystem>(new FileSystemImpl(conf, host, port, user.empty() ? CurrentUser() : user));
}

FileSystemImpl::FileSystemImpl(Config conf, std::string host, uint16_t port, std::string user)
    : conf_(std::move(conf)),
      user_(std::move(user)),
      home_("/user/" + user_),
      address_(fmt::format("{}:{}", host, port)),
      client_name_(fmt::format("DFSClient_{}_{}_{:08x}", user_, getpid(), std::random_device{}())),
      channel_(host, port, rpc::Identity{client_name_, user_}, fmt::format("NameNode {}:{}", host, port)),
      rpc_timeout_(conf_.GetDuration("dfs.client.rpc-timeout")),
      complete_retries_(static_cast<int>(conf_.GetInt("dfs.client.block.write.locateFollowingBlock.retries"))) {
  writer_opts_.bytes_per_checksum = static_cast<uint32_t>(conf_.GetSize("dfs.bytes-per-checksum"));
  writer_opts_.packet_size = conf_.GetSize("dfs.client-write-packet-size");
  writer_opts_.max_packets_in_flight = static_cast<size_t>(conf_.GetInt("dfs.client.write.max-packets-in-flight"));
  writer_opts_.socket_timeout = conf_.GetDuration("dfs.client.socket-timeout");
  writer_opts_.client_name = client_name_;
  // Enough warm packet buffers for one pipeline's window, reused block after block.
  writer_opts_.packet_buffers =
      std::make_shared<BufferPool>(writer_opts_.packet_size, writer_opts_.max_packets_in_flight + 4);
  reader_opts_.socket_timeout = writer_opts_.socket_timeout;
  reader_opts_.client_name = client_name_;
}

FileSystemImpl::~FileSystemImpl() {
  {
    std::lock_guard<std::mutex> l(lease_mu_);
    stopping_ = true;
  }
  lease_cv_.notify_all();
  if (renewer_.joinable()) renewer_.join();
}

std::string FileSystemImpl::ResolvePath(std::string_view user_path) const { return NormalizePath(user_path, home_); }

Result<FileInfo> FileSystemImpl::GetFileInfo(const std::string& path) {
  proto::GetFileInfoRequest req;
  req.set_path(path);
  proto::GetFileInfoResponse resp;
  DFS_RETURN_IF_ERROR(Call(proto::GET_FILE_INFO, req, &resp));
  return ToFileInfo(path, resp.status(), true);
}

Status FileSystem::ListFrom(const std::string& path, const std::string& start_after,
                            const std::function<bool(const FileInfo&)>& fn) {
  return List(path, [&](const FileInfo& f) { return f.name <= start_after ? true : fn(f); });
}

Status FileSystemImpl::List(const std::string& path, const std::function<bool(const FileInfo&)>& fn) {
  return ListFrom(path, "", fn);
}

Status FileSystemImpl::ListFrom(const std::string& path, const std::string& start_after,
                                const std::function<bool(const FileInfo&)>& fn) {
  proto::GetListingRequest req;
  req.set_path(path);
  if (!start_after.empty()) req.set_start_after(start_after);
  for (;;) {
    proto::GetListingResponse resp;
    DFS_RETURN_IF_ERROR(Call(proto::GET_LISTING, req, &resp));
    const bool is_file = !resp.status().is_dir();
    for (const auto& e : resp.entries()) {
      if (!fn(ToFileInfo(path, e, is_file))) return Status::OK();
    }
    if (!resp.has_more() || resp.entries_size() == 0) return Status::OK();
    req.set_start_after(resp.entries(resp.entries_size() - 1).name());
  }
}

Result<std::vector<FileInfo>> FileSystemImpl::ListAll(const std::string& path) {
  std::vector<FileInfo> out;
  DFS_RETURN_IF_ERROR(List(path, [&](const FileInfo& f) {
    out.push_back(f);
    return true;
  }));
  return out;
}

Status FileSystemImpl::Mkdirs(const std::string& path, uint32_t mode, bool create_parents) {
  proto::MkdirsRequest req;
  req.set_path(path);
  req.set_mode(mode);
  req.set_create_parent(create_parents);
  proto::MkdirsResponse resp;
  return Call(proto::MKDIRS, req, &resp);
}

Status FileSystemImpl::Delete(const std::string& path, bool recursive) {
  proto::DeleteRequest req;
  req.set_path(path);
  req.set_recursive(recursive);
  proto::DeleteResponse resp;
  return Call(proto::DELETE, req, &resp);
}

Status FileSystemImpl::Rename(const std::string& src, const std::string& dst, bool overwrite) {
  proto::RenameRequest req;
  req.set_src(src);
  req.set_dst(dst);
  req.set_overwrite(overwrite);
  proto::RenameResponse resp;
  return Call(proto::RENAME, req, &resp);
}

Status FileSystemImpl::SetReplication(const std::string& path, uint32_t replication) {
  proto::SetReplicationRequest req;
  req.set_path(path);
  req.set_replication(replication);
  proto::SetReplicationResponse resp;
  return Call(proto::SET_REPLICATION, req, &resp);
}

Status FileSystemImpl::SetPermission(const std::string& path, uint32_t mode) {
  proto::SetPermissionRequest req;
  req.set_path(path);
  req.set_mode(mode);
  proto::SetPermissionResponse resp;
  return Call(proto::SET_PERMISSION, req, &resp);
}

Status FileSystemImpl::SetOwner(const std::string& path, const std::string& owner, const std::string& group) {
  proto::SetOwnerRequest req;
  req.set_path(path);
  req.set_owner(owner);
  req.set_group(group);
  proto::SetOwnerResponse resp;
  return Call(proto::SET_OWNER, req, &resp);
}

Status FileSystemImpl::SetTimes(const std::string& path, int64_t mtime_ms, int64_t atime_ms) {
  proto::SetTimesRequest req;
  req.set_path(path);
  req.set_mtime_ms(mtime_ms);
  req.set_atime_ms(atime_ms);
  proto::SetTimesResponse resp;
  return Call(proto::SET_TIMES, req, &resp);
}

Result<ContentSummary> FileSystemImpl::GetContentSummary(const std::string& path) {
  proto::GetContentSummaryRequest req;
  req.set_path(path);
  proto::GetContentSummaryResponse resp;
  DFS_RETURN_IF_ERROR(Call(proto::GET_CONTENT_SUMMARY, req, &resp));
  return ContentSummary{resp.length(), resp.file_count(), resp.directory_count(), resp.space_consumed()};
}

Status FileSystemImpl::Locate(const std::string& path, proto::GetBlockLocationsResponse* out) {
  proto::GetBlockLocationsRequest req;
  req.set_path(path);
  req.set_include_under_construction(true);
  return Call(proto::GET_BLOCK_LOCATIONS, req, out);
}

Result<std::vector<BlockLocation>> FileSystemImpl::GetBlockLocations(const std::string& path, uint64_t offset,
                                                                     uint64_t length) {
  proto::GetBlockLocationsRequest req;
  req.set_path(path);
  req.set_offset(offset);
  req.set_length(length);
  proto::GetBlockLocationsResponse resp;
  DFS_RETURN_IF_ERROR(Call(proto::GET_BLOCK_LOCATIONS, req, &resp));
  std::vector<BlockLocation> out;
  for (const auto& lb : resp.blocks()) {
    BlockLocation b;
    b.block = BlockId(lb.block().id());
    b.gen_stamp = lb.block().gen_stamp();
    b.offset = lb.offset();
    b.length = lb.block().num_bytes();
    b.replicas.assign(lb.locations().begin(), lb.locations().end());
    b.corrupt = lb.corrupt();
    out.push_back(std::move(b));
  }
  return out;
}

void FileSystemImpl::ReportBadReplica(const proto::Block& block, const std::string& datanode_uuid) {
  proto::ReportBadBlocksRequest req;
  auto* r = req.add_replicas();
  *r->mutable_block() = block;
  r->set_datanode_uuid(datanode_uuid);
  proto::ReportBadBlocksResponse resp;
  Status s = Call(proto::REPORT_BAD_BLOCKS, req, &resp);
  if (!s.ok()) Log("client")->warn("could not report a bad replica of {}: {}", BlockName(BlockId(block.id())), s.message());
}

Result<proto::GetStatsResponse> FileSystemImpl::GetStats() {
  proto::GetStatsRequest req;
  proto::GetStatsResponse resp;
  DFS_RETURN_IF_ERROR(Call(proto::GET_STATS, req, &resp));
  return resp;
}

Result<std::vector<proto::DatanodeInfo>> FileSystemImpl::GetDatanodeReport() {
  proto::GetDatanodeReportRequest req;
  proto::GetDatanodeReportResponse resp;
  DFS_RETURN_IF_ERROR(Call(proto::GET_DATANODE_REPORT, req, &resp));
  return std::vector<proto::DatanodeInfo>(resp.nodes().begin(), resp.nodes().end());
}

Result<proto::SafeModeResponse> FileSystemImpl::SafeMode(proto::SafeModeRequest::Action action) {
  proto::SafeModeRequest req;
  req.set_action(action);
  proto::SafeModeResponse resp;
  DFS_RETURN_IF_ERROR(Call(proto::SET_SAFE_MODE, req, &resp));
  return resp;
}

Result<proto::SetDatanodeAdminStateResponse> FileSystemImpl::SetDatanodeAdminState(const std::string& datanode,
                                                                                   bool decommission) {
  proto::SetDatanodeAdminStateRequest req;
  req.set_datanode(datanode);
  req.set_decommission(decommission);
  proto::SetDatanodeAdminStateResponse resp;
  DFS_RETURN_IF_ERROR(Call(proto::SET_DATANODE_ADMIN_STATE, req, &resp));
  return resp;
}

void FileSystemImpl::BeginWrite() {
  std::lock_guard<std::mutex> l(lease_mu_);
  ++open_writers_;
  if (!renewer_.joinable()) renewer_ = std::thread([this] { RenewLoop(); });
}

void FileSystemImpl::EndWrite() {
  std::lock_guard<std::mutex> l(lease_mu_);
  --open_writers_;
}

void FileSystemImpl::RenewLoop() {
  // Renew well inside the NameNode's soft limit so a slow writer never loses its file.
  const auto every = std::max(std::chrono::milliseconds(1000), conf_.GetDuration("dfs.namenode.lease.soft-limit") / 4);
  std::unique_lock<std::mutex> l(lease_mu_);
  while (!lease_cv_.wait_for(l, every, [this] { return stopping_; })) {
    if (open_writers_ == 0) continue;
    l.unlock();
    proto::RenewLeaseRequest req;
    proto::RenewLeaseResponse resp;
    Status s = Call(proto::RENEW_LEASE, req, &resp);
    if (!s.ok()) Log("client")->warn("lease renewal failed: {}", s.message());
    l.lock();
  }
}

}  // namespace dfs::client
