// RpcServer: serves Protobuf calls over TCP (Boost.Asio). Frames are read by
// coroutines on a small I/O pool. A call registered kPool runs on a handler
// thread pool, so it may block (on a group commit, say) without stalling other
// calls; a call registered kInline (a short one that never blocks) runs on the I/O
// thread that read it, saving two thread hand-offs. One connection may have
// many calls in flight; replies go back as they finish, written directly by
// the thread that finished the call (asynchronously only when the socket is full).
//
// Register every method before Start(). Handlers are called concurrently from
// handler threads and must be thread-safe. Shutdown() stops accepting, closes
// connections and waits for running handlers and for every asynchronous call
// to be answered (or its Responder dropped); after it returns no handler or
// Responder runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace dfs::rpc {

struct CallContext {
  std::string peer_ip;      // the caller's address as this server sees it
  std::string client_name;
  std::string user;
  uint32_t method = 0;
  std::chrono::steady_clock::time_point deadline;
};

class RpcServer {
 public:
  struct Options {
    std::string name = "rpc";            // in log lines
    std::string bind_host = "127.0.0.1";
    uint16_t port = 0;                   // 0 picks a free port
    int io_threads = 1;
    int handler_threads = 16;
    uint32_t max_in_flight_per_connection = 1024;
  };
  // Gets the request body, fills the response body. A non-OK Status goes back
  // to the caller as the call's error, and the response body is not sent.
  using RawHandler = std::function<Status(const CallContext&, std::string_view request, std::string* response)>;
  // Where a method runs. kInline only for calls that never block for long.
  enum class Dispatch { kPool, kInline };
  // An asynchronous handler answers by calling the Responder exactly once, from
  // any thread, possibly after it returned (a mutation answers when its group
  // commit is durable, from the NameNode's WAL replier thread). One that never
  // blocks before returning may run kInline.
  using Responder = std::function<void(Status, std::string response)>;
  using AsyncRawHandler = std::function<void(const CallContext&, std::string_view request, Responder)>;

  explicit RpcServer(Options options);
  ~RpcServer();

  void RegisterRaw(uint32_t method, std::string method_name, RawHandler handler, Dispatch dispatch = Dispatch::kPool);

  // Typed registration: f(const CallContext&, const Req&, Resp*) -> Status.
  template <typename Req, typename Resp, typename F>
  void Register(uint32_t method, std::string method_name, F f, Dispatch dispatch = Dispatch::kPool) {
    RegisterRaw(method, method_name,
                [f = std::move(f), method_name](const CallContext& ctx, std::string_view in, std::string* out) {
                  Req req;
                  if (!req.ParseFromArray(in.data(), static_cast<int>(in.size()))) {
                    return Status::ProtocolError("malformed request body for " + method_name);
                  }
                  Resp resp;
                  Status s = f(ctx, req, &resp);
                  if (s.ok()) resp.SerializeToString(out);
                  return s;
                },
                dispatch);
  }

  void RegisterAsyncRaw(uint32_t method, std::string method_name, AsyncRawHandler handler,
                        Dispatch dispatch = Dispatch::kPool);

  // Typed asynchronous registration: f(const CallContext&, const Req&, std::shared_ptr<Resp>,
  // std::function<void(Status)> done); the response is sent when done(OK) is called.
  template <typename Req, typename Resp, typename F>
  void RegisterAsync(uint32_t method, std::string method_name, F f, Dispatch dispatch = Dispatch::kPool) {
    RegisterAsyncRaw(method, method_name,
                     [f = std::move(f), method_name](const CallContext& ctx, std::string_view in, Responder respond) {
                       Req req;
                       if (!req.ParseFromArray(in.data(), static_cast<int>(in.size()))) {
                         respond(Status::ProtocolError("malformed request body for " + method_name), {});
                         return;
                       }
                       auto resp = std::make_shared<Resp>();
                       f(ctx, req, resp, [resp, respond = std::move(respond)](Status s) {
                         std::string out;
                         if (s.ok()) resp->SerializeToString(&out);
                         respond(s, std::move(out));
                       });
                     },
                     dispatch);
  }

  Status Start();
  void Shutdown();
  uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dfs::rpc
