// More end-to-end streaming jobs on a MiniCluster, submitted with `dfs
// streaming` / `dfs job` as students would, with real Python scripts: fair
// sharing between users, killing a job, the pre-flight fixes, the task's
// environment and working directory, and that nothing a task starts outlives it.
// Every wait has a deadline; no sleep is used to synchronise.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "client/cli/shell.h"
#include "client/job_client.h"
#include "proto/jobs.pb.h"
#include "tests/mini_cluster.h"
#include "tests/test_util.h"

using namespace dfs;
using namespace dfs::test;
using namespace std::chrono_literals;

namespace {

struct ShellRun {
  int rc = -1;
  std::string out, err;
};

// Runs one `dfs` command line against the cluster, as `user` (empty: the
// user running the test, who also runs the NameNode: its superuser).
ShellRun Dfs(MiniCluster& mc, std::vector<std::string> args, const std::string& user = "") {
  std::ostringstream out, err;
  std::istringstream in;
  cli::ShellEnv env;
  env.connect = [&](const Config&, const std::string&) -> Result<std::shared_ptr<client::FileSystem>> {
    if (user.empty()) return std::shared_ptr<client::FileSystem>(mc.NewClient());
    DFS_ASSIGN_OR_RETURN(auto fs, client::FileSystem::ConnectAs(mc.ClientConfig(), mc.namenode_address(), user));
    return std::shared_ptr<client::FileSystem>(std::move(fs));
  };
  env.out = &out;
  env.err = &err;
  env.in = &in;
  int rc = cli::RunShell(std::move(args), env);
  return {rc, out.str(), err.str()};
}

std::unique_ptr<MiniCluster> StartCluster(std::vector<std::pair<std::string, std::string>> extra = {}) {
  MiniCluster::Options o;
  o.conf = {{"dfs.datanode.task.slots", "2"}, {"dfs.heartbeat.interval", "1s"}};
  for (auto& kv : extra) o.conf.push_back(kv);
  auto mc = MiniCluster::Start(o);
  REQUIRE(mc.ok());
  REQUIRE((*mc)->WaitForDatanodes(3).ok());
  return std::move(*mc);
}

std::string WriteLocal(const std::string& dir, const std::string& name, const std::string& text,
                       mode_t mode = 0644) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  REQUIRE(::chmod(path.c_str(), mode) == 0);
  return path;
}

// /user/<name>, owned by them, so that their relative paths work.
void MakeHome(client::FileSystem& admin, const std::string& user) {
  const std::string home = "/user/" + user;
  REQUIRE_OK(admin.Mkdirs(home, 0755, true));
  REQUIRE_OK(admin.SetOwner(home, user, user));
}

std::unique_ptr<client::FileSystem> ConnectAs(MiniCluster& mc, const std::string& user) {
  auto fs = client::FileSystem::ConnectAs(mc.ClientConfig(), mc.namenode_address(), user);
  REQUIRE(fs.ok());
  return std::move(*fs);
}

// The job id from `dfs streaming`'s "Submitted job_..." line.
std::string SubmittedId(const ShellRun& r) {
  const auto at = r.err.find("Submitted job_");
  REQUIRE(at != std::string::npos);
  const size_t from = at + std::string("Submitted ").size();
  return r.err.substr(from, r.err.find(' ', from) - from);
}

proto::JobStatus StatusOf(client::JobClient& jobs, const std::string& id) {
  auto st = jobs.Status(id);
  INFO(st.status().ToString());
  REQUIRE(st.ok());
  return *st;
}

bool Finished(const proto::JobStatus& st) {
  return st.state() == proto::JOB_SUCCEEDED || st.state() == proto::JOB_FAILED || st.state() == proto::JOB_KILLED;
}

// Waits (with a deadline) for the job to end; returns its last status.
proto::JobStatus WaitForJob(client::JobClient& jobs, const std::string& id, std::chrono::milliseconds deadline) {
  proto::JobStatus st;
  const bool ended = WaitFor([&] {
    st = StatusOf(jobs, id);
    return Finished(st);
  }, deadline);
  INFO("job " << id << " state " << proto::JobState_Name(st.state()) << ", " << st.maps_done() << "/"
              << st.maps_total() << " maps done, failure: " << st.failure());
  REQUIRE(ended);
  return st;
}

// The whole content of /proc/<pid>/<file>, or nullopt when it cannot be read.
std::optional<std::string> ReadProc(pid_t pid, const char* file) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> SplitNul(const std::string& block) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : block) {
    if (c == '\0') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

// The pids of live processes whose environment carries the task marker of one
// of `job_id`'s attempts: DFS_TASK_ATTEMPT=attempt_<job id without "job_">_...
std::vector<pid_t> TaskProcesses(const std::string& job_id) {
  const std::string needle = "DFS_TASK_ATTEMPT=attempt_" + job_id.substr(4) + "_";
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    auto environ = ReadProc(pid, "environ");
    if (!environ) continue;
    for (const auto& var : SplitNul(*environ)) {
      if (var.rfind(needle, 0) == 0) {
        found.push_back(pid);
        break;
      }
    }
  }
  return found;
}

std::string Pids(const std::vector<pid_t>& pids) {
  std::string s;
  for (pid_t p : pids) s += std::to_string(p) + " ";
  return s;
}

// Whether `pid` is still a running `sleep 1000`: not gone, not a zombie, and
// not a different program that got the pid since.
bool SleepStillRuns(pid_t pid) {
  auto stat = ReadProc(pid, "stat");
  if (!stat) return false;
  const auto paren = stat->rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat->size()) return false;
  const char state = (*stat)[paren + 2];
  if (state == 'Z' || state == 'X') return false;  // dead, waiting for whoever adopted it to reap it
  auto cmdline = ReadProc(pid, "cmdline");
  return cmdline && SplitNul(*cmdline) == std::vector<std::string>{"sleep", "1000"};
}

// Every part-* file of `dir` by name.
std::map<std::string, std::string> ReadParts(client::FileSystem& fs, const std::string& dir) {
  auto list = fs.ListAll(dir);
  INFO(list.status().ToString());
  REQUIRE(list.ok());
  std::map<std::string, std::string> parts;
  for (const auto& f : *list) {
    if (f.name.rfind("part-", 0) != 0) continue;
    auto r = ReadFile(fs, f.path);
    REQUIRE(r.ok());
    parts[f.name] = *r;
  }
  return parts;
}

// "k\tv" lines → k → v (the last one wins).
std::map<std::string, std::string> KeyValues(const std::string& text) {
  std::map<std::string, std::string> m;
  std::istringstream is(text);
  for (std::string line; std::getline(is, line);) {
    const auto tab = line.find('\t');
    if (tab == std::string::npos) continue;
    m[line.substr(0, tab)] = line.substr(tab + 1);
  }
  return m;
}


}  // namespace

TEST_CASE("a small job of one user finishes while a big job of another still has maps waiting",
          "[streaming][slow]") {
  auto mc = StartCluster();
  TempDir local;
  auto admin = mc->NewClient();
  MakeHome(*admin, "alice");
  MakeHome(*admin, "bob");
  // Alice: 48 one-line files, so 48 maps of half a second each on 3 x 2 slots.
  constexpr int kAliceMaps = 48;
  for (int i = 0; i < kAliceMaps; ++i) {
    REQUIRE_OK(WriteFile(*admin, "/big/f" + std::to_string(100 + i) + ".txt", "line " + std::to_string(i) + "\n"));
  }
  REQUIRE_OK(WriteFile(*admin, "/small/one.txt", "hello\n"));
  const std::string slow = WriteLocal(local.path(), "slow.py",
                                      "#!/usr/bin/env python3\n"
                                      "import sys, time\n"
                                      "n = sum(1 for _ in sys.stdin)\n"
                                      "time.sleep(0.5)\n"
                                      "print('lines\\t' + str(n))\n",
                                      0755);
  const std::string quick = WriteLocal(local.path(), "quick.py",
                                       "#!/usr/bin/env python3\n"
                                       "import sys\n"
                                       "for line in sys.stdin:\n"
                                       "    print(line.strip() + '\\tbob')\n",
                                       0755);
  auto a = Dfs(*mc, {"streaming", "-background", "-input", "/big", "-output", "big-out", "-mapper", "slow.py", "-file",
                     slow, "-reducer", "NONE"},
               "alice");
  INFO(a.err);
  REQUIRE(a.rc == 0);
  const std::string alice_job = SubmittedId(a);
  CHECK(a.out == alice_job + "\n");  // -background prints the id and returns

  auto alice_fs = ConnectAs(*mc, "alice");
  auto bob_fs = ConnectAs(*mc, "bob");
  client::JobClient alice_jobs(*alice_fs), bob_jobs(*bob_fs);
  // Alice's job takes every slot before Bob comes.
  REQUIRE(WaitFor([&] { return StatusOf(alice_jobs, alice_job).running_attempts() == 6; }, 30s));
  {
    const auto st = StatusOf(alice_jobs, alice_job);
    CHECK(st.user() == "alice");
    CHECK(st.maps_total() == kAliceMaps);
  }

  auto b = Dfs(*mc, {"streaming", "-background", "-input", "/small", "-output", "small-out", "-mapper", "quick.py",
                     "-file", quick, "-reducer", "NONE"},
               "bob");
  INFO(b.err);
  REQUIRE(b.rc == 0);
  const std::string bob_job = SubmittedId(b);

  // Bob's one map gets the next free slot, ahead of Alice's many waiting maps
  // (first come, first served would run all of hers first).
  proto::JobStatus alice_when_bob_done;
  proto::JobStatus bob_st;
  REQUIRE(WaitFor([&] {
    bob_st = StatusOf(bob_jobs, bob_job);
    if (!Finished(bob_st)) return false;
    alice_when_bob_done = StatusOf(alice_jobs, alice_job);
    return true;
  }, 60s));
  INFO("bob: " << proto::JobState_Name(bob_st.state()) << " " << bob_st.failure());
  REQUIRE(bob_st.state() == proto::JOB_SUCCEEDED);
  CHECK(bob_st.user() == "bob");
  const auto& al = alice_when_bob_done;
  INFO("alice when bob finished: " << proto::JobState_Name(al.state()) << ", " << al.maps_done() << " of "
                                   << al.maps_total() << " maps done, " << al.running_attempts() << " running");
  CHECK(al.state() == proto::JOB_RUNNING);
  CHECK(al.maps_done() + al.running_attempts() < al.maps_total());  // some of her maps had not even started
  CHECK(ReadParts(*bob_fs, "/user/bob/small-out") == std::map<std::string, std::string>{{"part-00000", "hello\tbob\n"}});
  CHECK(bob_fs->GetFileInfo("/user/bob/small-out/_SUCCESS").ok());

  // `dfs job -list` shows whose job is whose while Alice's runs.
  auto list = Dfs(*mc, {"job", "-list"});
  CHECK(list.rc == 0);
  CHECK(list.out.find(alice_job) != std::string::npos);
  CHECK(list.out.find("alice") != std::string::npos);
  CHECK(list.out.find(bob_job) == std::string::npos);  // finished: only with `all`

  // Alice is not starved either: her job completes, every map once.
  const auto done = WaitForJob(alice_jobs, alice_job, 120s);
  CHECK(done.state() == proto::JOB_SUCCEEDED);
  const auto parts = ReadParts(*alice_fs, "/user/alice/big-out");
  CHECK(parts.size() == kAliceMaps);
  for (const auto& [name, text] : parts) CHECK(text == "lines\t1\n");
}

TEST_CASE("dfs job -kill stops a running job and everything its tasks started and only the owner may",
          "[streaming]") {
  auto mc = StartCluster();
  TempDir local;
  auto admin = mc->NewClient();
  MakeHome(*admin, "alice");
  REQUIRE_OK(WriteFile(*admin, "/in/a.txt", "one\ntwo\n"));
  REQUIRE_OK(WriteFile(*admin, "/in/b.txt", "three\n"));
  // Each map starts a helper in a session of its own (out of the task's
  // process group), then sleeps far longer than the test.
  const std::string mapper = WriteLocal(local.path(), "sleepy.py",
                                        "#!/usr/bin/env python3\n"
                                        "import subprocess, time\n"
                                        "subprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
                                        "time.sleep(1000)\n",
                                        0755);
  auto sub = Dfs(*mc, {"streaming", "-background", "-input", "/in", "-output", "out", "-mapper", "sleepy.py", "-file",
                       mapper, "-reducer", "NONE"},
                 "alice");
  INFO(sub.err);
  REQUIRE(sub.rc == 0);
  const std::string id = SubmittedId(sub);
  INFO("job " << id);

  // Both maps run: each is a python3 and its sleep.
  REQUIRE(WaitFor([&] { return TaskProcesses(id).size() >= 4; }, 30s));

  // Bob may not kill Alice's job.
  auto bob = Dfs(*mc, {"job", "-kill", id}, "bob");
  INFO(bob.out << bob.err);
  CHECK(bob.rc == 1);
  CHECK(bob.err.find(id + " belongs to alice; only they") != std::string::npos);
  auto still = Dfs(*mc, {"job", "-status", id});
  CHECK(still.out.find("State: RUNNING") != std::string::npos);
  CHECK(TaskProcesses(id).size() >= 4);

  auto kill = Dfs(*mc, {"job", "-kill", id}, "alice");
  INFO(kill.out << kill.err);
  CHECK(kill.rc == 0);
  CHECK(kill.out == "Killed job " + id + "\n");

  auto status = Dfs(*mc, {"job", "-status", id});
  INFO(status.out << status.err);
  CHECK(status.rc == 0);
  CHECK(status.out.find("State: KILLED") != std::string::npos);
  CHECK(status.out.find("killed by alice") != std::string::npos);

  // Every process of every attempt goes, the escaped sleeps too.
  std::vector<pid_t> left;
  CHECK(WaitFor([&] {
    left = TaskProcesses(id);
    return left.empty();
  }, 20s));
  INFO("still running: " << Pids(left));
  CHECK(left.empty());

  // The output is aborted: _temporary removed, no _SUCCESS.
  auto fs = ConnectAs(*mc, "alice");
  CHECK(WaitFor([&] { return fs->GetFileInfo("/user/alice/out/_temporary").status().IsNotFound(); }, 20s));
  CHECK(fs->GetFileInfo("/user/alice/out/_SUCCESS").status().IsNotFound());
  CHECK(ReadParts(*fs, "/user/alice/out").empty());

  auto list_all = Dfs(*mc, {"job", "-list", "all"});
  CHECK(list_all.rc == 0);
  std::string line;
  {
    std::istringstream is(list_all.out);
    for (std::string l; std::getline(is, l);) {
      if (l.rfind(id, 0) == 0) line = l;
    }
  }
  INFO(list_all.out);
  CHECK(line.find("KILLED") != std::string::npos);
  CHECK(line.find("alice") != std::string::npos);
  auto list_running = Dfs(*mc, {"job", "-list"});
  CHECK(list_running.out.find(id) == std::string::npos);

  // Killing it again says it is over.
  auto again = Dfs(*mc, {"job", "-kill", id}, "alice");
  CHECK(again.rc == 0);
  CHECK(again.out == "Job " + id + " had already finished (KILLED)\n");
}

TEST_CASE("pre-flight fixes a BOM mapper without #! or execute bit and says what it fixed", "[streaming]") {
  auto mc = StartCluster();
  TempDir local;
  auto fs = mc->NewClient();
  REQUIRE_OK(WriteFile(*fs, "/in.txt", "hello world\nsecond line\n"));
  // Saved by a Windows editor as "UTF-8 with BOM", no "#!" line, not executable.
  const std::string bom = WriteLocal(local.path(), "upper.py",
                                     "\xEF\xBB\xBF"
                                     "import sys\n"
                                     "for l in sys.stdin:\n"
                                     "    print(l.strip().upper() + '\\t' + str(len(l.split())))\n",
                                     0644);
  auto r = Dfs(*mc, {"streaming", "-input", "/in.txt", "-output", "/up", "-mapper", "upper.py", "-file", bom,
                     "-reducer", "NONE"});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK(r.err.find("dfs streaming: " + bom +
                   " starts with a UTF-8 byte order mark (BOM), which hides its first line from the system; "
                   "removed it for the job. Save it as UTF-8 without BOM to silence this.\n") != std::string::npos);
  CHECK(r.err.find("dfs streaming: " + bom +
                   " has no '#!' line, so it cannot run by itself; running it as 'python3 upper.py'. Make "
                   "'#!/usr/bin/env python3' its first line to silence this.\n") != std::string::npos);
  CHECK(ReadParts(*fs, "/up") ==
        std::map<std::string, std::string>{{"part-00000", "HELLO WORLD\t2\nSECOND LINE\t2\n"}});
  CHECK(fs->GetFileInfo("/up/_SUCCESS").ok());

  // The same with a "#!" line behind the BOM and Windows line endings: all
  // three fixed, and the script is shipped executable.
  const std::string all = WriteLocal(local.path(), "lower.py",
                                     "\xEF\xBB\xBF"
                                     "#!/usr/bin/env python3\r\n"
                                     "import sys\r\n"
                                     "for l in sys.stdin:\r\n"
                                     "    print(l.strip().lower())\r\n",
                                     0644);
  auto r2 = Dfs(*mc, {"streaming", "-input", "/in.txt", "-output", "/low", "-mapper", "lower.py", "-file", all,
                      "-reducer", "NONE"});
  INFO(r2.err);
  REQUIRE(r2.rc == 0);
  CHECK(r2.err.find(all + " starts with a UTF-8 byte order mark (BOM)") != std::string::npos);
  CHECK(r2.err.find(all + " has Windows line endings (CRLF); converted to Unix (LF) for the job.") !=
        std::string::npos);
  CHECK(r2.err.find(all + " is not executable here; shipping it with the execute bit set. Run 'chmod +x " + all +
                    "' to silence this.") != std::string::npos);
  CHECK(r2.err.find("has no '#!' line") == std::string::npos);
  CHECK(ReadParts(*fs, "/low") == std::map<std::string, std::string>{{"part-00000", "hello world\nsecond line\n"}});
}

TEST_CASE("a task sees Hadoop's variables and -D keys and -cmdenv and its shipped files but not the DataNode's environment",
          "[streaming]") {
  // The DataNode (this process) has it; a task must not.
  ScopedEnv unbuffered("PYTHONUNBUFFERED", "1");
  auto mc = StartCluster();
  TempDir local;
  auto fs = mc->NewClient();
  REQUIRE_OK(WriteFile(*fs, "/envin/a.txt", "x\n"));
  REQUIRE_OK(WriteFile(*fs, "/envin/b.txt", "y\n"));
  const std::string extra = WriteLocal(local.path(), "extra.txt", "shipped data\n");
  const std::string mapper = WriteLocal(local.path(), "env.py",
                                        "#!/usr/bin/env python3\n"
                                        "import os, sys\n"
                                        "for line in sys.stdin:\n"
                                        "    pass\n"
                                        "for k in ['mapreduce_map_input_file', 'map_input_file', 'mapreduce_task_id',\n"
                                        "          'mapreduce_task_partition', 'mapreduce_task_attempt_id',\n"
                                        "          'mapreduce_job_id', 'my_custom_key', 'FOO', 'PYTHONUNBUFFERED',\n"
                                        "          'HOME', 'PATH', 'LANG']:\n"
                                        "    print('env:' + k + '\\t' + os.environ.get(k, '<unset>'))\n"
                                        "print('cwd\\t' + os.getcwd())\n"
                                        "print('ls\\t' + ' '.join(sorted(os.listdir('.'))))\n"
                                        "print('extra\\t' + open('extra.txt').read().strip())\n",
                                        0755);
  auto r = Dfs(*mc, {"streaming", "-D", "my.custom.key=v1", "-input", "/envin", "-output", "/envout", "-mapper",
                     "env.py", "-file", mapper, "-file", extra, "-cmdenv", "FOO=bar", "-reducer", "NONE"});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const std::string id = SubmittedId(r);
  const std::string job_part = id.substr(4);  // job_<n>_<seq> → <n>_<seq>

  const auto parts = ReadParts(*fs, "/envout");
  REQUIRE(parts.size() == 2);
  std::set<std::string> inputs;
  for (int i = 0; i < 2; ++i) {
    const std::string part = "part-0000" + std::to_string(i);
    REQUIRE(parts.count(part));
    INFO(part << ":\n" << parts.at(part));
    auto kv = KeyValues(parts.at(part));
    // Map i wrote part-i; its input is one of the two files, named as in dfs.
    const std::string input = kv["env:mapreduce_map_input_file"];
    CHECK((input == "/envin/a.txt" || input == "/envin/b.txt"));
    CHECK(kv["env:map_input_file"] == input);
    inputs.insert(input);
    CHECK(kv["env:mapreduce_task_id"] == "task_" + job_part + "_m_00000" + std::to_string(i));
    CHECK(kv["env:mapreduce_task_partition"] == std::to_string(i));
    CHECK(kv["env:mapreduce_task_attempt_id"].rfind("attempt_" + job_part + "_m_00000" + std::to_string(i) + "_", 0) ==
          0);
    CHECK(kv["env:mapreduce_job_id"] == id);
    CHECK(kv["env:my_custom_key"] == "v1");
    CHECK(kv["env:FOO"] == "bar");
    CHECK(kv["env:PYTHONUNBUFFERED"] == "<unset>");
    CHECK(kv["env:PATH"] == "/usr/local/bin:/usr/bin:/bin");
    CHECK(kv["env:LANG"] == "C.UTF-8");
    CHECK(kv["env:HOME"] == kv["cwd"]);
    // The working directory holds the shipped files (and the task's tmp/).
    const std::string ls = " " + kv["ls"] + " ";
    CHECK(ls.find(" extra.txt ") != std::string::npos);
    CHECK(ls.find(" env.py ") != std::string::npos);
    CHECK(kv["extra"] == "shipped data");
    // Each task has a directory of its own, inside the DataNode's directory.
    CHECK(kv["cwd"].find(kv["env:mapreduce_task_attempt_id"]) != std::string::npos);
    CHECK(kv["cwd"].rfind(mc->dir(), 0) == 0);
  }
  CHECK(inputs == std::set<std::string>{"/envin/a.txt", "/envin/b.txt"});
}

TEST_CASE("a process a mapper starts in a session of its own does not outlive the task", "[streaming]") {
  auto mc = StartCluster();
  TempDir local;
  auto fs = mc->NewClient();
  REQUIRE_OK(WriteFile(*fs, "/in.txt", "a\nb\n"));
  // Popen with the defaults: the child escapes the process group and keeps
  // the task's stdout and stderr open.
  const std::string mapper = WriteLocal(local.path(), "spawn.py",
                                        "#!/usr/bin/env python3\n"
                                        "import os, subprocess, sys\n"
                                        "n = sum(1 for _ in sys.stdin)\n"
                                        "p = subprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
                                        "print('child\\t' + str(p.pid))\n"
                                        "print('alive\\t' + str(os.path.exists('/proc/%d' % p.pid)))\n"
                                        "print('lines\\t' + str(n))\n",
                                        0755);
  auto sub = Dfs(*mc, {"streaming", "-background", "-input", "/in.txt", "-output", "/spawned", "-mapper", "spawn.py",
                       "-file", mapper, "-reducer", "NONE"});
  INFO(sub.err);
  REQUIRE(sub.rc == 0);
  const std::string id = SubmittedId(sub);
  client::JobClient jobs(*fs);
  proto::JobStatus st;
  const bool ended = WaitFor([&] {
    st = StatusOf(jobs, id);
    return Finished(st);
  }, 60s);
  if (!ended) {
    // Do not leave the job (and its sleep) behind for the next test.
    (void)jobs.Kill(id);
  }
  INFO("job " << id << ": " << proto::JobState_Name(st.state()) << ", " << st.maps_done() << "/" << st.maps_total()
              << " maps done; failure: " << st.failure());
  REQUIRE(ended);
  REQUIRE(st.state() == proto::JOB_SUCCEEDED);

  auto parts = ReadParts(*fs, "/spawned");
  REQUIRE(parts.size() == 1);
  auto kv = KeyValues(parts.begin()->second);
  INFO(parts.begin()->second);
  CHECK(kv["alive"] == "True");
  CHECK(kv["lines"] == "2");
  REQUIRE(!kv["child"].empty());
  const pid_t child = static_cast<pid_t>(std::stol(kv["child"]));
  REQUIRE(child > 0);
  CHECK(WaitFor([&] { return !SleepStillRuns(child); }, 20s));
  std::vector<pid_t> left;
  CHECK(WaitFor([&] {
    left = TaskProcesses(id);
    return left.empty();
  }, 20s));
  INFO("still running: " << Pids(left));
  CHECK(left.empty());
}
