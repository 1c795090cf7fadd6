// The shell's dispatch, generic options, flag parsing, globbing, error
// messages and exit codes, and the namespace commands.
#include <catch2/catch.hpp>

#include "client/cli/flags.h"
#include "client/cli/glob.h"
#include "tests/cli_fake_fs.h"

namespace dfs::cli {
namespace {

using testing::ShellHarness;

TEST_CASE("commands work with and without a leading dash", "[cli]") {
  ShellHarness h;
  h.fs->AddFile("/user/alice/f", "hello");
  auto a = h.Run({"ls", "/user/alice"});
  auto b = h.Run({"-ls", "/user/alice"});
  CHECK(a.rc == 0);
  CHECK(a.out == b.out);
  CHECK(h.Run({"-cat", "f"}).out == "hello");
  CHECK(h.Run({"copyToLocal", "--", "/nope", "/tmp"}).rc == 1);
}

TEST_CASE("generic options: -D, -fs, --namenode, -conf", "[cli]") {
  testing::LocalDir local;
  local.Write("in.txt", "data");
  ShellHarness h;
  auto r = h.Run({"-D", "dfs.blocksize=4m", "-D", "dfs.replication=2", "put", local / "in.txt", "/f"});
  CHECK(r.rc == 0);
  CHECK(r.err.empty());
  CHECK(h.fs->last_create.block_size == 4 << 20);
  CHECK(h.fs->last_create.replication == 2);
  CHECK(h.fs->At("/f").info.replication == 2);

  h.Run({"-Ddfs.replication=1", "-fs", "nn.example:9000", "put", local / "in.txt", "/g"});
  CHECK(h.fs->last_create.replication == 1);
  CHECK(h.namenode_seen == "nn.example:9000");
  h.Run({"--namenode=other:8020", "ls", "/"});
  CHECK(h.namenode_seen == "other:8020");

  local.Write("dfs.conf", "dfs.replication = 5\n");
  h.Run({"--conf", local / "dfs.conf", "put", local / "in.txt", "/h"});
  CHECK(h.fs->last_create.replication == 5);
  h.Run({"-conf", local / "dfs.conf", "-D", "dfs.replication=4", "put", local / "in.txt", "/i"});
  CHECK(h.fs->last_create.replication == 4);  // -D wins over the file

  auto bad = h.Run({"-D", "dfs.replication", "ls"});
  CHECK(bad.rc == 2);
  CHECK(bad.err.find("-D expects key=value") != std::string::npos);
  auto unknown = h.Run({"-D", "no.such.key=1", "ls"});
  CHECK(unknown.rc == 1);
  CHECK(unknown.err.rfind("dfs: ", 0) == 0);
}

TEST_CASE("usage errors exit 2 with a usage line", "[cli]") {
  ShellHarness h;
  auto r = h.Run({"ls", "-x", "/"});
  CHECK(r.rc == 2);
  CHECK(r.err == "dfs ls: Illegal option -x\nUsage: dfs ls [-d] [-h] [-R] [<path> ...]\n");
  r = h.Run({"mkdir"});
  CHECK(r.rc == 2);
  CHECK(r.err.find("Not enough arguments: expected 1 but got 0") != std::string::npos);
  r = h.Run({"frobnicate"});
  CHECK(r.rc == 2);
  CHECK(r.err == "dfs: Unknown command 'frobnicate'\nRun 'dfs help' for the list of commands.\n");
  CHECK_FALSE(h.connected);  // usage errors never contact the cluster
  r = h.Run({});
  CHECK(r.rc == 2);
  CHECK(h.Run({"test", "/"}).rc == 2);
  CHECK(h.Run({"setrep", "zero", "/"}).rc == 2);
  CHECK(h.Run({"chmod", "u+x", "/"}).rc == 2);
  CHECK(h.Run({"tail", "/a", "/b"}).rc == 2);
}

TEST_CASE("help and usage", "[cli]") {
  ShellHarness h;
  auto r = h.Run({"help", "ls"});
  CHECK(r.rc == 0);
  CHECK(r.out.find("Usage: dfs ls [-d] [-h] [-R] [<path> ...]") != std::string::npos);
  r = h.Run({"-help"});
  CHECK(r.rc == 0);
  CHECK(r.out.find("  setrep [-R] [-w] <rep> <path> ...") != std::string::npos);
  CHECK(h.Run({"--help"}).rc == 0);
  r = h.Run({"usage", "copyFromLocal"});
  CHECK(r.out == "Usage: dfs put [-f] [-p] [-d] <localsrc> ... [<dst>]\n");
  CHECK_FALSE(h.connected);
}

TEST_CASE("errors name the path and the commands go on", "[cli]") {
  ShellHarness h;
  h.fs->AddFile("/user/alice/f", "x");
  h.fs->AddDir("/user/alice/d");
  h.fs->AddFile("/user/alice/d/g", "y");
  auto r = h.Run({"ls", "/nope", "f"});
  CHECK(r.rc == 1);
  CHECK(r.err == "dfs: '/nope': No such file or directory\n");
  CHECK(r.out.find(" f\n") != std::string::npos);
  r = h.Run({"cat", "d"});
  CHECK(r.err == "dfs: 'd': Is a directory\n");
  r = h.Run({"mkdir", "d"});
  CHECK(r.err == "dfs: 'd': File exists\n");
  CHECK(r.rc == 1);
  CHECK(h.Run({"mkdir", "-p", "d"}).rc == 0);
  r = h.Run({"mkdir", "f"});
  CHECK(r.err == "dfs: 'f': Not a directory\n");
  r = h.Run({"mkdir", "/a/b/c"});
  CHECK(r.err == "dfs: '/a/b/c': No such file or directory\n");
  CHECK(h.Run({"mkdir", "-p", "/a/b/c"}).rc == 0);
  CHECK(h.fs->Exists("/a/b/c"));
  r = h.Run({"rm", "d"});
  CHECK(r.err == "dfs: 'd': Is a directory\n");
  r = h.Run({"rmdir", "d"});
  CHECK(r.err == "dfs: 'd': Directory is not empty\n");
  CHECK(h.fs->Exists("/user/alice/d/g"));
}

TEST_CASE("connection failures add a hint once", "[cli]") {
  testing::FakeFs fs;
  std::ostringstream out, err;
  std::istringstream in;
  Context ctx(&fs, out, err, in);
  ctx.Error("/x", Status::Unavailable("cannot connect to the NameNode at 127.0.0.1:8020: Connection refused"));
  ctx.Error("/y", Status::Unavailable("cannot connect to the NameNode at 127.0.0.1:8020: Connection refused"));
  CHECK(ctx.ExitCode() == 1);
  CHECK(err.str().find("dfs: '/x': cannot connect to the NameNode at 127.0.0.1:8020: Connection refused\n") == 0);
  const std::string hint = "dfs: hint: is the NameNode running at 127.0.0.1:8020?";
  CHECK(err.str().find(hint) != std::string::npos);
  CHECK(err.str().find(hint) == err.str().rfind(hint));
  CHECK(ErrorText(Status::NotEmpty("x")) == "Directory is not empty");
  CHECK(ErrorText(Status::PermissionDenied("Permission denied: user=bob, access=WRITE, inode=/x")) ==
        "Permission denied: user=bob, access=WRITE, inode=/x");
}

TEST_CASE("flags: Hadoop spellings, bundles, -- and -", "[cli]") {
  std::vector<std::string> args = {"-Rh", "-skipTrash", "/x", "-f"};
  auto f = Flags::Parse("R h f skipTrash", &args);
  REQUIRE(f.ok());
  CHECK(f->Has("R"));
  CHECK(f->Has("h"));
  CHECK(f->Has("skipTrash"));
  CHECK_FALSE(f->Has("f"));  // options end at the first operand
  CHECK(args == std::vector<std::string>{"/x", "-f"});
  args = {"--", "-weird"};
  REQUIRE(Flags::Parse("f", &args).ok());
  CHECK(args == std::vector<std::string>{"-weird"});
  args = {"-", "/dst"};
  REQUIRE(Flags::Parse("f", &args).ok());
  CHECK(args.size() == 2);
  args = {"-Rx"};
  auto bad = Flags::Parse("R h", &args);
  CHECK(bad.status().message() == "Illegal option -Rx");
}

TEST_CASE("globs expand client-side", "[cli]") {
  ShellHarness h;
  h.fs->AddDir("/user/alice/data");
  h.fs->AddFile("/user/alice/data/part-0", "a");
  h.fs->AddFile("/user/alice/data/part-1", "b");
  h.fs->AddFile("/user/alice/data/part-x", "c");
  h.fs->AddFile("/user/alice/data/other", "d");
  h.fs->AddFile("/user/alice/data/a*b", "e");
  h.fs->AddDir("/user/bob");
  h.fs->AddDir("/user/bob/data");
  h.fs->AddFile("/user/bob/data/part-0", "z");

  CHECK(h.Run({"cat", "data/part-*"}).out == "abc");
  CHECK(h.Run({"cat", "data/part-[01]"}).out == "ab");
  CHECK(h.Run({"cat", "/user/alice/data/part-?"}).out == "abc");
  CHECK(h.Run({"cat", "/user/*/data/part-0"}).out == "az");
  CHECK(h.Run({"cat", "data/a\\*b"}).out == "e");
  auto r = h.Run({"ls", "data/part-[0-1]"});
  CHECK(r.out.find(" data/part-0\n") != std::string::npos);
  CHECK(r.out.find(" data/part-1\n") != std::string::npos);
  r = h.Run({"cat", "data/zz*", "data/other"});
  CHECK(r.rc == 1);
  CHECK(r.err == "dfs: 'data/zz*': No such file or directory\n");
  CHECK(r.out == "d");
  r = h.Run({"ls", "/user/*/data/nothing"});
  CHECK(r.rc == 1);

  auto g = ExpandGlob(*h.fs, "/user/*");
  REQUIRE(g.ok());
  REQUIRE(g->size() == 2);
  CHECK((*g)[0].path == "/user/alice");
  CHECK((*g)[1].display == "/user/bob");
  CHECK(HasGlob("a[bc]"));
  CHECK_FALSE(HasGlob("a\\*"));
}

TEST_CASE("rm, rm -r, rm -f and -skipTrash", "[cli]") {
  ShellHarness h;
  h.fs->AddFile("/user/alice/f", "x");
  h.fs->AddDir("/user/alice/d");
  h.fs->AddFile("/user/alice/d/g", "y");
  auto r = h.Run({"rm", "f"});
  CHECK(r.rc == 0);
  CHECK(r.out == "Deleted f\n");
  CHECK_FALSE(h.fs->Exists("/user/alice/f"));
  r = h.Run({"rm", "-r", "-skipTrash", "/user/alice/d"});
  CHECK(r.rc == 0);
  CHECK(r.out == "Deleted /user/alice/d\n");
  CHECK_FALSE(h.fs->Exists("/user/alice/d/g"));
  r = h.Run({"rm", "/missing"});
  CHECK(r.rc == 1);
  CHECK(r.err == "dfs: '/missing': No such file or directory\n");
  r = h.Run({"rm", "-f", "/missing", "/gone*"});
  CHECK(r.rc == 0);
  CHECK(r.err.empty());
  CHECK(h.Run({"rm", "-R", "/"}).rc == 1);
}

TEST_CASE("mv renames, moves into directories, refuses to clobber", "[cli]") {
  ShellHarness h;
  h.fs->AddFile("/user/alice/a", "1");
  h.fs->AddFile("/user/alice/b", "2");
  h.fs->AddDir("/user/alice/d");
  CHECK(h.Run({"mv", "a", "a2"}).rc == 0);
  CHECK(h.fs->Exists("/user/alice/a2"));
  CHECK(h.Run({"mv", "a2", "b", "d"}).rc == 0);
  CHECK(h.fs->Exists("/user/alice/d/a2"));
  CHECK(h.fs->Exists("/user/alice/d/b"));
  h.fs->AddFile("/user/alice/c", "3");
  auto r = h.Run({"mv", "c", "d/b"});
  CHECK(r.rc == 1);
  CHECK(r.err == "dfs: 'd/b': File exists\n");
  r = h.Run({"mv", "c", "d/b", "/user/alice/c"});
  CHECK(r.rc == 1);
  CHECK(r.err == "dfs: '/user/alice/c': Not a directory\n");
  r = h.Run({"mv", "d", "d"});
  CHECK(r.rc == 1);
  CHECK(r.err == "dfs: 'd' to 'd/d': is a subdirectory of itself\n");
  r = h.Run({"mv", "nope", "x"});
  CHECK(r.err == "dfs: 'nope': No such file or directory\n");
}

TEST_CASE("test answers with the exit code only", "[cli]") {
  ShellHarness h;
  h.fs->AddFile("/user/alice/f", "x");
  h.fs->AddFile("/user/alice/empty", "");
  for (auto [flag, path, rc] : std::vector<std::tuple<const char*, const char*, int>>{{"-e", "f", 0},
                                                                                      {"-e", "nope", 1},
                                                                                      {"-d", "/user", 0},
                                                                                      {"-d", "f", 1},
                                                                                      {"-f", "f", 0},
                                                                                      {"-f", "/user", 1},
                                                                                      {"-s", "f", 0},
                                                                                      {"-s", "empty", 1},
                                                                                      {"-z", "empty", 0},
                                                                                      {"-z", "f", 1}}) {
    auto r = h.Run({"test", flag, path});
    INFO(flag << " " << path);
    CHECK(r.rc == rc);
    CHECK(r.out.empty());
    CHECK(r.err.empty());
  }
}

TEST_CASE("touchz, chmod, chown, chgrp", "[cli]") {
  ShellHarness h;
  h.fs->AddFile("/user/alice/f", "x");
  CHECK(h.Run({"touchz", "new"}).rc == 0);
  CHECK(h.fs->At("/user/alice/new").info.length == 0);
  CHECK_FALSE(h.fs->At("/user/alice/new").info.under_construction);
  CHECK(h.Run({"touchz", "new"}).rc == 0);
  auto r = h.Run({"touchz", "f"});
  CHECK(r.err == "dfs: 'f': Not a zero-length file\n");
  r = h.Run({"touchz", "/no/parent"});
  CHECK(r.err == "dfs: '/no/parent': No such file or directory\n");

  h.fs->AddDir("/user/alice/d");
  h.fs->AddFile("/user/alice/d/g", "y");
  CHECK(h.Run({"chmod", "-R", "700", "d"}).rc == 0);
  CHECK(h.fs->At("/user/alice/d").info.mode == 0700);
  CHECK(h.fs->At("/user/alice/d/g").info.mode == 0700);
  CHECK(h.Run({"chmod", "1777", "f"}).rc == 0);
  CHECK(h.fs->At("/user/alice/f").info.mode == 01777);
  CHECK(h.Run({"chown", "bob:staff", "f"}).rc == 0);
  CHECK(h.fs->At("/user/alice/f").info.owner == "bob");
  CHECK(h.fs->At("/user/alice/f").info.group == "staff");
  CHECK(h.Run({"chgrp", "-R", "lab", "d"}).rc == 0);
  CHECK(h.fs->At("/user/alice/d/g").info.group == "lab");
  CHECK(h.Run({"chown", "carol", "/missing"}).rc == 1);
}

}  // namespace
}  // namespace dfs::cli
