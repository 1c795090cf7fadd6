// Unit tests of streaming/process.h: spawning a task's program with exact env,
// cwd and limits, stderr reporter parsing and tail, killing everything a task
// leaves behind, exit explanations and command resolution.
#include "streaming/process.h"

#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <tuple>

#include <catch2/catch.hpp>

#include "tests/mini_cluster.h"
#include "tests/test_util.h"

using namespace dfs;
using namespace dfs::streaming;
using namespace std::chrono_literals;
using dfs::test::TempDir;
using dfs::test::WaitFor;

namespace {

const char* kPath = "/usr/local/bin:/usr/bin:/bin";

void WriteFile(const std::string& path, const std::string& content, mode_t mode = 0644) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  REQUIRE(::chmod(path.c_str(), mode) == 0);
}

// Reads fd to end of file, failing the test if that takes longer than `deadline`.
std::string ReadAll(int fd, std::chrono::milliseconds deadline = 20s) {
  std::string out;
  auto end = std::chrono::steady_clock::now() + deadline;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) FAIL("no end of file within the deadline; read so far: " << out);
    struct pollfd pfd = {fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n == 0) return out;
    if (n < 0) FAIL("read failed: " << std::strerror(errno));
    out.append(buf, static_cast<size_t>(n));
  }
}

// Reads one '\n'-terminated line from fd.
std::string ReadLine(int fd) {
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') line.push_back(c);
  return line;
}

// Alive and not a zombie (a zombie waits for a parent, possibly one that never reaps).
bool IsRunning(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content;
  if (!std::getline(stat, content)) return false;
  size_t paren = content.rfind(')');
  return paren != std::string::npos && paren + 2 < content.size() && content[paren + 2] != 'Z' &&
         content[paren + 2] != 'X';
}

std::string ReadEnviron(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

ExitInfo MustWait(Subprocess& p, std::chrono::milliseconds timeout = 20s) {
  auto r = p.Wait(timeout);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return *r;
}

std::unique_ptr<Subprocess> MustSpawn(const SpawnOptions& o) {
  auto r = Subprocess::Spawn(o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return std::move(r).value();
}

SpawnOptions Options(std::vector<std::string> argv, const std::string& cwd) {
  SpawnOptions o;
  o.argv = std::move(argv);
  o.cwd = cwd;
  o.env = {std::string("PATH=") + kPath};
  return o;
}

std::string Python3() {
  auto r = ResolveCommand({"python3"}, "/", kPath);
  REQUIRE(r.ok());
  return (*r)[0];
}

}  // namespace

TEST_CASE("a task echoes its stdin through cat", "[streaming]") {
  TempDir tmp;
  auto p = MustSpawn(Options({"/bin/cat"}, tmp.path()));
  const std::string input = "hello\nworld\n";
  REQUIRE(::write(p->stdin_fd(), input.data(), input.size()) == static_cast<ssize_t>(input.size()));
  p->CloseStdin();
  CHECK(ReadAll(p->stdout_fd()) == input);
  ExitInfo e = MustWait(*p);
  CHECK(e.exited);
  CHECK(e.exit_code == 0);
  CHECK_FALSE(e.timed_out);
  // Later calls return the same result.
  CHECK(MustWait(*p, 0ms).exit_code == 0);
}

TEST_CASE("a task sees exactly the environment it was given", "[streaming]") {
  TempDir tmp;
  ::setenv("PYTHONUNBUFFERED", "1", 1);  // the DataNode's own environment must not leak
  SpawnOptions o = Options({"/usr/bin/env"}, tmp.path());
  o.env = {"A=1", "B=two words"};
  // Markers must be unique per host: KillByMarker of another test process would
  // otherwise kill this one.
  o.marker = "attempt_env_" + std::to_string(::getpid());
  auto p = MustSpawn(o);
  std::string out = ReadAll(p->stdout_fd());
  ::unsetenv("PYTHONUNBUFFERED");
  CHECK(out == "A=1\nB=two words\nDFS_TASK_ATTEMPT=" + o.marker + "\n");
  ExitInfo e = MustWait(*p);
  CHECK(e.exited);
  CHECK(e.exit_code == 0);
}

TEST_CASE("a task inherits no file descriptors but its three pipes", "[streaming]") {
  TempDir tmp;
  // Another task spawned meanwhile must not hold this one's stdin open, or cat
  // would never see end of input.
  auto first = MustSpawn(Options({"/bin/cat"}, tmp.path()));
  auto second = MustSpawn(Options({"/bin/ls", "/proc/self/fd"}, tmp.path()));
  CHECK(ReadAll(second->stdout_fd()) == "0\n1\n2\n3\n");  // 3: the directory ls is listing
  first->CloseStdin();
  CHECK(ReadAll(first->stdout_fd(), 10s).empty());
  CHECK(MustWait(*first).exit_code == 0);
  CHECK(MustWait(*second).exit_code == 0);
}

TEST_CASE("a task runs in its working directory", "[streaming]") {
  TempDir tmp;
  auto p = MustSpawn(Options({"/bin/pwd"}, tmp.path()));
  CHECK(ReadAll(p->stdout_fd()) == std::filesystem::canonical(tmp.path()).string() + "\n");
  CHECK(MustWait(*p).exit_code == 0);
}

TEST_CASE("exit codes 1, 126 and 127 are explained", "[streaming]") {
  TempDir tmp;
  SECTION("a Python exception exits 1 and its traceback is in the tail") {
    auto p = MustSpawn(Options({Python3(), "-c", "raise ValueError('boom')"}, tmp.path()));
    ExitInfo e = MustWait(*p);
    CHECK(e.exited);
    CHECK(e.exit_code == 1);
    CHECK_THAT(ExplainExit(e, "mapper.py"), Catch::Contains("traceback"));
    CHECK_THAT(p->StderrTail(), Catch::StartsWith("Traceback") && Catch::Contains("ValueError: boom"));
  }
  SECTION("a shell that cannot find a command exits 127") {
    auto p = MustSpawn(Options({"/bin/sh", "-c", "no-such-command-dfs"}, tmp.path()));
    ExitInfo e = MustWait(*p);
    CHECK(e.exit_code == 127);
    CHECK_THAT(ExplainExit(e, "run.sh"), Catch::Contains("not found") && Catch::Contains("Windows line endings"));
  }
  SECTION("a shell that cannot execute a file exits 126") {
    WriteFile(tmp.path() + "/tool", "echo hi\n", 0644);
    auto p = MustSpawn(Options({"/bin/sh", "-c", "./tool"}, tmp.path()));
    ExitInfo e = MustWait(*p);
    CHECK(e.exit_code == 126);
    CHECK_THAT(ExplainExit(e, "tool"), Catch::Contains("not executable") && Catch::Contains("chmod +x"));
  }
  SECTION("spawning a missing program fails like exit code 127") {
    auto r = Subprocess::Spawn(Options({tmp.path() + "/missing"}, tmp.path()));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kNotFound);
    CHECK_THAT(r.status().message(), Catch::Contains("127") && Catch::Contains("does not exist"));
  }
  SECTION("spawning a file without the execute bit fails like exit code 126") {
    WriteFile(tmp.path() + "/tool", "#!/bin/sh\necho hi\n", 0644);
    auto r = Subprocess::Spawn(Options({tmp.path() + "/tool"}, tmp.path()));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kPermissionDenied);
    CHECK_THAT(r.status().message(), Catch::Contains("126") && Catch::Contains("chmod +x tool"));
  }
  SECTION("spawning a script with a CRLF shebang explains Windows line endings") {
    // The kernel itself looks for "python3\r": the spawn fails.
    WriteFile(tmp.path() + "/mapper.py", "#!" + Python3() + "\r\nprint('x')\r\n", 0755);
    auto r = Subprocess::Spawn(Options({tmp.path() + "/mapper.py"}, tmp.path()));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kNotFound);
    CHECK_THAT(r.status().message(), Catch::Contains("Windows line endings") && Catch::Contains("dos2unix"));
  }
  SECTION("a CRLF env shebang makes env exit 127") {
    // Here env runs and then cannot find "python3\r": the task exits 127.
    WriteFile(tmp.path() + "/mapper.py", "#!/usr/bin/env python3\r\nprint('x')\r\n", 0755);
    auto p = MustSpawn(Options({tmp.path() + "/mapper.py"}, tmp.path()));
    ExitInfo e = MustWait(*p);
    CHECK(e.exit_code == 127);
    CHECK_THAT(ExplainExit(e, "mapper.py"), Catch::Contains("Windows line endings"));
  }
  SECTION("spawning a script whose interpreter is missing names the interpreter") {
    WriteFile(tmp.path() + "/mapper.py", "#!/nonexistent/python\nprint('x')\n", 0755);
    auto r = Subprocess::Spawn(Options({tmp.path() + "/mapper.py"}, tmp.path()));
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("/nonexistent/python") && Catch::Contains("127"));
  }
}

TEST_CASE("signals and timeouts are explained in plain words", "[streaming]") {
  ExitInfo killed{false, 0, SIGKILL, false};
  CHECK_THAT(ExplainExit(killed, "reducer.py"), Catch::Contains("SIGKILL") && Catch::Contains("memory limit"));
  ExitInfo cpu{false, 0, SIGXCPU, false};
  CHECK_THAT(ExplainExit(cpu, "m"), Catch::Contains("SIGXCPU") && Catch::Contains("CPU time"));
  ExitInfo fsz{false, 0, SIGXFSZ, false};
  CHECK_THAT(ExplainExit(fsz, "m"), Catch::Contains("file size limit"));
  ExitInfo segv{false, 0, SIGSEGV, false};
  CHECK_THAT(ExplainExit(segv, "m"), Catch::Contains("SIGSEGV") && Catch::Contains("segmentation fault"));
  ExitInfo via_shell{true, 137, 0, false};
  CHECK_THAT(ExplainExit(via_shell, "m"), Catch::Contains("SIGKILL"));
  ExitInfo timeout{false, 0, SIGTERM, true};
  CHECK_THAT(ExplainExit(timeout, "mapper.py", 600s),
             Catch::Contains("no progress for 600 s") && Catch::Contains("mapreduce.task.timeout"));
}

TEST_CASE("reporter lines become counters and status and stay out of the tail", "[streaming]") {
  TempDir tmp;
  std::mutex mu;
  std::vector<std::tuple<std::string, std::string, int64_t>> counters;
  std::vector<std::string> statuses;
  SpawnOptions o = Options({"/bin/sh", "-c",
                            "echo 'reporter:counter:Words,Seen,5' >&2; echo 'reporter:status:half done' >&2; "
                            "echo normal >&2; echo 'reporter:counter:Words,Seen,-2' >&2; "
                            "echo 'reporter:counter:bad line' >&2; printf 'reporter:status:last' >&2"},
                           tmp.path());
  o.stderr_log = tmp.path() + "/stderr.log";
  o.on_counter = [&](std::string_view g, std::string_view n, int64_t v) {
    std::lock_guard<std::mutex> l(mu);
    counters.emplace_back(std::string(g), std::string(n), v);
  };
  o.on_status = [&](std::string_view s) {
    std::lock_guard<std::mutex> l(mu);
    statuses.emplace_back(s);
  };
  auto p = MustSpawn(o);
  CHECK(MustWait(*p).exit_code == 0);
  std::lock_guard<std::mutex> l(mu);
  REQUIRE(counters.size() == 2);
  CHECK(counters[0] == std::make_tuple(std::string("Words"), std::string("Seen"), int64_t{5}));
  CHECK(std::get<2>(counters[1]) == -2);
  CHECK(statuses == std::vector<std::string>{"half done", "last"});
  // A malformed reporter line is shown to the student rather than dropped.
  CHECK(p->StderrTail() == "normal\nreporter:counter:bad line\n");
  std::ifstream log(o.stderr_log);
  std::string logged((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  CHECK(logged == "normal\nreporter:counter:bad line\n");
}

TEST_CASE("the stderr tail keeps the last whole lines and bounds huge lines", "[streaming]") {
  TempDir tmp;
  SECTION("many lines then a traceback") {
    SpawnOptions o = Options({Python3(), "-c",
                              "import sys\n"
                              "for i in range(5000): print('noise line', i, file=sys.stderr)\n"
                              "raise ValueError('boom')\n"},
                             tmp.path());
    o.stderr_tail_bytes = 300;
    auto p = MustSpawn(o);
    CHECK(MustWait(*p).exit_code == 1);
    std::string tail = p->StderrTail();
    CHECK(tail.size() <= 300);
    CHECK_THAT(tail, Catch::EndsWith("ValueError: boom\n") && Catch::Contains("Traceback"));
    CHECK_FALSE(tail.starts_with("oise"));
    bool starts_at_line = tail.starts_with("noise line ") || tail.starts_with("Traceback");
    CHECK(starts_at_line);
  }
  SECTION("a huge line without a newline, even one that looks like a reporter line") {
    SpawnOptions o = Options({Python3(), "-c",
                              "import sys\n"
                              "sys.stderr.write('reporter:status:' + 'y' * 3000000)\n"
                              "sys.stderr.write('\\n' + 'x' * 5000000)\n"},
                             tmp.path());
    o.stderr_tail_bytes = 1000;
    bool got_status = false;
    o.on_status = [&](std::string_view) { got_status = true; };
    auto p = MustSpawn(o);
    CHECK(MustWait(*p).exit_code == 0);
    CHECK(p->StderrTail() == std::string(1000, 'x'));
    CHECK_FALSE(got_status);
  }
}

TEST_CASE("stderr output counts as activity", "[streaming]") {
  TempDir tmp;
  auto p = MustSpawn(Options({"/bin/sh", "-c", "read x; echo hi >&2"}, tmp.path()));
  uint64_t start = p->last_activity_ms();
  CHECK(start > 0);
  REQUIRE(::write(p->stdin_fd(), "go\n", 3) == 3);
  CHECK(MustWait(*p).exit_code == 0);
  CHECK(p->last_activity_ms() >= start);
  CHECK(p->StderrTail() == "hi\n");
}

TEST_CASE("a CPU limit stops a busy loop", "[streaming]") {
  TempDir tmp;
  SpawnOptions o = Options({"/bin/sh", "-c", "while :; do :; done"}, tmp.path());
  o.cpu_seconds = 1;
  auto p = MustSpawn(o);
  ExitInfo e = MustWait(*p, 30s);
  CHECK_FALSE(e.exited);
  bool cpu_signal = e.signal == SIGXCPU || e.signal == SIGKILL;
  CHECK(cpu_signal);
}

TEST_CASE("a file size limit stops a large write", "[streaming]") {
  TempDir tmp;
  SpawnOptions o = Options({"/bin/dd", "if=/dev/zero", "of=big", "bs=1000", "count=100"}, tmp.path());
  o.file_bytes = 8192;
  auto p = MustSpawn(o);
  ExitInfo e = MustWait(*p);
  CHECK_FALSE(e.exited);
  CHECK(e.signal == SIGXFSZ);
  CHECK(std::filesystem::file_size(tmp.path() + "/big") <= 8192);
}

TEST_CASE("a memory limit makes large allocations fail", "[streaming]") {
  TempDir tmp;
  SpawnOptions o = Options({Python3(), "-c", "x = bytearray(1 << 30)"}, tmp.path());
  o.memory_bytes = 256ull << 20;
  auto p = MustSpawn(o);
  CHECK(MustWait(*p).exit_code == 1);
  CHECK_THAT(p->StderrTail(), Catch::Contains("MemoryError"));
}

TEST_CASE("processes that escape with setsid die with the task", "[streaming]") {
  TempDir tmp;
  // setsid in a non-interactive shell's background job execs sleep in a new
  // session: outside the task's process group, but still carrying its marker.
  SpawnOptions o = Options({"/bin/sh", "-c", "setsid sleep 1000 & echo $!"}, tmp.path());
  o.marker = "attempt_test_escape_" + std::to_string(::getpid());
  auto p = MustSpawn(o);
  pid_t escaped = std::stoi(ReadLine(p->stdout_fd()));
  REQUIRE(escaped > 0);
  ExitInfo e = MustWait(*p);
  CHECK(e.exit_code == 0);
  CHECK(WaitFor([&] { return !IsRunning(escaped); }, 10s));
  CHECK(KillByMarker(o.marker) == 0);
}

TEST_CASE("KillByMarker finds a process only by its exact marker", "[streaming]") {
  TempDir tmp;
  std::string marker = "attempt_test_marker_" + std::to_string(::getpid());
  SpawnOptions other = Options({"/bin/sleep", "1000"}, tmp.path());
  other.marker = marker + "_other";
  auto bystander = MustSpawn(other);
  SpawnOptions o = Options({"/bin/sleep", "1000"}, tmp.path());
  o.marker = marker;
  auto target = MustSpawn(o);
  // Until exec has finished setting up, a process shows an empty environment.
  REQUIRE(WaitFor([&] { return ReadEnviron(target->pid()).find(marker) != std::string::npos; }, 10s));
  CHECK(KillByMarker(marker) == 1);
  ExitInfo e = MustWait(*target);
  CHECK(e.signal == SIGKILL);
  CHECK(IsRunning(bystander->pid()));
  bystander->Kill();
}

TEST_CASE("Kill stops a task and its process group quickly", "[streaming]") {
  TempDir tmp;
  SECTION("sleep dies of SIGTERM") {
    auto p = MustSpawn(Options({"/bin/sleep", "1000"}, tmp.path()));
    auto r = p->Wait(50ms);
    CHECK(r.status().code() == StatusCode::kTimedOut);
    auto start = std::chrono::steady_clock::now();
    p->Kill();
    CHECK(std::chrono::steady_clock::now() - start < 900ms);
    ExitInfo e = MustWait(*p, 0ms);
    CHECK(e.signal == SIGTERM);
    CHECK_FALSE(e.timed_out);
  }
  SECTION("a group that ignores SIGTERM gets SIGKILL after the grace period") {
    SpawnOptions o = Options({"/bin/sh", "-c", "trap '' TERM; sleep 1000 & echo $!; wait"}, tmp.path());
    o.kill_grace = 200ms;
    auto p = MustSpawn(o);
    pid_t child = std::stoi(ReadLine(p->stdout_fd()));
    p->KillForTimeout();
    ExitInfo e = MustWait(*p, 0ms);
    CHECK(e.signal == SIGKILL);
    CHECK(e.timed_out);
    CHECK(WaitFor([&] { return !IsRunning(child); }, 10s));
    CHECK_THAT(ExplainExit(e, "sh", 1s), Catch::Contains("no progress"));
  }
  SECTION("the destructor kills a running task") {
    pid_t pid;
    {
      auto p = MustSpawn(Options({"/bin/sleep", "1000"}, tmp.path()));
      pid = p->pid();
    }
    CHECK_FALSE(IsRunning(pid));
  }
}

TEST_CASE("ResolveCommand follows shebangs and the PATH", "[streaming]") {
  TempDir tmp;
  const std::string bin = tmp.path() + "/bin";
  const std::string work = tmp.path() + "/work";
  std::filesystem::create_directories(bin);
  std::filesystem::create_directories(work);
  WriteFile(bin + "/python3", "#!/bin/sh\n", 0755);
  WriteFile(bin + "/sh", "#!/bin/sh\n", 0755);
  const std::string path = bin + ":/nonexistent";

  SECTION("an env shebang is resolved on the PATH once") {
    WriteFile(work + "/mapper.py", "#!/usr/bin/env python3 -u\nprint(1)\n");
    auto r = ResolveCommand({"mapper.py", "arg"}, work, path);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    CHECK(*r == std::vector<std::string>{bin + "/python3", "-u", work + "/mapper.py", "arg"});
  }
  SECTION("a direct shebang is used as written") {
    WriteFile(work + "/mapper.py", "#!" + bin + "/python3\nprint(1)\n");
    auto r = ResolveCommand({"./mapper.py"}, work, path);
    REQUIRE(r.ok());
    CHECK(*r == std::vector<std::string>{bin + "/python3", work + "/mapper.py"});
  }
  SECTION("a CRLF shebang explains Windows line endings") {
    WriteFile(work + "/mapper.py", "#!/usr/bin/env python3\r\nprint(1)\r\n");
    auto r = ResolveCommand({"mapper.py"}, work, path);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("Windows line endings") && Catch::Contains("mapper.py"));
  }
  SECTION("a missing interpreter is named with a fix") {
    WriteFile(work + "/mapper.py", "#!/nonexistent/python\nprint(1)\n");
    auto r = ResolveCommand({"mapper.py"}, work, path);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kNotFound);
    CHECK_THAT(r.status().message(),
               Catch::Contains("mapper.py asks for interpreter /nonexistent/python (its first line)") &&
                   Catch::Contains("#!/usr/bin/env python3") && Catch::Contains(bin + "/python3"));
  }
  SECTION("an env shebang for python suggests python3") {
    WriteFile(work + "/mapper.py", "#!/usr/bin/env python\nprint(1)\n");
    auto r = ResolveCommand({"mapper.py"}, work, path);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("python3"));
  }
  SECTION("a .py file without a shebang runs with python3") {
    WriteFile(work + "/reducer.py", "print(1)\n");
    auto r = ResolveCommand({"reducer.py", "-k", "2"}, work, path);
    REQUIRE(r.ok());
    CHECK(*r == std::vector<std::string>{bin + "/python3", work + "/reducer.py", "-k", "2"});
  }
  SECTION("a bare command is found on the PATH and its script made absolute") {
    WriteFile(work + "/reducer.py", "print(1)\n");
    auto r = ResolveCommand({"python3", "-u", "reducer.py"}, work, path);
    REQUIRE(r.ok());
    CHECK(*r == std::vector<std::string>{bin + "/python3", "-u", work + "/reducer.py"});
    auto missing = ResolveCommand({"python3", "other.py"}, work, path);
    REQUIRE_FALSE(missing.ok());
    CHECK_THAT(missing.status().message(), Catch::Contains("-file other.py"));
    auto code = ResolveCommand({"python3", "-c", "print(1)"}, work, path);
    REQUIRE(code.ok());
    CHECK((*code)[2] == "print(1)");
  }
  SECTION("python without python3 spelled out suggests python3") {
    auto r = ResolveCommand({"python", "mapper.py"}, work, path);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("python3"));
  }
  SECTION("an unknown command is explained") {
    auto r = ResolveCommand({"no-such-tool"}, work, path);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("no-such-tool") && Catch::Contains("PATH"));
  }
  SECTION("a file that is not executable and has no shebang needs chmod") {
    WriteFile(work + "/mapper", "echo hi\n", 0644);
    auto r = ResolveCommand({"mapper"}, work, path);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kPermissionDenied);
    CHECK_THAT(r.status().message(), Catch::Contains("chmod +x mapper"));
  }
  SECTION("an executable text file without a shebang runs with sh, a binary runs itself") {
    WriteFile(work + "/mapper", "echo hi\n", 0755);
    auto r = ResolveCommand({"mapper"}, work, path);
    REQUIRE(r.ok());
    CHECK(*r == std::vector<std::string>{bin + "/sh", work + "/mapper"});
    std::filesystem::copy_file("/bin/true", work + "/tool");
    auto b = ResolveCommand({"tool"}, work, path);
    REQUIRE(b.ok());
    CHECK(*b == std::vector<std::string>{work + "/tool"});
  }
  SECTION("absolute programs must exist and be executable") {
    CHECK(ResolveCommand({"/bin/cat"}, work, path).ok());
    CHECK(ResolveCommand({"/nonexistent/cat"}, work, path).status().code() == StatusCode::kNotFound);
    WriteFile(work + "/data", "x\n", 0644);
    CHECK(ResolveCommand({work + "/data"}, work, path).status().code() == StatusCode::kPermissionDenied);
  }
}

TEST_CASE("a resolved script runs end to end", "[streaming]") {
  TempDir tmp;
  WriteFile(tmp.path() + "/mapper.py",
            "#!/usr/bin/env python3\nimport sys\nfor line in sys.stdin:\n    print(line.strip().upper())\n", 0644);
  auto argv = ResolveCommand({"mapper.py"}, tmp.path(), kPath);
  INFO(argv.status().ToString());
  REQUIRE(argv.ok());
  auto p = MustSpawn(Options(*argv, tmp.path()));
  REQUIRE(::write(p->stdin_fd(), "a b\nc\n", 6) == 6);
  p->CloseStdin();
  CHECK(ReadAll(p->stdout_fd()) == "A B\nC\n");
  CHECK(MustWait(*p).exit_code == 0);
}
