// appendToFile: local files (or stdin) go to the end of a dfs file, which is
// created when missing; bad sources append nothing; errors are Hadoop's.
#include <catch2/catch.hpp>

#include "tests/cli_fake_fs.h"

namespace dfs::cli {
namespace {

using testing::LocalDir;
using testing::ShellHarness;

TEST_CASE("appendToFile appends local files in order to an existing file", "[cli][append]") {
  LocalDir local;
  local.Write("a.txt", "alpha\n");
  local.Write("b.txt", "beta\n");
  ShellHarness h;
  h.fs->AddFile("/user/alice/log.txt", "start\n");
  auto r = h.Run({"appendToFile", local / "a.txt", local / "b.txt", "log.txt"});
  CHECK(r.rc == 0);
  CHECK(r.out.empty());
  CHECK(r.err.empty());
  CHECK(h.fs->At("/user/alice/log.txt").data == "start\nalpha\nbeta\n");
  CHECK_FALSE(h.fs->At("/user/alice/log.txt").info.under_construction);
  CHECK(h.fs->log.back() == "append /user/alice/log.txt");
  // Also spelled with a leading '-', as in `hdfs dfs -appendToFile`.
  r = h.Run({"-appendToFile", local / "a.txt", "/user/alice/log.txt"});
  CHECK(r.rc == 0);
  CHECK(h.fs->At("/user/alice/log.txt").data == "start\nalpha\nbeta\nalpha\n");
}

TEST_CASE("appendToFile creates a missing destination, and reads stdin for '-'", "[cli][append]") {
  ShellHarness h;
  h.stdin_data = "from stdin\n";
  auto r = h.Run({"appendToFile", "-", "/new.txt"});
  CHECK(r.rc == 0);
  CHECK(r.err.empty());
  CHECK(h.fs->At("/new.txt").data == "from stdin\n");
  CHECK(h.fs->log.back() == "create /new.txt");
  CHECK_FALSE(h.fs->last_create.overwrite);
  CHECK_FALSE(h.fs->last_create.create_parent);
  h.stdin_data = "more\n";
  r = h.Run({"appendToFile", "-", "/new.txt"});
  CHECK(r.rc == 0);
  CHECK(h.fs->At("/new.txt").data == "from stdin\nmore\n");
  CHECK(h.fs->log.back() == "append /new.txt");
}

TEST_CASE("appendToFile errors: a directory, a missing parent, a missing source, '-' with others, a busy file",
          "[cli][append]") {
  LocalDir local;
  local.Write("a.txt", "alpha\n");
  ShellHarness h;
  h.fs->AddFile("/f", "old");

  auto r = h.Run({"appendToFile", local / "a.txt", "/user"});
  CHECK(r.rc == 1);
  CHECK(r.err == "dfs: '/user': Is a directory\n");

  r = h.Run({"appendToFile", local / "a.txt", "/no/such/dir/f"});
  CHECK(r.rc == 1);
  CHECK(r.err == "dfs: '/no/such/dir/f': No such file or directory\n");
  CHECK_FALSE(h.fs->Exists("/no/such/dir/f"));

  // A missing local source appends nothing, not even the sources before it.
  h.fs->log.clear();
  r = h.Run({"appendToFile", local / "a.txt", local / "missing.txt", "/f"});
  CHECK(r.rc == 1);
  CHECK(r.err == "dfs: '" + (local / "missing.txt") + "': No such file or directory\n");
  CHECK(h.fs->At("/f").data == "old");
  CHECK(h.fs->log.empty());
  r = h.Run({"appendToFile", local.path(), "/f"});
  CHECK(r.rc == 1);
  CHECK(r.err == "dfs: '" + local.path() + "': Is a directory\n");

  r = h.Run({"appendToFile", "-", local / "a.txt", "/f"});
  CHECK(r.rc == 2);
  CHECK(r.err.find("'-' (stdin) must be the only source") != std::string::npos);
  r = h.Run({"appendToFile", "/f"});
  CHECK(r.rc == 2);

  h.fs->At("/f").info.under_construction = true;
  r = h.Run({"appendToFile", local / "a.txt", "/f"});
  CHECK(r.rc == 1);
  CHECK(r.err == "dfs: '/f': /f is being written by another client (fake-writer)\n");
  CHECK(h.fs->At("/f").data == "old");
}

TEST_CASE("appendToFile is listed in help", "[cli][append]") {
  ShellHarness h;
  auto r = h.Run({"help", "appendToFile"});
  CHECK(r.rc == 0);
  CHECK(r.out.find("Usage: dfs appendToFile <localsrc> ... <dst>") != std::string::npos);
}

}  // namespace
}  // namespace dfs::cli
