#include "common/rpc/channel.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

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

}  // namespace

struct RpcChannel::Impl {
  std::string host;
  uint16_t port;
  Identity identity;
  std::string label;

  std::mutex mu;  // guards everything below
  std::condition_variable cv;
  std::shared_ptr<Socket> sock;  // null when not connected
  std::thread reader;
  uint64_t next_call_id = 1;
  std::map<uint64_t, std::shared_ptr<Pending>> pending;
  std::mutex write_mu;  // serialises frame writes

  ~Impl() {
    std::unique_lock<std::mutex> l(mu);
    if (sock) sock->ShutdownBoth();
    l.unlock();
    if (reader.joinable()) reader.join();
  }

  // Called with mu held. Makes sure a connection and its reader thread exist.
  Status EnsureConnected(std::unique_lock<std::mutex>& l, std::chrono::milliseconds timeout) {
    if (sock) return Status::OK();
    if (reader.joinable()) {
      l.unlock();
      reader.join();
      l.lock();
      if (sock) return Status::OK();
    }
    auto r = Socket::Connect(host, port, std::min(timeout, std::chrono::milliseconds(20'000)), label);
    if (!r.ok()) {
      return Status(r.status().code() == StatusCode::kTimedOut ? StatusCode::kTimedOut : StatusCode::kUnavailable,
                    r.status().message());
    }
    sock = std::make_shared<Socket>(std::move(r).value());
    reader = std::thread([this, s = sock] { ReadLoop(s); });
    return Status::OK();
  }

  void FailAll(const std::shared_ptr<Socket>& s, const Status& why) {
    std::lock_guard<std::mutex> l(mu);
    if (sock == s) sock.reset();
    for (auto& [id, p] : pending) {
      p->done = true;
      p->status = why;
    }
    pending.clear();
    cv.notify_all();
  }

  void ReadLoop(std::shared_ptr<Socket> s) {
    // Responses may take as long as the slowest call; the connection is idle otherwise.
    const auto kIdle = std::chrono::hours(24 * 365);
    for (;;) {
      char lenbuf[4];
      Status st = s->ReadFull(lenbuf, 4, std::chrono::duration_cast<std::chrono::milliseconds>(kIdle));
      std::string buf;
      if (st.ok()) {
        uint32_t len = GetBE32(lenbuf);
        if (len < 4 || len > kMaxFrameBytes) {
          st = Status::ProtocolError(fmt::format("{} sent a frame of {} bytes", label, len));
        } else {
          buf.resize(len);
          st = s->ReadFull(buf.data(), len, std::chrono::duration_cast<std::chrono::milliseconds>(kIdle));
        }
      }
      proto::ResponseHeader h;
      std::string_view body;
      if (st.ok()) st = DecodeFrame(buf, &h, &body);
      if (!st.ok()) {
        FailAll(s, Status::Unavailable(fmt::format("lost connection to {}: {}", label, st.message())));
        return;
      }
      std::lock_guard<std::mutex> l(mu);
      auto it = pending.find(h.call_id());
      if (it == pending.end()) continue;  // the caller gave up (timed out)
      auto& p = *it->second;
      p.done = true;
      if (h.code() != proto::OK) {
        p.status = Status(static_cast<StatusCode>(std::min<int>(h.code(), kMaxStatusCode)), h.message());
      } else {
        p.body.assign(body);
      }
      pending.erase(it);
      cv.notify_all();
    }
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
    DFS_RETURN_IF_ERROR(im.EnsureConnected(l, timeout));
    auto s = im.sock;
    uint64_t id = im.next_call_id++;
    auto p = std::make_shared<Pending>();
    im.pending[id] = p;
    l.unlock();

    proto::RequestHeader h;
    h.set_call_id(id);
    h.set_method(method);
    h.set_timeout_ms(static_cast<uint32_t>(timeout.count()));
    h.set_client_name(im.identity.client_name);
    h.set_user(im.identity.user);
    std::string frame = EncodeFrame(h, request);
    Status ws;
    {
      std::lock_guard<std::mutex> wl(im.write_mu);
      ws = s->WriteFull(frame.data(), frame.size(), timeout);
    }
    if (!ws.ok()) {
      s->ShutdownBoth();
      l.lock();
      im.pending.erase(id);
      if (im.sock == s) im.sock.reset();
      l.unlock();
      if (attempt == 0 && ws.code() != StatusCode::kTimedOut) continue;
      return Status::Unavailable(fmt::format("cannot send to {}: {}", im.label, ws.message()));
    }
    l.lock();
    if (!im.cv.wait_until(l, deadline, [&] { return p->done; })) {
      im.pending.erase(id);
      return Status::TimedOut(fmt::format("{} did not answer within {} ms", im.label, timeout.count()));
    }
    if (!p->status.ok()) return p->status;
    *response = std::move(p->body);
    return Status::OK();
  }
}

}  // namespace dfs::rpc
