// NamespaceStore's group commit: the syncer thread makes applied batches
// durable and wakes waiters; the replier thread runs the callbacks that send
// the replies.
#include <atomic>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <rocksdb/file_system.h>
#include <rocksdb/write_batch.h>

#include "namenode/namespace_store.h"
#include "namenode/wal_file_system.h"
#include "tests/mini_cluster.h"

using dfs::Status;
using dfs::namenode::NamespaceStore;
using dfs::test::TempDir;

namespace {

constexpr size_t kSmallSpare = 1 << 20;  // a spare WAL as the NameNode keeps one, but quick to write

uint64_t ApplyMeta(NamespaceStore* store, const std::string& key, const std::string& value) {
  rocksdb::WriteBatch b;
  dfs::namenode::PutMeta(&b, key, value);
  auto ticket = store->Apply(&b);
  REQUIRE(ticket.ok());
  return *ticket;
}

}  // namespace

TEST_CASE("namespace store: waiters and callbacks from many threads all see their batch durable",
          "[namespace_store]") {
  TempDir dir;
  constexpr int kThreads = 8;
  constexpr int kEach = 60;
  std::atomic<int> called{0};
  std::atomic<int> failed{0};
  {
    auto opened = NamespaceStore::Open(dir.path() + "/db", kSmallSpare);
    REQUIRE(opened.ok());
    NamespaceStore* store = opened->get();
    std::mutex apply_mu;  // Apply's callers serialise themselves, as the namesystem does
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          uint64_t ticket;
          {
            std::lock_guard<std::mutex> l(apply_mu);
            ticket = ApplyMeta(store, "k" + std::to_string(t) + "." + std::to_string(i), "v");
          }
          if (i % 2 == 0) {
            if (!store->WaitDurable(ticket).ok()) failed++;
            called++;
          } else {
            std::atomic<bool> done{false};
            store->OnDurable(ticket, [&](Status s) {
              if (!s.ok()) failed++;
              called++;
              done = true;
            });
            // A client waits for its reply before its next call.
            while (!done) std::this_thread::yield();
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(called == kThreads * kEach);
    CHECK(failed == 0);
    // Shared syncs: far fewer than one per batch, and every batch counted
    // once as made durable.
    const auto js = store->sync_stats();
    CHECK(js.syncs < static_cast<uint64_t>(kThreads * kEach));
    CHECK(js.transactions == static_cast<uint64_t>(kThreads * kEach));
    CHECK(js.sync_micros > 0);
  }
  // Everything acknowledged is there after a reopen.
  auto reopened = NamespaceStore::Open(dir.path() + "/db", kSmallSpare);
  REQUIRE(reopened.ok());
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kEach; ++i) {
      CHECK((*reopened)->GetMeta("k" + std::to_string(t) + "." + std::to_string(i)).ok());
    }
  }
}

TEST_CASE("namespace store: a callback on a batch already durable runs at once, on the caller's thread",
          "[namespace_store]") {
  TempDir dir;
  auto opened = NamespaceStore::Open(dir.path() + "/db", kSmallSpare);
  REQUIRE(opened.ok());
  NamespaceStore* store = opened->get();
  const uint64_t ticket = ApplyMeta(store, "a", "1");
  REQUIRE(store->WaitDurable(ticket).ok());
  std::thread::id ran_on;
  store->OnDurable(ticket, [&](Status s) {
    CHECK(s.ok());
    ran_on = std::this_thread::get_id();
  });
  CHECK(ran_on == std::this_thread::get_id());
}

TEST_CASE("namespace store: callbacks run after the sync, and the destructor runs every one left",
          "[namespace_store]") {
  TempDir dir;
  std::atomic<int> called{0}, failed{0};  // counted on the replier's thread, checked on this one (Catch is not thread-safe)
  {
    auto opened = NamespaceStore::Open(dir.path() + "/db", kSmallSpare);
    REQUIRE(opened.ok());
    NamespaceStore* store = opened->get();
    for (int i = 0; i < 50; ++i) {
      store->OnDurable(ApplyMeta(store, "d" + std::to_string(i), "v"), [&](Status s) {
        if (!s.ok()) failed++;
        called++;
      });
    }
    CHECK(dfs::test::WaitFor([&] { return called == 50; }));
    CHECK(failed == 0);
    // Left pending at destruction: still synced and answered before it returns.
    for (int i = 0; i < 20; ++i) {
      store->OnDurable(ApplyMeta(store, "e" + std::to_string(i), "v"), [&](Status) { called++; });
    }
  }
  CHECK(called == 70);
  auto reopened = NamespaceStore::Open(dir.path() + "/db", kSmallSpare);
  REQUIRE(reopened.ok());
  CHECK((*reopened)->GetMeta("e19").ok());
}

TEST_CASE("namespace store: a slow callback does not hold up the next sync", "[namespace_store]") {
  TempDir dir;
  auto opened = NamespaceStore::Open(dir.path() + "/db", kSmallSpare);
  REQUIRE(opened.ok());
  NamespaceStore* store = opened->get();
  std::atomic<bool> in_callback{false};
  std::atomic<bool> release{false};
  std::atomic<bool> released_in_time{false}, slow_ok{false};
  store->OnDurable(ApplyMeta(store, "slow", "1"), [&](Status s) {
    slow_ok = s.ok();
    in_callback = true;  // a reply stuck on a slow socket, say
    released_in_time = dfs::test::WaitFor([&] { return release.load(); }, std::chrono::seconds(10));
  });
  REQUIRE(dfs::test::WaitFor([&] { return in_callback.load(); }));
  CHECK(slow_ok);
  // Another batch becomes durable while that callback still runs.
  const uint64_t next = ApplyMeta(store, "next", "2");
  auto durable = std::async(std::launch::async, [&] { return store->WaitDurable(next); });
  const bool in_time = durable.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  release = true;
  CHECK(in_time);
  CHECK(durable.get().ok());
  CHECK(dfs::test::WaitFor([&] { return released_in_time.load(); }));
}

TEST_CASE("namespace store: a WAL written over the zeroed spare recovers every synced batch after a crash",
          "[namespace_store]") {
  namespace fs = std::filesystem;
  TempDir dir;
  const std::string db = dir.path() + "/db";
  const std::string spare = db + "/" + dfs::namenode::kSpareWalName;
  auto opened = NamespaceStore::Open(db, kSmallSpare);  // a new directory: its first WAL is a spare made at once
  REQUIRE(opened.ok());
  NamespaceStore* store = opened->get();
  for (int i = 0; i < 200; ++i) REQUIRE(store->WaitDurable(ApplyMeta(store, "c" + std::to_string(i), "v")).ok());

  REQUIRE(dfs::test::WaitFor([&] {  // the next WAL's spare, made in the background
    std::error_code ec;
    return fs::file_size(spare, ec) == kSmallSpare && !ec;
  }));

  // What a kill -9 leaves: the files as they are now, the WAL still open.
  const std::string crash = dir.path() + "/crash";
  fs::copy(db, crash, fs::copy_options::recursive);
  bool wal_over_zeros = false;
  for (const auto& f : fs::directory_iterator(crash)) {
    if (f.path().extension() == ".log" && f.file_size() == kSmallSpare) wal_over_zeros = true;
  }
  CHECK(wal_over_zeros);  // written in place: still the spare's size, zeros after the records

  auto inode = [](const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
  };
  const ino_t left_spare = inode(crash + "/" + dfs::namenode::kSpareWalName);
  REQUIRE(left_spare != 0);
  for (int round = 0; round < 2; ++round) {  // recovers, and keeps working after
    auto recovered = NamespaceStore::Open(crash, round == 0 ? kSmallSpare : 0);
    REQUIRE(recovered.ok());
    if (round == 0) {  // the spare the crashed run left is this start's WAL
      bool reused = false;
      for (const auto& f : fs::directory_iterator(crash)) {
        if (f.path().extension() == ".log" && inode(f.path().string()) == left_spare) reused = true;
      }
      CHECK(reused);
    }
    for (int i = 0; i < 200; ++i) CHECK((*recovered)->GetMeta("c" + std::to_string(i)).ok());
    CHECK((*recovered)->WaitDurable(ApplyMeta(recovered->get(), "after" + std::to_string(round), "v")).ok());
  }
  auto last = NamespaceStore::Open(crash, 0);
  REQUIRE(last.ok());
  CHECK((*last)->GetMeta("after0").ok());
  CHECK((*last)->GetMeta("after1").ok());
}

TEST_CASE("namespace store: when no spare can be made, WALs are appended and everything else works",
          "[namespace_store]") {
  namespace fs = std::filesystem;
  TempDir dir;
  const std::string db = dir.path() + "/db";
  const std::string spare = db + "/" + dfs::namenode::kSpareWalName;
  fs::create_directories(spare + ".tmp/in-the-way");  // the spare's temporary name cannot be a file
  {
    auto opened = NamespaceStore::Open(db, kSmallSpare);
    REQUIRE(opened.ok());
    for (int i = 0; i < 20; ++i) {
      REQUIRE((*opened)->WaitDurable(ApplyMeta(opened->get(), "f" + std::to_string(i), "v")).ok());
    }
    CHECK(!fs::exists(spare));
  }  // and it stops at once, though its spare maker waits to retry
  auto reopened = NamespaceStore::Open(db, 0);
  REQUIRE(reopened.ok());
  CHECK((*reopened)->GetMeta("f19").ok());
}

TEST_CASE("namespace store: a spare WAL that vanished before its use leaves the new WAL appended, and another spare is made",
          "[namespace_store]") {
  namespace fs = std::filesystem;
  TempDir dir;
  const std::string db = dir.path() + "/db";
  fs::create_directories(db);
  const std::string spare = db + "/" + dfs::namenode::kSpareWalName;
  auto wal_fs = dfs::namenode::NewPrezeroedWalFileSystem(db, kSmallSpare);
  auto spare_ready = [&] {
    std::error_code ec;
    return fs::file_size(spare, ec) == kSmallSpare && !ec;
  };
  std::unique_ptr<rocksdb::FSWritableFile> wal;
  REQUIRE(wal_fs.fs->NewWritableFile(db + "/000041.log", rocksdb::FileOptions(), &wal, nullptr).ok());
  CHECK(fs::file_size(db + "/000041.log") == kSmallSpare);  // the first WAL: a spare made at once
  REQUIRE(dfs::test::WaitFor(spare_ready));                 // and the next one in the background
  fs::remove(spare);  // taken from under it: the rename onto the new WAL fails
  const std::string name = db + "/000042.log";
  REQUIRE(wal_fs.fs->NewWritableFile(name, rocksdb::FileOptions(), &wal, nullptr).ok());
  REQUIRE(wal->Append("record", rocksdb::IOOptions(), nullptr).ok());
  REQUIRE(wal->Sync(rocksdb::IOOptions(), nullptr).ok());
  REQUIRE(wal->Close(rocksdb::IOOptions(), nullptr).ok());
  CHECK(fs::file_size(name) == 6);  // appended, not written over zeros
  CHECK(dfs::test::WaitFor(spare_ready));  // and the next WAL has a spare again
}
