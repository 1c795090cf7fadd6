// RpcChannel: the client end of one RPC connection. Many threads may call at
// once; calls are multiplexed on one TCP connection by call id, and a reader
// thread hands each response to its waiting caller. A broken connection fails
// the calls in flight with Unavailable and is re-opened by the next call.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace google::protobuf {
class MessageLite;
}

namespace dfs::rpc {

struct Identity {
  std::string client_name;  // unique per client instance (lease holder)
  std::string user;
};

class RpcChannel {
 public:
  // `peer_label` names the server in errors: "NameNode 127.0.0.1:8020".
  RpcChannel(std::string host, uint16_t port, Identity identity, std::string peer_label);
  ~RpcChannel();

  Status CallRaw(uint32_t method, std::string_view request, std::string* response, std::chrono::milliseconds timeout);

  template <typename Resp>
  Status Call(uint32_t method, const google::protobuf::MessageLite& request, Resp* response,
              std::chrono::milliseconds timeout) {
    std::string out;
    DFS_RETURN_IF_ERROR(CallRaw(method, SerializeOrDie(request), &out, timeout));
    if (!response->ParseFromString(out)) return Status::ProtocolError("malformed response from " + label());
    return Status::OK();
  }

  // Fails the calls in flight and every later call (to stop a thread blocked
  // in a long-poll before destroying the channel).
  void Close();

  const std::string& label() const;
  const Identity& identity() const;

 private:
  static std::string SerializeOrDie(const google::protobuf::MessageLite& m);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dfs::rpc
