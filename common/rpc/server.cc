#include "common/rpc/server.h"

#include <utility>  // before asio: std::exchange for asio::awaitable under g++ 12

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include <sys/socket.h>

#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "common/logging.h"
#include "common/rpc/frame.h"
#include "common/socket.h"
#include "proto/rpc.pb.h"

namespace asio = boost::asio;
using asio::ip::tcp;

namespace dfs::rpc {

namespace {

struct Conn : std::enable_shared_from_this<Conn> {
  explicit Conn(tcp::socket s) : socket(std::move(s)), strand(asio::make_strand(socket.get_executor())) {}
  tcp::socket socket;
  asio::strand<asio::any_io_executor> strand;
  std::atomic<uint32_t> in_flight{0};
  std::string peer_ip;
  std::string peer;

  std::mutex wmu;                // guards the write side below
  std::deque<std::string> out;   // frames waiting for the asynchronous writer
  bool writing = false;          // the asynchronous writer owns the socket's write side
  bool close_after_write = false;
  bool closed = false;
};

struct MethodEntry {
  std::string name;
  RpcServer::RawHandler handler;        // synchronous, or
  RpcServer::AsyncRawHandler async;     // asynchronous
  RpcServer::Dispatch dispatch;
};

}  // namespace

struct RpcServer::Impl {
  explicit Impl(Options o) : opts(std::move(o)), acceptor(io) {}

  Options opts;
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor;
  std::unique_ptr<asio::thread_pool> pool;
  std::vector<std::thread> io_threads;
  std::unordered_map<uint32_t, MethodEntry> methods;  // read-only after Start()
  std::mutex conns_mu;
  std::set<std::shared_ptr<Conn>> conns;
  std::atomic<bool> stopping{false};
  uint16_t port = 0;
  // Asynchronous calls whose Responder still exists: Shutdown waits for them,
  // since a Responder writes through this server.
  std::mutex async_mu;
  std::condition_variable async_cv;
  size_t async_open = 0;

  // Shared by the copies of one call's Responder; the last copy to go closes the call.
  struct AsyncCall {
    explicit AsyncCall(Impl* s) : im(s) {
      std::lock_guard<std::mutex> l(im->async_mu);
      ++im->async_open;
    }
    ~AsyncCall() {
      std::lock_guard<std::mutex> l(im->async_mu);
      --im->async_open;
      im->async_cv.notify_all();  // under the lock: Shutdown cannot return and free im before this is done
    }
    Impl* const im;
    std::atomic<bool> answered{false};
  };

  // Writes a frame from the calling thread when nothing is queued (the common
  // case: no hand-off to another thread); otherwise queues it behind the
  // asynchronous writer.
  void Send(const std::shared_ptr<Conn>& c, std::string frame, bool close_after) {
    std::unique_lock<std::mutex> l(c->wmu);
    if (c->closed) return;
    if (close_after) c->close_after_write = true;
    if (c->writing) {
      c->out.push_back(std::move(frame));
      return;
    }
    size_t off = 0;
    while (off < frame.size()) {
      ssize_t n = ::send(c->socket.native_handle(), frame.data() + off, frame.size() - off, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        off += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        break;
      } else {
        c->closed = true;
        l.unlock();
        PostClose(c);
        return;
      }
    }
    if (off == frame.size()) {
      if (c->close_after_write) {
        c->closed = true;
        l.unlock();
        PostClose(c);
      }
      return;
    }
    frame.erase(0, off);
    c->out.push_back(std::move(frame));
    c->writing = true;
    l.unlock();
    asio::post(c->strand, [this, c] { WriteNext(c); });
  }

  // Runs on c->strand while c->writing.
  void WriteNext(const std::shared_ptr<Conn>& c) {
    std::unique_lock<std::mutex> l(c->wmu);
    if (c->out.empty()) {
      c->writing = false;
      if (c->close_after_write) {
        c->closed = true;
        l.unlock();
        CloseConn(c);
      }
      return;
    }
    const std::string* front = &c->out.front();  // deque references survive push_back
    l.unlock();
    asio::async_write(c->socket, asio::buffer(*front),
                      asio::bind_executor(c->strand, [this, c](boost::system::error_code ec, size_t) {
                        std::unique_lock<std::mutex> l2(c->wmu);
                        c->out.pop_front();
                        if (ec) {
                          c->out.clear();
                          c->writing = false;
                          c->closed = true;
                          l2.unlock();
                          CloseConn(c);
                          return;
                        }
                        l2.unlock();
                        WriteNext(c);
                      }));
  }

  void PostClose(const std::shared_ptr<Conn>& c) {
    asio::post(c->strand, [this, c] { CloseConn(c); });
  }

  // Runs on c->strand. Closes under the write lock, so no thread can send()
  // on a descriptor number that the kernel may already have reused.
  void CloseConn(const std::shared_ptr<Conn>& c) {
    {
      std::lock_guard<std::mutex> wl(c->wmu);
      c->closed = true;
      boost::system::error_code ec;
      c->socket.shutdown(tcp::socket::shutdown_both, ec);
      c->socket.close(ec);
    }
    std::lock_guard<std::mutex> l(conns_mu);
    conns.erase(c);
  }

  void Reply(const std::shared_ptr<Conn>& c, uint64_t call_id, const Status& s, std::string_view body,
             bool close_after = false) {
    proto::ResponseHeader h;
    h.set_call_id(call_id);
    h.set_code(static_cast<proto::StatusCode>(s.code()));
    if (!s.ok()) h.set_message(s.message());
    Send(c, EncodeFrame(h, s.ok() ? body : std::string_view()), close_after);
  }

  asio::awaitable<void> ReadLoop(std::shared_ptr<Conn> c) {
    auto log = Log("rpc");
    try {
      FrameReadBuffer in;  // one read usually brings a whole request, or several
      for (;;) {
        while (in.size() < 4) {
          std::span<char> room = in.Space(4);
          in.Commit(co_await c->socket.async_read_some(asio::buffer(room.data(), room.size()), asio::use_awaitable));
        }
        const uint32_t len = GetBE32(in.data());
        if (len < 4 || len > kMaxFrameBytes) {
          log->warn("{}: closing connection from {}: frame length {} is outside 4..{}", opts.name, c->peer, len,
                    kMaxFrameBytes);
          Reply(c, 0, Status::ProtocolError(fmt::format("frame length {} is outside 4..{}", len, kMaxFrameBytes)), {},
                true);
          co_return;
        }
        in.Consume(4);
        // The frame's own copy (a handler on the pool outlives this loop's
        // turn): what the buffer holds of it, then the rest read straight in.
        const size_t have = std::min<size_t>(len, in.size());
        auto buf = std::make_shared<std::string>(in.data(), have);
        in.Consume(have);
        if (have < len) {
          buf->resize(len);
          co_await asio::async_read(c->socket, asio::buffer(buf->data() + have, len - have), asio::use_awaitable);
        }
        proto::RequestHeader hdr;
        std::string_view body;
        Status s = DecodeFrame(*buf, &hdr, &body);
        if (!s.ok()) {
          log->warn("{}: closing connection from {}: {}", opts.name, c->peer, s.message());
          Reply(c, 0, s, {}, true);
          co_return;
        }
        auto it = methods.find(hdr.method());
        if (it == methods.end()) {
          Reply(c, hdr.call_id(),
                Status::NotSupported(fmt::format("{} has no method number {}; is the client a newer version?",
                                                 opts.name, hdr.method())),
                {});
          continue;
        }
        if (c->in_flight.load() >= opts.max_in_flight_per_connection) {
          Reply(c, hdr.call_id(), Status::Unavailable("too many calls in flight on one connection; retry"), {});
          continue;
        }
        c->in_flight++;
        auto run = [this, c, buf, body, hdr = std::move(hdr), entry = &it->second]() {
          CallContext ctx;
          ctx.peer_ip = c->peer_ip;
          ctx.client_name = hdr.client_name();
          ctx.user = hdr.user();
          ctx.method = hdr.method();
          ctx.deadline = std::chrono::steady_clock::now() +
                         std::chrono::milliseconds(hdr.timeout_ms() ? hdr.timeout_ms() : 60'000);
          if (entry->async) {
            RpcServer::Responder respond = [this, c, id = hdr.call_id(),
                                            call = std::make_shared<AsyncCall>(this)](Status st, std::string out) {
              if (call->answered.exchange(true)) return;
              Reply(c, id, st, out);
              c->in_flight--;
            };
            try {
              entry->async(ctx, body, respond);
            } catch (const std::exception& e) {
              Log("rpc")->error("{}: handler {} threw: {}", opts.name, entry->name, e.what());
              respond(Status::Internal(fmt::format("{} failed inside the server: {}", entry->name, e.what())), {});
            }
            return;
          }
          std::string out;
          Status st;
          try {
            st = entry->handler(ctx, body, &out);
          } catch (const std::exception& e) {
            st = Status::Internal(fmt::format("{} failed inside the server: {}", entry->name, e.what()));
            Log("rpc")->error("{}: handler {} threw: {}", opts.name, entry->name, e.what());
          }
          Reply(c, hdr.call_id(), st, out);
          c->in_flight--;
        };
        if (it->second.dispatch == Dispatch::kInline) {
          run();
        } else {
          asio::post(*pool, std::move(run));
        }
      }
    } catch (const boost::system::system_error&) {
      // The peer went away or the server is shutting down.
    }
    {
      std::unique_lock<std::mutex> l(c->wmu);
      if (c->writing) {
        c->close_after_write = true;
        co_return;
      }
      c->closed = true;
    }
    CloseConn(c);
  }

  asio::awaitable<void> AcceptLoop() {
    auto log = Log("rpc");
    while (!stopping) {
      boost::system::error_code ec;
      tcp::socket sock = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (stopping || ec == asio::error::operation_aborted) co_return;
        log->warn("{}: accept failed: {}", opts.name, ec.message());
        continue;
      }
      sock.set_option(tcp::no_delay(true), ec);
      auto c = std::make_shared<Conn>(std::move(sock));
      auto ep = c->socket.remote_endpoint(ec);
      if (!ec) {
        c->peer_ip = ep.address().to_string();
        c->peer = fmt::format("{}:{}", c->peer_ip, ep.port());
      }
      {
        std::lock_guard<std::mutex> l(conns_mu);
        conns.insert(c);
      }
      asio::co_spawn(c->strand, ReadLoop(c), asio::detached);
    }
  }
};

RpcServer::RpcServer(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

RpcServer::~RpcServer() { Shutdown(); }

void RpcServer::RegisterRaw(uint32_t method, std::string method_name, RawHandler handler, Dispatch dispatch) {
  impl_->methods[method] = MethodEntry{std::move(method_name), std::move(handler), nullptr, dispatch};
}

void RpcServer::RegisterAsyncRaw(uint32_t method, std::string method_name, AsyncRawHandler handler,
                                 Dispatch dispatch) {
  impl_->methods[method] = MethodEntry{std::move(method_name), nullptr, std::move(handler), dispatch};
}

Status RpcServer::Start() {
  auto& im = *impl_;
  try {
    auto addr = asio::ip::make_address(im.opts.bind_host.empty() ? "0.0.0.0" : im.opts.bind_host);
    tcp::endpoint ep(addr, im.opts.port);
    im.acceptor.open(ep.protocol());
    im.acceptor.set_option(tcp::acceptor::reuse_address(true));
    im.acceptor.bind(ep);
    im.acceptor.listen(asio::socket_base::max_listen_connections);
    im.port = im.acceptor.local_endpoint().port();
  } catch (const boost::system::system_error& e) {
    return Status::Unavailable(fmt::format("{} cannot listen on {}:{}: {}{}", im.opts.name, im.opts.bind_host,
                                           im.opts.port, e.code().message(),
                                           e.code() == asio::error::address_in_use
                                               ? " (is another daemon already running there?)"
                                               : ""));
  }
  im.pool = std::make_unique<asio::thread_pool>(static_cast<size_t>(std::max(1, im.opts.handler_threads)));
  im.work.emplace(im.io.get_executor());
  asio::co_spawn(im.io, im.AcceptLoop(), asio::detached);
  for (int i = 0; i < std::max(1, im.opts.io_threads); ++i) {
    im.io_threads.emplace_back([&im] { im.io.run(); });
  }
  return Status::OK();
}

void RpcServer::Shutdown() {
  auto& im = *impl_;
  if (im.stopping.exchange(true)) return;
  if (im.io_threads.empty()) return;
  asio::post(im.io, [&im] {
    boost::system::error_code ec;
    im.acceptor.close(ec);
    std::set<std::shared_ptr<Conn>> conns;
    {
      std::lock_guard<std::mutex> l(im.conns_mu);
      conns = im.conns;
    }
    for (auto& c : conns) im.PostClose(c);
  });
  if (im.pool) im.pool->join();
  {
    // Calls answered later (a mutation waiting for its sync) hold Responders
    // that write through this server: wait until each is answered or dropped.
    std::unique_lock<std::mutex> l(im.async_mu);
    im.async_cv.wait(l, [&im] { return im.async_open == 0; });
  }
  im.work.reset();
  im.io.stop();
  for (auto& t : im.io_threads) t.join();
  im.io_threads.clear();
  // The closes posted above may not have run before io.stop(): close what is
  // left here (no other thread runs now), so no client waits on a connection
  // of a stopped server and the port can be bound again at once.
  boost::system::error_code aec;
  im.acceptor.close(aec);
  std::lock_guard<std::mutex> l(im.conns_mu);
  for (auto& c : im.conns) {
    boost::system::error_code ec;
    c->socket.shutdown(tcp::socket::shutdown_both, ec);
    c->socket.close(ec);
  }
  im.conns.clear();
}

uint16_t RpcServer::port() const { return impl_->port; }

}  // namespace dfs::rpc
