// Data transfer framing: how operation headers, packets of block bytes with
// their checksums, and pipeline acks travel on a dfs::Socket between clients
// and DataNodes and along write pipelines. The messages are in
// proto/data_transfer.proto; block bytes never go inside a protobuf.
//
// Every function here is a free function on a caller-owned Socket and, on the
// data path, a caller-owned reusable buffer (Packet, std::string scratch): the
// steady state allocates nothing per packet. A Packet is used by one thread at
// a time; the functions are otherwise stateless and thread-safe.
//
// Byte layout (integers big-endian unless noted):
//
//   Operation request (client/upstream → DataNode), once per connection or op:
//     u32 len                  1..kMaxOpMessageBytes
//     len bytes                proto::OpRequest
//   Operation response (DataNode → client/upstream), once per op:
//     u32 len                  0..kMaxOpMessageBytes
//     len bytes                proto::OpResponse
//
//   Packet (data in either direction: writer → pipeline, DataNode → reader):
//     u32 header_len           0..kMaxPacketHeaderBytes (an all-default header is 0 bytes)
//     header_len bytes         proto::PacketHeader {offset_in_block, seqno, data_len, last, sync}
//     num_chunks * 8 bytes     one XXH3-64 per chunk, each u64 LITTLE-endian
//     data_len bytes           block bytes [offset_in_block, offset_in_block + data_len)
//
//   num_chunks is not sent: both ends derive it as PacketChunks(offset_in_block,
//   data_len, bytes_per_checksum), bytes_per_checksum being fixed per operation
//   (OpRequest for writes, OpResponse for reads). Chunks follow the block's chunk
//   grid (multiples of bytes_per_checksum from the start of the block), so a
//   packet that starts or ends inside a chunk carries a checksum of just the
//   piece of that chunk it holds. Writers only start mid-chunk after a Flush;
//   reads always start on the grid. data_len <= kMaxPacketDataBytes.
//
//   Pipeline ack (DataNode → upstream, one per packet, in seqno order):
//     u32 len                  0..kMaxAckBytes
//     len bytes                proto::PipelineAck {seqno, statuses[own, downstream...], message}
//
//   A heartbeat packet has seqno kHeartbeatSeqno, no data, and is acked like
//   any packet; writers send one when idle so the pipeline does not time out.
//   A data packet may be empty too (data_len 0, no checksums): the `last`
//   packet of a block, and a `sync` packet sent when nothing was pending. A
//   DataNode acks a `sync` packet only once it has fdatasynced the replica up
//   to the packet's end and the downstream node has acked it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/ids.h"
#include "common/socket.h"
#include "common/status.h"
#include "proto/data_transfer.pb.h"

namespace google::protobuf {
class MessageLite;
}

namespace dfs {

inline constexpr uint32_t kMaxOpMessageBytes = 1u << 20;     // OpRequest / OpResponse
inline constexpr uint32_t kMaxPacketHeaderBytes = 4u << 10;  // PacketHeader
inline constexpr uint32_t kMaxPacketDataBytes = 16u << 20;   // data in one packet
inline constexpr uint32_t kMaxAckBytes = 64u << 10;          // PipelineAck
inline constexpr uint32_t kMinBytesPerChecksum = 64;
inline constexpr uint32_t kMaxBytesPerChecksum = kMaxPacketDataBytes;
inline constexpr int64_t kHeartbeatSeqno = -1;

// Chunks of the block's grid that [offset, offset + len) touches; 0 when len is 0.
inline size_t PacketChunks(uint64_t offset, uint64_t len, uint32_t bytes_per_checksum) {
  if (len == 0) return 0;
  return static_cast<size_t>((offset + len - 1) / bytes_per_checksum - offset / bytes_per_checksum + 1);
}

// Checksums of the grid pieces of data that sits at `offset` in the block:
// writes PacketChunks(offset, n, bpc) values to out.
void ComputePacketChecksums(uint64_t offset, const char* data, size_t n, uint32_t bytes_per_checksum, uint64_t* out);
// Index of the first grid piece whose checksum differs from expected[], if any.
std::optional<size_t> VerifyPacketChecksums(uint64_t offset, const char* data, size_t n, uint32_t bytes_per_checksum,
                                            const uint64_t* expected);

// How long a node waits for the ack of a packet when `downstream_nodes` nodes
// are behind the one it talks to: the base idle timeout plus half of it per
// extra hop, so the node nearest a stalled one times out first and names it.
Millis PipelineAckTimeout(Millis base, size_t downstream_nodes);

// A reusable receive/send buffer for one packet. Buffers grow to the largest
// packet seen and are then reused; nothing is allocated per packet after that.
class Packet {
 public:
  proto::PacketHeader header;
  size_t num_chunks = 0;

  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  uint64_t* checksums() { return sums_.get(); }
  const uint64_t* checksums() const { return sums_.get(); }
  size_t data_capacity() const { return data_cap_; }
  // Makes room for `data_bytes` of data and `chunks` checksums (keeps nothing).
  void Reserve(size_t data_bytes, size_t chunks);

 private:
  friend Status ReadPacketHead(Socket&, uint32_t, Millis, Packet*);
  std::unique_ptr<char[]> data_;
  size_t data_cap_ = 0;
  std::unique_ptr<uint64_t[]> sums_;
  size_t sums_cap_ = 0;
  std::string header_buf_;
};

// Length-prefixed protobuf messages (op requests, op responses, acks). `scratch`
// is reused between calls to avoid allocation. Receiving fails with
// ProtocolError when the length exceeds `max_len` or the bytes do not parse,
// and with IOError/TimedOut from the socket. `what` names the message in errors.
Status SendMessage(Socket& sock, const google::protobuf::MessageLite& msg, std::string* scratch, Millis timeout);
Status ReadMessage(Socket& sock, google::protobuf::MessageLite* msg, uint32_t max_len, const char* what,
                   std::string* scratch, Millis timeout);

inline Status SendOpRequest(Socket& s, const proto::OpRequest& m, Millis t) {
  std::string scratch;
  return SendMessage(s, m, &scratch, t);
}
inline Status ReadOpRequest(Socket& s, proto::OpRequest* m, Millis t) {
  std::string scratch;
  return ReadMessage(s, m, kMaxOpMessageBytes, "operation request", &scratch, t);
}
inline Status SendOpResponse(Socket& s, const proto::OpResponse& m, Millis t) {
  std::string scratch;
  return SendMessage(s, m, &scratch, t);
}
inline Status ReadOpResponse(Socket& s, proto::OpResponse* m, Millis t) {
  std::string scratch;
  return ReadMessage(s, m, kMaxOpMessageBytes, "operation response", &scratch, t);
}
inline Status SendAck(Socket& s, const proto::PipelineAck& m, std::string* scratch, Millis t) {
  return SendMessage(s, m, scratch, t);
}
inline Status ReadAck(Socket& s, proto::PipelineAck* m, std::string* scratch, Millis t) {
  return ReadMessage(s, m, kMaxAckBytes, "pipeline ack", scratch, t);
}

// Sends a packet's length prefix, header and checksums, followed by `data`
// unless data is null (the caller then sends header.data_len() bytes itself,
// e.g. with Socket::SendFile). One writev; data is not copied.
Status SendPacket(Socket& sock, const proto::PacketHeader& header, const uint64_t* checksums, size_t num_chunks,
                  const char* data, std::string* scratch, Millis timeout);

// Reads one packet into *p (header, num_chunks, checksums, data). Lengths out of
// bounds or an unparsable header → ProtocolError. Checksums are not verified.
Status ReadPacket(Socket& sock, uint32_t bytes_per_checksum, Millis timeout, Packet* p);
// Reads a packet's header and checksums only; the caller then reads the
// header.data_len() data bytes wherever it wants them (a reader straight into
// its caller's buffer, saving a copy).
Status ReadPacketHead(Socket& sock, uint32_t bytes_per_checksum, Millis timeout, Packet* p);

// Status ↔ wire codes (the numbers are shared, see common/status.h).
inline proto::StatusCode ToProto(StatusCode c) { return static_cast<proto::StatusCode>(static_cast<int>(c)); }
Status FromProto(proto::StatusCode code, std::string message);

// "ip:port" of a DataNode's data transfer address, and "DataNode ip:port" for messages.
std::string XferAddress(const proto::DatanodeId& dn);
std::string DataNodeName(const proto::DatanodeId& dn);

// Call before closing a connection after an error reply, so the reply is not
// lost: shuts the write side and discards what the peer still sends until it
// closes or `linger` passes (closing with unread bytes sends a RST, which can
// overtake the reply). The caller then closes or destroys the socket.
void DrainBeforeClose(Socket& sock, Millis linger);

}  // namespace dfs
