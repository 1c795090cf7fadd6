// The FUSE mount, tried with real tools: a MiniCluster in this process, the
// real dfs-fuse binary mounting it at a fresh directory (in the foreground, as
// a child process), and cp, cat, ls, find, grep, tar, dd and Python run
// against the mount through bash. Skipped, with a message, where /dev/fuse or
// fusermount3 is missing.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

#include "tests/mini_cluster.h"
#include "tests/process_cluster.h"
#include "tests/test_util.h"

extern char** environ;

using namespace dfs;
using namespace dfs::test;
namespace stdfs = std::filesystem;

namespace {

struct ShResult {
  int rc;
  std::string out;  // stdout and stderr
};

// Runs a bash script with a deadline. Children get none of this process's
// descriptors: the MiniCluster's listening sockets must not outlive it in them.
ShResult Sh(const std::string& script, int timeout_s = 120) {
  int fds[2];
  REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  std::string secs = std::to_string(timeout_s);
  std::vector<std::string> argv = {"/usr/bin/timeout", "-k", "5", secs, "bash", "-c", script};
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  REQUIRE(rc == 0);
  std::string out;
  std::array<char, 65536> buf;
  ssize_t n;
  while ((n = read(fds[0], buf.data(), buf.size())) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) out.append(buf.data(), static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool IsMounted(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream is(line);
    std::string f[5];
    for (auto& x : f) is >> x;
    if (f[4] == dir) return true;
  }
  return false;
}

// Why FUSE cannot be tested here, or empty.
std::string FuseUnavailable() {
  if (access("/dev/fuse", R_OK | W_OK) != 0) return "/dev/fuse is not available";
  if (Sh("command -v fusermount3").rc != 0) return "fusermount3 is not installed";
  return "";
}

// dfs-fuse mounting `mc` at <cluster dir>/mnt, in the foreground; unmounted
// (and the daemon reaped) on destruction.
class Mount {
 public:
  Mount(MiniCluster& mc, std::vector<std::string> extra = {}) : dir_(mc.dir() + "/mnt"), log_(mc.dir() + "/fuse.log") {
    stdfs::create_directories(dir_);
    std::vector<std::string> argv = {std::string(DFS_BIN_DIR) + "/dfs-fuse", "-f", "--namenode", mc.namenode_address(),
                                     "-D", "dfs.fuse.namenode.retry=30s", "-D", "dfs.blocksize=1m"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(dir_);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    REQUIRE(posix_spawn(&pid_, cargv[0], &fa, nullptr, cargv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    const bool up = WaitFor([&] {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return true;
      }
      return IsMounted(dir_);
    });
    INFO(Slurp(log_));
    REQUIRE(pid_ > 0);
    REQUIRE(up);
  }

  ~Mount() { Unmount(); }

  // fusermount3 -u, then waits for the daemon to exit.
  int Unmount() {
    if (pid_ <= 0) return -1;
    if (IsMounted(dir_)) Sh("fusermount3 -u " + dir_ + " || fusermount3 -uz " + dir_);
    return Reap(std::chrono::seconds(20));
  }

  // Waits for the daemon's exit; kills it after the deadline. Its exit code.
  int Reap(std::chrono::milliseconds deadline) {
    int status = 0;
    const bool gone = WaitFor([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, deadline);
    if (!gone) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      Sh("fusermount3 -uz " + dir_);
    }
    pid_ = -1;
    return gone && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }
  std::string log() const { return Slurp(log_); }

 private:
  std::string dir_, log_;
  pid_t pid_ = -1;
};

#define SKIP_WITHOUT_FUSE()                                          \
  do {                                                               \
    if (std::string why = FuseUnavailable(); !why.empty()) {         \
      WARN(kSkipMarker << " FUSE tests need FUSE: " << why);         \
      return;                                                        \
    }                                                                \
  } while (0)

std::unique_ptr<MiniCluster> StartCluster() {
  auto mc = MiniCluster::Start();
  REQUIRE(mc.ok());
  REQUIRE((*mc)->WaitForDatanodes(3).ok());
  return std::move(*mc);
}

}  // namespace

TEST_CASE("files copied into and out of the mount are byte-identical, and match dfs", "[fuse]") {
  SKIP_WITHOUT_FUSE();
  auto mc = StartCluster();
  Mount m(*mc);
  auto fs = mc->NewClient();
  const std::string local = mc->dir() + "/local";
  stdfs::create_directories(local);
  // 5.5 MiB: several 1 MiB blocks and a partial one.
  const std::string data = RandomBytes((11 << 20) / 2, 42);
  std::ofstream(local + "/big.bin", std::ios::binary) << data;

  auto r = Sh("set -e; cd " + m.dir() + "; cp " + local + "/big.bin big.bin; cp big.bin " + local +
              "/back.bin; cmp " + local + "/big.bin " + local + "/back.bin; stat -c '%s %a %F' big.bin");
  INFO(r.out << m.log());
  REQUIRE(r.rc == 0);
  CHECK(r.out == std::to_string(data.size()) + " 644 regular file\n");
  // What the mount wrote, read through the client library.
  auto via_dfs = ReadFile(*fs, "/big.bin");
  REQUIRE(via_dfs.ok());
  CHECK(*via_dfs == data);
  auto blocks = fs->GetBlockLocations("/big.bin");
  REQUIRE(blocks.ok());
  CHECK(blocks->size() == 6);

  // And the reverse: written with the client library, read through the mount.
  const std::string text = "one\ntwo\nthree\n";
  REQUIRE_OK(WriteFile(*fs, "/from-dfs.txt", text));
  r = Sh("cat " + m.dir() + "/from-dfs.txt");
  INFO(r.out);
  CHECK(r.out == text);
  r = Sh("cd " + m.dir() + " && ls -l big.bin from-dfs.txt | awk '{print $1, $5, $NF}'");
  CHECK(r.out == "-rw-r--r-- " + std::to_string(data.size()) + " big.bin\n-rw-r--r-- 14 from-dfs.txt\n");
}

TEST_CASE("directories: mkdir -p, mv, find, grep -r, rm -r", "[fuse]") {
  SKIP_WITHOUT_FUSE();
  auto mc = StartCluster();
  Mount m(*mc);
  auto fs = mc->NewClient();
  auto r = Sh("set -e; mkdir " + m.dir() + "/w; cd " + m.dir() +
              "/w; mkdir -p a/b/c; echo hello > a/b/c/f1.txt; echo world > a/b/f2.txt; "
              "mv a/b/c/f1.txt a/b/c/g1.txt; mv a/b renamed; find . | sort; grep -r hello .; "
              "mkdir d && rmdir d; test ! -e d");
  INFO(r.out << m.log());
  REQUIRE(r.rc == 0);
  CHECK(r.out ==
        ".\n./a\n./renamed\n./renamed/c\n./renamed/c/g1.txt\n./renamed/f2.txt\n"
        "./renamed/c/g1.txt:hello\n");
  auto f = fs->GetFileInfo("/w/renamed/c/g1.txt");
  REQUIRE(f.ok());
  CHECK(f->length == 6);
  // Errors are the usual errnos.
  r = Sh("cd " + m.dir() + "/w; rmdir renamed 2>&1; cat nothing 2>&1; mkdir a 2>&1; true");
  CHECK_THAT(r.out, Catch::Contains("Directory not empty"));
  CHECK_THAT(r.out, Catch::Contains("No such file or directory"));
  CHECK_THAT(r.out, Catch::Contains("File exists"));
  r = Sh("set -e; cd " + m.dir() + "/w; rm -r renamed a; ls -A | wc -l");
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK(r.out == "0\n");
  CHECK(fs->GetFileInfo("/w/renamed").status().code() == StatusCode::kNotFound);
}

TEST_CASE("tar extracts into the mount and archives out of it; dd with large blocks", "[fuse]") {
  SKIP_WITHOUT_FUSE();
  auto mc = StartCluster();
  Mount m(*mc);
  const std::string local = mc->dir() + "/local";
  auto r = Sh("set -e; mkdir -p " + local + "/src/sub; cd " + local +
              "; for i in $(seq 1 50); do echo line $i > src/f$i.txt; done; head -c 3000000 /dev/urandom > "
              "src/sub/blob; chmod 600 src/f7.txt; tar cf src.tar src; "
              "cd " + m.dir() + "; tar xf " + local + "/src.tar; tar cf " + local +
              "/back.tar src; mkdir " + local + "/out; tar xf " + local + "/back.tar -C " + local +
              "/out; diff -r " + local + "/src " + local + "/out/src; stat -c %a src/f7.txt");
  INFO(r.out << m.log());
  REQUIRE(r.rc == 0);
  CHECK(r.out == "600\n");
  r = Sh("set -e; cd " + m.dir() + "; dd if=/dev/urandom of=" + local +
         "/dd.in bs=1M count=7 status=none; dd if=" + local +
         "/dd.in of=dd.bin bs=4M status=none; dd if=dd.bin of=" + local +
         "/dd.out bs=4M status=none; cmp " + local + "/dd.in " + local + "/dd.out");
  INFO(r.out << m.log());
  CHECK(r.rc == 0);
}

TEST_CASE("Python open(): write, read, seek, append, save by rename; a random write is refused", "[fuse]") {
  SKIP_WITHOUT_FUSE();
  auto mc = StartCluster();
  Mount m(*mc);
  auto fs = mc->NewClient();
  const std::string script = mc->dir() + "/t.py";
  std::ofstream(script) << R"PY(
import errno, os, sys
os.mkdir(os.path.join(sys.argv[1], "py"))
os.chdir(os.path.join(sys.argv[1], "py"))
with open("notes.txt", "w") as f:
    f.write("alpha\nbeta\n")
    f.flush()
    os.fsync(f.fileno())
with open("notes.txt") as f:
    assert f.read() == "alpha\nbeta\n"
with open("notes.txt", "rb") as f:
    f.seek(6)
    assert f.read(4) == b"beta", "seek+read"
with open("notes.txt", "a") as f:
    f.write("gamma\n")
assert open("notes.txt").read() == "alpha\nbeta\ngamma\n", "append"
# An editor's save: write a temporary, then rename it over the original.
with open(".notes.txt.swp", "w") as f:
    f.write("edited\n")
os.replace(".notes.txt.swp", "notes.txt")
assert open("notes.txt").read() == "edited\n"
assert sorted(os.listdir(".")) == ["notes.txt"], os.listdir(".")
# Writing in the middle of a file is not supported, and says so.
fd = os.open("notes.txt", os.O_RDWR)
try:
    os.pwrite(fd, b"X", 2)
    raise SystemExit("a random write was accepted")
except OSError as e:
    assert e.errno == errno.EOPNOTSUPP, e
finally:
    os.close(fd)
assert open("notes.txt").read() == "edited\n"
# Truncating to zero works (open with "w" again).
with open("notes.txt", "w") as f:
    f.write("new\n")
assert open("notes.txt").read() == "new\n"
print("ok")
)PY";
  auto r = Sh("python3 " + script + " " + m.dir());
  INFO(r.out << m.log());
  REQUIRE(r.rc == 0);
  CHECK(r.out == "ok\n");
  auto text = ReadFile(*fs, "/py/notes.txt");
  REQUIRE(text.ok());
  CHECK(*text == "new\n");
  CHECK_THAT(m.log(), Catch::Contains("refused (EOPNOTSUPP): dfs files are written sequentially"));
}

TEST_CASE("the mount shows the cluster's capacity and survives a NameNode restart", "[fuse]") {
  SKIP_WITHOUT_FUSE();
  auto mc = StartCluster();
  Mount m(*mc);
  auto r = Sh("df -B1 --output=size,fstype " + m.dir() + " | tail -n 1");
  INFO(r.out);
  REQUIRE(r.rc == 0);
  auto stats = mc->NewClient()->GetStats();
  REQUIRE(stats.ok());
  CHECK_THAT(r.out, Catch::Contains("fuse.dfs"));
  CHECK(std::stoull(r.out) == stats->capacity() / 4096 * 4096);

  REQUIRE_OK(mc->StopNameNode());
  // While the NameNode is away an operation waits (up to dfs.fuse.namenode.retry),
  // then goes on once it is back.
  Status restarted;
  std::thread restart([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    restarted = mc->StartNameNode();
  });
  r = Sh("mkdir " + m.dir() + "/after-restart && ls -d " + m.dir() + "/after-restart | xargs basename");
  restart.join();
  INFO(r.out << m.log());
  REQUIRE_OK(restarted);
  CHECK(r.rc == 0);
  CHECK(r.out == "after-restart\n");
  CHECK_THAT(m.log(), Catch::Contains("retrying for up to 30 s"));
  REQUIRE_OK(mc->WaitForDatanodes(3));
  r = Sh("echo ok > " + m.dir() + "/after-restart/f && cat " + m.dir() + "/after-restart/f");
  INFO(r.out << m.log());
  CHECK(r.rc == 0);
  CHECK(r.out == "ok\n");
}

TEST_CASE("dfs umount and SIGTERM unmount cleanly; files open for writing are completed", "[fuse]") {
  SKIP_WITHOUT_FUSE();
  auto mc = StartCluster();
  auto fs = mc->NewClient();
  {
    Mount m(*mc);
    auto r = Sh(std::string(DFS_BIN_DIR) + "/dfs umount " + m.dir());
    INFO(r.out << m.log());
    CHECK(r.rc == 0);
    CHECK(m.Reap(std::chrono::seconds(20)) == 0);
    CHECK_FALSE(IsMounted(m.dir()));
  }
  {
    Mount m(*mc);
    // A writer that stays open while the mount is told to stop.
    auto r = Sh("(exec 3>" + m.dir() + "/open.txt; echo kept >&3; sleep 30) & echo started");
    REQUIRE(r.rc == 0);
    REQUIRE(WaitFor([&] { return fs->GetFileInfo("/open.txt").ok(); }));
    kill(m.pid(), SIGTERM);
    const int rc = m.Reap(std::chrono::seconds(20));
    INFO(m.log());
    CHECK(rc == 0);
    CHECK_FALSE(IsMounted(m.dir()));
    auto text = ReadFile(*fs, "/open.txt");
    REQUIRE(text.ok());
    CHECK(*text == "kept\n");
  }
}

TEST_CASE("many readers and writers at once through the mount all see the right bytes", "[fuse]") {
  SKIP_WITHOUT_FUSE();
  auto mc = StartCluster();
  Mount m(*mc);
  auto fs = mc->NewClient();
  // A shared file, written with the client library: 6.5 blocks.
  const std::string shared = RandomBytes((13 << 20) / 2, 7);
  REQUIRE_OK(WriteFile(*fs, "/shared.bin", shared));
  const std::string script = mc->dir() + "/concurrent.py";
  std::ofstream(script) << R"PY(
import hashlib, os, random, sys, threading
mnt = sys.argv[1]
expect = hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest()
size = os.path.getsize(sys.argv[2])
errors = []

def content(i):
    return random.Random(i).randbytes(1_500_000 + 97_003 * i)

def writer(i):
    try:
        data = content(i)
        with open(os.path.join(mnt, "w", "f%d" % i), "wb") as f:
            for off in range(0, len(data), 65536 + i * 4096):
                f.write(data[off:off + 65536 + i * 4096])
    except Exception as e:
        errors.append("writer %d: %r" % (i, e))

def reader(i):
    try:
        h = hashlib.sha256()
        with open(os.path.join(mnt, "shared.bin"), "rb", buffering=0) as f:
            while True:
                b = f.read(4096 * (1 + i * 7))
                if not b:
                    break
                h.update(b)
        if h.hexdigest() != expect:
            errors.append("reader %d: wrong bytes" % i)
    except Exception as e:
        errors.append("reader %d: %r" % (i, e))

def seeker(i):
    # Random pieces through one descriptor shared by threads (pread).
    try:
        fd = os.open(os.path.join(mnt, "shared.bin"), os.O_RDONLY)
        want = open(sys.argv[2], "rb").read()
        rng = random.Random(100 + i)
        for _ in range(40):
            off = rng.randrange(size)
            n = rng.randrange(1, 300_000)
            if os.pread(fd, n, off) != want[off:off + n]:
                errors.append("seeker %d: wrong bytes at %d" % (i, off))
                break
        os.close(fd)
    except Exception as e:
        errors.append("seeker %d: %r" % (i, e))

os.mkdir(os.path.join(mnt, "w"))
threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
threads += [threading.Thread(target=reader, args=(i,)) for i in range(6)]
threads += [threading.Thread(target=seeker, args=(i,)) for i in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for e in errors:
    print(e)
# What the writers wrote, read back through the mount.
for i in range(6):
    with open(os.path.join(mnt, "w", "f%d" % i), "rb") as f:
        if f.read() != content(i):
            print("f%d: read back wrong" % i)
print("done")
)PY";
  const std::string local = mc->dir() + "/shared.local";
  std::ofstream(local, std::ios::binary) << shared;
  auto r = Sh("python3 " + script + " " + m.dir() + " " + local, 300);
  INFO(r.out << m.log());
  REQUIRE(r.rc == 0);
  CHECK(r.out == "done\n");
  // And through the client library: every written file is complete and closed.
  auto list = fs->ListAll("/w");
  REQUIRE(list.ok());
  CHECK(list->size() == 6);
  for (const auto& e : *list) {
    CHECK_FALSE(e.under_construction);
    auto data = ReadFile(*fs, "/w/" + e.name);
    REQUIRE(data.ok());
    CHECK(data->size() == 1'500'000 + 97'003 * static_cast<size_t>(std::stoi(e.name.substr(1))));
  }
}
