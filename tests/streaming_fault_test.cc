// A streaming job on real daemon processes loses a DataNode to kill -9 while
// that node runs one of its maps and holds the finished outputs of others: the
// job still succeeds with the exact answer, and no task process of the job is
// left on the machine, not even the one the dead DataNode was running.
//
// Everything goes through the real binaries: `dfs-namenode` and three
// `dfs-datanode` (ProcessCluster), and `dfs streaming` with a Python word count,
// as a student would submit it.
#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "tests/process_cluster.h"
#include "tests/test_util.h"

using namespace dfs;
using namespace dfs::test;
using Clock = std::chrono::steady_clock;
namespace stdfs = std::filesystem;

namespace {

// A process of this user that carries a streaming task's marker
// (DFS_TASK_ATTEMPT=<attempt id>@<DataNode uuid>, see streaming/process.h).
struct TaskProcess {
  pid_t pid;
  std::string marker;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every live process whose environment holds DFS_TASK_ATTEMPT=<marker> with
// `match(marker)`. Zombies have no environment left, so they do not count; nor
// do other users' processes, which we cannot read (tasks run as we do).
std::vector<TaskProcess> FindTaskProcesses(const std::function<bool(const std::string&)>& match) {
  std::vector<TaskProcess> out;
  std::error_code ec;
  for (const auto& e : stdfs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    const std::string env = ReadAll("/proc/" + name + "/environ");
    static const std::string kPrefix = "DFS_TASK_ATTEMPT=";
    for (size_t p = 0; p < env.size();) {
      size_t end = env.find('\0', p);
      if (end == std::string::npos) end = env.size();
      if (env.compare(p, kPrefix.size(), kPrefix) == 0) {
        std::string marker = env.substr(p + kPrefix.size(), end - p - kPrefix.size());
        if (match(marker)) out.push_back({static_cast<pid_t>(std::stol(name)), marker});
        break;
      }
      p = end + 1;
    }
  }
  return out;
}

std::string Describe(const std::vector<TaskProcess>& ps) {
  std::string s;
  for (const auto& p : ps) {
    s += fmt::format("pid {} ({}): {}\n", p.pid, p.marker, ReadAll("/proc/" + std::to_string(p.pid) + "/cmdline"));
  }
  for (char& c : s) {
    if (c == '\0') c = ' ';
  }
  return s;
}

// Kills, when the test ends however it ends, every task process a DataNode of
// this cluster left behind: a leaked task is not a child of the test binary,
// and nothing else would stop it.
class TaskReaper {
 public:
  void Add(std::string uuid) { uuids_.push_back("@" + std::move(uuid)); }
  bool Ours(const std::string& marker) const {
    return std::any_of(uuids_.begin(), uuids_.end(), [&](const std::string& u) { return marker.ends_with(u); });
  }
  ~TaskReaper() {
    for (const auto& p : FindTaskProcesses([this](const std::string& m) { return Ours(m); })) kill(p.pid, SIGKILL);
  }

 private:
  std::vector<std::string> uuids_;
};

// The uuid a DataNode keeps in the VERSION file of its data directory.
std::string DataNodeUuid(const std::string& dir) {
  std::istringstream in(ReadAll(dir + "/VERSION"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("datanode_uuid=", 0) == 0) return line.substr(14);
  }
  return "";
}

// Lines of 1-7 words drawn from 500, up to `bytes` bytes.
std::string WordText(size_t bytes, uint64_t seed) {
  std::string s;
  uint64_t x = seed;
  for (size_t i = 0; s.size() < bytes; ++i) {
    const int words = 1 + static_cast<int>(i % 7);
    for (int w = 0; w < words; ++w) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      s += "w" + std::to_string((x >> 33) % 500);
      s += w + 1 < words ? ' ' : '\n';
    }
  }
  return s;
}

std::map<std::string, long> CountWords(const std::string& text) {
  std::map<std::string, long> m;
  std::istringstream is(text);
  for (std::string w; is >> w;) m[w]++;
  return m;
}

// The mapper: a plain word count, slowed a little. Exactly one attempt in the
// whole job gets stuck (as a student's mapper may, waiting on something that
// never comes): the first one to start on a DataNode that already holds a
// finished map output. It says so by creating $STUCK_FLAG (O_EXCL, so only one
// attempt wins) with its task marker inside, then sleeps without reading its
// input. The test kills that DataNode; the job service runs the map again
// elsewhere, where the flag already exists.
const char* const kMapper =
    "#!/usr/bin/env python3\n"
    "import glob, os, sys, time\n"
    "if glob.glob('../out/*.out.index'):\n"
    "    try:\n"
    "        fd = os.open(os.environ['STUCK_FLAG'], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)\n"
    "    except FileExistsError:\n"
    "        fd = -1\n"
    "    if fd >= 0:\n"
    "        os.write(fd, (os.environ['DFS_TASK_ATTEMPT'] + '\\n').encode())\n"
    "        os.close(fd)\n"
    "        time.sleep(3600)\n"
    "for i, line in enumerate(sys.stdin):\n"
    "    if i % 10000 == 0:\n"
    "        time.sleep(0.05)\n"
    "    for w in line.split():\n"
    "        print(w + '\\t1')\n";

const char* const kReducer =
    "#!/usr/bin/env python3\n"
    "import sys\n"
    "cur, n = None, 0\n"
    "for line in sys.stdin:\n"
    "    k, v = line.rstrip('\\n').split('\\t', 1)\n"
    "    if k != cur:\n"
    "        if cur is not None:\n"
    "            print(cur + '\\t' + str(n))\n"
    "        cur, n = k, 0\n"
    "    n += int(v)\n"
    "if cur is not None:\n"
    "    print(cur + '\\t' + str(n))\n";

std::string WriteLocal(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  stdfs::permissions(path, stdfs::perms::owner_all | stdfs::perms::group_read | stdfs::perms::others_read);
  return path;
}

// "N of M maps" from `dfs job -status`; -1 when absent.
int MapsDone(const std::string& status) {
  std::smatch m;
  if (std::regex_search(status, m, std::regex(R"((\d+) of (\d+) maps)"))) return std::stoi(m[1]);
  return -1;
}

}  // namespace

TEST_CASE("a DataNode killed -9 mid-job: its running map and finished map outputs are redone, the word count is "
          "exact, and none of its task processes survives",
          "[fault][streaming]") {
  const auto t0 = Clock::now();
  ProcessCluster::Options o;
  o.num_datanodes = 3;
  // One task at a time per node, so that the six maps come in two waves and a
  // node runs a map while holding the output of an earlier one. A node that
  // stops polling is written off after 3 s.
  o.conf = {{"dfs.datanode.task.slots", "1"}, {"dfs.namenode.datanode.dead.interval", "3s"}};
  auto pc = ProcessCluster::Start(o);
  REQUIRE_OK(pc.status());
  ProcessCluster& c = **pc;
  TaskReaper reaper;
  std::vector<std::string> uuids;
  for (int i = 0; i < c.num_datanodes(); ++i) {
    uuids.push_back(DataNodeUuid(c.datanode_dir(i)));
    REQUIRE(!uuids.back().empty());
    reaper.Add(uuids.back());
  }

  auto fs = c.NewClient();
  REQUIRE(fs);
  const std::string text = WordText((11u << 19) + 1000, 17);  // ~5.5 MiB: six 1 MiB blocks, six maps
  REQUIRE_OK(WriteFile(*fs, "/in/words.txt", text));
  REQUIRE_OK(c.WaitForReplicas(*fs, "/in/words.txt", 3));
  auto blocks = fs->GetBlockLocations("/in/words.txt");
  REQUIRE_OK(blocks.status());
  const int maps = static_cast<int>(blocks->size());
  REQUIRE(maps == 6);

  TempDir local;
  const std::string mapper = WriteLocal(local.path(), "mapper.py", kMapper);
  const std::string reducer = WriteLocal(local.path(), "reducer.py", kReducer);
  const std::string flag = local.path() + "/stuck";
  const std::string job_log = local.path() + "/dfs-streaming.out";
  auto job_proc = c.SpawnDfs({"streaming", "-input", "/in", "-output", "/wc", "-mapper", "mapper.py", "-reducer",
                              "reducer.py", "-file", mapper, "-file", reducer, "-numReduceTasks", "2", "-cmdenv",
                              "STUCK_FLAG=" + flag},
                             false, job_log);
  REQUIRE_OK(job_proc.status());
  ChildProcess& job = **job_proc;
  auto job_output = [&] { return ReadAll(job_log); };

  // The job's id, from "Submitted job_... (".
  std::string job_id;
  REQUIRE(WaitFor(
      [&] {
        std::smatch m;
        const std::string out = job_output();
        if (std::regex_search(out, m, std::regex(R"(Submitted (job_\S+))"))) job_id = m[1];
        return !job_id.empty() || !job.Running();
      },
      std::chrono::seconds(60)));
  INFO("dfs streaming says:\n" << job_output());
  REQUIRE(!job_id.empty());
  const std::string attempt_prefix = "attempt_" + job_id.substr(4) + "_";
  auto of_job = [&](const std::string& m) { return m.rfind(attempt_prefix, 0) == 0 && reaper.Ours(m); };

  // The stuck attempt has started; the five other maps finish.
  std::string stuck;
  REQUIRE(WaitFor(
      [&] {
        stuck = ReadAll(flag);
        return stuck.ends_with("\n") || !job.Running();
      },
      std::chrono::seconds(120)));
  REQUIRE(job.Running());
  stuck.pop_back();
  INFO("the stuck attempt: " << stuck);
  int victim = -1;
  for (int i = 0; i < c.num_datanodes(); ++i) {
    if (stuck.ends_with("@" + uuids[i])) victim = i;
  }
  REQUIRE(victim >= 0);
  std::string last_status;
  REQUIRE(WaitFor(
      [&] {
        auto st = c.RunDfs({"job", "-status", job_id});
        if (st.ok()) last_status = st->out;
        return MapsDone(last_status) == maps - 1 || !job.Running();
      },
      std::chrono::seconds(120)));
  INFO("dfs job -status before the kill:\n" << last_status);
  REQUIRE(job.Running());

  // The victim runs the stuck map and holds finished outputs of its own.
  const std::string job_dir = c.datanode_dir(victim) + "/tasks/jobs/" + job_id;
  int outputs = 0;
  std::error_code ec;
  for (const auto& e : stdfs::directory_iterator(job_dir + "/out", ec)) outputs += e.path().string().ends_with(".out.index");
  REQUIRE(outputs >= 1);
  const auto victims_tasks = FindTaskProcesses([&](const std::string& m) { return m.ends_with("@" + uuids[victim]); });
  INFO("task processes of datanode" << victim << " before the kill:\n" << Describe(victims_tasks));
  REQUIRE(victims_tasks.size() == 1);
  CHECK(victims_tasks[0].marker == stuck);
  CHECK(stdfs::is_directory(job_dir + "/" + stuck.substr(0, stuck.find('@'))));

  const auto killed = Clock::now();
  REQUIRE_OK(c.KillDataNode(victim, SIGKILL));
  std::vector<TaskProcess> orphans;
  const bool orphans_gone = WaitFor(
      [&] {
        orphans = FindTaskProcesses([&](const std::string& m) { return m.ends_with("@" + uuids[victim]); });
        return orphans.empty();
      },
      std::chrono::seconds(10));
  const int64_t orphans_ms = MsSince(killed);
  {
    INFO("task processes of the killed datanode" << victim << " still running " << orphans_ms
                                                 << " ms after its death:\n" << Describe(orphans));
    CHECK(orphans_gone);
  }

  // The job gets over it.
  auto st = job.Wait(std::chrono::seconds(180));
  const int64_t recovery_ms = MsSince(killed);
  INFO("dfs streaming says:\n" << job_output());
  REQUIRE_OK(st.status());
  REQUIRE(DescribeWaitStatus(*st) == "exited with 0");
  CHECK(job_output().find("Job " + job_id + " completed successfully") != std::string::npos);
  auto status = c.RunDfs({"job", "-status", job_id});
  REQUIRE_OK(status.status());
  INFO("dfs job -status:\n" << status->out);
  CHECK(status->out.find("State: SUCCEEDED") != std::string::npos);
  // Every map ran once, the stuck one and those whose outputs died with the node twice.
  const std::string final_output = job_output();
  std::smatch launched;
  REQUIRE(std::regex_search(final_output, launched, std::regex(R"(Launched map tasks=(\d+))")));
  CHECK(std::stoi(launched[1]) >= maps + 1 + outputs);

  // The answer, against a count made here.
  CHECK(fs->GetFileInfo("/wc/_SUCCESS").ok());
  auto list = fs->ListAll("/wc");
  REQUIRE_OK(list.status());
  std::vector<std::string> parts;
  for (const auto& f : *list) {
    if (f.name.rfind("part-", 0) == 0) parts.push_back(f.path);
  }
  std::sort(parts.begin(), parts.end());
  CHECK(parts.size() == 2);
  std::map<std::string, long> got;
  size_t lines = 0;
  for (const auto& p : parts) {
    auto content = ReadFile(*fs, p);
    REQUIRE_OK(content.status());
    std::istringstream is(*content);
    std::string prev;
    for (std::string line; std::getline(is, line); ++lines) {
      const auto tab = line.find('\t');
      REQUIRE(tab != std::string::npos);
      const std::string key = line.substr(0, tab);
      CHECK(key > prev);  // sorted within the part, each key once
      prev = key;
      CHECK(got.count(key) == 0);  // each key in one part only
      got[key] = std::stol(line.substr(tab + 1));
    }
  }
  const auto want = CountWords(text);
  CHECK(lines == want.size());
  CHECK(got == want);

  // Nothing of the job runs any more, anywhere on this machine.
  std::vector<TaskProcess> left;
  const bool none_left = WaitFor(
      [&] {
        left = FindTaskProcesses(of_job);
        return left.empty();
      },
      std::chrono::seconds(5));
  INFO("task processes of " << job_id << " after the job:\n" << Describe(left));
  CHECK(none_left);
  REQUIRE_OK(c.CheckDaemonsAlive());
  std::printf("streaming fault test: datanode%d killed with %d finished map output(s); its task processes %s %lld ms "
              "after; job done %lld ms after the kill; %lld ms in all\n",
              victim, outputs, orphans_gone ? "gone" : "STILL RUNNING", static_cast<long long>(orphans_ms),
              static_cast<long long>(recovery_ms), static_cast<long long>(MsSince(t0)));
}
