// XferServer: the DataNode's data transfer server (dfs.datanode.address, 9866).
// Serves READ_BLOCK (packets read from the replica, finalized or being
// written), WRITE_BLOCK (receive, verify, forward downstream, store, ack
// upstream; each ack publishes the acked length to readers),
// REPLICA_VISIBLE_LENGTH, RECOVER_REPLICA and FETCH_MAP_OUTPUT (the streaming
// shuffle) as framed in common/data_transfer.h.
//
// Threads: one listener thread, and one thread per connection (a write adds a
// responder thread for its acks), capped at max_threads connections; a
// connection over the cap gets an UNAVAILABLE OpResponse and is closed. A
// connection serves READ_BLOCK requests until the peer closes it; a WRITE_BLOCK
// is the last operation on its connection.
//
// Ownership: the BlockStore is borrowed and must outlive the server.
// on_block_received is called from a transfer thread, after a replica is
// finalized; it must be thread-safe and should not block for long.
// Start/Shutdown are called from one owning thread; Shutdown() closes every
// socket and joins every thread, so it returns promptly even with stalled peers.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/buffer_pool.h"
#include "common/socket.h"
#include "common/status.h"
#include "datanode/block_store.h"
#include "proto/data_transfer.pb.h"

namespace dfs::datanode {

class XferServer {
 public:
  struct Options {
    std::string bind_host = "127.0.0.1";
    uint16_t port = 0;                      // 0 picks a free port
    int max_threads = 256;                  // concurrent connections (dfs.datanode.max.transfer.threads)
    Millis socket_timeout = Millis(60000);  // idle timeout per socket operation (dfs.client.socket-timeout)
    std::string node_label;                 // "127.0.0.1:9866", used in messages; defaults to host:port
    size_t read_packet_bytes = 256 << 10;   // data per READ_BLOCK packet, rounded to whole chunks
  };
  using BlockReceivedFn = std::function<void(const proto::Block&)>;
  // FETCH_MAP_OUTPUT: where one partition of a map attempt's output is (a
  // byte range of a local file), or NotFound.
  struct MapOutputSegment {
    std::string path;
    uint64_t offset = 0;
    uint64_t length = 0;
  };
  using ShuffleLookupFn =
      std::function<Result<MapOutputSegment>(const std::string& job, const std::string& attempt, uint32_t partition)>;
  // Set before Start (the task tracker is built after the server has a port).
  void SetShuffleLookup(ShuffleLookupFn fn) { shuffle_ = std::move(fn); }

  XferServer(BlockStore* store, Options options, BlockReceivedFn on_block_received);
  ~XferServer();  // calls Shutdown()
  XferServer(const XferServer&) = delete;
  XferServer& operator=(const XferServer&) = delete;

  // Binds and starts the listener thread.
  [[nodiscard]] Status Start();
  // The bound port (after Start).
  uint16_t port() const { return port_; }
  // Stops accepting, shuts down every connection's sockets and joins all threads. Idempotent.
  void Shutdown();
  // Connections currently being served.
  int active_transfers() const { return active_.load(); }

 private:
  struct Conn {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  struct WriteContext;

  void AcceptLoop();
  void Serve(Socket sock, Conn* conn);
  // Returns false when the connection must be closed.
  bool HandleRead(Socket& sock, const proto::OpRequest& req);
  void HandleWrite(Socket& sock, const proto::OpRequest& req);
  // RECOVER_REPLICA (lease recovery, from the NameNode). Returns false when the
  // connection must be closed.
  bool HandleRecover(Socket& sock, const proto::OpRequest& req);
  // FETCH_MAP_OUTPUT. Returns false when the connection must be closed.
  bool HandleFetch(Socket& sock, const proto::OpRequest& req);
  // REPLICA_VISIBLE_LENGTH (a reader of a file being written). Returns false
  // when the connection must be closed.
  bool HandleVisibleLength(Socket& sock, const proto::OpRequest& req);
  // Ends a write of block `id` that is still in progress here (its writer
  // moved on or vanished but our sockets have not timed out yet) and waits
  // until it let go of the replica. False when it did not within `deadline`.
  bool PreemptWrite(uint64_t id, Millis deadline);
  // Opens the replica for a recovery, pre-empting a write of it still in progress.
  Result<std::unique_ptr<ReplicaWriter>> RecoverReplica(const proto::Block& block, uint64_t min_gen_stamp,
                                                        uint64_t length);
  void ReceivePackets(WriteContext& ctx);
  void RespondAcks(WriteContext& ctx);
  void ReplyError(Socket& sock, const Status& s, const std::string& first_bad_link = "");
  void ReapFinished(bool all);

  // Sockets in use, so Shutdown() can wake threads blocked on them.
  void Track(Socket* s);
  void Untrack(Socket* s);
  class Tracked;

  BlockStore* store_;
  std::unique_ptr<BufferPool> read_buffers_;  // one per concurrent read, reused across operations
  Options options_;
  BlockReceivedFn on_block_received_;
  ShuffleLookupFn shuffle_;
  Listener listener_;
  uint16_t port_ = 0;
  std::thread accept_thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> active_{0};
  std::mutex writes_mu_;
  std::condition_variable writes_cv_;
  std::map<uint64_t, WriteContext*> writes_;  // writes in progress, by block id

  std::mutex mu_;
  std::list<Conn> conns_;  // touched by the accept thread and Shutdown only
  std::set<Socket*> sockets_;
};

}  // namespace dfs::datanode
