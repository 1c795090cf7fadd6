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
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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

// What was read from a connection and not yet consumed: reads bring whatever
// has arrived, frames are parsed from the front. Both the RPC server and the
// client read through one.
class FrameReadBuffer {
 public:
  // The unconsumed bytes.
  const char* data() const { return in_.data() + begin_; }
  size_t size() const { return end_ - begin_; }
  // Where the next read goes: the free tail, made large enough (by moving the
  // unconsumed bytes to the front) that `need` bytes in all fit
  // (need <= kReadBufferBytes). Then Commit what the read brought.
  std::span<char> Space(size_t need) {
    if (begin_ + need > in_.size()) {
      std::memmove(in_.data(), in_.data() + begin_, size());
      end_ -= begin_;
      begin_ = 0;
    }
    return {in_.data() + end_, in_.size() - end_};
  }
  void Commit(size_t n) { end_ += n; }
  // Consumed bytes stay in place until the next read: a view of them taken
  // before Consume is good until then.
  void Consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }

 private:
  std::vector<char> in_ = std::vector<char>(kReadBufferBytes);
  size_t begin_ = 0;
  size_t end_ = 0;
};

// The whole frame, length prefix included.
std::string EncodeFrame(const google::protobuf::MessageLite& header, std::string_view body);

// Parses a frame's payload (the bytes after frame_len).
Status DecodeFrame(std::string_view payload, google::protobuf::MessageLite* header, std::string_view* body);

}  // namespace dfs::rpc
