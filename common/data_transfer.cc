#include "common/data_transfer.h"

#include <fmt/format.h>
#include <google/protobuf/message_lite.h>
#include <sys/socket.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "common/checksum.h"

namespace dfs {

static_assert(std::endian::native == std::endian::little,
              "checksums travel and are stored as little-endian u64; add byte swapping for this host");

namespace {

// Length of the grid piece starting at `offset`, given `left` bytes remain.
inline size_t PieceLen(uint64_t offset, size_t left, uint32_t bpc) {
  return std::min<size_t>(left, bpc - static_cast<size_t>(offset % bpc));
}

}  // namespace

void ComputePacketChecksums(uint64_t offset, const char* data, size_t n, uint32_t bpc, uint64_t* out) {
  size_t done = 0;
  while (done < n) {
    size_t len = PieceLen(offset + done, n - done, bpc);
    *out++ = ChunkChecksum(data + done, len);
    done += len;
  }
}

std::optional<size_t> VerifyPacketChecksums(uint64_t offset, const char* data, size_t n, uint32_t bpc,
                                            const uint64_t* expected) {
  size_t done = 0;
  for (size_t i = 0; done < n; ++i) {
    size_t len = PieceLen(offset + done, n - done, bpc);
    if (ChunkChecksum(data + done, len) != expected[i]) return i;
    done += len;
  }
  return std::nullopt;
}

Millis PipelineAckTimeout(Millis base, size_t downstream_nodes) {
  return base + (base / 2) * static_cast<int64_t>(downstream_nodes);
}

void Packet::Reserve(size_t data_bytes, size_t chunks) {
  if (data_bytes > data_cap_) {
    data_.reset(new char[data_bytes]);
    data_cap_ = data_bytes;
  }
  if (chunks > sums_cap_) {
    sums_.reset(new uint64_t[chunks]);
    sums_cap_ = chunks;
  }
}

Status SendMessage(Socket& sock, const google::protobuf::MessageLite& msg, std::string* scratch, Millis timeout) {
  const size_t len = msg.ByteSizeLong();
  scratch->resize(4 + len);
  PutBE32(scratch->data(), static_cast<uint32_t>(len));
  msg.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(scratch->data() + 4));
  return sock.WriteFull(scratch->data(), scratch->size(), timeout);
}

Status ReadMessage(Socket& sock, google::protobuf::MessageLite* msg, uint32_t max_len, const char* what,
                   std::string* scratch, Millis timeout) {
  char lenbuf[4];
  DFS_RETURN_IF_ERROR(sock.ReadFull(lenbuf, 4, timeout));
  const uint32_t len = GetBE32(lenbuf);
  if (len > max_len) {
    return Status::ProtocolError(
        fmt::format("{} from {} claims {} bytes, over the limit of {}", what, sock.PeerAddress(), len, max_len));
  }
  scratch->resize(len);
  DFS_RETURN_IF_ERROR(sock.ReadFull(scratch->data(), len, timeout));
  if (!msg->ParseFromArray(scratch->data(), static_cast<int>(len))) {
    return Status::ProtocolError(fmt::format("{} from {} does not parse", what, sock.PeerAddress()));
  }
  return Status::OK();
}

Status SendPacket(Socket& sock, const proto::PacketHeader& header, const uint64_t* checksums, size_t num_chunks,
                  const char* data, std::string* scratch, Millis timeout) {
  const size_t hlen = header.ByteSizeLong();
  scratch->resize(4 + hlen);
  PutBE32(scratch->data(), static_cast<uint32_t>(hlen));
  header.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(scratch->data() + 4));
  iovec iov[3];
  int n = 0;
  iov[n++] = {scratch->data(), scratch->size()};
  if (num_chunks > 0) iov[n++] = {const_cast<uint64_t*>(checksums), num_chunks * kChecksumBytes};
  if (data != nullptr && header.data_len() > 0) iov[n++] = {const_cast<char*>(data), header.data_len()};
  return sock.WriteV(iov, n, timeout);
}

Status ReadPacket(Socket& sock, uint32_t bpc, Millis timeout, Packet* p) {
  DFS_RETURN_IF_ERROR(ReadPacketHead(sock, bpc, timeout, p));
  const uint32_t dlen = p->header.data_len();
  p->Reserve(dlen, p->num_chunks);
  if (dlen > 0) DFS_RETURN_IF_ERROR(sock.ReadFull(p->data(), dlen, timeout));
  return Status::OK();
}

Status ReadPacketHead(Socket& sock, uint32_t bpc, Millis timeout, Packet* p) {
  char lenbuf[4];
  DFS_RETURN_IF_ERROR(sock.ReadFull(lenbuf, 4, timeout));
  const uint32_t hlen = GetBE32(lenbuf);
  if (hlen > kMaxPacketHeaderBytes) {
    return Status::ProtocolError(fmt::format("packet header from {} claims {} bytes, over the limit of {}",
                                             sock.PeerAddress(), hlen, kMaxPacketHeaderBytes));
  }
  p->header_buf_.resize(hlen);
  DFS_RETURN_IF_ERROR(sock.ReadFull(p->header_buf_.data(), hlen, timeout));
  if (!p->header.ParseFromArray(p->header_buf_.data(), static_cast<int>(hlen))) {
    return Status::ProtocolError(fmt::format("packet header from {} does not parse", sock.PeerAddress()));
  }
  const uint32_t dlen = p->header.data_len();
  if (dlen > kMaxPacketDataBytes) {
    return Status::ProtocolError(fmt::format("packet from {} claims {} data bytes, over the limit of {}",
                                             sock.PeerAddress(), dlen, kMaxPacketDataBytes));
  }
  if (bpc == 0) return Status::InvalidArgument("bytes_per_checksum must be positive");
  p->num_chunks = PacketChunks(p->header.offset_in_block(), dlen, bpc);
  p->Reserve(0, p->num_chunks);
  if (p->num_chunks > 0) {
    DFS_RETURN_IF_ERROR(sock.ReadFull(p->checksums(), p->num_chunks * kChecksumBytes, timeout));
  }
  return Status::OK();
}

Status FromProto(proto::StatusCode code, std::string message) {
  int c = static_cast<int>(code);
  if (c < 0 || c > kMaxStatusCode) {
    return Status::ProtocolError(fmt::format("unknown status code {}: {}", c, message));
  }
  if (c == 0) return Status::OK();
  return Status(static_cast<StatusCode>(c), std::move(message));
}

std::string XferAddress(const proto::DatanodeId& dn) { return fmt::format("{}:{}", dn.ip(), dn.xfer_port()); }
std::string DataNodeName(const proto::DatanodeId& dn) { return "DataNode " + XferAddress(dn); }

void DrainBeforeClose(Socket& sock, Millis linger) {
  if (!sock.valid()) return;
  ::shutdown(sock.fd(), SHUT_WR);
  const auto deadline = std::chrono::steady_clock::now() + linger;
  char buf[4096];
  size_t drained = 0;
  while (drained < (8u << 20)) {
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    // ReadFull of one byte then a non-blocking sweep: stops at EOF, error or timeout.
    if (!sock.ReadFull(buf, 1, left).ok()) break;
    ssize_t r = ::recv(sock.fd(), buf, sizeof buf, MSG_DONTWAIT);
    drained += 1 + static_cast<size_t>(std::max<ssize_t>(r, 0));
  }
}

}  // namespace dfs
