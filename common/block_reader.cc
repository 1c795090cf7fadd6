#include "common/block_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace dfs {

namespace {

// Connects to `datanode`, sends `req` for `block` and reads the answer. Every
// error starts with `what` ("reading blk_1", "asking for the length of blk_1").
Result<Socket> Ask(const proto::DatanodeId& datanode, const proto::Block& block, proto::OpRequest& req,
                   const BlockReader::Options& options, const std::string& what, proto::OpResponse* resp) {
  const std::string dn = DataNodeName(datanode);
  DFS_ASSIGN_OR_RETURN(Socket sock, Socket::Connect(datanode.ip(), static_cast<uint16_t>(datanode.xfer_port()),
                                                    options.socket_timeout, dn));
  *req.mutable_block() = block;
  req.set_client_name(options.client_name);
  Status s = SendOpRequest(sock, req, options.socket_timeout);
  if (s.ok()) s = ReadOpResponse(sock, resp, options.socket_timeout);
  if (!s.ok()) return Status(s.code(), fmt::format("{} from {}: {}", what, dn, s.message()));
  // The DataNode's message names it.
  if (resp->code() != proto::OK) return FromProto(resp->code(), fmt::format("{}: {}", what, resp->message()));
  return sock;
}

}  // namespace

Result<std::unique_ptr<BlockReader>> BlockReader::Open(const proto::DatanodeId& datanode, const proto::Block& block,
                                                       uint64_t offset, uint64_t length, const Options& options) {
  const std::string dn = DataNodeName(datanode);
  const std::string name = BlockName(BlockId(block.id()));
  proto::OpRequest req;
  req.set_op(proto::READ_BLOCK);
  req.set_offset(offset);
  req.set_length(length);
  proto::OpResponse resp;
  DFS_ASSIGN_OR_RETURN(Socket sock, Ask(datanode, block, req, options, "reading " + name, &resp));
  const uint32_t bpc = resp.bytes_per_checksum();
  const uint64_t len = resp.block_length();
  const uint64_t end = length == 0 ? len : offset + length;
  if (bpc == 0 || resp.first_chunk_offset() > offset || end > len || offset - resp.first_chunk_offset() >= bpc) {
    return Status::ProtocolError(fmt::format(
        "reading {} from {}: inconsistent reply (bytes_per_checksum {}, first chunk at {}, block length {}) for "
        "range [{}, {})",
        name, dn, bpc, resp.first_chunk_offset(), len, offset, end));
  }
  return std::unique_ptr<BlockReader>(new BlockReader(std::move(sock), block, dn, bpc, offset, end,
                                                      resp.first_chunk_offset(), len, options.socket_timeout));
}

Result<uint64_t> BlockReader::VisibleLength(const proto::DatanodeId& datanode, const proto::Block& block,
                                            const Options& options) {
  proto::OpRequest req;
  req.set_op(proto::REPLICA_VISIBLE_LENGTH);
  proto::OpResponse resp;
  DFS_RETURN_IF_ERROR(
      Ask(datanode, block, req, options, "asking for the length of " + BlockName(BlockId(block.id())), &resp)
          .status());
  return resp.replica_length();
}

BlockReader::BlockReader(Socket sock, proto::Block block, std::string datanode, uint32_t bpc, uint64_t pos,
                         uint64_t end, uint64_t first_chunk, uint64_t block_length, Millis timeout)
    : sock_(std::move(sock)),
      block_(std::move(block)),
      datanode_(std::move(datanode)),
      bpc_(bpc),
      pos_(pos),
      end_(end),
      next_offset_(first_chunk),
      block_length_(block_length),
      timeout_(timeout) {}

Status BlockReader::NextPacket(char* dst, size_t cap, bool* direct) {
  *direct = false;
  const std::string name = BlockName(BlockId(block_.id()));
  auto fail = [&](const Status& s) { return Status(s.code(), fmt::format("reading {} from {}: {}", name, datanode_, s.message())); };
  Status s = ReadPacketHead(sock_, bpc_, timeout_, &pkt_);
  if (!s.ok()) return fail(s);
  const proto::PacketHeader& h = pkt_.header;
  if (h.offset_in_block() != next_offset_) {
    return Status::ProtocolError(fmt::format("reading {} from {}: a packet starts at offset {}, expected {}", name,
                                             datanode_, h.offset_in_block(), next_offset_));
  }
  const uint64_t start = h.offset_in_block();
  const uint32_t len = h.data_len();
  char* into;
  if (dst && len > 0 && start == pos_ && start + len <= end_ && len <= cap) {
    into = dst;
    *direct = true;
  } else {
    pkt_.Reserve(len, pkt_.num_chunks);
    into = pkt_.data();
  }
  if (len > 0) {
    s = sock_.ReadFull(into, len, timeout_);
    if (!s.ok()) return fail(s);
  }
  if (auto bad = VerifyPacketChecksums(start, into, len, bpc_, pkt_.checksums())) {
    const uint64_t at = (start / bpc_ + *bad) * bpc_;
    return Status::Corruption(fmt::format("checksum mismatch in {} (generation stamp {}) at offset {} read from {}",
                                          name, block_.gen_stamp(), at, datanode_));
  }
  pkt_start_ = start;
  pkt_end_ = start + len;
  next_offset_ = pkt_end_;
  if (h.last()) {
    at_end_ = true;
    if (next_offset_ < end_) {
      return Status::IOError(fmt::format("reading {} from {}: the DataNode ended the stream at offset {}, before {}",
                                         name, datanode_, next_offset_, end_));
    }
  }
  return Status::OK();
}

Result<size_t> BlockReader::Read(char* buf, size_t n) {
  size_t done = 0;
  while (done < n && pos_ < end_) {
    if (pos_ >= pkt_end_) {
      if (at_end_) break;
      bool direct = false;
      DFS_RETURN_IF_ERROR(NextPacket(buf + done, n - done, &direct));
      if (direct) {  // the packet's data is already in place
        done += static_cast<size_t>(pkt_end_ - pos_);
        pos_ = pkt_end_;
      }
      continue;
    }
    const size_t k = static_cast<size_t>(std::min<uint64_t>({n - done, pkt_end_ - pos_, end_ - pos_}));
    std::memcpy(buf + done, pkt_.data() + (pos_ - pkt_start_), k);
    pos_ += k;
    done += k;
  }
  return done;
}

}  // namespace dfs
