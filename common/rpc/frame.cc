#include "common/rpc/frame.h"

#include <google/protobuf/message_lite.h>

#include <fmt/format.h>

#include "common/socket.h"

namespace dfs::rpc {

std::string EncodeFrame(const google::protobuf::MessageLite& header, std::string_view body) {
  const size_t hlen = header.ByteSizeLong();
  std::string out(8 + hlen + body.size(), '\0');
  PutBE32(out.data(), static_cast<uint32_t>(4 + hlen + body.size()));
  PutBE32(out.data() + 4, static_cast<uint32_t>(hlen));
  header.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(out.data() + 8));
  std::copy(body.begin(), body.end(), out.begin() + 8 + static_cast<std::ptrdiff_t>(hlen));
  return out;
}

Status DecodeFrame(std::string_view payload, google::protobuf::MessageLite* header, std::string_view* body) {
  if (payload.size() < 4) return Status::ProtocolError("RPC frame shorter than its header length field");
  uint32_t hlen = GetBE32(payload.data());
  if (hlen > payload.size() - 4) {
    return Status::ProtocolError(fmt::format("RPC header length {} exceeds the frame ({} bytes)", hlen, payload.size()));
  }
  if (!header->ParseFromArray(payload.data() + 4, static_cast<int>(hlen))) {
    return Status::ProtocolError("RPC header does not parse");
  }
  *body = payload.substr(4 + hlen);
  return Status::OK();
}

}  // namespace dfs::rpc
