// The shell's output formats against Hadoop's: ls, du, df, count, stat, report,
// and the pure helpers behind them.
#include <catch2/catch.hpp>

#include "client/cli/format.h"
#include "tests/cli_fake_fs.h"

namespace dfs::cli {
namespace {

using testing::ShellHarness;

// mtime 1700000000000 is 2023-11-14 22:13:20 UTC; the harness runs in UTC.
void AddSample(testing::FakeFs& fs) {
  fs.AddDir("/user/alice/dir");
  fs.AddFile("/user/alice/f", std::string(1366, 'x'));
}

TEST_CASE("ls prints Found N items and Hadoop's columns", "[cli]") {
  ShellHarness h;
  AddSample(*h.fs);
  auto r = h.Run({"ls", "/user/alice"});
  CHECK(r.rc == 0);
  CHECK(r.err.empty());
  CHECK(r.out ==
        "Found 2 items\n"
        "drwxr-xr-x   - alice supergroup          0 2023-11-14 22:13 /user/alice/dir\n"
        "-rw-r--r--   3 alice supergroup       1366 2023-11-14 22:13 /user/alice/f\n");
}

TEST_CASE("ls without a path lists home with relative names", "[cli]") {
  ShellHarness h;
  AddSample(*h.fs);
  auto r = h.Run({"ls"});
  CHECK(r.rc == 0);
  CHECK(r.out ==
        "Found 2 items\n"
        "drwxr-xr-x   - alice supergroup          0 2023-11-14 22:13 dir\n"
        "-rw-r--r--   3 alice supergroup       1366 2023-11-14 22:13 f\n");
  auto r2 = h.Run({"ls", "dir"});
  CHECK(r2.out.empty());  // an empty directory prints nothing, as in Hadoop
  h.fs->AddFile("/user/alice/dir/g", "abc");
  CHECK(h.Run({"ls", "dir"}).out.find(" dir/g\n") != std::string::npos);
}

TEST_CASE("ls widens columns for long owners and sizes", "[cli]") {
  ShellHarness h;
  h.fs->AddFile("/big", std::string(10, 'x'));
  h.fs->At("/big").info.length = 123456789012;
  h.fs->At("/big").info.owner = "maximilian";
  h.fs->AddFile("/small", "x", 1);
  auto r = h.Run({"ls", "/big", "/small"});
  CHECK(r.out ==
        "-rw-r--r--   3 maximilian supergroup 123456789012 2023-11-14 22:13 /big\n"
        "-rw-r--r--   1 alice      supergroup            1 2023-11-14 22:13 /small\n");
}

TEST_CASE("ls -h -d -R", "[cli]") {
  ShellHarness h;
  AddSample(*h.fs);
  h.fs->AddFile("/user/alice/dir/g", std::string(4 << 20, 'y'));
  auto r = h.Run({"ls", "-h", "/user/alice/f"});
  CHECK(r.out == "-rw-r--r--   3 alice supergroup      1.3 K 2023-11-14 22:13 /user/alice/f\n");
  r = h.Run({"ls", "-d", "/user/alice"});
  CHECK(r.out == "drwxr-xr-x   - alice supergroup          0 2023-11-14 22:13 /user/alice\n");
  r = h.Run({"ls", "-R", "/user"});
  CHECK(r.out ==
        "drwxr-xr-x   - alice supergroup          0 2023-11-14 22:13 /user/alice\n"
        "drwxr-xr-x   - alice supergroup          0 2023-11-14 22:13 /user/alice/dir\n"
        "-rw-r--r--   3 alice supergroup    4194304 2023-11-14 22:13 /user/alice/dir/g\n"
        "-rw-r--r--   3 alice supergroup       1366 2023-11-14 22:13 /user/alice/f\n");
  // Bundled flags, as students type them.
  auto rh = h.Run({"-ls", "-Rh", "/user"});
  CHECK(rh.rc == 0);
  CHECK(rh.out.find("      4.0 M 2023-11-14 22:13 /user/alice/dir/g\n") != std::string::npos);
}

TEST_CASE("du lists entries, -s summarises, -h and -v", "[cli]") {
  ShellHarness h;
  AddSample(*h.fs);
  h.fs->AddFile("/user/alice/dir/g", std::string(2048, 'y'), 2);
  auto r = h.Run({"du", "/user/alice"});
  CHECK(r.rc == 0);
  CHECK(r.out ==
        "2048  4096  /user/alice/dir\n"
        "1366  4098  /user/alice/f\n");
  r = h.Run({"du", "-s", "-h", "/user/alice"});
  CHECK(r.out == "3.3 K  8.0 K  /user/alice\n");
  r = h.Run({"du", "-s", "-v", "dir"});
  CHECK(r.out ==
        "SIZE  DISK_SPACE_CONSUMED_WITH_ALL_REPLICAS  FULL_PATH_NAME\n"
        "2048  4096                                   dir\n");
}

TEST_CASE("count uses Hadoop's column widths", "[cli]") {
  ShellHarness h;
  AddSample(*h.fs);
  auto r = h.Run({"count", "/user/alice"});
  CHECK(r.rc == 0);
  CHECK(r.out == "           2            1               1366 /user/alice\n");
  r = h.Run({"count", "-q", "-h", "-v", "/user/alice"});
  CHECK(r.out ==
        "       QUOTA       REM_QUOTA     SPACE_QUOTA REM_SPACE_QUOTA    DIR_COUNT   FILE_COUNT       CONTENT_SIZE "
        "PATHNAME\n"
        "        none             inf            none             inf            2            1              1.3 K "
        "/user/alice\n");
}

TEST_CASE("stat expands Hadoop's specifiers", "[cli]") {
  ShellHarness h;
  AddSample(*h.fs);
  auto r = h.Run({"stat", "%n %b %r %o %F %u:%g %y %Y", "/user/alice/f"});
  CHECK(r.rc == 0);
  CHECK(r.out == "f 1366 3 134217728 regular file alice:supergroup 2023-11-14 22:13:20 1700000000000\n");
  r = h.Run({"stat", "dir"});  // default %y
  CHECK(r.out == "2023-11-14 22:13:20\n");
  r = h.Run({"stat", "%F %a %A %q", "dir"});
  CHECK(r.out == "directory 755 rwxr-xr-x %q\n");
}

TEST_CASE("df prints the capacity table", "[cli]") {
  ShellHarness h;
  auto r = h.Run({"df"});
  CHECK(r.rc == 0);
  CHECK(r.out ==
        "Filesystem                    Size        Used    Available  Use%\n"
        "dfs://127.0.0.1:8020  107374182400  3221225472  96636764160    3%\n");
  r = h.Run({"df", "-h"});
  CHECK(r.out ==
        "Filesystem               Size   Used  Available  Use%\n"
        "dfs://127.0.0.1:8020  100.0 G  3.0 G     90.0 G    3%\n");
}

TEST_CASE("format helpers match Hadoop", "[cli]") {
  CHECK(PermissionString(0755) == "rwxr-xr-x");
  CHECK(PermissionString(01777) == "rwxrwxrwt");
  CHECK(PermissionString(01770) == "rwxrwx--T");
  CHECK(ByteDesc(0) == "0 B");
  CHECK(ByteDesc(1023) == "1023 B");
  CHECK(ByteDesc(24576) == "24 KB");
  CHECK(ByteDesc(52710469632) == "49.09 GB");
  CHECK(Percent(3.0) == "3.00%");
  Table t(3);
  t.SetRightAlign(1);
  t.AddRow({"a", "1", "x"});
  t.AddRow({"bbb", "100", "y"});
  std::ostringstream os;
  t.Print(os);
  CHECK(os.str() == "a      1  x\nbbb  100  y\n");
}

TEST_CASE("admin report lists live and dead datanodes", "[cli]") {
  ShellHarness h;
  for (int i = 0; i < 3; ++i) {
    proto::DatanodeInfo d;
    d.mutable_id()->set_ip("127.0.0.1");
    d.mutable_id()->set_xfer_port(9866 + i);
    d.mutable_id()->set_hostname("dn" + std::to_string(i));
    d.set_capacity(uint64_t{10} << 30);
    d.set_dfs_used(uint64_t{1} << 30);
    d.set_remaining(uint64_t{8} << 30);
    d.set_non_dfs_used(uint64_t{1} << 30);
    d.set_num_blocks(7);
    d.set_last_contact_ms(1000);
    d.set_live(i != 1);
    h.fs->datanodes.push_back(d);
  }
  auto r = h.Run({"admin", "report"});
  CHECK(r.rc == 0);
  CHECK(r.out.rfind("Cluster ID: CID-test\nSafe mode is OFF\n", 0) == 0);
  CHECK(r.out.find("Configured Capacity: 107374182400 (100 GB)\n") != std::string::npos);
  CHECK(r.out.find("DFS Used%: 3.00%\n") != std::string::npos);
  CHECK(r.out.find("\tUnder replicated blocks: 0\n\tBlocks with corrupt replicas: 0\n\tMissing blocks: 0\n") !=
        std::string::npos);
  CHECK(r.out.find("Live datanodes (2):\n\nName: 127.0.0.1:9866 (dn0)\nHostname: dn0\n") != std::string::npos);
  CHECK(r.out.find("Dead datanodes (1):\n\nName: 127.0.0.1:9867 (dn1)\n") != std::string::npos);
  CHECK(r.out.find("DFS Used%: 10.00%\nDFS Remaining%: 80.00%\n") != std::string::npos);
  CHECK(r.out.find("Last contact: Tue Nov 14 22:14:19 UTC 2023\nNum of Blocks: 7\n") != std::string::npos);
  // Hadoop's spelling gives the same report.
  CHECK(h.Run({"dfsadmin", "-report"}).out == r.out);
  auto live = h.Run({"admin", "report", "-live"});
  CHECK(live.out.find("Dead datanodes") == std::string::npos);
  h.fs->stats.set_safe_mode(true);
  h.fs->stats.set_safe_mode_status("Safe mode is ON. 3 of 4 blocks reported.");
  CHECK(h.Run({"admin", "report"}).out.find("\nSafe mode is ON. 3 of 4 blocks reported.\n") != std::string::npos);
  h.fs->stats.set_safe_mode_status("");
  CHECK(h.Run({"admin", "report"}).out.find("\nSafe mode is ON\n") != std::string::npos);
  // The namespace journal's line shows once the NameNode has synced.
  CHECK(r.out.find("Namespace journal") == std::string::npos);
  h.fs->stats.set_journal_syncs(400);
  h.fs->stats.set_journal_sync_micros(164000);
  h.fs->stats.set_journal_transactions(1000);
  CHECK(h.Run({"admin", "report"}).out.find(
            "Files and directories: 0 files, 0 directories\n"
            "Namespace journal: 400 syncs, 0.41 ms mean, 2.5 transactions per sync\n") != std::string::npos);
}

}  // namespace
}  // namespace dfs::cli
