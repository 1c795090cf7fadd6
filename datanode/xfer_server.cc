#include "datanode/xfer_server.h"

#include <fmt/format.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <deque>

#include "common/data_transfer.h"
#include "common/logging.h"

namespace dfs::datanode {

namespace {

// How long a connection lingers after an error reply (see DrainBeforeClose).
constexpr Millis kErrorLinger{2000};
// The accept loop wakes this often to notice Shutdown().
constexpr Millis kAcceptPoll{100};

}  // namespace

// Registers a socket with the server for the scope of the object, so Shutdown()
// can wake a thread blocked on it. Declare it after the Socket it guards.
class XferServer::Tracked {
 public:
  Tracked(XferServer* server, Socket* sock) : server_(server), sock_(sock) { server_->Track(sock_); }
  ~Tracked() { server_->Untrack(sock_); }
  Tracked(const Tracked&) = delete;
  Tracked& operator=(const Tracked&) = delete;

 private:
  XferServer* server_;
  Socket* sock_;
};

// State shared by the receiver (the connection's thread) and the responder of one WRITE_BLOCK.
struct XferServer::WriteContext {
  struct Entry {
    int64_t seqno;
    bool last;
    Status status;           // not OK: this node failed; the ack says so and ends the write
    bool downstream_failed;  // the packet could not be forwarded
    bool data = false;       // a data packet: its ack makes `end` visible to readers
    uint64_t end = 0;        // the replica's length after the packet
    uint64_t tail_sum = 0;   // the checksum of the partial chunk `end` ends in (0: none)
  };

  Socket* up = nullptr;
  Socket down;                // invalid when this node is the last of the pipeline
  std::string down_addr;      // "ip:port" of the downstream node
  size_t num_downstream = 0;  // nodes behind this one
  std::unique_ptr<ReplicaWriter> writer;
  std::shared_ptr<ReplicaProgress> progress;  // the writer's, for the responder
  std::string block_name;
  std::string peer;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Entry> queue;
  std::atomic<bool> failed{false};  // set by the responder when the pipeline broke
  bool local_failure = false;       // this node could not store the bytes (not a pipeline failure)

  void Push(Entry e) {
    {
      std::lock_guard<std::mutex> l(mu);
      queue.push_back(std::move(e));
    }
    cv.notify_one();
  }
  Entry Pop() {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return !queue.empty(); });
    Entry e = std::move(queue.front());
    queue.pop_front();
    return e;
  }
};

XferServer::XferServer(BlockStore* store, Options options, BlockReceivedFn on_block_received)
    : store_(store),
      read_buffers_(std::make_unique<BufferPool>(options.read_packet_bytes, /*max_idle=*/16)),
      options_(std::move(options)),
      on_block_received_(std::move(on_block_received)) {}

XferServer::~XferServer() { Shutdown(); }

Status XferServer::Start() {
  DFS_ASSIGN_OR_RETURN(listener_, Listener::Listen(options_.bind_host, options_.port));
  port_ = listener_.port();
  if (options_.node_label.empty()) options_.node_label = fmt::format("{}:{}", options_.bind_host, port_);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  Log("dn")->info("data transfer server listening on {}:{} (max {} transfer threads)", options_.bind_host, port_,
                  options_.max_threads);
  return Status::OK();
}

void XferServer::Shutdown() {
  if (stopping_.exchange(true)) return;
  if (accept_thread_.joinable()) accept_thread_.join();
  {
    std::lock_guard<std::mutex> l(mu_);
    for (Socket* s : sockets_) s->ShutdownBoth();
  }
  ReapFinished(true);
  listener_.Close();
}

void XferServer::Track(Socket* s) {
  std::lock_guard<std::mutex> l(mu_);
  sockets_.insert(s);
  if (stopping_) s->ShutdownBoth();
}

void XferServer::Untrack(Socket* s) {
  std::lock_guard<std::mutex> l(mu_);
  sockets_.erase(s);
}

void XferServer::ReapFinished(bool all) {
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (all || it->done.load()) {
      if (it->thread.joinable()) it->thread.join();
      it = conns_.erase(it);
    } else {
      ++it;
    }
  }
}

void XferServer::AcceptLoop() {
  auto log = Log("dn");
  while (!stopping_) {
    ReapFinished(false);
    auto r = listener_.Accept(kAcceptPoll);
    if (!r.ok()) {
      if (r.status().code() != StatusCode::kTimedOut) {
        log->warn("data transfer server: {}", r.status().ToString());
        std::this_thread::sleep_for(Millis(10));  // e.g. out of descriptors: do not spin
      }
      continue;
    }
    Socket sock = std::move(r).value();
    if (active_.load() >= options_.max_threads) {
      log->warn("refusing a transfer from {}: all {} transfer threads are busy", sock.PeerAddress(),
                options_.max_threads);
      ReplyError(sock,
                 Status::Unavailable(fmt::format(
                     "DataNode {} is busy: all {} transfer threads (dfs.datanode.max.transfer.threads) are in use",
                     options_.node_label, options_.max_threads)));
      DrainBeforeClose(sock, Millis(200));
      continue;
    }
    ++active_;
    Conn& c = conns_.emplace_back();
    c.thread = std::thread([this, s = std::move(sock), &c]() mutable { Serve(std::move(s), &c); });
  }
}

void XferServer::ReplyError(Socket& sock, const Status& s, const std::string& first_bad_link) {
  proto::OpResponse resp;
  resp.set_code(ToProto(s.code()));
  resp.set_message(s.message());
  if (!first_bad_link.empty()) resp.set_first_bad_link(first_bad_link);
  Status ws = SendOpResponse(sock, resp, options_.socket_timeout);
  if (!ws.ok()) Log("dn")->debug("could not send an error reply to {}: {}", sock.PeerAddress(), ws.ToString());
}

void XferServer::Serve(Socket sock, Conn* conn) {
  // sendfile(2) has no MSG_NOSIGNAL: a reader that hangs up would raise SIGPIPE,
  // which kills a process that did not ignore it (tests, embedded servers). The
  // signal is thread-directed, so blocking it here is enough; the write fails with EPIPE.
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
  {
    Tracked tracked(this, &sock);
    const std::string peer = sock.PeerAddress();
    for (bool first = true;; first = false) {
      proto::OpRequest req;
      Status s = ReadOpRequest(sock, &req, options_.socket_timeout);
      if (!s.ok()) {
        if (s.code() == StatusCode::kProtocolError) {
          Log("dn")->warn("bad request from {}: {}", peer, s.message());
          ReplyError(sock, s);
          DrainBeforeClose(sock, kErrorLinger);
        } else if (first && !stopping_) {
          Log("dn")->debug("connection from {} ended before a request: {}", peer, s.ToString());
        }
        break;
      }
      if (req.op() == proto::READ_BLOCK) {
        if (!HandleRead(sock, req)) break;
        continue;
      }
      if (req.op() == proto::WRITE_BLOCK) {
        HandleWrite(sock, req);
        break;
      }
      if (req.op() == proto::RECOVER_REPLICA) {
        if (!HandleRecover(sock, req)) break;
        continue;
      }
      if (req.op() == proto::FETCH_MAP_OUTPUT) {
        if (!HandleFetch(sock, req)) break;
        continue;
      }
      if (req.op() == proto::REPLICA_VISIBLE_LENGTH) {
        if (!HandleVisibleLength(sock, req)) break;
        continue;
      }
      Status bad = Status::ProtocolError(
          fmt::format("unknown data transfer operation {} (this DataNode knows READ_BLOCK, WRITE_BLOCK, "
                      "RECOVER_REPLICA, FETCH_MAP_OUTPUT and REPLICA_VISIBLE_LENGTH)",
                      static_cast<int>(req.op())));
      Log("dn")->warn("bad request from {}: {}", peer, bad.message());
      ReplyError(sock, bad);
      DrainBeforeClose(sock, kErrorLinger);
      break;
    }
  }
  --active_;
  conn->done = true;
}

bool XferServer::HandleRead(Socket& sock, const proto::OpRequest& req) {
  auto log = Log("dn");
  const Millis timeout = options_.socket_timeout;
  const std::string name = BlockName(BlockId(req.block().id()));
  auto rr = store_->OpenForRead(req.block());
  if (!rr.ok()) {
    log->info("read of {} from {} refused: {}", name, sock.PeerAddress(), rr.status().ToString());
    ReplyError(sock, rr.status().Prepend("DataNode " + options_.node_label));
    return true;
  }
  const ReplicaReader& reader = **rr;
  const uint64_t len = reader.length();
  const uint64_t off = req.offset();
  if (off > len || (req.length() > 0 && req.length() > len - off)) {
    ReplyError(sock,
               Status::InvalidArgument(fmt::format("DataNode {}: range [{}, {}) is outside {}, which has {} bytes",
                                                   options_.node_label, off, off + req.length(), name, len)));
    return true;
  }
  const uint64_t end = req.length() == 0 ? len : off + req.length();
  const uint32_t bpc = reader.bytes_per_checksum();
  const uint64_t first = off / bpc * bpc;
  const uint64_t stop = end == off ? first : std::min<uint64_t>(len, (end + bpc - 1) / bpc * bpc);

  proto::OpResponse resp;
  resp.set_code(proto::OK);
  resp.set_bytes_per_checksum(bpc);
  resp.set_first_chunk_offset(first);
  resp.set_block_length(len);
  if (!SendOpResponse(sock, resp, timeout).ok()) return false;

  const size_t packet_bytes = std::max<size_t>(bpc, options_.read_packet_bytes / bpc * bpc);
  std::vector<uint64_t> sums(packet_bytes / bpc + 1);  // once per operation, reused by every packet
  // Data goes out with pread + writev from a pooled buffer rather than
  // sendfile: on the VMs we run on, sendfile's page-sized socket fragments cost
  // a hypervisor exit each and read ~25% slower (see doc/design.md).
  BufferPool::Buffer buf = read_buffers_->GetAtLeast(packet_bytes);
  char* const data = buf.data();
  std::string scratch;
  proto::PacketHeader h;
  int64_t seqno = 0;
  for (uint64_t pos = first; pos < stop; pos += h.data_len()) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(packet_bytes, stop - pos));
    const size_t chunks = PacketChunks(pos, n, bpc);
    Status s = reader.ReadChecksums(pos / bpc, chunks, sums.data());
    if (!s.ok()) {
      log->warn("read of {} for {} failed: {}", name, sock.PeerAddress(), s.ToString());
      return false;  // mid-stream: closing tells the reader
    }
    h.set_offset_in_block(pos);
    h.set_seqno(seqno++);
    h.set_data_len(static_cast<uint32_t>(n));
    h.set_last(false);
    s = reader.ReadData(pos, n, data);
    if (s.ok()) s = SendPacket(sock, h, sums.data(), chunks, data, &scratch, timeout);
    if (!s.ok()) {
      log->debug("read of {} by {} ended early: {}", name, sock.PeerAddress(), s.ToString());
      return false;
    }
  }
  h.set_offset_in_block(stop);
  h.set_seqno(seqno);
  h.set_data_len(0);
  h.set_last(true);
  return SendPacket(sock, h, nullptr, 0, nullptr, &scratch, timeout).ok();
}

bool XferServer::HandleVisibleLength(Socket& sock, const proto::OpRequest& req) {
  auto info = store_->VisibleLength(req.block());
  if (!info.ok()) {
    ReplyError(sock, info.status().Prepend("DataNode " + options_.node_label));
    return true;
  }
  proto::OpResponse resp;
  resp.set_code(proto::OK);
  resp.set_replica_state(static_cast<proto::ReplicaState>(info->state));
  resp.set_replica_gen_stamp(info->gen_stamp);
  resp.set_replica_length(info->num_bytes);
  return SendOpResponse(sock, resp, options_.socket_timeout).ok();
}

bool XferServer::HandleFetch(Socket& sock, const proto::OpRequest& req) {
  const Millis timeout = options_.socket_timeout;
  if (!shuffle_) {
    ReplyError(sock, Status::NotSupported("DataNode " + options_.node_label + " runs no streaming tasks"));
    return true;
  }
  auto seg = shuffle_(req.job_id(), req.map_attempt(), req.partition());
  if (!seg.ok()) {
    ReplyError(sock, seg.status().Prepend("DataNode " + options_.node_label));
    return true;
  }
  const int fd = ::open(seg->path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    ReplyError(sock, Status::FromErrno("DataNode " + options_.node_label + ": open map output " + seg->path, errno));
    return true;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  constexpr uint32_t kBpc = 64 << 10;
  proto::OpResponse resp;
  resp.set_code(proto::OK);
  resp.set_bytes_per_checksum(kBpc);
  resp.set_first_chunk_offset(0);
  resp.set_block_length(seg->length);
  if (!SendOpResponse(sock, resp, timeout).ok()) return false;
  BufferPool::Buffer pooled = read_buffers_->Get();
  const size_t packet_bytes = std::max<size_t>(kBpc, std::min(read_buffers_->buffer_bytes(), options_.read_packet_bytes) / kBpc * kBpc);
  std::vector<uint64_t> sums(packet_bytes / kBpc + 1);
  std::string scratch;
  proto::PacketHeader h;
  int64_t seqno = 0;
  for (uint64_t pos = 0; pos < seg->length; pos += h.data_len()) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(packet_bytes, seg->length - pos));
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd, pooled.data() + got, n - got, static_cast<off_t>(seg->offset + pos + got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        Log("dn")->warn("reading map output {} for {} failed: {}", seg->path, sock.PeerAddress(),
                        r < 0 ? std::strerror(errno) : "the file is shorter than its index says");
        return false;
      }
      got += static_cast<size_t>(r);
    }
    const size_t chunks = PacketChunks(pos, n, kBpc);
    ComputePacketChecksums(pos, pooled.data(), n, kBpc, sums.data());
    h.set_offset_in_block(pos);
    h.set_seqno(seqno++);
    h.set_data_len(static_cast<uint32_t>(n));
    h.set_last(false);
    if (!SendPacket(sock, h, sums.data(), chunks, pooled.data(), &scratch, timeout).ok()) return false;
  }
  h.set_offset_in_block(seg->length);
  h.set_seqno(seqno);
  h.set_data_len(0);
  h.set_last(true);
  return SendPacket(sock, h, nullptr, 0, nullptr, &scratch, timeout).ok();
}

void XferServer::HandleWrite(Socket& sock, const proto::OpRequest& req) {
  auto log = Log("dn");
  const Millis timeout = options_.socket_timeout;
  WriteContext ctx;
  ctx.up = &sock;
  ctx.peer = sock.PeerAddress();
  ctx.block_name = BlockName(BlockId(req.block().id()));
  const std::string me = "DataNode " + options_.node_label;
  const uint32_t bpc = req.bytes_per_checksum();
  if (bpc < kMinBytesPerChecksum || bpc > kMaxBytesPerChecksum) {
    ReplyError(sock,
               Status::InvalidArgument(fmt::format("{}: bytes_per_checksum {} for {} is outside [{}, {}]", me, bpc,
                                                   ctx.block_name, kMinBytesPerChecksum, kMaxBytesPerChecksum)));
    DrainBeforeClose(sock, kErrorLinger);
    return;
  }
  auto w = req.recovery() ? RecoverReplica(req.block(), req.recover_gen_stamp(), req.recover_length())
                          : store_->CreateTemporary(req.block(), bpc);
  if (w.ok() && (*w)->bytes_per_checksum() != bpc) {
    (*w)->Suspend();
    w = Status::InvalidArgument(fmt::format("{}: {} is stored with {} bytes per checksum, not {}", me,
                                            ctx.block_name, (*w)->bytes_per_checksum(), bpc));
  }
  if (!w.ok()) {
    log->info("write of {} from {} refused: {}", ctx.block_name, ctx.peer, w.status().ToString());
    ReplyError(sock, w.status().Prepend(me));
    DrainBeforeClose(sock, kErrorLinger);
    return;
  }
  ctx.writer = std::move(w).value();
  ctx.progress = ctx.writer->progress();
  // A recovered replica keeps its bytes when this attempt fails too; a new one goes.
  auto give_up = [&] { req.recovery() ? ctx.writer->Suspend() : ctx.writer->Abort(); };
  const uint64_t block_id = req.block().id();
  {
    std::lock_guard<std::mutex> l(writes_mu_);
    writes_[block_id] = &ctx;
  }
  struct Unregister {
    XferServer* server;
    uint64_t id;
    WriteContext* ctx;
    ~Unregister() {
      {
        std::lock_guard<std::mutex> l(server->writes_mu_);
        auto it = server->writes_.find(id);
        if (it != server->writes_.end() && it->second == ctx) server->writes_.erase(it);
      }
      server->writes_cv_.notify_all();
    }
  };

  std::optional<Tracked> down_tracked;
  Unregister unregister{this, block_id, &ctx};  // after down_tracked: unregistered first, while ctx.down is alive
  if (req.targets_size() > 0) {
    const proto::DatanodeId& next = req.targets(0);
    ctx.down_addr = XferAddress(next);
    ctx.num_downstream = static_cast<size_t>(req.targets_size());
    auto ds = Socket::Connect(next.ip(), static_cast<uint16_t>(next.xfer_port()), timeout, DataNodeName(next));
    Status s = ds.ok() ? Status::OK() : ds.status();
    if (s.ok()) {
      ctx.down = std::move(ds).value();
      down_tracked.emplace(this, &ctx.down);
      proto::OpRequest fwd = req;
      fwd.mutable_targets()->DeleteSubrange(0, 1);
      proto::OpResponse dresp;
      s = SendOpRequest(ctx.down, fwd, timeout);
      if (s.ok()) s = ReadOpResponse(ctx.down, &dresp, PipelineAckTimeout(timeout, ctx.num_downstream - 1));
      if (s.ok() && dresp.code() != proto::OK) {
        const std::string bad = dresp.first_bad_link().empty() ? ctx.down_addr : dresp.first_bad_link();
        log->warn("write of {}: downstream {} refused: {}", ctx.block_name, ctx.down_addr, dresp.message());
        give_up();
        ReplyError(sock, FromProto(dresp.code(), dresp.message()), bad);
        DrainBeforeClose(sock, kErrorLinger);
        return;
      }
    }
    if (!s.ok()) {
      log->warn("write of {}: cannot set up the pipeline to downstream {}: {}", ctx.block_name, ctx.down_addr,
                s.ToString());
      ReplyError(sock,
                 Status::Unavailable(
                     fmt::format("{} cannot reach downstream DataNode {}: {}", me, ctx.down_addr, s.message())),
                 ctx.down_addr);
      give_up();
      DrainBeforeClose(sock, kErrorLinger);
      return;
    }
  }
  proto::OpResponse ok;
  ok.set_code(proto::OK);
  if (!SendOpResponse(sock, ok, timeout).ok()) {
    give_up();
    return;
  }

  std::thread responder([this, &ctx] { RespondAcks(ctx); });
  ReceivePackets(ctx);
  responder.join();
  if (ctx.failed) {
    // The verified bytes stay for a pipeline or lease recovery, unless this
    // node itself could not store them.
    ctx.local_failure ? ctx.writer->Abort() : ctx.writer->Suspend();
    DrainBeforeClose(sock, kErrorLinger);
  }
}

void XferServer::ReceivePackets(WriteContext& ctx) {
  auto log = Log("dn");
  const Millis timeout = options_.socket_timeout;
  const uint32_t bpc = ctx.writer->bytes_per_checksum();
  const std::string me = "DataNode " + options_.node_label;
  Packet pkt;
  std::string scratch;
  bool down_failed = false;
  for (int64_t expected = 0;;) {
    Status s = ReadPacket(*ctx.up, bpc, timeout, &pkt);
    const proto::PacketHeader& h = pkt.header;
    // Errors are acked under the seqno the upstream waits for next.
    const int64_t seqno = expected;
    if (ctx.failed) break;  // the responder already ended this write
    if (s.ok() && h.seqno() != kHeartbeatSeqno) {
      if (h.seqno() != expected) {
        s = Status::ProtocolError(
            fmt::format("{}: packet {} of {} arrived, expected packet {}", me, h.seqno(), ctx.block_name, expected));
      } else if (h.offset_in_block() != ctx.writer->length()) {
        s = Status::ProtocolError(fmt::format("{}: packet {} of {} starts at offset {}, expected {}", me, h.seqno(),
                                              ctx.block_name, h.offset_in_block(), ctx.writer->length()));
      } else if (auto bad =
                     VerifyPacketChecksums(h.offset_in_block(), pkt.data(), h.data_len(), bpc, pkt.checksums())) {
        s = Status::Corruption(
            fmt::format("{}: checksum mismatch in packet {} of {} (chunk at block offset {}) "
                        "received from {}",
                        me, h.seqno(), ctx.block_name, (h.offset_in_block() / bpc + *bad) * bpc, ctx.peer));
      }
    } else if (s.ok() && h.data_len() != 0) {
      s = Status::ProtocolError(fmt::format("{}: heartbeat packet for {} carries data", me, ctx.block_name));
    }
    if (s.ok() && ctx.down.valid() && !down_failed) {
      Status fs = SendPacket(ctx.down, h, pkt.checksums(), pkt.num_chunks, pkt.data(), &scratch, timeout);
      if (!fs.ok()) {
        log->warn("write of {}: forwarding packet {} to {} failed: {}", ctx.block_name, seqno, ctx.down_addr,
                  fs.ToString());
        down_failed = true;
      }
    }
    if (!s.ok()) {
      if (s.code() == StatusCode::kProtocolError || s.code() == StatusCode::kCorruption) {
        log->warn("write of {} from {} failed: {}", ctx.block_name, ctx.peer, s.message());
      } else {
        log->info("write of {} from {} ended: {}", ctx.block_name, ctx.peer, s.ToString());
      }
      ctx.Push({seqno, false, s, down_failed});
      return;
    }
    if (h.seqno() == kHeartbeatSeqno) {
      ctx.Push({kHeartbeatSeqno, false, Status::OK(), down_failed});
      continue;
    }
    s = ctx.writer->Append(pkt.data(), h.data_len(), pkt.checksums());
    // hsync: durable here before the responder may ack; it acks only once the
    // downstream node has acked too, so the writer's ack means every replica
    // is synced. The packet went downstream already: the nodes sync in parallel.
    if (s.ok() && h.sync()) {
      s = ctx.writer->Sync();
      if (s.ok()) {
        log->debug("synced {} at {} bytes for {}", ctx.block_name, ctx.writer->length(), ctx.peer);
      }
    }
    if (s.ok() && h.last()) {
      auto fin = ctx.writer->Finalize();
      if (fin.ok()) {
        log->info("received {} ({} bytes) from {}{}", ctx.block_name, fin->num_bytes(), ctx.peer,
                  ctx.down.valid() ? ", mirrored to " + ctx.down_addr : "");
        ctx.Push({seqno, true, Status::OK(), down_failed});  // readers find the finalized replica now
        if (on_block_received_) on_block_received_(*fin);
        return;
      }
      s = fin.status();
    }
    if (!s.ok()) {
      log->error("write of {} failed on this DataNode: {}", ctx.block_name, s.ToString());
      ctx.local_failure = true;
      ctx.Push({seqno, false, s.Prepend(me), down_failed});
      return;
    }
    const uint64_t end = ctx.writer->length();
    ctx.Push({seqno, false, Status::OK(), down_failed, true, end, end % bpc ? ctx.writer->tail_checksum() : 0});
    ++expected;
  }
  // The responder gave up; it does not read the queue any more.
}

void XferServer::RespondAcks(WriteContext& ctx) {
  auto log = Log("dn");
  const Millis timeout = options_.socket_timeout;
  const Millis down_timeout = PipelineAckTimeout(timeout, ctx.num_downstream);
  const std::string me = "DataNode " + options_.node_label;
  proto::PipelineAck ack, dack;
  std::string scratch, dscratch;
  for (;;) {
    WriteContext::Entry e = ctx.Pop();
    ack.Clear();
    ack.set_seqno(e.seqno);
    bool terminal = false;
    if (!e.status.ok()) {
      ack.add_statuses(ToProto(e.status.code()));
      ack.set_message(e.status.message());
      terminal = true;
    } else {
      ack.add_statuses(proto::OK);
      if (ctx.down.valid()) {
        Status ds;
        if (e.downstream_failed) {
          ds = Status::IOError(fmt::format("{} could not forward packet {} of {} to DataNode {}", me, e.seqno,
                                           ctx.block_name, ctx.down_addr));
        } else {
          ds = ReadAck(ctx.down, &dack, &dscratch, down_timeout);
          if (ds.ok() && dack.seqno() != e.seqno) {
            ds = Status::ProtocolError(fmt::format("DataNode {} acked packet {} of {} when {} was expected",
                                                   ctx.down_addr, dack.seqno(), ctx.block_name, e.seqno));
          } else if (!ds.ok()) {
            ds = Status(ds.code(), fmt::format("{} got no ack from downstream DataNode {} for {}: {}", me,
                                               ctx.down_addr, ctx.block_name, ds.message()));
          }
        }
        if (ds.ok()) {
          for (int s : dack.statuses()) {
            ack.add_statuses(static_cast<proto::StatusCode>(s));
            if (s != proto::OK) terminal = true;
          }
          if (terminal) ack.set_message(dack.message());
        } else {
          ack.add_statuses(ToProto(ds.code() == StatusCode::kTimedOut ? StatusCode::kTimedOut : StatusCode::kIOError));
          ack.set_message(ds.message());
          terminal = true;
          log->warn("write of {}: {}", ctx.block_name, ds.message());
        }
      }
    }
    // Every node from here down has the packet: readers may see it (before the
    // upstream hears of it, so a writer's hflush is visible when it returns).
    if (!terminal && e.data) ctx.progress->Publish(e.end, e.tail_sum);
    Status us = SendAck(*ctx.up, ack, &scratch, timeout);
    if (!us.ok()) {
      log->info("write of {}: cannot ack {}: {}", ctx.block_name, ctx.peer, us.ToString());
      terminal = true;
    }
    if (terminal) {
      ctx.failed = true;
      ctx.down.ShutdownBoth();  // the downstream node sees the end and drops its temporary
      return;
    }
    if (e.last) return;
  }
}

bool XferServer::PreemptWrite(uint64_t id, Millis deadline) {
  std::unique_lock<std::mutex> l(writes_mu_);
  auto it = writes_.find(id);
  if (it == writes_.end()) return true;
  Log("dn")->info("ending the unfinished write of {} from {} for a recovery", it->second->block_name,
                  it->second->peer);
  it->second->up->ShutdownBoth();
  if (it->second->down.valid()) it->second->down.ShutdownBoth();
  return writes_cv_.wait_for(l, deadline, [&] { return !writes_.count(id); });
}

Result<std::unique_ptr<ReplicaWriter>> XferServer::RecoverReplica(const proto::Block& block, uint64_t min_gen_stamp,
                                                                  uint64_t length) {
  auto w = store_->Recover(BlockId(block.id()), min_gen_stamp, block.gen_stamp(), length);
  if (w.ok() || w.status().code() != StatusCode::kAlreadyExists) return w;
  // The old write has not noticed yet that its pipeline is gone.
  if (!PreemptWrite(block.id(), options_.socket_timeout)) return w;
  return store_->Recover(BlockId(block.id()), min_gen_stamp, block.gen_stamp(), length);
}

bool XferServer::HandleRecover(Socket& sock, const proto::OpRequest& req) {
  auto log = Log("dn");
  const std::string name = BlockName(BlockId(req.block().id()));
  const std::string me = "DataNode " + options_.node_label;
  proto::OpResponse resp;
  if (!req.finalize()) {
    BlockStore::ReplicaInfo info = store_->Inspect(BlockId(req.block().id()));
    if (info.writing && PreemptWrite(req.block().id(), options_.socket_timeout)) {
      info = store_->Inspect(BlockId(req.block().id()));
    }
    resp.set_code(proto::OK);
    resp.set_replica_state(static_cast<proto::ReplicaState>(info.state));
    resp.set_replica_gen_stamp(info.gen_stamp);
    resp.set_replica_length(info.num_bytes);
    return SendOpResponse(sock, resp, options_.socket_timeout).ok();
  }
  auto w = RecoverReplica(req.block(), req.recover_gen_stamp(), req.recover_length());
  Status s = w.status();
  if (s.ok()) {
    auto fin = (*w)->Finalize();
    s = fin.status();
    if (s.ok()) {
      log->info("recovered {}: finalized at {} bytes with generation stamp {}", name, fin->num_bytes(),
                fin->gen_stamp());
      if (on_block_received_) on_block_received_(*fin);
      resp.set_code(proto::OK);
      resp.set_replica_state(proto::REPLICA_FINALIZED);
      resp.set_replica_gen_stamp(fin->gen_stamp());
      resp.set_replica_length(fin->num_bytes());
      return SendOpResponse(sock, resp, options_.socket_timeout).ok();
    }
  }
  log->warn("recovery of {} failed: {}", name, s.ToString());
  ReplyError(sock, s.Prepend(me));
  return true;
}

}  // namespace dfs::datanode
