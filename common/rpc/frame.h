// Control RPC frames. Byte layout (integers big-endian):
//
//   u32 frame_len    bytes that follow; 4 <= frame_len <= kMaxFrameBytes
//   u32 header_len   bytes of the header; header_len <= frame_len - 4
//   header           proto::RequestHeader or proto::ResponseHeader
//   body             the method's request or response message
//
// A frame whose lengths are out of bounds or whose header does not parse is
// answered with PROTOCOL_ERROR and the connection is closed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace google::protobuf {
class MessageLite;
}

namespace dfs::rpc {

inline constexpr uint32_t kMaxFrameBytes = 64u << 20;
// Both ends read frames through a buffer of this size, so that a small frame
// is usually one read (not one for its length and another for the rest);
// larger frames are read on straight into their own string.
inline constexpr size_t kReadBufferBytes = 16 << 10;

// The whole frame, length prefix included.
std::string EncodeFrame(const google::protobuf::MessageLite& header, std::string_view body);

// Parses a frame's payload (the bytes after frame_len).
Status DecodeFrame(std::string_view payload, google::protobuf::MessageLite* header, std::string_view* body);

}  // namespace dfs::rpc
