// The mount's read path (fuse/read_ahead.h) on an in-memory file: which bytes
// each request gets, which fills run, and how errors come back. No kernel.
#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "fuse/read_ahead.h"
#include "tests/pread_input.h"

using namespace dfs;
using namespace dfs::fuse;

namespace {

// A file of `n` bytes (byte i is a function of i); its reads can be made to fail.
class FakeInput : public test::PReadInputStream {
 public:
  explicit FakeInput(size_t n) : data_(n) {
    for (size_t i = 0; i < n; ++i) data_[i] = static_cast<char>((i * 131 + i / 4096) & 0xff);
  }
  Result<size_t> PRead(uint64_t offset, void* buf, size_t n) override {
    if (fail_from.load() <= offset) return Status::IOError("injected read error");
    const uint64_t end = std::min<uint64_t>(data_.size(), ends_at.load());
    if (offset >= end) return size_t{0};
    // Like a block reader: at most 64 KiB per call.
    n = std::min({n, static_cast<size_t>(end - offset), size_t{64 << 10}});
    std::memcpy(buf, data_.data() + offset, n);
    return n;
  }
  uint64_t Length() const override { return data_.size(); }
  Status Refresh() override { return Status::OK(); }

  const std::vector<char>& data() const { return data_; }
  std::atomic<uint64_t> fail_from{UINT64_MAX};
  std::atomic<uint64_t> ends_at{UINT64_MAX};  // reads end here: the file was replaced by a shorter one

 private:
  std::vector<char> data_;
};

struct Fixture {
  explicit Fixture(size_t file_bytes, size_t max_window = 4 << 20)
      : windows(max_window, 4), pool(2) {
    auto in = std::make_unique<FakeInput>(file_bytes);
    fake = in.get();
    ra = ReadAhead::Make(std::move(in), &windows, &pool);
  }
  ~Fixture() { ra.reset(); }

  // Reads [off, off+size) and returns what the reply got.
  Result<std::string> Get(uint64_t off, size_t size) {
    std::string got;
    Status s = ra->Read(off, size, [&](const iovec* v, int n) {
      for (int i = 0; i < n; ++i) got.append(static_cast<const char*>(v[i].iov_base), v[i].iov_len);
    });
    if (!s.ok()) return s;
    return got;
  }
  // Reads on in 64 KiB requests from `off`, checking each, until one fails:
  // returns its offset (the file's length when none fails) and why.
  std::pair<uint64_t, Status> ReadOnUntilError(uint64_t off) {
    for (; off < fake->data().size(); off += 65536) {
      auto r = Get(off, 65536);
      if (!r.ok()) return {off, r.status()};
      REQUIRE(*r == Expect(off, 65536));
    }
    return {off, Status::OK()};
  }
  std::string Expect(uint64_t off, size_t size) const {
    const auto& d = fake->data();
    if (off >= d.size()) return "";
    size = std::min<size_t>(size, d.size() - off);
    return std::string(d.data() + off, size);
  }

  BufferPool windows;
  TaskPool pool;
  FakeInput* fake;
  std::shared_ptr<ReadAhead> ra;
};

constexpr size_t kMiB = 1 << 20;

}  // namespace

TEST_CASE("read-ahead serves a sequential reader from windows that grow and are fetched ahead", "[fuse]") {
  Fixture f(20 * kMiB + 12345);
  for (uint64_t off = 0; off < 20 * kMiB + 12345; off += 128 << 10) {
    auto r = f.Get(off, 128 << 10);
    REQUIRE(r.ok());
    REQUIRE(*r == f.Expect(off, 128 << 10));
  }
  CHECK(f.Get(20 * kMiB + 12345, 4096).value().empty());  // at the end
  CHECK(f.Get(30 * kMiB, 4096).value().empty());          // past it
  auto st = f.ra->stats();
  // 1 + 2 + 4 + 4 + 4 + 4 + a tail: windows double up to the largest (4 MiB).
  CHECK(st.fills >= 6);
  CHECK(st.fills <= 8);
  CHECK(st.preads == 0);
}

TEST_CASE("read-ahead: a request across two windows gets both parts", "[fuse]") {
  Fixture f(8 * kMiB);
  // 1 MiB first window; then one request straddling its end.
  REQUIRE(f.Get(0, 4096).value() == f.Expect(0, 4096));
  const uint64_t off = kMiB - 1000;
  CHECK(f.Get(off, 300000).value() == f.Expect(off, 300000));
  CHECK(f.Get(kMiB + 300000, 5000).value() == f.Expect(kMiB + 300000, 5000));
}

TEST_CASE("read-ahead: reads behind the window use pread, jumps ahead start over", "[fuse]") {
  Fixture f(16 * kMiB);
  REQUIRE(f.Get(6 * kMiB, 65536).value() == f.Expect(6 * kMiB, 65536));
  CHECK(f.Get(100, 5000).value() == f.Expect(100, 5000));  // behind: pread
  CHECK(f.ra->stats().preads == 1);
  CHECK(f.Get(12 * kMiB + 7, 70000).value() == f.Expect(12 * kMiB + 7, 70000));  // ahead: new windows
  CHECK(f.Get(12 * kMiB + 70007, 4096).value() == f.Expect(12 * kMiB + 70007, 4096));
  CHECK(f.ra->stats().preads == 1);
  CHECK(f.Get(16 * kMiB - 10, 4096).value() == f.Expect(16 * kMiB - 10, 10));  // cut at the end
}

TEST_CASE("read-ahead: a failed read comes back as an error, and works again once the data can be read",
          "[fuse]") {
  Fixture f(8 * kMiB);
  f.fake->fail_from = 3 * kMiB;
  REQUIRE(f.Get(0, 65536).ok());
  // Sequential reads succeed up to the failure, then report it (the
  // background fill failed; the request's own retry fails too).
  auto [off, failed] = f.ReadOnUntilError(65536);
  CHECK(off == 3 * kMiB);
  CHECK_THAT(failed.message(), Catch::Contains("injected read error"));
  // The replica is back: the same request now succeeds.
  f.fake->fail_from = UINT64_MAX;
  CHECK(f.Get(off, 65536).value() == f.Expect(off, 65536));
  CHECK(f.Get(off + 65536, 3 * kMiB).value() == f.Expect(off + 65536, 3 * kMiB));
}

TEST_CASE("read-ahead: a file that ends before its length fails the read that needs the missing bytes",
          "[fuse]") {
  Fixture f(8 * kMiB);
  f.fake->ends_at = 3 * kMiB + 100;  // replaced by a shorter file after it was opened
  auto [off, failed] = f.ReadOnUntilError(0);
  CHECK(off == 3 * kMiB);  // the first request that reaches past the end
  CHECK_THAT(failed.message(), Catch::Contains("the file ended before the length the NameNode gave") &&
                                   Catch::Contains("open it again"));
}

TEST_CASE("read-ahead: many threads reading one file at once all get the right bytes", "[fuse]") {
  // The kernel sends several requests of one file at once, in any order.
  const size_t size = 24 * kMiB + 777;
  Fixture f(size, 2 << 20);
  std::mutex mu;
  std::vector<std::string> bad;  // reported after the joins: Catch asserts on the test's thread only
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (uint64_t off = static_cast<uint64_t>(t) * 4096; off < size; off += 6 * 4096 * 16) {
        // Mostly sequential, sometimes a jump back or ahead.
        uint64_t o = off;
        if (rng() % 8 == 0) o = rng() % size;
        const size_t n = 4096 * (1 + rng() % 32);
        auto r = f.Get(o, n);
        if (!r.ok() || *r != f.Expect(o, n)) {
          std::lock_guard<std::mutex> l(mu);
          bad.push_back("offset " + std::to_string(o) + " size " + std::to_string(n) + ": " +
                        (r.ok() ? "wrong bytes" : r.status().message()));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& b : bad) UNSCOPED_INFO(b);
  CHECK(bad.empty());
}

TEST_CASE("read-ahead: an open file dropped while a fill runs is freed when the fill ends", "[fuse]") {
  BufferPool windows(4 << 20, 2);
  std::weak_ptr<ReadAhead> weak;
  {
    TaskPool pool(1);
    auto ra = ReadAhead::Make(std::make_unique<FakeInput>(64 * kMiB), &windows, &pool);
    weak = ra;
    REQUIRE(ra->Read(0, 4096, [](const iovec*, int) {}).ok());  // starts the next fill
    CHECK(ra->stats().fills == 2);
    ra.reset();
    // The fill still holds it; the pool's end runs what is queued, then joins.
  }
  CHECK(weak.expired());
}

TEST_CASE("read-ahead: a request bigger than a window is read on its own", "[fuse]") {
  Fixture f(8 * kMiB);
  CHECK(f.Get(1000, 3 * kMiB).value() == f.Expect(1000, 3 * kMiB));
  CHECK(f.ra->stats().preads == 1);
  CHECK(f.ra->stats().fills == 0);
}

TEST_CASE("read-ahead: a request that starts just past the windows and ends past the window fetched for it",
          "[fuse]") {
  // The kernel sends requests of one file from several threads, so one may
  // start inside the window after the windows and end beyond it. The fill
  // it started was not short; the request needs one more.
  Fixture f(32 * kMiB);
  REQUIRE(f.Get(0, 4096).value() == f.Expect(0, 4096));  // cur [0, 1M), next [1M, 3M) being filled
  const uint64_t off = 7 * kMiB - 4096;                    // in [3M, 7M), the window after them, and past it
  auto r = f.Get(off, 65536);
  INFO((r.ok() ? std::string() : r.status().message()));
  REQUIRE(r.ok());
  CHECK(*r == f.Expect(off, 65536));
  for (uint64_t o = off + 65536; o < 12 * kMiB; o += 65536) REQUIRE(f.Get(o, 65536).value() == f.Expect(o, 65536));
  CHECK(f.ra->stats().preads == 0);
}

TEST_CASE("read-ahead: a request just past both windows moves them on instead of starting over", "[fuse]") {
  Fixture f(32 * kMiB);
  REQUIRE(f.Get(0, 4096).value() == f.Expect(0, 4096));  // cur [0, 1M), next [1M, 3M) being filled
  // The kernel asks for 3.5 MiB before anything in between.
  CHECK(f.Get(3 * kMiB + kMiB / 2, 65536).value() == f.Expect(3 * kMiB + kMiB / 2, 65536));
  // What it skipped comes late: read on its own at worst.
  CHECK(f.Get(2 * kMiB, 65536).value() == f.Expect(2 * kMiB, 65536));
  CHECK(f.ra->stats().preads <= 1);
  // From there on the windows serve every request.
  for (uint64_t off = 3 * kMiB; off < 12 * kMiB; off += 65536) REQUIRE(f.Get(off, 65536).value() == f.Expect(off, 65536));
  CHECK(f.ra->stats().preads <= 1);
  // [0,1M) [1M,3M) [3M,7M) [7M,11M) [11M,15M) [15M,19M): none started over at 3.5 MiB.
  CHECK(f.ra->stats().fills == 6);
}
