// FileSystemImpl: the FileSystem behind FileSystem::Connect, shared by the
// stream implementations (output_stream.cc, input_stream.cc). Internal to the
// client library.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "client/filesystem.h"
#include "common/block_reader.h"
#include "common/block_writer.h"
#include "common/rpc/channel.h"

namespace dfs::client {

class FileSystemImpl : public FileSystem {
 public:
  FileSystemImpl(Config conf, std::string host, uint16_t port, std::string user);
  ~FileSystemImpl() override;

  std::string ResolvePath(std::string_view user_path) const override;
  const std::string& user() const override { return user_; }
  const std::string& home() const override { return home_; }
  const std::string& namenode_address() const override { return address_; }
  const Config& config() const override { return conf_; }

  Result<FileInfo> GetFileInfo(const std::string& path) override;
  Status List(const std::string& path, const std::function<bool(const FileInfo&)>& fn) override;
  Result<std::vector<FileInfo>> ListAll(const std::string& path) override;
  Status ListFrom(const std::string& path, const std::string& start_after,
                  const std::function<bool(const FileInfo&)>& fn) override;
  Status Mkdirs(const std::string& path, uint32_t mode, bool create_parents) override;
  Status Delete(const std::string& path, bool recursive) override;
  Status Rename(const std::string& src, const std::string& dst, bool overwrite) override;
  Status SetReplication(const std::string& path, uint32_t replication) override;
  Status SetPermission(const std::string& path, uint32_t mode) override;
  Status SetOwner(const std::string& path, const std::string& owner, const std::string& group) override;
  Status SetTimes(const std::string& path, int64_t mtime_ms, int64_t atime_ms) override;
  Result<ContentSummary> GetContentSummary(const std::string& path) override;
  Result<std::vector<BlockLocation>> GetBlockLocations(const std::string& path, uint64_t offset,
                                                       uint64_t length) override;
  Result<std::unique_ptr<OutputStream>> Create(const std::string& path, const CreateOptions& opts) override;
  Result<std::unique_ptr<OutputStream>> Append(const std::string& path) override;
  Result<std::unique_ptr<InputStream>> Open(const std::string& path) override;
  Result<proto::GetStatsResponse> GetStats() override;
  Result<std::vector<proto::DatanodeInfo>> GetDatanodeReport() override;
  Result<proto::SafeModeResponse> SafeMode(proto::SafeModeRequest::Action action) override;
  Result<proto::SetDatanodeAdminStateResponse> SetDatanodeAdminState(const std::string& datanode,
                                                                     bool decommission) override;

  // ---- For the streams ----------------------------------------------------
  template <typename Resp>
  Status Call(proto::NameNodeMethod method, const google::protobuf::MessageLite& req, Resp* resp) {
    return channel_.Call(method, req, resp, rpc_timeout_);
  }
  // Located blocks, with the block being written if any, and the file's status.
  Status Locate(const std::string& path, proto::GetBlockLocationsResponse* out);
  void ReportBadReplica(const proto::Block& block, const std::string& datanode_uuid);
  // The lease renewer runs while at least one file is open for writing.
  void BeginWrite();
  void EndWrite();

  const BlockWriter::Options& writer_options() const { return writer_opts_; }
  const BlockReader::Options& reader_options() const { return reader_opts_; }
  void SetPreferredDatanode(const std::string& uuid) override { preferred_datanode_ = uuid; }
  const std::string& preferred_datanode() const { return preferred_datanode_; }
  const std::string& client_name() const { return client_name_; }
  int complete_retries() const { return complete_retries_; }

 private:
  void RenewLoop();

  const Config conf_;
  const std::string user_;
  std::string preferred_datanode_;
  const std::string home_;
  const std::string address_;
  const std::string client_name_;
  rpc::RpcChannel channel_;
  const std::chrono::milliseconds rpc_timeout_;
  BlockWriter::Options writer_opts_;
  BlockReader::Options reader_opts_;
  int complete_retries_;

  std::mutex lease_mu_;
  std::condition_variable lease_cv_;
  int open_writers_ = 0;
  bool stopping_ = false;
  std::thread renewer_;
};

}  // namespace dfs::client
