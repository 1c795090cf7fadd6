// RpcServer and RpcChannel: asynchronous calls, answered later, from another
// thread, and never left holding a server that Shutdown has let go; and
// frames of every size, alone, together and trickled.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "common/rpc/channel.h"
#include "common/rpc/frame.h"
#include "common/rpc/server.h"
#include "tests/mini_cluster.h"
#include "tests/raw_rpc.h"

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

TEST_CASE("rpc: a call not answered in time times out, and its late reply does not become the next call's", "[rpc]") {
  LaterServer s;
  RpcChannel ch("127.0.0.1", s.server.port(), {"test-client", "tester"}, "test server");
  std::string got;
  // Under 2 s the receive timeout is the time left; above it, whole seconds
  // and then the rest.
  for (auto timeout : {std::chrono::milliseconds(300), std::chrono::milliseconds(2300)}) {
    const auto t0 = std::chrono::steady_clock::now();
    Status st = ch.CallRaw(kLater, "slow", &got, timeout);
    const auto took = std::chrono::steady_clock::now() - t0;
    INFO(st.ToString());
    CHECK(st.code() == dfs::StatusCode::kTimedOut);
    CHECK(st.message().find("did not answer within " + std::to_string(timeout.count()) + " ms") != std::string::npos);
    CHECK(took >= timeout);
  }
  REQUIRE(s.held_count() == 2);
  // The late replies arrive while the next call waits, and are read (and
  // dropped) before its own.
  Status next;
  std::thread caller([&] { next = ch.CallRaw(kLater, "next", &got, std::chrono::seconds(20)); });
  REQUIRE(dfs::test::WaitFor([&] { return s.held_count() == 3; }));
  s.held[0](Status::OK(), "late one");
  s.held[1](Status::OK(), "late two");
  s.held[2](Status::OK(), "the next call's");
  caller.join();
  CHECK(next.ok());
  CHECK(got == "the next call's");
}

namespace {

constexpr uint32_t kEcho = 8;

// A server whose one method answers with the request's own bytes.
struct EchoServer {
  EchoServer() : server(RpcServer::Options{}) {
    server.RegisterRaw(kEcho, "echo", [](const dfs::rpc::CallContext&, std::string_view in, std::string* out) {
      out->assign(in);
      return Status::OK();
    });
    REQUIRE(server.Start().ok());
  }
  RpcServer server;
};

// Bytes that differ from call to call and from offset to offset.
std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7919) >> 3);
  return s;
}

}  // namespace

// Both ends read frames through a buffer (kReadBufferBytes): frames smaller
// than it, the same size, larger, and many at once from concurrent callers.
TEST_CASE("rpc: frames of every size around the read buffer, one at a time and from concurrent callers", "[rpc]") {
  EchoServer s;
  RpcChannel ch("127.0.0.1", s.server.port(), {"test-client", "tester"}, "test server");
  const size_t b = dfs::rpc::kReadBufferBytes;
  uint32_t seed = 0;
  for (size_t n : {size_t{0}, size_t{1}, b - 64, b - 8, b - 1, b, b + 1, 2 * b + 3, size_t{3} << 20}) {
    const std::string req = Pattern(n, ++seed);
    std::string got;
    REQUIRE(ch.CallRaw(kEcho, req, &got, std::chrono::seconds(20)).ok());
    INFO("request of " << n << " bytes");
    CHECK(got == req);
  }
  constexpr int kThreads = 6, kEach = 150;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        // Mostly small, now and then larger than the buffer.
        const size_t n = i % 17 == 0 ? b + static_cast<size_t>(i * 31) : static_cast<size_t>((i * 97 + t) % 3000);
        const std::string req = Pattern(n, static_cast<uint32_t>(t * 1000 + i));
        std::string got;
        if (!ch.CallRaw(kEcho, req, &got, std::chrono::seconds(20)).ok() || got != req) wrong++;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(wrong == 0);
}

TEST_CASE("rpc server: requests sent together in one write, and one sent a byte at a time, are all answered", "[rpc]") {
  EchoServer s;
  auto sock = dfs::Socket::Connect("127.0.0.1", s.server.port(), std::chrono::seconds(5));
  REQUIRE(sock.ok());
  auto frame = [](uint64_t id, const std::string& body) {
    dfs::proto::RequestHeader h;
    h.set_call_id(id);
    h.set_method(kEcho);
    return dfs::rpc::EncodeFrame(h, body);
  };
  auto read_reply = [&](dfs::proto::ResponseHeader* h, std::string* body) {
    REQUIRE(dfs::test::ReadResponseFrame(*sock, h, body).ok());
  };
  // Twenty requests in one write, the last larger than the server's buffer.
  std::string all;
  for (uint64_t id = 1; id <= 20; ++id) {
    all += frame(id, Pattern(id == 20 ? dfs::rpc::kReadBufferBytes * 2 : id * 10, static_cast<uint32_t>(id)));
  }
  REQUIRE(sock->WriteFull(all.data(), all.size(), std::chrono::seconds(10)).ok());
  std::set<uint64_t> answered;
  for (int i = 0; i < 20; ++i) {
    dfs::proto::ResponseHeader h;
    std::string body;
    read_reply(&h, &body);
    CHECK(h.code() == dfs::proto::OK);
    CHECK(body == Pattern(h.call_id() == 20 ? dfs::rpc::kReadBufferBytes * 2 : h.call_id() * 10,
                          static_cast<uint32_t>(h.call_id())));
    answered.insert(h.call_id());
  }
  CHECK(answered.size() == 20);
  // One request trickled in byte by byte.
  const std::string one = frame(99, "trickled");
  for (char c : one) {
    REQUIRE(sock->WriteFull(&c, 1, std::chrono::seconds(10)).ok());
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  dfs::proto::ResponseHeader h;
  std::string body;
  read_reply(&h, &body);
  CHECK(h.call_id() == 99);
  CHECK(body == "trickled");
}
