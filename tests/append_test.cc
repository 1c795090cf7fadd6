// FileSystem::Append on an in-process MiniCluster: appended bytes go into new
// blocks (so files get partial blocks in the middle), reads, block locations
// and lease recovery cope with that, concurrent writers are refused, and a
// NameNode restart keeps it all.
#include <random>
#include <set>
#include <sstream>

#include <catch2/catch.hpp>
#include <xxhash.h>

#include "client/cli/shell.h"
#include "tests/mini_cluster.h"
#include "tests/test_util.h"

using namespace dfs;
using namespace dfs::test;

namespace {

constexpr uint64_t kBlock = 1 << 20;  // the MiniCluster's block size

Status AppendBytes(client::FileSystem& fs, const std::string& path, const std::string& data) {
  DFS_ASSIGN_OR_RETURN(auto out, fs.Append(path));
  DFS_RETURN_IF_ERROR(out->Write(data.data(), data.size()));
  return out->Close();
}

// The file's block lengths, in order, checking that the offsets add up.
std::vector<uint64_t> BlockLengths(client::FileSystem& fs, const std::string& path) {
  auto blocks = fs.GetBlockLocations(path);
  REQUIRE_OK(blocks.status());
  std::vector<uint64_t> out;
  uint64_t offset = 0;
  for (const auto& b : *blocks) {
    CHECK(b.offset == offset);
    offset += b.length;
    out.push_back(b.length);
  }
  return out;
}

// Sequential and random reads both return `want`.
void CheckContent(client::FileSystem& fs, const std::string& path, const std::string& want) {
  auto info = fs.GetFileInfo(path);
  REQUIRE_OK(info.status());
  CHECK(info->length == want.size());
  CHECK_FALSE(info->under_construction);
  auto got = ReadFile(fs, path);
  REQUIRE_OK(got.status());
  REQUIRE(got->size() == want.size());
  CHECK(XXH3_64bits(got->data(), got->size()) == XXH3_64bits(want.data(), want.size()));
  auto in = fs.Open(path);
  REQUIRE_OK(in.status());
  std::mt19937 rng(7);
  for (int i = 0; i < 30 && !want.empty(); ++i) {
    const uint64_t off = rng() % want.size();
    const size_t len = std::min<size_t>(rng() % (3 * kBlock / 2), want.size() - off);
    std::string buf(len, '\0');
    auto r = (*in)->PRead(off, buf.data(), len);
    REQUIRE_OK(r.status());
    REQUIRE(*r == len);
    REQUIRE(buf == want.substr(off, len));
  }
}

MiniCluster::Options ShortLeases() {
  MiniCluster::Options o;
  o.conf = {{"dfs.heartbeat.interval", "200ms"},
            {"dfs.namenode.lease.soft-limit", "1s"},
            {"dfs.namenode.lease.hard-limit", "2s"}};
  return o;
}

struct ShellRun {
  int rc;
  std::string out, err;
};

// Runs the dfs shell against the cluster.
ShellRun Dfs(MiniCluster& mc, std::vector<std::string> args) {
  std::ostringstream out, err;
  std::istringstream in;
  cli::ShellEnv env;
  env.connect = [&](const Config&, const std::string&) -> Result<std::shared_ptr<client::FileSystem>> {
    return std::shared_ptr<client::FileSystem>(mc.NewClient());
  };
  env.out = &out;
  env.err = &err;
  env.in = &in;
  int rc = cli::RunShell(std::move(args), env);
  return {rc, out.str(), err.str()};
}

bool WaitForClose(client::FileSystem& fs, const std::string& path) {
  return WaitFor([&] {
    auto i = fs.GetFileInfo(path);
    return i.ok() && !i->under_construction;
  });
}

}  // namespace

TEST_CASE("append: twice to a multi-block file, read back byte-identical, each append in new blocks",
          "[cluster][append]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  auto fs = (*mc)->NewClient();
  std::string want = RandomBytes(2 * kBlock + 300000, 1);  // 1 MiB, 1 MiB, 300000
  REQUIRE_OK(WriteFile(*fs, "/grow.bin", want));

  const std::string first = RandomBytes(kBlock + 123457, 2);  // a full block and a partial one
  {
    auto out = fs->Append("/grow.bin");
    REQUIRE_OK(out.status());
    CHECK((*out)->Position() == want.size());
    CHECK((*out)->path() == "/grow.bin");
    REQUIRE_OK((*out)->Write(first.data(), first.size()));
    CHECK((*out)->Position() == want.size() + first.size());
    REQUIRE_OK((*out)->Close());
  }
  want += first;
  CheckContent(*fs, "/grow.bin", want);
  CHECK(BlockLengths(*fs, "/grow.bin") == std::vector<uint64_t>{kBlock, kBlock, 300000, kBlock, 123457});

  // Another client, another append, in small writes with a flush and a sync.
  auto other = (*mc)->NewClient();
  const std::string second = RandomBytes(700001, 3);
  {
    auto out = other->Append("/grow.bin");
    REQUIRE_OK(out.status());
    REQUIRE_OK((*out)->Write(second.data(), 1000));
    REQUIRE_OK((*out)->Flush());
    REQUIRE_OK((*out)->Write(second.data() + 1000, 200000));
    REQUIRE_OK((*out)->Sync());
    REQUIRE_OK((*out)->Write(second.data() + 201000, second.size() - 201000));
    REQUIRE_OK((*out)->Close());
  }
  want += second;
  CheckContent(*fs, "/grow.bin", want);
  CHECK(BlockLengths(*fs, "/grow.bin") ==
        std::vector<uint64_t>{kBlock, kBlock, 300000, kBlock, 123457, 700001});
  // Every block, old and new, gets its three replicas.
  CHECK(WaitFor([&] {
    auto blocks = fs->GetBlockLocations("/grow.bin");
    if (!blocks.ok()) return false;
    for (const auto& b : *blocks) {
      std::set<std::string> nodes;
      for (const auto& r : b.replicas) nodes.insert(r.uuid());
      if (nodes.size() != 3) return false;
    }
    return true;
  }));
  // A range of the block list (what a reader or a streaming split asks for)
  // starts at the right block, though the blocks before it are not full.
  auto middle = fs->GetBlockLocations("/grow.bin", 2 * kBlock + 300000 + 10, 5);
  REQUIRE_OK(middle.status());
  REQUIRE(middle->size() == 1);
  CHECK(middle->front().offset == 2 * kBlock + 300000);
  CHECK(middle->front().length == kBlock);
}

TEST_CASE("append: zero bytes, to an empty file, and Sync before anything", "[cluster][append]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  auto fs = (*mc)->NewClient();
  const std::string data = RandomBytes(kBlock + 5000, 4);
  REQUIRE_OK(WriteFile(*fs, "/f", data));
  const auto before = BlockLengths(*fs, "/f");
  {
    auto out = fs->Append("/f");
    REQUIRE_OK(out.status());
    REQUIRE_OK((*out)->Sync());
    REQUIRE_OK((*out)->Flush());
    REQUIRE_OK((*out)->Close());
  }
  CheckContent(*fs, "/f", data);
  CHECK(BlockLengths(*fs, "/f") == before);
  // Free again for the next writer.
  REQUIRE_OK(AppendBytes(*fs, "/f", "tail"));
  CheckContent(*fs, "/f", data + "tail");
  CHECK(BlockLengths(*fs, "/f") == std::vector<uint64_t>{kBlock, 5000, 4});

  // An empty file (no block at all), appended to.
  REQUIRE_OK(WriteFile(*fs, "/empty", ""));
  REQUIRE_OK(AppendBytes(*fs, "/empty", ""));
  CheckContent(*fs, "/empty", "");
  const std::string some = RandomBytes(kBlock + 1, 5);
  REQUIRE_OK(AppendBytes(*fs, "/empty", some));
  CheckContent(*fs, "/empty", some);
  CHECK(BlockLengths(*fs, "/empty") == std::vector<uint64_t>{kBlock, 1});
}

TEST_CASE("append: refused with LeaseConflict while another client writes the file", "[cluster][append]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  auto a = (*mc)->NewClient();
  auto b = (*mc)->NewClient();
  auto writing = a->Create("/busy");
  REQUIRE_OK(writing.status());
  REQUIRE_OK((*writing)->Write("abc", 3));
  auto refused = b->Append("/busy");
  CHECK_CODE(refused.status(), kLeaseConflict);
  CHECK(refused.status().message().find("/busy is being written by another client") != std::string::npos);
  CHECK(refused.status().message().find("retry once its lease expires") != std::string::npos);
  // The writer itself cannot append to what it has open either.
  auto twice = a->Append("/busy");
  CHECK_CODE(twice.status(), kLeaseConflict);
  CHECK(twice.status().message().find("already open for writing by this client") != std::string::npos);
  REQUIRE_OK((*writing)->Close());

  // Two appenders: the second waits its turn.
  auto first = b->Append("/busy");
  REQUIRE_OK(first.status());
  CHECK_CODE(a->Append("/busy").status(), kLeaseConflict);
  client::CreateOptions over;
  over.overwrite = true;
  CHECK_CODE(a->Create("/busy", over).status(), kLeaseConflict);
  REQUIRE_OK((*first)->Write("def", 3));
  REQUIRE_OK((*first)->Close());
  REQUIRE_OK(AppendBytes(*a, "/busy", "ghi"));
  auto got = ReadFile(*a, "/busy");
  REQUIRE_OK(got.status());
  CHECK(*got == "abcdefghi");
}

TEST_CASE("append: clear errors for a directory, a missing file, the root and safe mode", "[cluster][append]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  auto fs = (*mc)->NewClient();
  REQUIRE_OK(fs->Mkdirs("/dir"));
  auto dir = fs->Append("/dir");
  CHECK_CODE(dir.status(), kIsADirectory);
  CHECK(dir.status().message() == "'/dir' is a directory; append needs a file");
  CHECK_CODE(fs->Append("/").status(), kIsADirectory);
  auto missing = fs->Append("/dir/missing");
  CHECK_CODE(missing.status(), kNotFound);
  CHECK(missing.status().message() == "/dir/missing: No such file or directory");
  CHECK_CODE(fs->Append("/dir/missing/below").status(), kNotFound);

  REQUIRE_OK(WriteFile(*fs, "/dir/f", "x"));
  REQUIRE_OK(fs->SafeMode(proto::SafeModeRequest::ENTER).status());
  auto safe = fs->Append("/dir/f");
  CHECK_CODE(safe.status(), kSafeMode);
  CHECK(safe.status().message().find("safe mode") != std::string::npos);
  REQUIRE_OK(fs->SafeMode(proto::SafeModeRequest::LEAVE).status());
  REQUIRE_OK(AppendBytes(*fs, "/dir/f", "y"));
  auto got = ReadFile(*fs, "/dir/f");
  REQUIRE_OK(got.status());
  CHECK(*got == "xy");
}

TEST_CASE("append: a NameNode restart after appends keeps every file readable and appendable", "[cluster][append]") {
  auto mc = MiniCluster::Start();
  REQUIRE_OK(mc.status());
  std::string want = RandomBytes(kBlock + 4096, 6);
  {
    auto fs = (*mc)->NewClient();
    REQUIRE_OK(WriteFile(*fs, "/r.bin", want));
    const std::string more = RandomBytes(kBlock + 777, 7);
    REQUIRE_OK(AppendBytes(*fs, "/r.bin", more));
    want += more;
    REQUIRE_OK(AppendBytes(*fs, "/r.bin", ""));
  }
  REQUIRE_OK((*mc)->RestartNameNode());
  REQUIRE_OK((*mc)->WaitForDatanodes(3));
  auto fs = (*mc)->NewClient();
  CheckContent(*fs, "/r.bin", want);
  CHECK(BlockLengths(*fs, "/r.bin") == std::vector<uint64_t>{kBlock, 4096, kBlock, 777});
  REQUIRE_OK(AppendBytes(*fs, "/r.bin", "end"));
  want += "end";
  CheckContent(*fs, "/r.bin", want);
}

TEST_CASE("append: lease recovery closes an appended file whose writer vanished, keeping the old blocks",
          "[cluster][append][recovery]") {
  auto mc = MiniCluster::Start(ShortLeases());
  REQUIRE_OK(mc.status());
  auto fs = (*mc)->NewClient();
  const std::string old_data = RandomBytes(kBlock + 300000, 8);
  REQUIRE_OK(WriteFile(*fs, "/v.bin", old_data));
  const std::string more = RandomBytes(kBlock + 50000, 9);
  {
    auto writer = (*mc)->NewClient();
    auto out = writer->Append("/v.bin");
    REQUIRE_OK(out.status());
    REQUIRE_OK((*out)->Write(more.data(), more.size()));
    REQUIRE_OK((*out)->Flush());
    // Gone without closing.
  }
  CHECK(WaitForClose(*fs, "/v.bin"));
  CheckContent(*fs, "/v.bin", old_data + more);
  CHECK(BlockLengths(*fs, "/v.bin") == std::vector<uint64_t>{kBlock, 300000, kBlock, 50000});

  // An appender that vanished before writing a byte: the file closes as it was.
  {
    auto writer = (*mc)->NewClient();
    auto out = writer->Append("/v.bin");
    REQUIRE_OK(out.status());
  }
  CHECK(WaitForClose(*fs, "/v.bin"));
  CheckContent(*fs, "/v.bin", old_data + more);
  REQUIRE_OK(AppendBytes(*fs, "/v.bin", "after"));
  CheckContent(*fs, "/v.bin", old_data + more + "after");
}

TEST_CASE("append: a writer gone before writing anything is taken over after the soft limit",
          "[cluster][append][recovery]") {
  MiniCluster::Options o = ShortLeases();
  o.conf.push_back({"dfs.namenode.lease.hard-limit", "10m"});  // no lease recovery during the test
  auto mc = MiniCluster::Start(o);
  REQUIRE_OK(mc.status());
  auto fs = (*mc)->NewClient();
  REQUIRE_OK(WriteFile(*fs, "/t", "old"));
  {
    auto writer = (*mc)->NewClient();
    REQUIRE_OK(writer->Append("/t").status());
  }
  // Nothing of the vanished writer is half-written: once its lease is stale
  // (soft limit, 1 s) the file is taken over at once.
  REQUIRE(WaitFor([&] { return AppendBytes(*fs, "/t", "new").ok(); }, std::chrono::seconds(10)));
  auto got = ReadFile(*fs, "/t");
  REQUIRE_OK(got.status());
  CHECK(*got == "oldnew");
}

TEST_CASE("append: fsck and a streaming job cut at the real block boundaries of a file with partial blocks",
          "[cluster][append][streaming]") {
  MiniCluster::Options o;
  o.conf = {{"dfs.datanode.task.slots", "2"}, {"dfs.heartbeat.interval", "1s"}};
  auto mc = MiniCluster::Start(o);
  REQUIRE_OK(mc.status());
  auto fs = (*mc)->NewClient();
  // Lines of varied lengths; each piece ends inside a line, so lines straddle
  // every block boundary, including the ones inside partial blocks.
  std::string text;
  for (int i = 0; text.size() < 3 * kBlock; ++i) {
    text += std::string(static_cast<size_t>(1 + (i * 7919) % 3001), static_cast<char>('a' + i % 26)) + "\n";
  }
  text += "last line without newline";
  const size_t cut1 = kBlock + 200001, cut2 = cut1 + 500003;
  REQUIRE_OK(WriteFile(*fs, "/lines.txt", text.substr(0, cut1)));
  REQUIRE_OK(AppendBytes(*fs, "/lines.txt", text.substr(cut1, cut2 - cut1)));
  REQUIRE_OK(AppendBytes(*fs, "/lines.txt", text.substr(cut2)));
  const auto lengths = BlockLengths(*fs, "/lines.txt");
  REQUIRE(lengths.size() == 5);  // 1 MiB, 200001, 500003, 1 MiB, the rest

  auto fsck = Dfs(**mc, {"fsck", "/lines.txt", "-files", "-blocks"});
  INFO(fsck.out << fsck.err);
  CHECK(fsck.rc == 0);
  CHECK(fsck.out.find("5 block(s):") != std::string::npos);
  CHECK(fsck.out.find("is HEALTHY") != std::string::npos);

  auto r = Dfs(**mc, {"streaming", "-input", "/lines.txt", "-output", "/copy", "-mapper", "cat", "-numReduceTasks",
                      "0"});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  auto list = fs->ListAll("/copy");
  REQUIRE_OK(list.status());
  std::string all;
  int parts = 0;
  for (const auto& f : *list) {
    if (f.name.rfind("part-", 0) != 0) continue;
    auto part = ReadFile(*fs, f.path);
    REQUIRE_OK(part.status());
    all += *part;
    ++parts;
  }
  CHECK(parts == 5);  // one split per block, in file order
  CHECK(all == text + "\n");
}
