// BlockWriter: the client end of a write pipeline for one block replica set
// (client → DN1 → DN2 → ...), framed as in common/data_transfer.h. Used by the
// client library for file writes and by DataNodes copying replicas.
//
// Write() copies bytes into the current packet buffer; a full packet gets its
// checksums and is sent by the calling thread. Packets stay in a ring of
// max_packets_in_flight reused buffers until acked, so Write() blocks when the
// window is full and nothing is allocated per packet. An ack thread reads the
// acks, frees slots, and sends a heartbeat packet when the pipeline has been
// idle for half the socket timeout so that slow producers do not time it out.
//
// Thread-safety: one thread calls Write/Flush/Finish/Abort; the ack thread is
// internal. After any error the writer is dead: every call returns that error,
// and failed_target() says which DataNode to blame (for pipeline recovery).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/buffer_pool.h"
#include "common/data_transfer.h"
#include "common/socket.h"
#include "common/status.h"
#include "proto/types.pb.h"

namespace dfs {

class BlockWriter {
 public:
  struct Options {
    uint32_t bytes_per_checksum = 64 << 10;  // dfs.bytes-per-checksum
    size_t packet_size =
        256 << 10;  // data bytes per packet, rounded down to whole chunks (dfs.client-write-packet-size)
    size_t max_packets_in_flight = 64;  // unacked packets before Write blocks (dfs.client.write.max-packets-in-flight)
    Millis socket_timeout = Millis(60000);  // idle timeout per socket operation (dfs.client.socket-timeout)
    std::string client_name;                // for the DataNodes' logs
    // Where packet buffers come from; shared by the writers of one client so a
    // new block reuses warm buffers. Null: each writer allocates its own.
    std::shared_ptr<BufferPool> packet_buffers;
  };

  // Pipeline recovery: continue a replica the targets already hold under an
  // older generation stamp (at least old_gen_stamp), from its first `length`
  // bytes (those every node acknowledged); `block` carries the new stamp.
  struct Recovery {
    uint64_t old_gen_stamp = 0;
    uint64_t length = 0;
  };

  // Connects to targets[0] and sets up the pipeline through every target. On
  // failure, *failed_target (when given) is the index in targets of the node to
  // blame: the one named in the reply's first_bad_link, 0 when the first node
  // cannot be reached or refuses, -1 when unknown.
  static Result<std::unique_ptr<BlockWriter>> Open(const proto::Block& block,
                                                   const std::vector<proto::DatanodeId>& targets,
                                                   const Options& options, int* failed_target = nullptr,
                                                   const Recovery* recovery = nullptr);
  ~BlockWriter();  // aborts unless finished
  BlockWriter(const BlockWriter&) = delete;
  BlockWriter& operator=(const BlockWriter&) = delete;

  // Appends n bytes to the block.
  [[nodiscard]] Status Write(const char* data, size_t n);
  // Sends the buffered bytes (even a partial packet) and waits until every
  // packet sent is acknowledged by all targets.
  [[nodiscard]] Status Flush();
  // Like Flush, and the packet that ends the bytes written so far (an empty one
  // when nothing is pending) asks every DataNode to fdatasync the replica up to
  // there before acknowledging it (hsync).
  [[nodiscard]] Status Sync();
  // Sends what is left and the final (empty, last) packet, waits for every ack,
  // and returns the block's length. The replicas are then finalized.
  [[nodiscard]] Result<uint64_t> Finish();
  // Drops the connection; the DataNodes remove their temporary replicas.
  void Abort();

  // Bytes written so far (accepted by Write), and bytes acknowledged by every target.
  uint64_t bytes_written() const { return written_; }
  uint64_t bytes_acked() const;
  // Index in targets of the first DataNode reported bad, -1 if unknown or none.
  int failed_target() const;
  // After a failure: aborts the writer and copies out the bytes written but not
  // acknowledged by every target, in order, so a new pipeline can resend them.
  // Returns bytes_acked(), where *unacked starts.
  Result<uint64_t> TakeUnacked(std::string* unacked);
  const std::vector<proto::DatanodeId>& targets() const { return targets_; }

 private:
  struct Slot {
    char* data = nullptr;                 // from `pooled` or `owned`
    BufferPool::Buffer pooled;
    std::unique_ptr<char[]> owned;
    std::unique_ptr<uint64_t[]> sums;
    proto::PacketHeader header;
  };
  struct InFlight {
    int64_t seqno;
    uint64_t end;  // block offset after this packet (bytes acked once it is)
    bool heartbeat;
    size_t slot;   // ring slot holding the data (not for heartbeats)
  };

  BlockWriter(proto::Block block, std::vector<proto::DatanodeId> targets, Options options, Socket sock,
              uint64_t start);
  // Sends the current slot (possibly empty, with `last` or `sync`) and advances.
  Status SendCurrent(bool last, bool sync = false);
  // Waits for a free slot; fails with the pipeline's error.
  Status AcquireSlot();
  Status WaitAllAcked();
  void AckLoop();
  void Fail(Status s, int target);
  // Queues the packet as in flight and sends it, atomically with respect to the heartbeat.
  Status Send(const proto::PacketHeader& h, const uint64_t* sums, size_t nsums, const char* data, uint64_t end,
              bool heartbeat, size_t slot);
  // After a failed send: the ack thread usually learns why (an error ack names the bad node).
  Status SendFailed(const Status& s);

  const proto::Block block_;
  const std::vector<proto::DatanodeId> targets_;
  const Options options_;
  const size_t packet_cap_;  // data bytes in a packet that starts on a chunk boundary
  Socket sock_;
  std::vector<Slot> ring_;
  size_t cur_ = 0;         // slot being filled
  size_t cur_len_ = 0;     // bytes in it
  bool cur_open_ = false;  // the slot is acquired
  uint64_t written_ = 0;   // offset of the next byte
  uint64_t sent_ = 0;      // offset after the last sent packet
  int64_t next_seqno_ = 0;
  bool finished_ = false;

  std::mutex send_mu_;  // the writer thread and the heartbeat share the socket's write side
  std::string send_scratch_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<InFlight> q_;  // ring of unacked packets, oldest at q_head_; fixed size, no allocation
  size_t q_head_ = 0;
  size_t q_count_ = 0;
  size_t slots_in_use_ = 0;  // data packets among them (heartbeats hold no slot)
  uint64_t acked_ = 0;
  Status error_;
  int failed_target_ = -1;
  bool closing_ = false;
  std::thread ack_thread_;
};

}  // namespace dfs
