// BlockReader: reads a byte range of one block replica from one DataNode
// (READ_BLOCK, framed as in common/data_transfer.h), verifying every chunk's
// checksum. The range is served in packets that start on the replica's chunk
// grid; bytes outside the range are dropped here.
//
// Thread-safety: one thread at a time. Owns its connection and one packet
// buffer, reused for every packet. A checksum mismatch is a Corruption naming
// the block, the offset and the DataNode, so the caller can report the replica
// and read another one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/data_transfer.h"
#include "common/socket.h"
#include "common/status.h"
#include "proto/types.pb.h"

namespace dfs {

class BlockReader {
 public:
  struct Options {
    Millis socket_timeout = Millis(60000);  // idle timeout per socket operation (dfs.client.socket-timeout)
    std::string client_name;                // for the DataNode's logs
  };

  // Asks `datanode` for [offset, offset + length) of `block` (length 0: to the
  // end). Fails with the DataNode's answer: NotFound, Stale (gen stamp differs),
  // InvalidArgument (range outside the block), or Unavailable/IOError/TimedOut.
  static Result<std::unique_ptr<BlockReader>> Open(const proto::DatanodeId& datanode, const proto::Block& block,
                                                   uint64_t offset, uint64_t length, const Options& options);

  // Asks `datanode` how many bytes of `block` it can serve (REPLICA_VISIBLE_LENGTH):
  // of a replica being written, what its pipeline acknowledged from this node
  // on; of a finalized one, its length. Fails as Open does.
  static Result<uint64_t> VisibleLength(const proto::DatanodeId& datanode, const proto::Block& block,
                                        const Options& options);

  // Copies up to n bytes of the range into buf; 0 at the end of the range.
  [[nodiscard]] Result<size_t> Read(char* buf, size_t n);

  uint64_t block_length() const { return block_length_; }  // of the replica, as the DataNode has it
  uint64_t position() const { return pos_; }               // block offset of the next byte Read returns
  uint64_t range_end() const { return end_; }

 private:
  BlockReader(Socket sock, proto::Block block, std::string datanode, uint32_t bpc, uint64_t pos, uint64_t end,
              uint64_t first_chunk, uint64_t block_length, Millis timeout);
  // Reads the next packet. Its data goes straight to `dst` (and *direct is
  // set) when it starts at pos_, ends inside the range and fits in `cap`;
  // otherwise into pkt_.
  Status NextPacket(char* dst, size_t cap, bool* direct);

  Socket sock_;
  const proto::Block block_;
  const std::string datanode_;  // "DataNode ip:port"
  const uint32_t bpc_;
  uint64_t pos_;
  const uint64_t end_;
  uint64_t next_offset_;  // offset the next packet must start at
  const uint64_t block_length_;
  const Millis timeout_;
  Packet pkt_;
  uint64_t pkt_start_ = 0;  // block offset of pkt_.data()[0]
  uint64_t pkt_end_ = 0;
  bool at_end_ = false;
};

}  // namespace dfs
