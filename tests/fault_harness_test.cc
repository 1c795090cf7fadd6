// The out-of-process test cluster itself: daemons start as real processes, are
// killed, paused and restarted, and leave nothing behind.
#include <signal.h>
#include <sys/wait.h>

#include <fstream>

#include <catch2/catch.hpp>
#include <xxhash.h>

#include "tests/process_cluster.h"
#include "tests/test_util.h"

using namespace dfs;
using namespace dfs::test;

namespace {

bool ProcessExists(pid_t pid) { return pid > 0 && kill(pid, 0) == 0; }

}  // namespace

TEST_CASE("process cluster starts, kills, pauses and restarts real daemons and reaps them", "[fault][harness]") {
  std::vector<pid_t> pids;
  {
    auto pc = ProcessCluster::Start();
    REQUIRE_OK(pc.status());
    auto& c = **pc;
    auto fs = c.NewClient();
    REQUIRE(fs);
    const std::string data = RandomBytes((2 << 20) + 99, 1);
    REQUIRE_OK(WriteFile(*fs, "/a", data));

    // The shell runs against the cluster too.
    auto ls = c.RunDfs({"ls", "/"});
    REQUIRE_OK(ls.status());
    INFO(ls->ToString());
    CHECK(ls->exit_code == 0);
    CHECK(ls->out.find("/a") != std::string::npos);

    // kill -9 and restart the NameNode on the same port: the DataNodes come back.
    const uint16_t port = c.namenode_port();
    REQUIRE_OK(c.RestartNameNode(SIGKILL));
    CHECK(c.namenode_port() == port);
    REQUIRE_OK(c.WaitForDatanodes(3));
    auto digest = DigestFile(*fs, "/a");
    REQUIRE_OK(digest.status());
    CHECK(*digest == XXH3_64bits(data.data(), data.size()));

    // A paused DataNode is declared dead; resumed, it is live again.
    REQUIRE_OK(c.PauseDataNode(1));
    CHECK(WaitFor([&] {
      auto st = fs->GetStats();
      return st.ok() && st->live_datanodes() == 2;
    }, std::chrono::seconds(15)));
    REQUIRE_OK(c.ResumeDataNode(1));
    REQUIRE_OK(c.WaitForDatanodes(3));

    // A new DataNode joins; a killed one restarts with its data dir.
    auto added = c.AddDataNode();
    REQUIRE_OK(added.status());
    CHECK(*added == 3);
    REQUIRE_OK(c.WaitForDatanodes(4));
    REQUIRE_OK(c.RestartDataNode(0));
    REQUIRE_OK(c.WaitForDatanodes(4));
    REQUIRE_OK(c.CheckDaemonsAlive());

    // A daemon that dies by itself is reported.
    pids = {c.namenode_pid(), c.pid(0), c.pid(1), c.pid(2), c.pid(3)};
    kill(c.pid(2), SIGKILL);
    CHECK(WaitFor([&] { return !c.CheckDaemonsAlive().ok(); }, std::chrono::seconds(5)));
    Status alive = c.CheckDaemonsAlive();
    CHECK(alive.message().find("datanode2") != std::string::npos);
    CHECK(alive.message().find("signal 9") != std::string::npos);
  }
  // Every child was killed and reaped: no process, no zombie.
  for (pid_t p : pids) {
    INFO("pid " << p);
    CHECK_FALSE(ProcessExists(p));
  }
  int st;
  CHECK(waitpid(-1, &st, WNOHANG) == -1);  // ECHILD: nothing left to reap
}

TEST_CASE("process cluster refuses configuration keys this build does not know", "[fault][harness]") {
  ProcessCluster::Options o;
  o.conf = {{"dfs.no.such.key", "1"}};
  auto pc = ProcessCluster::Start(o);
  REQUIRE_FALSE(pc.ok());
  CHECK(pc.status().message().find("dfs.no.such.key") != std::string::npos);
}

TEST_CASE("a daemon that cannot start is reported with its log", "[fault][harness]") {
  ProcessCluster::Options o;
  o.num_datanodes = 0;
  auto pc = ProcessCluster::Start(o);
  REQUIRE_OK(pc.status());
  // A DataNode whose data dir is a file cannot start.
  {
    std::ofstream f((*pc)->datanode_dir(0));
    f << "not a directory\n";
  }
  auto added = (*pc)->AddDataNode();
  REQUIRE_FALSE(added.ok());
  INFO(added.status().message());
  CHECK(added.status().message().find("datanode0") != std::string::npos);
  CHECK(added.status().message().find("exited with") != std::string::npos);
}
