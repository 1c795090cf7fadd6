// For tests that speak the RPC wire format over a raw socket.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/rpc/frame.h"
#include "common/socket.h"
#include "proto/rpc.pb.h"

namespace dfs::test {

// Reads one response frame: its header, and its body unless `body` is null.
inline Status ReadResponseFrame(Socket& s, proto::ResponseHeader* h, std::string* body = nullptr) {
  char len[4];
  DFS_RETURN_IF_ERROR(s.ReadFull(len, 4, std::chrono::seconds(10)));
  std::string buf(GetBE32(len), '\0');
  DFS_RETURN_IF_ERROR(s.ReadFull(buf.data(), buf.size(), std::chrono::seconds(10)));
  std::string_view b;
  DFS_RETURN_IF_ERROR(rpc::DecodeFrame(buf, h, &b));
  if (body != nullptr) body->assign(b);
  return Status::OK();
}

}  // namespace dfs::test
