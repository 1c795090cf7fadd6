#include "common/rpc/channel.h"

#include <condition_variable>
#include <map>
#include <mutex>

#include <google/protobuf/message_lite.h>
#include <fmt/format.h>

#include "common/rpc/frame.h"
#include "common/socket.h"
#include "proto/rpc.pb.h"

namespace dfs::rpc {

namespace {

struct Pending {
  bool done = false;
  Status status;
  std::string body;
};

// Once a frame has started arriving, the rest follows promptly.
constexpr std::chrono::milliseconds kFrameBodyTimeout{60'000};

// A connection and the bytes read from it past the last whole frame. Only the
// caller holding the reader role touches `in`.
struct Connection {
  explicit Connection(Socket s) : sock(std::move(s)) {}
  Socket sock;
  FrameReadBuffer in;
};

// How long to wait for a reply to start, as a receive timeout: whole seconds
// while more than one is left, so that successive calls with the same timeout
// ask for the same value and the socket's timeout is not set again per call.
std::chrono::milliseconds StartWait(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (left >= std::chrono::seconds(2)) return std::chrono::duration_cast<std::chrono::seconds>(left);
  return std::max(left, std::chrono::milliseconds(1));
}

}  // namespace

// Leader/follower reading: there is no reader thread. A caller waiting for its
// reply becomes the reader if nobody is reading, reads frames and hands each to
// its caller until its own arrives, then passes the role on. A lone caller thus
// reads its own reply with no thread hand-off.
struct RpcChannel::Impl {
  std::string host;
  uint16_t port;
  Identity identity;
  std::string label;

  std::mutex mu;  // guards everything below
  std::condition_variable cv;
  std::shared_ptr<Connection> conn;  // null when not connected
  bool reading = false;              // a caller is reading frames
  uint64_t next_call_id = 1;
  std::map<uint64_t, std::shared_ptr<Pending>> pending;
  bool closed = false;  // Close() was called: every call fails at once
  std::mutex write_mu;  // serialises frame writes

  ~Impl() {
    std::lock_guard<std::mutex> l(mu);
    if (conn) conn->sock.ShutdownBoth();
  }

  // Called with mu held.
  Status EnsureConnected(std::chrono::milliseconds timeout) {
    // An idle connection with input waiting was closed by the server (it
    // restarted, say): drop it rather than send a call into it.
    if (closed) return Status::Unavailable("the connection to " + label + " was closed");
    if (conn && pending.empty() && !reading && conn->sock.HasPendingInput()) conn.reset();
    if (conn) return Status::OK();
    auto r = Socket::Connect(host, port, std::min(timeout, std::chrono::milliseconds(20'000)), label);
    if (!r.ok()) {
      return Status(r.status().code() == StatusCode::kTimedOut ? StatusCode::kTimedOut : StatusCode::kUnavailable,
                    r.status().message());
    }
    conn = std::make_shared<Connection>(std::move(r).value());
    return Status::OK();
  }

  // Called with mu held: every call on `c` fails with `why`.
  void FailAllLocked(const std::shared_ptr<Connection>& c, const Status& why) {
    c->sock.ShutdownBoth();
    if (conn == c) conn.reset();
    for (auto& [id, p] : pending) {
      p->done = true;
      p->status = why;
    }
    pending.clear();
    cv.notify_all();
  }

  // Reads until at least `need` bytes (<= kReadBufferBytes) are buffered,
  // waiting up to `wait` for each read.
  static Status Fill(Connection& c, size_t need, std::chrono::milliseconds wait) {
    while (c.in.size() < need) {
      std::span<char> room = c.in.Space(need);
      auto n = c.sock.ReadSome(room.data(), room.size(), wait);
      if (!n.ok()) return n.status();
      c.in.Commit(*n);
    }
    return Status::OK();
  }

  // Reads one frame; `body` points into `c`'s buffer or into `buf`, valid until
  // the next ReadFrame. TimedOut (with nothing consumed) when none starts
  // before `deadline`.
  Status ReadFrame(Connection& c, std::chrono::steady_clock::time_point deadline, proto::ResponseHeader* h,
                   std::string* buf, std::string_view* body) {
    for (;;) {  // wait for a frame to start
      Status st = Fill(c, 1, StartWait(deadline));
      if (st.ok()) break;
      if (st.code() != StatusCode::kTimedOut) return Status::IOError(st.message());
      if (std::chrono::steady_clock::now() >= deadline) return st;
    }
    Status st = Fill(c, 4, kFrameBodyTimeout);
    if (!st.ok()) return Status::IOError(st.message());
    const uint32_t len = GetBE32(c.in.data());
    if (len < 4 || len > kMaxFrameBytes) return Status::ProtocolError(fmt::format("{} sent a frame of {} bytes", label, len));
    if (4 + size_t{len} <= kReadBufferBytes) {
      st = Fill(c, 4 + size_t{len}, kFrameBodyTimeout);
      if (!st.ok()) return Status::IOError(st.message());
      std::string_view frame(c.in.data() + 4, len);
      c.in.Consume(4 + size_t{len});
      return DecodeFrame(frame, h, body);
    }
    // Larger than the buffer: what has arrived, then the rest straight into `buf`.
    const size_t have = c.in.size() - 4;
    buf->assign(c.in.data() + 4, have);
    c.in.Consume(c.in.size());
    buf->resize(len);
    st = c.sock.ReadFull(buf->data() + have, len - have, kFrameBodyTimeout);
    if (!st.ok()) return Status::IOError(st.message());
    return DecodeFrame(*buf, h, body);
  }
};

RpcChannel::RpcChannel(std::string host, uint16_t port, Identity identity, std::string peer_label)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->identity = std::move(identity);
  impl_->label = std::move(peer_label);
}

RpcChannel::~RpcChannel() = default;

void RpcChannel::Close() {
  std::lock_guard<std::mutex> l(impl_->mu);
  impl_->closed = true;
  if (impl_->conn) impl_->FailAllLocked(impl_->conn, Status::Unavailable("the connection to " + impl_->label + " was closed"));
}

const std::string& RpcChannel::label() const { return impl_->label; }
const Identity& RpcChannel::identity() const { return impl_->identity; }

std::string RpcChannel::SerializeOrDie(const google::protobuf::MessageLite& m) { return m.SerializeAsString(); }

Status RpcChannel::CallRaw(uint32_t method, std::string_view request, std::string* response,
                           std::chrono::milliseconds timeout) {
  auto& im = *impl_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // A connection found broken while sending was never used for this call, so one
  // retry on a fresh connection is safe (the server restarted while we were idle).
  for (int attempt = 0;; ++attempt) {
    std::unique_lock<std::mutex> l(im.mu);
    DFS_RETURN_IF_ERROR(im.EnsureConnected(timeout));
    auto s = im.conn;
    const uint64_t id = im.next_call_id++;
    auto p = std::make_shared<Pending>();
    im.pending[id] = p;
    l.unlock();

    proto::RequestHeader h;
    h.set_call_id(id);
    h.set_method(method);
    h.set_timeout_ms(static_cast<uint32_t>(timeout.count()));
    h.set_client_name(im.identity.client_name);
    h.set_user(im.identity.user);
    const std::string frame = EncodeFrame(h, request);
    Status ws;
    {
      std::lock_guard<std::mutex> wl(im.write_mu);
      ws = s->sock.WriteFull(frame.data(), frame.size(), timeout);
    }
    l.lock();
    if (!ws.ok()) {
      im.pending.erase(id);
      if (!p->done) im.FailAllLocked(s, Status::Unavailable(fmt::format("lost connection to {}: {}", im.label, ws.message())));
      l.unlock();
      if (attempt == 0 && ws.code() != StatusCode::kTimedOut) continue;
      return Status::Unavailable(fmt::format("cannot send to {}: {}", im.label, ws.message()));
    }

    bool timed_out = false;
    while (!p->done && !timed_out) {
      if (im.reading) {
        timed_out = !im.cv.wait_until(l, deadline, [&] { return p->done || !im.reading; });
        continue;
      }
      im.reading = true;
      l.unlock();
      proto::ResponseHeader rh;
      std::string buf;
      std::string_view body;
      Status rs = im.ReadFrame(*s, deadline, &rh, &buf, &body);
      l.lock();
      im.reading = false;
      if (rs.code() == StatusCode::kTimedOut) {
        timed_out = true;
      } else if (!rs.ok()) {
        im.FailAllLocked(s, Status::Unavailable(fmt::format("lost connection to {}: {}", im.label, rs.message())));
      } else if (auto it = im.pending.find(rh.call_id()); it != im.pending.end()) {
        Pending& got = *it->second;
        got.done = true;
        if (rh.code() != proto::OK) {
          got.status = Status(static_cast<StatusCode>(std::min<int>(rh.code(), kMaxStatusCode)), rh.message());
        } else {
          got.body.assign(body);
        }
        im.pending.erase(it);
      }  // else: a reply to a call whose caller gave up; dropped
      im.cv.notify_all();  // hand the reader role on and wake whoever got a reply
    }
    if (!p->done) {
      im.pending.erase(id);
      return Status::TimedOut(fmt::format("{} did not answer within {} ms", im.label, timeout.count()));
    }
    if (!p->status.ok()) return p->status;
    *response = std::move(p->body);
    return Status::OK();
  }
}

}  // namespace dfs::rpc
