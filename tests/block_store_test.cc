// BlockStore: replica files, publication by rename, the startup scan and its
// cleanup, generation stamps, deletion and several data dirs.
#include "datanode/block_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "common/checksum.h"
#include "common/data_transfer.h"
#include "tests/mini_cluster.h"

namespace fs = std::filesystem;
using dfs::datanode::BlockStore;
using dfs::datanode::ReplicaWriter;

namespace {

using dfs::test::TempDir;

dfs::proto::Block Blk(uint64_t id, uint64_t gs) {
  dfs::proto::Block b;
  b.set_id(id);
  b.set_gen_stamp(gs);
  return b;
}

using dfs::test::RandomBytes;

std::unique_ptr<BlockStore> OpenStore(std::vector<std::string> dirs, bool sync = false) {
  BlockStore::Options o;
  o.dirs = std::move(dirs);
  o.sync_on_close = sync;
  auto r = BlockStore::Open(o);
  REQUIRE(r.ok());
  return std::move(r).value();
}

// Appends `data` in pieces of `piece` bytes, with grid checksums as the server computes them.
void AppendAll(ReplicaWriter& w, const std::string& data, size_t piece) {
  std::vector<uint64_t> sums(piece / w.bytes_per_checksum() + 2);
  for (size_t off = 0; off < data.size(); off += piece) {
    size_t n = std::min(piece, data.size() - off);
    dfs::ComputePacketChecksums(off, data.data() + off, n, w.bytes_per_checksum(), sums.data());
    REQUIRE(w.Append(data.data() + off, n, sums.data()).ok());
  }
}

dfs::proto::Block WriteReplica(BlockStore& store, uint64_t id, uint64_t gs, const std::string& data, uint32_t bpc = 512,
                               size_t piece = 4096) {
  auto w = store.CreateTemporary(Blk(id, gs), bpc);
  REQUIRE(w.ok());
  AppendAll(**w, data, piece);
  auto fin = (*w)->Finalize();
  REQUIRE(fin.ok());
  return *fin;
}

std::string ReadReplica(BlockStore& store, uint64_t id, uint64_t gs) {
  auto r = store.OpenForRead(Blk(id, gs));
  REQUIRE(r.ok());
  std::string out((*r)->length(), '\0');
  REQUIRE((*r)->ReadData(0, out.size(), out.data()).ok());
  // The stored checksums are those of the chunk grid of the whole replica.
  const uint32_t bpc = (*r)->bytes_per_checksum();
  std::vector<uint64_t> stored(dfs::PacketChunks(0, out.size(), bpc)), expect(stored.size());
  REQUIRE((*r)->ReadChecksums(0, stored.size(), stored.data()).ok());
  dfs::ComputeChecksums(out.data(), out.size(), bpc, expect.data());
  REQUIRE(stored == expect);
  return out;
}

size_t CountFiles(const std::string& dir) {
  size_t n = 0;
  for (auto& e : fs::recursive_directory_iterator(dir)) n += e.is_regular_file();
  return n;
}

std::string FinalPath(const std::string& dir, uint64_t id, uint64_t gs) {
  char sub[16];
  snprintf(sub, sizeof sub, "subdir%02u", static_cast<unsigned>(id % dfs::datanode::kSubdirs));
  return dir + "/current/" + sub + "/blk_" + std::to_string(id) + "_" + std::to_string(gs);
}

}  // namespace

TEST_CASE("block store writes, finalizes and reads back a replica", "[block_store]") {
  TempDir t;
  auto store = OpenStore({t.path() + "/d0"}, /*sync=*/true);
  const std::string data = RandomBytes(10 * 512 + 77, 1);
  auto b = WriteReplica(*store, 42, 7, data);
  CHECK(b.id() == 42);
  CHECK(b.gen_stamp() == 7);
  CHECK(b.num_bytes() == data.size());
  CHECK(ReadReplica(*store, 42, 7) == data);
  CHECK(fs::exists(FinalPath(t.path() + "/d0", 42, 7)));
  CHECK(fs::exists(FinalPath(t.path() + "/d0", 42, 7) + ".meta"));
  CHECK(fs::is_empty(t.path() + "/d0/tmp"));
  REQUIRE(store->AllReplicas().size() == 1);
  CHECK(store->dfs_used() == data.size() + dfs::datanode::kMetaHeaderBytes + 11 * 8);
  CHECK(store->capacity() > 0);
  CHECK(store->remaining() > 0);
  CHECK(store->failed_volumes() == 0);
}

TEST_CASE("block store appends that end mid-chunk keep whole-chunk checksums", "[block_store]") {
  TempDir t;
  auto store = OpenStore({t.path()});
  const std::string data = RandomBytes(5000, 2);
  // Pieces that are not multiples of the chunk size, as after a writer's Flush.
  for (size_t piece : {100, 128, 333, 1, 4999}) {
    const uint64_t id = 100 + piece;
    WriteReplica(*store, id, 1, data, 128, piece);
    CHECK(ReadReplica(*store, id, 1) == data);
  }
}

TEST_CASE("block store refuses duplicates and stale generation stamps", "[block_store]") {
  TempDir t;
  auto store = OpenStore({t.path()});
  WriteReplica(*store, 5, 10, RandomBytes(1000, 3));

  auto dup = store->CreateTemporary(Blk(5, 10), 512);
  CHECK(dup.status().code() == dfs::StatusCode::kAlreadyExists);
  auto older = store->CreateTemporary(Blk(5, 9), 512);
  CHECK(older.status().code() == dfs::StatusCode::kStale);
  CHECK(store->OpenForRead(Blk(5, 9)).status().code() == dfs::StatusCode::kStale);
  CHECK(store->OpenForRead(Blk(5, 11)).status().code() == dfs::StatusCode::kStale);
  CHECK(store->OpenForRead(Blk(6, 10)).status().code() == dfs::StatusCode::kNotFound);

  // Two writers of the same (id, gs) at once: the second is refused.
  auto w1 = store->CreateTemporary(Blk(8, 1), 512);
  REQUIRE(w1.ok());
  CHECK(store->CreateTemporary(Blk(8, 1), 512).status().code() == dfs::StatusCode::kAlreadyExists);
  (*w1)->Abort();
  CHECK(store->CreateTemporary(Blk(8, 1), 512).ok());  // aborted and destroyed again at once

  // A newer generation stamp replaces the replica and removes the old files.
  const std::string newer = RandomBytes(1500, 4);
  WriteReplica(*store, 5, 11, newer);
  CHECK(ReadReplica(*store, 5, 11) == newer);
  CHECK(store->OpenForRead(Blk(5, 10)).status().code() == dfs::StatusCode::kStale);
  CHECK_FALSE(fs::exists(FinalPath(t.path(), 5, 10)));
  CHECK_FALSE(fs::exists(FinalPath(t.path(), 5, 10) + ".meta"));
  CHECK(store->dfs_used() == 1500 + dfs::datanode::kMetaHeaderBytes + 3 * 8);
}

TEST_CASE("block store aborted and destroyed writers leave nothing behind", "[block_store]") {
  TempDir t;
  auto store = OpenStore({t.path()});
  {
    auto w = store->CreateTemporary(Blk(1, 1), 512);
    REQUIRE(w.ok());
    AppendAll(**w, RandomBytes(3000, 5), 1000);
    CHECK(CountFiles(t.path() + "/tmp") == 2);
  }  // destroyed without Finalize
  CHECK(CountFiles(t.path()) == 0);
  CHECK(store->num_replicas() == 0);
  CHECK(store->OpenForRead(Blk(1, 1)).status().code() == dfs::StatusCode::kNotFound);
}

TEST_CASE("block store reopen rebuilds the map and cleans up leftovers", "[block_store]") {
  TempDir t;
  std::map<uint64_t, std::string> written;
  {
    auto store = OpenStore({t.path()});
    for (uint64_t id = 1; id <= 5; ++id) {
      written[id] = RandomBytes(id * 777, id);
      WriteReplica(*store, id, 1000 + id, written[id]);
    }
  }
  // What a crash can leave: unfinished temporaries, a meta file published
  // without its data file, and a data file without meta.
  std::ofstream(t.path() + "/tmp/blk_77_1") << "partial";
  std::ofstream(t.path() + "/tmp/blk_77_1.meta") << "DFSM";
  std::ofstream(FinalPath(t.path(), 78, 1) + ".meta") << "DFSM....";
  std::ofstream(FinalPath(t.path(), 79, 1)) << "orphan data";
  // An older generation stamp of block 3 that was never cleaned up.
  fs::copy_file(FinalPath(t.path(), 3, 1003), FinalPath(t.path(), 3, 2));
  fs::copy_file(FinalPath(t.path(), 3, 1003) + ".meta", FinalPath(t.path(), 3, 2) + ".meta");

  auto store = OpenStore({t.path()});
  auto all = store->AllReplicas();
  REQUIRE(all.size() == 5);
  for (const auto& b : all) {
    CHECK(b.gen_stamp() == 1000 + b.id());
    CHECK(b.num_bytes() == written[b.id()].size());
    CHECK(ReadReplica(*store, b.id(), b.gen_stamp()) == written[b.id()]);
  }
  CHECK(fs::is_empty(t.path() + "/tmp"));
  CHECK_FALSE(fs::exists(FinalPath(t.path(), 78, 1) + ".meta"));
  CHECK_FALSE(fs::exists(FinalPath(t.path(), 79, 1)));
  CHECK_FALSE(fs::exists(FinalPath(t.path(), 3, 2)));
  CHECK(CountFiles(t.path()) == 10);
  REQUIRE(store->GetReplica(dfs::BlockId(4)).has_value());
  CHECK(store->GetReplica(dfs::BlockId(4))->num_bytes() == 4 * 777);
}

TEST_CASE("block store deletes replicas", "[block_store]") {
  TempDir t;
  auto store = OpenStore({t.path()});
  WriteReplica(*store, 9, 3, RandomBytes(2048, 6));
  const uint64_t used = store->dfs_used();
  CHECK(used > 2048);
  CHECK(store->Delete(Blk(9, 2)).code() == dfs::StatusCode::kStale);  // the stored one is newer
  // A reader that opened before the delete keeps reading.
  auto r = store->OpenForRead(Blk(9, 3));
  REQUIRE(r.ok());
  REQUIRE(store->Delete(Blk(9, 3)).ok());
  std::string buf(2048, '\0');
  CHECK((*r)->ReadData(0, buf.size(), buf.data()).ok());
  CHECK(store->Delete(Blk(9, 3)).code() == dfs::StatusCode::kNotFound);
  CHECK(store->OpenForRead(Blk(9, 3)).status().code() == dfs::StatusCode::kNotFound);
  CHECK(store->dfs_used() == 0);
  CHECK(CountFiles(t.path()) == 0);
  CHECK(store->AllReplicas().empty());
}

TEST_CASE("block store spreads replicas over several dirs and counts failed ones", "[block_store]") {
  TempDir t;
  std::ofstream(t.path() + "/not_a_dir") << "x";
  std::vector<std::string> dirs = {t.path() + "/a", t.path() + "/b", t.path() + "/not_a_dir/c"};
  std::map<uint64_t, std::string> written;
  {
    auto store = OpenStore(dirs);
    CHECK(store->failed_volumes() == 1);
    CHECK(store->volumes().size() == 2);
    // Several threads at once: the store is shared by transfer threads.
    std::vector<std::thread> threads;
    std::mutex mu;
    for (int th = 0; th < 4; ++th) {
      threads.emplace_back([&, th] {
        for (uint64_t i = 0; i < 5; ++i) {
          const uint64_t id = 1 + th * 5 + i;
          std::string data = RandomBytes(100 + id * 31, id);
          auto w = store->CreateTemporary(Blk(id, 1), 512);
          if (!w.ok()) continue;
          std::vector<uint64_t> sums(dfs::PacketChunks(0, data.size(), 512));
          dfs::ComputePacketChecksums(0, data.data(), data.size(), 512, sums.data());
          if (!(*w)->Append(data.data(), data.size(), sums.data()).ok()) continue;
          if (!(*w)->Finalize().ok()) continue;
          std::lock_guard<std::mutex> l(mu);
          written[id] = data;
        }
      });
    }
    for (auto& th : threads) th.join();
    REQUIRE(written.size() == 20);
  }
  // Volumes on one filesystem tie on free space, so both got replicas.
  CHECK(CountFiles(t.path() + "/a") > 0);
  CHECK(CountFiles(t.path() + "/b") > 0);
  CHECK(CountFiles(t.path() + "/a") + CountFiles(t.path() + "/b") == 40);
  auto store = OpenStore(dirs);
  CHECK(store->num_replicas() == 20);
  for (auto& [id, data] : written) CHECK(ReadReplica(*store, id, 1) == data);

  BlockStore::Options none;
  none.dirs = {t.path() + "/not_a_dir/x"};
  auto bad = BlockStore::Open(none);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("not_a_dir/x") != std::string::npos);
}

// ---------------------------------------------------------------------------
// Failing and full volumes, and the capacity limit

namespace {

std::unique_ptr<BlockStore> OpenLimited(std::vector<std::string> dirs, uint64_t capacity, uint64_t block_size) {
  BlockStore::Options o;
  o.dirs = std::move(dirs);
  o.sync_on_close = false;
  o.capacity = capacity;
  o.block_size = block_size;
  auto r = BlockStore::Open(o);
  REQUIRE(r.ok());
  return std::move(r).value();
}

// The data dir of `dirs` that holds the replica of `id`.
std::string HolderOf(const std::vector<std::string>& dirs, uint64_t id, uint64_t gs) {
  for (const auto& d : dirs) {
    if (fs::exists(FinalPath(d, id, gs))) return d;
  }
  return "";
}

}  // namespace

TEST_CASE("block store takes a volume with I/O errors out of service and keeps the others", "[block_store]") {
  TempDir t;
  const std::vector<std::string> dirs = {t.path() + "/a", t.path() + "/b"};
  BlockStore::Options o;
  o.dirs = dirs;
  o.sync_on_close = false;
  std::vector<std::string> failed;
  o.on_volume_failure = [&](const std::string& dir, const dfs::Status&) { failed.push_back(dir); };
  auto opened = BlockStore::Open(o);
  REQUIRE(opened.ok());
  auto& store = **opened;
  for (uint64_t id = 1; id <= 10; ++id) WriteReplica(store, id, 1, RandomBytes(3000, id));
  std::map<std::string, std::vector<uint64_t>> on;
  for (uint64_t id = 1; id <= 10; ++id) on[HolderOf(dirs, id, 1)].push_back(id);
  REQUIRE(on[dirs[0]].size() > 0);
  REQUIRE(on[dirs[1]].size() > 0);

  // A read on /a meets EIO: /a is out, with its replicas; /b carries on.
  store.InjectFault(dirs[0], EIO);
  auto r = store.OpenForRead(Blk(on[dirs[0]][0], 1));
  REQUIRE(r.ok());
  std::string buf(3000, '\0');
  auto s = (*r)->ReadData(0, buf.size(), buf.data());
  CHECK(s.code() == dfs::StatusCode::kIOError);
  CHECK_THAT(s.message(), Catch::Contains(dirs[0]) && Catch::Contains("out of service"));
  CHECK(failed == std::vector<std::string>{dirs[0]});
  CHECK(store.failed_volumes() == 1);
  CHECK(store.volumes() == std::vector<std::string>{dirs[1]});
  CHECK(store.num_replicas() == on[dirs[1]].size());
  for (uint64_t id : on[dirs[0]]) {
    CHECK_FALSE(store.GetReplica(dfs::BlockId(id)).has_value());
    CHECK(store.OpenForRead(Blk(id, 1)).status().code() == dfs::StatusCode::kNotFound);
  }
  for (uint64_t id : on[dirs[1]]) CHECK(ReadReplica(store, id, 1) == RandomBytes(3000, id));
  // New replicas all go to /b; the failure is reported once.
  for (uint64_t id = 20; id < 24; ++id) {
    WriteReplica(store, id, 1, RandomBytes(100, id));
    CHECK(HolderOf(dirs, id, 1) == dirs[1]);
  }
  CHECK(failed.size() == 1);

  // A write on the last volume meets EIO: nothing is left to store on.
  store.InjectFault(dirs[1], EIO);
  auto w = store.CreateTemporary(Blk(30, 1), 512);
  REQUIRE(w.ok());
  std::string data = RandomBytes(512, 30);
  std::vector<uint64_t> sums(1);
  dfs::ComputePacketChecksums(0, data.data(), data.size(), 512, sums.data());
  CHECK((*w)->Append(data.data(), data.size(), sums.data()).code() == dfs::StatusCode::kIOError);
  CHECK(store.failed_volumes() == 2);
  CHECK(store.volumes().empty());
  CHECK(store.num_replicas() == 0);
  auto none = store.CreateTemporary(Blk(31, 1), 512);
  CHECK(none.status().code() == dfs::StatusCode::kIOError);
  CHECK_THAT(none.status().message(), Catch::Contains("every data dir"));
  CHECK(store.capacity() == 0);
  CHECK(store.remaining() == 0);
}

TEST_CASE("block store fails a vanished data dir at its next error, but not for one missing file", "[block_store]") {
  TempDir t;
  const std::vector<std::string> dirs = {t.path() + "/a", t.path() + "/b"};
  auto store = OpenStore(dirs);
  for (uint64_t id = 1; id <= 10; ++id) WriteReplica(*store, id, 1, RandomBytes(700, id));
  std::map<std::string, std::vector<uint64_t>> on;
  for (uint64_t id = 1; id <= 10; ++id) on[HolderOf(dirs, id, 1)].push_back(id);
  REQUIRE(on[dirs[0]].size() > 1);
  REQUIRE(on[dirs[1]].size() > 0);
  CHECK(store->CheckVolumes() == 0);

  // One replica's file removed by hand: that read fails, the volume stays.
  fs::remove(FinalPath(dirs[0], on[dirs[0]][0], 1));
  CHECK(store->OpenForRead(Blk(on[dirs[0]][0], 1)).status().code() == dfs::StatusCode::kNotFound);
  CHECK(store->failed_volumes() == 0);
  CHECK(ReadReplica(*store, on[dirs[0]][1], 1) == RandomBytes(700, on[dirs[0]][1]));

  // The disk behind /a goes away (here: its directory is replaced by a file).
  fs::rename(dirs[0], t.path() + "/a.gone");
  std::ofstream(dirs[0]) << "not a directory";
  CHECK_FALSE(store->OpenForRead(Blk(on[dirs[0]][1], 1)).ok());
  CHECK(store->failed_volumes() == 1);
  CHECK(store->volumes() == std::vector<std::string>{dirs[1]});
  CHECK(store->num_replicas() == on[dirs[1]].size());
  WriteReplica(*store, 50, 1, RandomBytes(100, 50));
  CHECK(HolderOf(dirs, 50, 1) == dirs[1]);

  // The periodic check finds a broken volume without any read.
  fs::remove_all(dirs[1] + "/tmp");
  CHECK(store->CheckVolumes() == 1);
  CHECK(store->volumes().empty());
}

TEST_CASE("block store fails a write cleanly when the disk is full and keeps the volume", "[block_store]") {
  TempDir t;
  auto store = OpenStore({t.path()});
  store->InjectFault(t.path(), ENOSPC);
  auto w = store->CreateTemporary(Blk(1, 1), 512);
  REQUIRE(w.ok());
  std::string data = RandomBytes(1024, 1);
  std::vector<uint64_t> sums(2);
  dfs::ComputePacketChecksums(0, data.data(), data.size(), 512, sums.data());
  auto s = (*w)->Append(data.data(), data.size(), sums.data());
  CHECK(s.code() == dfs::StatusCode::kNoSpace);
  CHECK(fs::is_empty(t.path() + "/tmp"));  // removed at once, whatever the caller does next
  (*w)->Suspend();                          // e.g. a pipeline that would keep it: nothing to keep
  CHECK(fs::is_empty(t.path() + "/tmp"));
  CHECK(store->failed_volumes() == 0);
  CHECK(store->volumes().size() == 1);
  store->InjectFault(t.path(), 0);
  WriteReplica(*store, 2, 1, data);
  CHECK(ReadReplica(*store, 2, 1) == data);
}

TEST_CASE("block store keeps to its capacity limit and reserves a block per write", "[block_store]") {
  TempDir t;
  auto opened = OpenLimited({t.path()}, 40000, 8192);
  auto& store = *opened;
  CHECK(store.capacity() == 40000);
  CHECK(store.remaining() == 40000);

  WriteReplica(store, 1, 1, RandomBytes(5000, 1));  // 5000 + 16 + 10 * 8 bytes with its meta file
  CHECK(store.dfs_used() == 5096);
  CHECK(store.remaining() == 40000 - 5096);

  // A replica being written holds a block's room (and its meta header) until it has written more.
  auto w = store.CreateTemporary(Blk(2, 1), 512);
  REQUIRE(w.ok());
  CHECK(store.remaining() == 40000 - 5096 - 16 - 8192);
  AppendAll(**w, RandomBytes(4096, 2), 4096);
  CHECK(store.remaining() == 40000 - 5096 - 16 - 8192);

  // Writing past the limit fails, names the dir and the key, and leaves nothing behind.
  const std::string more = RandomBytes(32000, 3);
  std::vector<uint64_t> sums(dfs::PacketChunks(4096, more.size(), 512));
  dfs::ComputePacketChecksums(4096, more.data(), more.size(), 512, sums.data());
  auto s = (*w)->Append(more.data(), more.size(), sums.data());
  CHECK(s.code() == dfs::StatusCode::kNoSpace);
  CHECK_THAT(s.message(), Catch::Contains("dfs.datanode.capacity") && Catch::Contains(t.path()));
  CHECK(fs::is_empty(t.path() + "/tmp"));
  CHECK(store.remaining() == 40000 - 5096);
  CHECK(store.num_replicas() == 1);

  // What fits is stored, up to the limit.
  WriteReplica(store, 4, 1, RandomBytes(30000, 4));  // 30000 + 16 + 59 * 8
  CHECK(store.dfs_used() == 5096 + 30488);
  CHECK(store.remaining() == 0);  // 4416 left: less than a block, so the NameNode must not count on it
  auto last = store.CreateTemporary(Blk(5, 1), 512);
  REQUIRE(last.ok());  // a short replica may still fit
  AppendAll(**last, RandomBytes(2000, 5), 2000);
  REQUIRE((*last)->Finalize().ok());
  REQUIRE(store.Delete(Blk(4, 1)).ok());
  CHECK(store.remaining() == 40000 - 5096 - (2000 + 16 + 4 * 8));
}

TEST_CASE("block store prefers volumes with room for a whole block", "[block_store]") {
  TempDir t;
  const std::vector<std::string> dirs = {t.path() + "/a", t.path() + "/b"};
  auto opened = OpenLimited(dirs, 10000, 4096);
  auto& store = *opened;
  // Fill /a or /b to below a block of room: new replicas then go to the other one.
  WriteReplica(store, 1, 1, RandomBytes(6500, 1));
  const std::string first = HolderOf(dirs, 1, 1);
  const std::string other = first == dirs[0] ? dirs[1] : dirs[0];
  CHECK(store.remaining() == 10000);  // only the other volume counts
  for (uint64_t id = 2; id < 6; ++id) {
    WriteReplica(store, id, 1, RandomBytes(100, id));
    CHECK(HolderOf(dirs, id, 1) == other);
  }
}

namespace {

// A write as a kill -9 leaves it: the files stay under tmp/ as they are
// (Suspend keeps them without touching their bytes).
std::string TmpPath(const std::string& dir, uint64_t id, uint64_t gs) {
  return dir + "/tmp/blk_" + std::to_string(id) + "_" + std::to_string(gs);
}

// Finishes what a reopened store kept of block id (gen stamp gs) and returns its bytes.
std::string RecoverAndRead(BlockStore& store, uint64_t id, uint64_t gs, uint64_t length) {
  auto w = store.Recover(dfs::BlockId(id), gs, gs + 1, length);
  INFO(w.status().ToString());
  REQUIRE(w.ok());
  auto fin = (*w)->Finalize();
  REQUIRE(fin.ok());
  return ReadReplica(store, id, gs + 1);
}

}  // namespace

TEST_CASE("block store hsync: Sync fdatasyncs and counts, whatever sync_on_close says", "[block_store][hsync]") {
  TempDir t;
  auto store = OpenStore({t.path()}, /*sync=*/false);
  auto w = store->CreateTemporary(Blk(30, 1), 512);
  REQUIRE(w.ok());
  REQUIRE((*w)->Sync().ok());  // nothing written yet
  AppendAll(**w, RandomBytes(1000, 1), 1000);
  REQUIRE((*w)->Append(nullptr, 0, nullptr).ok());  // an empty sync packet appends nothing
  REQUIRE((*w)->Sync().ok());
  CHECK(store->sync_count() == 2);
  CHECK((*w)->length() == 1000);
  REQUIRE((*w)->Finalize().ok());
  CHECK(store->sync_count() == 2);  // finalizing with sync_on_close off does not sync
}

TEST_CASE("block store keeps an unfinished replica across a restart, cut to what its checksums verify",
          "[block_store][hsync]") {
  TempDir t;
  const std::string data = RandomBytes(8000, 9);
  const uint32_t bpc = 512;
  const uint64_t synced = 5000;  // 9 whole chunks and 392 bytes of the tenth
  auto write_and_kill = [&](uint64_t id, uint64_t more) {
    auto store = OpenStore({t.path()});
    auto w = store->CreateTemporary(Blk(id, 7), bpc);
    REQUIRE(w.ok());
    AppendAll(**w, data.substr(0, synced), 1000);
    REQUIRE((*w)->Sync().ok());
    if (more > 0) {
      std::vector<uint64_t> sums(4);
      dfs::ComputePacketChecksums(synced, data.data() + synced, more, bpc, sums.data());
      REQUIRE((*w)->Append(data.data() + synced, more, sums.data()).ok());
    }
    (*w)->Suspend();
  };

  SECTION("a write killed after its sync: everything is kept") {
    write_and_kill(40, 0);
    auto store = OpenStore({t.path()});
    auto info = store->Inspect(dfs::BlockId(40));
    CHECK(info.state == dfs::proto::REPLICA_TEMPORARY);
    CHECK(info.gen_stamp == 7);
    CHECK(info.num_bytes == synced);
    CHECK(store->num_recoverable() == 1);
    CHECK(store->num_replicas() == 0);  // not a replica anyone may read or report
    CHECK(RecoverAndRead(*store, 40, 7, synced) == data.substr(0, synced));
  }
  SECTION("killed after writing more data but before its checksums: the synced length") {
    write_and_kill(41, 0);
    std::ofstream(TmpPath(t.path(), 41, 7), std::ios::app) << data.substr(synced, 300);
    auto store = OpenStore({t.path()});
    CHECK(store->Inspect(dfs::BlockId(41)).num_bytes == synced);
    CHECK(fs::file_size(TmpPath(t.path(), 41, 7)) == synced);
    CHECK(RecoverAndRead(*store, 41, 7, synced) == data.substr(0, synced));
  }
  SECTION("killed after the checksums but before the header's tail field: the full length") {
    write_and_kill(42, 300);
    const uint32_t old_tail = synced % bpc;
    {
      std::fstream meta(TmpPath(t.path(), 42, 7) + ".meta", std::ios::in | std::ios::out | std::ios::binary);
      meta.seekp(12);
      meta.write(reinterpret_cast<const char*>(&old_tail), 4);
    }
    auto store = OpenStore({t.path()});
    CHECK(store->Inspect(dfs::BlockId(42)).num_bytes == synced + 300);
    CHECK(RecoverAndRead(*store, 42, 7, synced + 300) == data.substr(0, synced + 300));
  }
  SECTION("a torn last chunk goes back to the chunk boundary; a replica with nothing valid goes") {
    write_and_kill(43, 0);
    {
      std::fstream f(TmpPath(t.path(), 43, 7), std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(4700);
      f.put(static_cast<char>(data[4700] ^ 0x5a));
    }
    // One partial chunk whose stored sum matches nothing.
    std::ofstream(TmpPath(t.path(), 44, 7)) << "partial";
    {
      std::ofstream meta(TmpPath(t.path(), 44, 7) + ".meta", std::ios::binary);
      const uint16_t version = 1, type = 1;
      const uint32_t tail = 7;
      const uint64_t sum = 12345;
      meta.write("DFSM", 4);
      meta.write(reinterpret_cast<const char*>(&version), 2);
      meta.write(reinterpret_cast<const char*>(&type), 2);
      meta.write(reinterpret_cast<const char*>(&bpc), 4);
      meta.write(reinterpret_cast<const char*>(&tail), 4);
      meta.write(reinterpret_cast<const char*>(&sum), 8);
    }
    auto store = OpenStore({t.path()});
    CHECK(store->Inspect(dfs::BlockId(43)).num_bytes == 9 * bpc);
    CHECK(RecoverAndRead(*store, 43, 7, 9 * bpc) == data.substr(0, 9 * bpc));
    CHECK(store->Inspect(dfs::BlockId(44)).state == dfs::proto::REPLICA_NONE);
    CHECK_FALSE(fs::exists(TmpPath(t.path(), 44, 7)));
  }
  SECTION("a temporary superseded by a finalized replica, and a lone file, are deleted") {
    write_and_kill(45, 0);
    {
      auto store = OpenStore({t.path()});
      WriteReplica(*store, 45, 8, data.substr(0, 100));
    }
    write_and_kill(46, 0);
    fs::remove(TmpPath(t.path(), 46, 7) + ".meta");
    auto store = OpenStore({t.path()});
    CHECK(store->num_recoverable() == 0);
    CHECK(fs::is_empty(t.path() + "/tmp"));
    CHECK(ReadReplica(*store, 45, 8) == data.substr(0, 100));
  }
  SECTION("nobody comes back for it: it expires") {
    write_and_kill(47, 0);
    auto store = OpenStore({t.path()});
    CHECK(store->num_recoverable() == 1);
    CHECK(store->ExpireRecoverable(std::chrono::milliseconds(0)) == 1);
    CHECK(fs::is_empty(t.path() + "/tmp"));
  }
}

TEST_CASE("block store serves a replica being written up to what its pipeline acknowledged",
          "[block_store][visible]") {
  TempDir t;
  auto store = OpenStore({t.path()});
  const std::string data = RandomBytes(1000, 4);
  const uint32_t bpc = 128;
  auto w = store->CreateTemporary(Blk(9, 3), bpc);
  REQUIRE(w.ok());

  // Nothing acknowledged yet: an empty replica being written.
  auto vis = store->VisibleLength(Blk(9, 3));
  REQUIRE(vis.ok());
  CHECK(vis->state == dfs::proto::REPLICA_BEING_WRITTEN);
  CHECK(vis->num_bytes == 0);
  {
    auto r = store->OpenForRead(Blk(9, 3));
    REQUIRE(r.ok());
    CHECK((*r)->being_written());
    CHECK((*r)->length() == 0);
  }

  // 300 bytes written and acknowledged (ending inside the third chunk), then
  // 50 more written into that chunk but not yet acknowledged: the stored sum
  // of the third chunk now covers 350 - 256 bytes, the reader's must cover 44.
  AppendAll(**w, data.substr(0, 300), 300);
  (*w)->progress()->Publish(300, (*w)->tail_checksum());
  std::vector<uint64_t> sums(2);
  dfs::ComputePacketChecksums(300, data.data() + 300, 50, bpc, sums.data());
  REQUIRE((*w)->Append(data.data() + 300, 50, sums.data()).ok());
  CHECK((*w)->length() == 350);

  vis = store->VisibleLength(Blk(9, 3));
  REQUIRE(vis.ok());
  CHECK(vis->num_bytes == 300);
  {
    auto r = store->OpenForRead(Blk(9, 3));
    REQUIRE(r.ok());
    CHECK((*r)->length() == 300);
    std::string got(300, '\0');
    REQUIRE((*r)->ReadData(0, got.size(), got.data()).ok());
    CHECK(got == data.substr(0, 300));
    std::vector<uint64_t> stored(3), expect(3);
    REQUIRE((*r)->ReadChecksums(0, 3, stored.data()).ok());
    dfs::ComputeChecksums(got.data(), got.size(), bpc, expect.data());
    CHECK(stored == expect);
    // Whole chunks read alone keep their stored sums.
    REQUIRE((*r)->ReadChecksums(1, 1, stored.data()).ok());
    CHECK(stored[0] == expect[1]);
  }
  // A wrong generation stamp is refused, as for a finalized replica.
  CHECK(store->VisibleLength(Blk(9, 2)).status().code() == dfs::StatusCode::kNotFound);
  CHECK(store->OpenForRead(Blk(9, 4)).status().code() == dfs::StatusCode::kNotFound);

  // Once published, readers get the finalized replica, whole.
  sums.resize(dfs::PacketChunks(350, 650, bpc));
  dfs::ComputePacketChecksums(350, data.data() + 350, 650, bpc, sums.data());
  REQUIRE((*w)->Append(data.data() + 350, 650, sums.data()).ok());
  REQUIRE((*w)->Finalize().ok());
  vis = store->VisibleLength(Blk(9, 3));
  REQUIRE(vis.ok());
  CHECK(vis->state == dfs::proto::REPLICA_FINALIZED);
  CHECK(vis->num_bytes == 1000);
  CHECK(ReadReplica(*store, 9, 3) == data);
  CHECK(store->VisibleLength(Blk(9, 2)).status().code() == dfs::StatusCode::kStale);
}
