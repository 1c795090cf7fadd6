// put/get/cp/cat/tail/getmerge: bytes arrive intact, uploads go through
// <dst>._COPYING_ and a failed one leaves nothing behind.
#include <algorithm>
#include <catch2/catch.hpp>

#include "tests/cli_fake_fs.h"

namespace dfs::cli {
namespace {

using testing::LocalDir;
using testing::ShellHarness;

bool AnyCopying(const testing::FakeFs& fs) {
  auto paths = fs.Paths();
  return std::any_of(paths.begin(), paths.end(),
                     [](const std::string& p) { return p.find("._COPYING_") != std::string::npos; });
}

TEST_CASE("put writes a temporary and renames it into place", "[cli]") {
  LocalDir local;
  local.Write("in.txt", "hello world\n");
  ShellHarness h;
  auto r = h.Run({"put", local / "in.txt", "up.txt"});
  CHECK(r.rc == 0);
  CHECK(r.out.empty());
  CHECK(r.err.empty());
  CHECK(h.fs->At("/user/alice/up.txt").data == "hello world\n");
  // A relative destination makes sure the home directory exists first.
  CHECK(h.fs->log == std::vector<std::string>{"mkdirs /user/alice", "create /user/alice/up.txt._COPYING_",
                                              "rename /user/alice/up.txt._COPYING_ /user/alice/up.txt"});
  CHECK_FALSE(h.fs->last_create.create_parent);
  CHECK(h.fs->last_create.replication == 3);
  CHECK(h.fs->last_create.block_size == 128 << 20);
  CHECK_FALSE(AnyCopying(*h.fs));
}

TEST_CASE("put refuses an existing file without -f and keeps it", "[cli]") {
  LocalDir local;
  local.Write("in.txt", "new");
  ShellHarness h;
  h.fs->AddFile("/dst", "original");
  auto r = h.Run({"put", local / "in.txt", "/dst"});
  CHECK(r.rc == 1);
  CHECK(r.err == "dfs: '/dst': File exists\n");
  CHECK(h.fs->At("/dst").data == "original");
  CHECK(h.fs->log.empty());
  r = h.Run({"put", "-f", local / "in.txt", "/dst"});
  CHECK(r.rc == 0);
  CHECK(h.fs->At("/dst").data == "new");
  CHECK(h.fs->log.back() == "rename /dst._COPYING_ /dst");
  CHECK_FALSE(AnyCopying(*h.fs));
}

TEST_CASE("a failed put deletes its temporary and leaves the original", "[cli]") {
  LocalDir local;
  local.Write("in.txt", std::string(3 << 20, 'z'));
  ShellHarness h;
  h.fs->AddFile("/dst", "original");
  h.fs->fail_write_after = 1 << 20;
  auto r = h.Run({"put", "-f", local / "in.txt", "/dst"});
  CHECK(r.rc == 1);
  CHECK(r.err == "dfs: '/dst': all DataNodes in the pipeline failed\n");
  CHECK(h.fs->At("/dst").data == "original");
  CHECK_FALSE(AnyCopying(*h.fs));
  CHECK(h.fs->log.back() == "delete /dst._COPYING_");
  r = h.Run({"put", local / "in.txt", "/fresh"});
  CHECK(r.rc == 1);
  CHECK_FALSE(h.fs->Exists("/fresh"));
  CHECK_FALSE(AnyCopying(*h.fs));
}

TEST_CASE("put: several sources, directories, stdin, -d", "[cli]") {
  LocalDir local;
  local.Write("a.txt", "A");
  local.Write("b.txt", "B");
  local.Write("tree/x.txt", "X");
  local.Write("tree/sub/y.txt", "Y");
  ShellHarness h;
  h.fs->AddDir("/in");
  CHECK(h.Run({"put", local / "a.txt", local / "b.txt", "/in"}).rc == 0);
  CHECK(h.fs->At("/in/a.txt").data == "A");
  CHECK(h.fs->At("/in/b.txt").data == "B");

  CHECK(h.Run({"copyFromLocal", local / "tree", "/tree"}).rc == 0);
  CHECK(h.fs->At("/tree/x.txt").data == "X");
  CHECK(h.fs->At("/tree/sub/y.txt").data == "Y");
  CHECK(h.Run({"put", local / "tree/", "/in"}).rc == 0);  // into an existing directory
  CHECK(h.fs->At("/in/tree/sub/y.txt").data == "Y");

  auto r = h.Run({"put", local / "a.txt", local / "b.txt", "/nodir"});
  CHECK(r.rc == 1);
  CHECK(r.err == "dfs: '/nodir': No such file or directory\n");
  r = h.Run({"put", local / "missing.txt", "/m"});
  CHECK(r.rc == 1);
  CHECK(r.err == "dfs: '" + (local / "missing.txt") + "': No such file or directory\n");
  r = h.Run({"put", local / "a.txt", "/no/parent/a"});
  CHECK(r.err == "dfs: '/no/parent/a': No such file or directory\n");

  h.stdin_data = "from stdin";
  CHECK(h.Run({"put", "-", "/s"}).rc == 0);
  CHECK(h.fs->At("/s").data == "from stdin");
  CHECK(h.Run({"put", "-", "/in"}).rc == 1);
  CHECK(h.Run({"put", "-", local / "a.txt", "/in"}).rc == 2);

  CHECK(h.Run({"put", local / "b.txt"}).rc == 0);  // no destination: the home directory
  CHECK(h.fs->At("/user/alice/b.txt").data == "B");

  h.fs->log.clear();
  CHECK(h.Run({"put", "-d", local / "a.txt", "/direct"}).rc == 0);
  CHECK(h.fs->log == std::vector<std::string>{"create /direct"});
}

TEST_CASE("put and get draw a progress bar for big files on a terminal", "[cli]") {
  LocalDir local;
  local.Write("big", std::string(17 << 20, 'b'));
  ShellHarness h;
  h.progress = true;
  auto r = h.Run({"put", local / "big", "/big"});
  CHECK(r.rc == 0);
  CHECK(r.err.find("MB/s") != std::string::npos);
  CHECK(r.err.find("100%") != std::string::npos);
  CHECK(r.err.back() == '\r');  // erased at the end
  r = h.Run({"put", local / "big", "/big2"});
  h.progress = false;
  r = h.Run({"get", "/big", local / "big.copy"});
  CHECK(r.err.empty());
  CHECK(local.Read("big.copy").size() == 17u << 20);
}

TEST_CASE("get copies files and directories to the local disk", "[cli]") {
  LocalDir local;
  ShellHarness h;
  h.fs->AddFile("/user/alice/f", "content");
  h.fs->AddDir("/user/alice/d");
  h.fs->AddFile("/user/alice/d/g", "gee");
  CHECK(h.Run({"get", "f", local / "f.out"}).rc == 0);
  CHECK(local.Read("f.out") == "content");
  auto r = h.Run({"get", "f", local / "f.out"});
  CHECK(r.rc == 1);
  CHECK(r.err == "dfs: '" + (local / "f.out") + "': File exists\n");
  h.fs->At("/user/alice/f").data = "changed";
  CHECK(h.Run({"copyToLocal", "-f", "f", local / "f.out"}).rc == 0);
  CHECK(local.Read("f.out") == "changed");
  CHECK(h.Run({"get", "d", "f", local.path()}).rc == 0);
  {
    // No destination: the working directory.
    const auto cwd = std::filesystem::current_path();
    std::filesystem::create_directory(local / "cwd");
    std::filesystem::current_path(local / "cwd");
    CHECK(h.Run({"get", "f"}).rc == 0);
    std::filesystem::current_path(cwd);
    CHECK(local.Read("cwd/f") == "changed");
  }
  CHECK(local.Read("d/g") == "gee");
  CHECK(local.Read("f") == "changed");
  CHECK_FALSE(std::filesystem::exists(local / "f._COPYING_"));
  r = h.Run({"get", "/nope", local / "x"});
  CHECK(r.err == "dfs: '/nope': No such file or directory\n");
  CHECK_FALSE(std::filesystem::exists(local / "x"));
}

TEST_CASE("cp copies within dfs", "[cli]") {
  ShellHarness h;
  h.fs->AddFile("/user/alice/f", "data");
  h.fs->AddDir("/user/alice/d");
  h.fs->AddFile("/user/alice/d/g", "gee");
  CHECK(h.Run({"cp", "f", "f2"}).rc == 0);
  CHECK(h.fs->At("/user/alice/f2").data == "data");
  auto r = h.Run({"cp", "f", "f2"});
  CHECK(r.err == "dfs: 'f2': File exists\n");
  CHECK(h.Run({"cp", "-f", "d/g", "f2"}).rc == 0);
  CHECK(h.fs->At("/user/alice/f2").data == "gee");
  CHECK(h.Run({"cp", "d", "d2"}).rc == 0);
  CHECK(h.fs->At("/user/alice/d2/g").data == "gee");
  CHECK(h.Run({"cp", "f", "d"}).rc == 0);
  CHECK(h.fs->At("/user/alice/d/f").data == "data");
  r = h.Run({"cp", "d", "d/inner"});
  CHECK(r.err == "dfs: 'd' to 'd/inner': is a subdirectory of itself\n");
  CHECK_FALSE(AnyCopying(*h.fs));
}

TEST_CASE("tail prints the last kilobyte and follows growth with -f", "[cli]") {
  ShellHarness h;
  std::string data;
  for (int i = 0; i < 300; ++i) data += "line " + std::to_string(i) + "\n";
  h.fs->AddFile("/log", data);
  auto r = h.Run({"tail", "/log"});
  CHECK(r.rc == 0);
  CHECK(r.out == data.substr(data.size() - 1024));
  h.fs->AddFile("/small", "tiny\n");
  CHECK(h.Run({"tail", "/small"}).out == "tiny\n");

  int polls = 0;
  h.on_sleep = [&] {
    if (++polls == 1) h.fs->At("/small").data += "more\n";
    return polls < 3;  // the third poll is a Ctrl-C
  };
  r = h.Run({"tail", "-f", "/small"});
  CHECK(r.rc == 0);
  CHECK(r.out == "tiny\nmore\n");
  CHECK(h.sleeps == 3);
}

TEST_CASE("getmerge concatenates a directory's files", "[cli]") {
  LocalDir local;
  ShellHarness h;
  h.fs->AddDir("/out");
  h.fs->AddFile("/out/part-00000", "a\tb\n");
  h.fs->AddFile("/out/part-00001", "c\td");
  h.fs->AddFile("/out/_SUCCESS", "");
  h.fs->AddDir("/out/sub");
  h.fs->AddFile("/out/sub/ignored", "zzz");
  CHECK(h.Run({"getmerge", "/out", local / "m"}).rc == 0);
  CHECK(local.Read("m") == "a\tb\nc\td");
  CHECK(h.Run({"getmerge", "-nl", "/out/part-*", local / "m"}).rc == 0);
  CHECK(local.Read("m") == "a\tb\n\nc\td\n");
  CHECK(h.Run({"getmerge", "-nl", "-skip-empty-file", "/out", local / "m"}).rc == 0);
  CHECK(local.Read("m") == "a\tb\n\nc\td\n");
  CHECK(h.Run({"getmerge", "-nl", "/out", local / "m"}).rc == 0);
  CHECK(local.Read("m") == "\na\tb\n\nc\td\n");
}

}  // namespace
}  // namespace dfs::cli
