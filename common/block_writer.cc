#include "common/block_writer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "common/checksum.h"
#include "common/logging.h"

namespace dfs {

namespace {

int IndexOfTarget(const std::vector<proto::DatanodeId>& targets, const std::string& addr) {
  for (size_t i = 0; i < targets.size(); ++i) {
    if (XferAddress(targets[i]) == addr) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

Result<std::unique_ptr<BlockWriter>> BlockWriter::Open(const proto::Block& block,
                                                       const std::vector<proto::DatanodeId>& targets,
                                                       const Options& options, int* failed_target,
                                                       const Recovery* recovery) {
  int ignored;
  int& bad = failed_target ? *failed_target : ignored;
  bad = -1;
  const std::string name = BlockName(BlockId(block.id()));
  if (targets.empty()) return Status::InvalidArgument("no DataNode to write " + name + " to");
  if (options.bytes_per_checksum < kMinBytesPerChecksum || options.bytes_per_checksum > kMaxBytesPerChecksum) {
    return Status::InvalidArgument(fmt::format("bytes per checksum {} is outside [{}, {}] (dfs.bytes-per-checksum)",
                                               options.bytes_per_checksum, kMinBytesPerChecksum, kMaxBytesPerChecksum));
  }
  if (options.max_packets_in_flight == 0) {
    return Status::InvalidArgument("max packets in flight must be at least 1 (dfs.client.write.max-packets-in-flight)");
  }
  const proto::DatanodeId& first = targets[0];
  auto sr = Socket::Connect(first.ip(), static_cast<uint16_t>(first.xfer_port()), options.socket_timeout,
                            DataNodeName(first));
  if (!sr.ok()) {
    bad = 0;
    return Status(sr.status().code(), fmt::format("writing {}: {}", name, sr.status().message()));
  }
  Socket sock = std::move(sr).value();
  proto::OpRequest req;
  req.set_op(proto::WRITE_BLOCK);
  *req.mutable_block() = block;
  for (size_t i = 1; i < targets.size(); ++i) *req.add_targets() = targets[i];
  req.set_client_name(options.client_name);
  req.set_bytes_per_checksum(options.bytes_per_checksum);
  if (recovery) {
    req.set_recovery(true);
    req.set_recover_gen_stamp(recovery->old_gen_stamp);
    req.set_recover_length(recovery->length);
  }
  proto::OpResponse resp;
  Status s = SendOpRequest(sock, req, options.socket_timeout);
  if (s.ok()) s = ReadOpResponse(sock, &resp, PipelineAckTimeout(options.socket_timeout, targets.size() - 1));
  if (!s.ok()) {
    bad = 0;
    return Status(s.code(),
                  fmt::format("setting up the pipeline for {} at {}: {}", name, DataNodeName(first), s.message()));
  }
  if (resp.code() != proto::OK) {
    bad = resp.first_bad_link().empty() ? 0 : IndexOfTarget(targets, resp.first_bad_link());
    return FromProto(resp.code(), fmt::format("setting up the pipeline for {}: {}", name, resp.message()));
  }
  return std::unique_ptr<BlockWriter>(
      new BlockWriter(block, targets, options, std::move(sock), recovery ? recovery->length : 0));
}

BlockWriter::BlockWriter(proto::Block block, std::vector<proto::DatanodeId> targets, Options options, Socket sock,
                         uint64_t start)
    : block_(std::move(block)),
      targets_(std::move(targets)),
      options_(std::move(options)),
      packet_cap_(std::min<size_t>(
          kMaxPacketDataBytes / options_.bytes_per_checksum * options_.bytes_per_checksum,
          std::max<size_t>(options_.bytes_per_checksum,
                           options_.packet_size / options_.bytes_per_checksum * options_.bytes_per_checksum))),
      sock_(std::move(sock)),
      ring_(options_.max_packets_in_flight),
      written_(start),
      sent_(start),
      q_(options_.max_packets_in_flight + 1),
      acked_(start) {
  ack_thread_ = std::thread([this] { AckLoop(); });
}

BlockWriter::~BlockWriter() {
  if (!finished_) Abort();
}

uint64_t BlockWriter::bytes_acked() const {
  std::lock_guard<std::mutex> l(mu_);
  return acked_;
}

int BlockWriter::failed_target() const {
  std::lock_guard<std::mutex> l(mu_);
  return failed_target_;
}

void BlockWriter::Fail(Status s, int target) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!error_.ok()) return;
    error_ = std::move(s);
    failed_target_ = target;
  }
  cv_.notify_all();
}

Status BlockWriter::AcquireSlot() {
  {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return !error_.ok() || slots_in_use_ < ring_.size(); });
    if (!error_.ok()) return error_;
    ++slots_in_use_;
  }
  Slot& s = ring_[cur_];
  if (!s.data) {  // lazily: a small block touches one slot only
    if (options_.packet_buffers && options_.packet_buffers->buffer_bytes() >= packet_cap_) {
      s.pooled = options_.packet_buffers->Get();
      s.data = s.pooled.data();
    } else {
      s.owned.reset(new char[packet_cap_]);
      s.data = s.owned.get();
    }
    s.sums.reset(new uint64_t[packet_cap_ / options_.bytes_per_checksum + 1]);
  }
  cur_open_ = true;
  cur_len_ = 0;
  return Status::OK();
}

Status BlockWriter::Send(const proto::PacketHeader& h, const uint64_t* sums, size_t nsums, const char* data,
                         uint64_t end, bool heartbeat, size_t slot) {
  std::lock_guard<std::mutex> sl(send_mu_);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!error_.ok()) return error_;
    if (heartbeat && q_count_ > 0) return Status::OK();  // traffic resumed: no heartbeat needed
    q_[(q_head_ + q_count_) % q_.size()] = InFlight{h.seqno(), end, heartbeat, slot};
    ++q_count_;
  }
  cv_.notify_all();
  return SendPacket(sock_, h, sums, nsums, data, &send_scratch_, options_.socket_timeout);
}

Status BlockWriter::SendFailed(const Status& s) {
  std::unique_lock<std::mutex> l(mu_);
  if (cv_.wait_for(l, PipelineAckTimeout(options_.socket_timeout, targets_.size()), [&] { return !error_.ok(); })) {
    return error_;
  }
  l.unlock();
  Fail(Status(s.code(), fmt::format("writing {} to {}: {}", BlockName(BlockId(block_.id())), DataNodeName(targets_[0]),
                                    s.message())),
       0);
  l.lock();
  return error_;
}

Status BlockWriter::SendCurrent(bool last, bool sync) {
  Slot& s = ring_[cur_];
  const uint32_t bpc = options_.bytes_per_checksum;
  s.header.set_offset_in_block(sent_);
  s.header.set_seqno(next_seqno_);
  s.header.set_data_len(static_cast<uint32_t>(cur_len_));
  s.header.set_last(last);
  s.header.set_sync(sync);  // slots are reused: clear it on the others
  ComputePacketChecksums(sent_, s.data, cur_len_, bpc, s.sums.get());
  Status st =
      Send(s.header, s.sums.get(), PacketChunks(sent_, cur_len_, bpc), s.data, sent_ + cur_len_, false, cur_);
  if (!st.ok()) return SendFailed(st);
  sent_ += cur_len_;
  ++next_seqno_;
  cur_ = (cur_ + 1) % ring_.size();
  cur_open_ = false;
  cur_len_ = 0;
  return Status::OK();
}

Status BlockWriter::Write(const char* data, size_t n) {
  if (finished_) return Status::Internal("write to a block writer that is already finished or aborted");
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!error_.ok()) return error_;
  }
  const uint32_t bpc = options_.bytes_per_checksum;
  while (n > 0) {
    if (!cur_open_) DFS_RETURN_IF_ERROR(AcquireSlot());
    // A packet ends on a chunk boundary, even when a Flush left it starting mid-chunk.
    const size_t cap = packet_cap_ - static_cast<size_t>(sent_ % bpc);
    const size_t k = std::min(n, cap - cur_len_);
    std::memcpy(ring_[cur_].data + cur_len_, data, k);
    cur_len_ += k;
    written_ += k;
    data += k;
    n -= k;
    if (cur_len_ == cap) DFS_RETURN_IF_ERROR(SendCurrent(false));
  }
  return Status::OK();
}

Status BlockWriter::WaitAllAcked() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return !error_.ok() || q_count_ == 0; });
  return error_;
}

Status BlockWriter::Flush() {
  if (finished_) return Status::Internal("flush of a block writer that is already finished or aborted");
  if (cur_open_ && cur_len_ > 0) DFS_RETURN_IF_ERROR(SendCurrent(false));
  return WaitAllAcked();
}

Status BlockWriter::Sync() {
  if (finished_) return Status::Internal("sync of a block writer that is already finished or aborted");
  // The pending partial packet carries the flag; with nothing pending, an
  // empty packet does (the DataNodes take empty data packets).
  if (!cur_open_) DFS_RETURN_IF_ERROR(AcquireSlot());
  DFS_RETURN_IF_ERROR(SendCurrent(false, true));
  return WaitAllAcked();
}

Result<uint64_t> BlockWriter::Finish() {
  if (finished_) return Status::Internal("finish of a block writer that is already finished or aborted");
  if (!cur_open_) DFS_RETURN_IF_ERROR(AcquireSlot());
  DFS_RETURN_IF_ERROR(SendCurrent(true));
  DFS_RETURN_IF_ERROR(WaitAllAcked());
  {
    std::lock_guard<std::mutex> l(mu_);
    closing_ = true;
  }
  cv_.notify_all();
  ack_thread_.join();
  sock_.Close();
  finished_ = true;
  return written_;
}

void BlockWriter::Abort() {
  {
    std::lock_guard<std::mutex> l(mu_);
    closing_ = true;
    if (error_.ok()) error_ = Status::Aborted("the block writer was aborted");
  }
  cv_.notify_all();
  sock_.ShutdownBoth();
  if (ack_thread_.joinable()) ack_thread_.join();
  sock_.Close();
  finished_ = true;
}

Result<uint64_t> BlockWriter::TakeUnacked(std::string* unacked) {
  Abort();  // joins the ack thread: the queue no longer changes
  std::lock_guard<std::mutex> l(mu_);
  unacked->clear();
  uint64_t pos = acked_;
  bool current_queued = false;
  for (size_t k = 0; k < q_count_; ++k) {
    const InFlight& f = q_[(q_head_ + k) % q_.size()];
    if (f.heartbeat) continue;
    const Slot& s = ring_[f.slot];
    const uint64_t off = s.header.offset_in_block(), end = off + s.header.data_len();
    if (cur_open_ && f.slot == cur_) current_queued = true;  // its send failed part-way
    if (end <= pos) continue;
    if (off > pos) break;
    unacked->append(s.data + (pos - off), end - pos);
    pos = end;
  }
  if (cur_open_ && !current_queued && pos == sent_) {
    unacked->append(ring_[cur_].data, cur_len_);
    pos += cur_len_;
  }
  if (pos != written_) {
    return Status::Internal(fmt::format("{}: {} bytes written but only {} of them can be resent after {} acked",
                                        BlockName(BlockId(block_.id())), written_, pos - acked_, acked_));
  }
  return acked_;
}

void BlockWriter::AckLoop() {
  const Millis timeout = PipelineAckTimeout(options_.socket_timeout, targets_.size());
  const Millis idle = std::max(Millis(1), options_.socket_timeout / 2);
  const std::string name = BlockName(BlockId(block_.id()));
  const std::string first = DataNodeName(targets_[0]);
  proto::PipelineAck ack;
  proto::PacketHeader hb;
  hb.set_seqno(kHeartbeatSeqno);
  std::string scratch;
  for (;;) {
    {
      std::unique_lock<std::mutex> l(mu_);
      bool woke = cv_.wait_for(l, idle, [&] { return closing_ || !error_.ok() || q_count_ > 0; });
      if (closing_ || !error_.ok()) return;
      if (!woke) {
        l.unlock();
        // Idle pipeline: keep the DataNodes from timing out on us.
        Status s = Send(hb, nullptr, 0, nullptr, 0, true, 0);
        if (!s.ok())
          Fail(Status(s.code(), fmt::format("sending a heartbeat for {} to {}: {}", name, first, s.message())), 0);
        continue;
      }
    }
    Status s = ReadAck(sock_, &ack, &scratch, timeout);
    std::unique_lock<std::mutex> l(mu_);
    if (closing_ && !error_.ok()) return;  // aborted
    if (!s.ok()) {
      l.unlock();
      Fail(Status(s.code(), fmt::format("no ack from {} for {}: {}", first, name, s.message())), 0);
      return;
    }
    for (int i = 0; i < ack.statuses_size(); ++i) {
      if (ack.statuses(i) == proto::OK) continue;
      const std::string who = i < static_cast<int>(targets_.size()) ? DataNodeName(targets_[i]) : "a DataNode";
      l.unlock();
      Fail(FromProto(ack.statuses(i),
                     fmt::format("writing {}: pipeline failed at {}: {}", name, who,
                                 ack.message().empty() ? StatusCodeName(static_cast<StatusCode>(ack.statuses(i)))
                                                       : ack.message())),
           i < static_cast<int>(targets_.size()) ? i : -1);
      return;
    }
    const InFlight front = q_[q_head_];
    if (q_count_ == 0 || ack.seqno() != front.seqno) {
      l.unlock();
      Fail(Status::ProtocolError(fmt::format("{} acked packet {} of {}, but the oldest unacked packet is {}", first,
                                             ack.seqno(), name, q_count_ == 0 ? -2 : front.seqno)),
           0);
      return;
    }
    if (ack.statuses_size() < static_cast<int>(targets_.size())) {
      const int missing = ack.statuses_size();
      l.unlock();
      Fail(Status::ProtocolError(fmt::format("writing {}: the ack for packet {} covers {} of {} DataNodes; {} did "
                                             "not report",
                                             name, ack.seqno(), missing, targets_.size(),
                                             DataNodeName(targets_[static_cast<size_t>(missing)]))),
           missing);
      return;
    }
    q_head_ = (q_head_ + 1) % q_.size();
    --q_count_;
    if (!front.heartbeat) {
      acked_ = front.end;
      --slots_in_use_;
    }
    l.unlock();
    cv_.notify_all();
  }
}

}  // namespace dfs
