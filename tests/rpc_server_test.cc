// RpcServer's asynchronous calls: answered later, from another thread, and
// never left holding a server that Shutdown has let go.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "common/rpc/channel.h"
#include "common/rpc/server.h"
#include "tests/mini_cluster.h"

using dfs::Status;
using dfs::rpc::RpcChannel;
using dfs::rpc::RpcServer;

namespace {

constexpr uint32_t kLater = 7;

// A server whose one method keeps its Responder for the test to answer or drop.
struct LaterServer {
  LaterServer() : server(RpcServer::Options{}) {
    server.RegisterAsyncRaw(
        kLater, "later",
        [this](const dfs::rpc::CallContext&, std::string_view, RpcServer::Responder r) {
          std::lock_guard<std::mutex> l(mu);
          held.push_back(std::move(r));
        },
        RpcServer::Dispatch::kInline);
    REQUIRE(server.Start().ok());
  }
  size_t held_count() {
    std::lock_guard<std::mutex> l(mu);
    return held.size();
  }
  RpcServer server;
  std::mutex mu;
  std::vector<RpcServer::Responder> held;
};

}  // namespace

TEST_CASE("rpc server: an asynchronous call is answered from another thread after the handler returned", "[rpc]") {
  LaterServer s;
  RpcChannel ch("127.0.0.1", s.server.port(), {"test-client", "tester"}, "test server");
  std::string got;
  Status st;
  std::thread caller([&] { st = ch.CallRaw(kLater, "ping", &got, std::chrono::seconds(20)); });
  REQUIRE(dfs::test::WaitFor([&] { return s.held_count() == 1; }));
  std::thread([&] { s.held[0](Status::OK(), "pong"); }).join();
  caller.join();
  CHECK(st.ok());
  CHECK(got == "pong");
}

TEST_CASE("rpc server: Shutdown waits for calls still to be answered, and for dropped responders", "[rpc]") {
  LaterServer s;
  RpcChannel ch("127.0.0.1", s.server.port(), {"test-client", "tester"}, "test server");
  std::thread caller1([&] {
    std::string out;
    (void)ch.CallRaw(kLater, "a", &out, std::chrono::seconds(20));
  });
  std::thread caller2([&] {
    std::string out;
    (void)ch.CallRaw(kLater, "b", &out, std::chrono::seconds(20));
  });
  REQUIRE(dfs::test::WaitFor([&] { return s.held_count() == 2; }));

  // One is answered, the other dropped unanswered, both a while after
  // Shutdown has started: it must not return before either.
  std::atomic<bool> shutting{false};
  std::atomic<bool> returned{false};
  std::atomic<int> returned_early{0};
  std::thread late([&] {
    while (!shutting) std::this_thread::yield();
    std::vector<RpcServer::Responder> mine;
    {
      std::lock_guard<std::mutex> l(s.mu);
      mine.swap(s.held);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (returned) returned_early++;  // with two calls open
    mine[0](Status::OK(), "late");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (returned) returned_early++;  // with one responder still held
    mine.clear();  // the second goes without an answer
  });
  shutting = true;
  s.server.Shutdown();
  returned = true;
  late.join();
  CHECK(returned_early == 0);
  ch.Close();
  caller1.join();
  caller2.join();
}
